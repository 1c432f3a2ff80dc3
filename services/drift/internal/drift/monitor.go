package drift

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/drift/internal/window"
)

// Closed is a closed window with its statistics and the events it raised.
type Closed struct {
	ID        int64
	Model     string
	Version   string // champion whose reference the window was compared with
	RunID     string
	Reason    string // "count", "time", "reference", "shutdown"
	Stats     window.Stats
	Ref       *Reference
	Crossings int
	Events    []*eventsv1.DriftEvent
	// ByVersion is the realized performance per model version among the labelled
	// predictions (AUC or MSE).
	ByVersion map[float64]window.VersionPerformance
}

// monitor watches one model: its reference, the open window, the closed windows and the
// detector. Its methods are safe for concurrent use.
type monitor struct {
	model string
	cfg   Config
	m     *metrics

	mu      sync.Mutex
	ref     *Reference
	cur     *window.State
	nextID  int64
	history []*Closed // oldest first, at most cfg.History
	events  []*eventsv1.DriftEvent
	det     *detector

	// Merged mode: open windows by event-time index, the last judged index, and the runs of
	// references that were replaced (their partials are dropped).
	open       map[int64]*window.State
	lastMerged int64
	retired    map[string]bool

	// watch follows a newly promoted champion for automatic rollback; nil when none.
	watch *watch
}

func newMonitor(model string, cfg Config, m *metrics) *monitor {
	return &monitor{model: model, cfg: cfg, m: m, nextID: 1, det: newDetector(cfg.Persist, cfg.Cooldown),
		open: map[int64]*window.State{}, lastMerged: math.MinInt64, retired: map[string]bool{}}
}

// reference returns the reference in use (nil before the first load).
func (mo *monitor) reference() *Reference {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	return mo.ref
}

// referenceFor returns the reference of runID when it is the one in use, and whether runID
// belongs to a replaced reference.
func (mo *monitor) referenceFor(runID string) (*Reference, bool) {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	if mo.retired[runID] {
		return nil, true
	}
	if mo.ref != nil && mo.ref.RunID == runID {
		return mo.ref, false
	}
	return nil, false
}

// setReference swaps the reference. A different champion closes the open window (judged
// against the old reference) and restarts the detector's history; the closed window's events
// are returned.
func (mo *monitor) setReference(ref *Reference) []*eventsv1.DriftEvent {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	if mo.ref != nil && mo.ref.Version == ref.Version && mo.ref.RunID == ref.RunID {
		return nil
	}
	var evs []*eventsv1.DriftEvent
	if mo.cur != nil && !mo.cur.Empty() {
		evs = mo.closeLocked("reference")
	}
	for _, w := range slices.Sorted(maps.Keys(mo.open)) {
		evs = append(evs, mo.judgeLocked(mo.open[w], mo.ref, "reference", eventsv1.WindowKind_WINDOW_KIND_TIME)...)
		delete(mo.open, w)
		mo.lastMerged = w
	}
	if mo.ref != nil {
		mo.retired[mo.ref.RunID] = true
	}
	mo.startWatch(mo.ref, ref)
	mo.ref = ref
	mo.cur = window.NewState(ref.Layout)
	mo.det.reset()
	v, _ := strconv.ParseFloat(ref.Version, 64)
	mo.m.referenceVersion.WithLabelValues(mo.model).Set(v)
	mo.m.stateBytes.WithLabelValues(mo.model).Set(float64(ref.Layout.Bytes()))
	return evs
}

// addPrediction adds one prediction and returns the events of the window it closed, if any.
// The caller has checked the vector against the reference (spec and length).
func (mo *monitor) addPrediction(hash uint64, eventTime int64, version string, values []float64, score, threshold float64) []*eventsv1.DriftEvent {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	var evs []*eventsv1.DriftEvent
	if mo.cur.Predictions > 0 && eventTime-mo.cur.Start >= int64(mo.cfg.WindowDuration) {
		evs = mo.closeLocked("time")
	}
	mo.cur.AddPrediction(hash, eventTime, version, values, score, threshold)
	if mo.cur.Predictions >= int64(mo.cfg.WindowCount) {
		evs = append(evs, mo.closeLocked("count")...)
	}
	return evs
}

// addLabel adds a joined label to the open window.
func (mo *monitor) addLabel(hash uint64, p pending, label float64) {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	if mo.cur != nil {
		mo.cur.AddLabel(hash, p.score, label, p.amount, p.threshold, p.version)
	}
}

// flush closes the open window if it holds anything (at shutdown).
func (mo *monitor) flush() []*eventsv1.DriftEvent {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	if mo.cur == nil || mo.cur.Empty() {
		return nil
	}
	return mo.closeLocked("shutdown")
}

func (mo *monitor) closeLocked(reason string) []*eventsv1.DriftEvent {
	kind := eventsv1.WindowKind_WINDOW_KIND_COUNT
	if reason == "time" {
		kind = eventsv1.WindowKind_WINDOW_KIND_TIME
	}
	evs := mo.judgeLocked(mo.cur, mo.ref, reason, kind)
	mo.cur = window.NewState(mo.ref.Layout)
	return evs
}

// judgeLocked evaluates a finished window against ref, runs the detector, records the window
// and returns its events.
func (mo *monitor) judgeLocked(state *window.State, ref *Reference, reason string, kind eventsv1.WindowKind) []*eventsv1.DriftEvent {
	st := window.Evaluate(state, ref.Names, ref.Ref)
	st.Kind = int32(kind)
	c := &Closed{ID: mo.nextID, Model: mo.model, Version: ref.Version, RunID: ref.RunID, Reason: reason, Stats: st, Ref: ref,
		ByVersion: state.RealizedByVersion(ref.Ref.Regression)}
	mo.nextID++
	if st.Perf.Judged {
		cs := crossings(&st, ref, mo.cfg)
		c.Crossings = len(cs)
		c.Events = mo.det.observe(mo.model, ref.Version, ref.RunID, &st, cs)
		if ev := mo.checkWatch(c, ref.Ref.Regression); ev != nil {
			c.Events = append(c.Events, ev)
		}
		drifting := 0.0
		if len(cs) > 0 {
			drifting = 1
		}
		mo.m.drifting.WithLabelValues(mo.model).Set(drifting)
	}
	mo.history = append(mo.history, c)
	if len(mo.history) > mo.cfg.History {
		mo.history = append(mo.history[:0], mo.history[len(mo.history)-mo.cfg.History:]...)
	}
	for _, ev := range c.Events {
		mo.events = append(mo.events, ev)
		mo.m.events.WithLabelValues(mo.model, metricName(ev.GetMetric()), ev.GetSeverity().String()).Inc()
	}
	if n := len(mo.events); n > 100 {
		mo.events = append(mo.events[:0], mo.events[n-100:]...)
	}
	mo.observe(c)
	return c.Events
}

// observe sets the gauges from a closed window.
func (mo *monitor) observe(c *Closed) {
	st, m, model := &c.Stats, mo.m, mo.model
	m.windows.WithLabelValues(model, strconv.FormatBool(st.Perf.Judged)).Inc()
	m.windowPredictions.WithLabelValues(model).Set(float64(st.Predictions))
	if st.End != math.MinInt64 {
		m.lastWindowEnd.WithLabelValues(model).Set(float64(st.End) / float64(time.Second))
	}
	if !st.Perf.Judged {
		return
	}
	for _, col := range append(st.Features[:len(st.Features):len(st.Features)], st.Score) {
		m.psi.WithLabelValues(model, col.Name).Set(col.PSI)
		m.ks.WithLabelValues(model, col.Name).Set(col.KS)
		m.js.WithLabelValues(model, col.Name).Set(col.JS)
		m.threshold.WithLabelValues(model, col.Name, "psi").Set(col.PSIThreshold)
		m.threshold.WithLabelValues(model, col.Name, "ks").Set(col.KSThreshold)
		m.threshold.WithLabelValues(model, col.Name, "js").Set(col.JSThreshold)
		m.quality.WithLabelValues(model, col.Name, "missing").Set(col.MissingRate)
		m.quality.WithLabelValues(model, col.Name, "non_finite").Set(col.NonFiniteRate)
		m.quality.WithLabelValues(model, col.Name, "out_of_range").Set(col.OutOfRange)
	}
	p := &st.Perf
	m.labelCoverage.WithLabelValues(model).Set(p.LabelCoverage)
	m.alertRate.WithLabelValues(model).Set(p.AlertRate)
	set := func(metric, kind string, v float64) {
		if !math.IsNaN(v) {
			m.performance.WithLabelValues(model, metric, kind).Set(v)
		}
	}
	if p.RealizedJudged {
		set("auc", "realized", p.AUC)
		set("precision", "realized", p.Precision)
		set("recall", "realized", p.Recall)
		set("log_loss", "realized", p.LogLoss)
		set("mse", "realized", p.MSE)
		set("mae", "realized", p.MAE)
	}
	set("auc", "estimated", p.EstAUC)
	set("precision", "estimated", p.EstPrecision)
	set("recall", "estimated", p.EstRecall)
	set("auc", "reference", p.ReferenceAUC)
	set("mse", "reference", p.ReferenceMSE)
}

// snapshot is a consistent copy of what the API and the report show.
type snapshot struct {
	Ref     *Reference
	Current *window.Stats // the open window evaluated now; nil without a reference
	History []*Closed     // oldest first
	Events  []*eventsv1.DriftEvent
	Det     detectorState
}

type detectorState struct {
	LastEvent, LastRetrain, CooldownUntil int64
}

func (mo *monitor) snapshot(withCurrent bool) snapshot {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	s := snapshot{Ref: mo.ref, History: append([]*Closed(nil), mo.history...), Events: append([]*eventsv1.DriftEvent(nil), mo.events...),
		Det: detectorState{LastEvent: mo.det.lastEvent, LastRetrain: mo.det.lastRetrain, CooldownUntil: mo.det.cooldownUntil}}
	if withCurrent && mo.ref != nil && mo.cur != nil {
		st := window.Evaluate(mo.cur, mo.ref.Names, mo.ref.Ref)
		s.Current = &st
	}
	return s
}
