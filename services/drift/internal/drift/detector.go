package drift

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/drift/internal/window"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
)

// crossing is one statistic over its threshold in one window.
type crossing struct {
	feature   string // feature name, "score", or "" for performance
	metric    eventsv1.DriftMetric
	value     float64
	threshold float64
	pValue    *float64
	severity  eventsv1.Severity
	detail    string
}

// excess is how far past its threshold the crossing is, as a ratio (>1).
func (c crossing) excess() float64 {
	if lowerIsWorse(c.metric) {
		return nonzero(c.threshold) / nonzero(c.value)
	}
	return c.value / nonzero(c.threshold)
}

func (c crossing) key() string { return c.feature + "|" + c.metric.String() }

// detector turns per-window crossings into events: a crossing must persist for Persist
// consecutive judged windows before it raises one event (hysteresis), it raises no other
// event until it has cleared for a window, and only the first event of an episode (events
// until a window with no crossing at all) recommends retraining, at most once per Cooldown of
// event time. It is not safe for concurrent use (the monitor's lock guards it).
type detector struct {
	persist  int
	cooldown time.Duration
	// runs counts consecutive windows each crossing has lasted; runStart is the start of
	// the first window of the run; fired marks runs that already raised their event.
	runs     map[string]int
	runStart map[string]int64
	fired    map[string]bool
	// cooldownUntil is the event time (Unix ns) before which no retraining is recommended.
	cooldownUntil int64
	lastEvent     int64
	lastRetrain   int64
	// episode is true from an event until a judged window without any crossing.
	episode bool
}

func newDetector(persist int, cooldown time.Duration) *detector {
	return &detector{persist: persist, cooldown: cooldown, runs: map[string]int{}, runStart: map[string]int64{}, fired: map[string]bool{}}
}

// observe records the crossings of a judged window and returns the events it raises.
func (d *detector) observe(model, version, runID string, st *window.Stats, cs []crossing) []*eventsv1.DriftEvent {
	seen := make(map[string]bool, len(cs))
	var due []crossing
	for _, c := range cs {
		k := c.key()
		seen[k] = true
		if d.runs[k] == 0 {
			d.runStart[k] = st.Start
		}
		d.runs[k]++
		if d.runs[k] >= d.persist && !d.fired[k] {
			d.fired[k] = true
			due = append(due, c)
		}
	}
	for k := range d.runs {
		if !seen[k] {
			delete(d.runs, k)
			delete(d.runStart, k)
			delete(d.fired, k)
		}
	}
	if len(cs) == 0 {
		d.episode = false // a clean window ends the shift
	}
	if len(due) == 0 {
		return nil
	}
	// The worst crossing first: it carries the retraining recommendation.
	slices.SortStableFunc(due, func(a, b crossing) int { return cmp.Compare(b.excess(), a.excess()) })
	// One shift, one retraining: only the first event of an episode (crossings in every
	// window since) recommends it, and not within the cooldown of the last recommendation.
	retrain := !d.episode && st.End >= d.cooldownUntil
	d.episode = true
	if retrain {
		d.cooldownUntil = st.End + int64(d.cooldown)
		d.lastRetrain = st.End
	}
	d.lastEvent = st.End
	win := windowProto(st)
	out := make([]*eventsv1.DriftEvent, 0, len(due))
	for i, c := range due {
		k := c.key()
		ev := &eventsv1.DriftEvent{
			EventId:          eventid.Derived("drift", []byte(model), []byte(version), []byte(k), []byte(strconv.FormatInt(d.runStart[k], 10))),
			EventTime:        ts(st.End),
			ModelName:        model,
			ModelVersion:     version,
			Feature:          c.feature,
			Metric:           c.metric,
			Value:            c.value,
			Threshold:        c.threshold,
			Window:           win,
			Severity:         c.severity,
			ReferenceRunId:   runID,
			PValue:           c.pValue,
			Retrain:          retrain && i == 0,
			ChangeStart:      ts(d.runStart[k]),
			WindowsPersisted: int32(d.runs[k]),
		}
		ev.Message = describe(c, d.runs[k], ev.Retrain, len(due))
		out = append(out, ev)
	}
	return out
}

// reset forgets every run (a new reference starts a new history).
func (d *detector) reset() {
	d.episode = false
	clear(d.runs)
	clear(d.runStart)
	clear(d.fired)
}

func describe(c crossing, windows int, retrain bool, total int) string {
	what := c.feature
	if what == "" {
		what = "performance"
	}
	name := metricName(c.metric)
	dir := ">"
	if lowerIsWorse(c.metric) {
		dir = "<"
	}
	s := fmt.Sprintf("%s %s %.4g %s %.4g for %d windows", what, name, c.value, dir, c.threshold, windows)
	if c.detail != "" {
		s += " (" + c.detail + ")"
	}
	if total > 1 {
		s += fmt.Sprintf("; %d crossings this window", total)
	}
	if retrain {
		s += "; retraining recommended"
	}
	return s
}

func metricName(m eventsv1.DriftMetric) string {
	switch m {
	case eventsv1.DriftMetric_DRIFT_METRIC_PSI:
		return "PSI"
	case eventsv1.DriftMetric_DRIFT_METRIC_KS:
		return "KS"
	case eventsv1.DriftMetric_DRIFT_METRIC_JS:
		return "JS"
	case eventsv1.DriftMetric_DRIFT_METRIC_MISSING_RATE:
		return "missing rate"
	case eventsv1.DriftMetric_DRIFT_METRIC_OUT_OF_RANGE_RATE:
		return "out-of-range rate"
	case eventsv1.DriftMetric_DRIFT_METRIC_NON_FINITE_RATE:
		return "non-finite rate"
	case eventsv1.DriftMetric_DRIFT_METRIC_AUC:
		return "AUC"
	case eventsv1.DriftMetric_DRIFT_METRIC_ESTIMATED_AUC:
		return "estimated AUC"
	case eventsv1.DriftMetric_DRIFT_METRIC_ESTIMATION_GAP:
		return "estimated-realized AUC gap"
	case eventsv1.DriftMetric_DRIFT_METRIC_MSE:
		return "MSE"
	case eventsv1.DriftMetric_DRIFT_METRIC_ALERT_RATE:
		return "alert-rate change"
	case eventsv1.DriftMetric_DRIFT_METRIC_PRECISION:
		return "precision"
	case eventsv1.DriftMetric_DRIFT_METRIC_RECALL:
		return "recall"
	}
	return m.String()
}

// lowerIsWorse reports metrics that cross by falling under their threshold.
func lowerIsWorse(m eventsv1.DriftMetric) bool {
	switch m {
	case eventsv1.DriftMetric_DRIFT_METRIC_AUC, eventsv1.DriftMetric_DRIFT_METRIC_ESTIMATED_AUC,
		eventsv1.DriftMetric_DRIFT_METRIC_PRECISION, eventsv1.DriftMetric_DRIFT_METRIC_RECALL:
		return true
	}
	return false
}

// crossings lists what is over its threshold in a judged window.
func crossings(st *window.Stats, ref *Reference, cfg Config) []crossing {
	var out []crossing
	column := func(c *window.ColumnStats, refMissing float64) {
		if c.DriftedPSI {
			out = append(out, crossing{feature: c.Name, metric: eventsv1.DriftMetric_DRIFT_METRIC_PSI, value: c.PSI, threshold: c.PSIThreshold,
				severity: severity(c.PSI, c.PSIThreshold, window.CriticalPSI), detail: fmt.Sprintf("KS %.3f, JS %.3f", c.KS, c.JS)})
		}
		if c.DriftedKS {
			p := c.KSPValue
			out = append(out, crossing{feature: c.Name, metric: eventsv1.DriftMetric_DRIFT_METRIC_KS, value: c.KS, threshold: c.KSThreshold, pValue: &p,
				severity: severity(c.KS, c.KSThreshold, 0), detail: fmt.Sprintf("p=%.3g, n=%d", c.KSPValue, c.KSSampleSize)})
		}
		if c.DriftedJS {
			out = append(out, crossing{feature: c.Name, metric: eventsv1.DriftMetric_DRIFT_METRIC_JS, value: c.JS, threshold: c.JSThreshold,
				severity: severity(c.JS, c.JSThreshold, 0)})
		}
		quality := func(m eventsv1.DriftMetric, v, base float64) {
			if th := base + cfg.QualityThreshold; v > th {
				out = append(out, crossing{feature: c.Name, metric: m, value: v, threshold: th, severity: severity(v, th, 0)})
			}
		}
		quality(eventsv1.DriftMetric_DRIFT_METRIC_MISSING_RATE, c.MissingRate, refMissing)
		quality(eventsv1.DriftMetric_DRIFT_METRIC_NON_FINITE_RATE, c.NonFiniteRate, 0)
		quality(eventsv1.DriftMetric_DRIFT_METRIC_OUT_OF_RANGE_RATE, c.OutOfRange, 0)
	}
	for i := range st.Features {
		d := &ref.Profile.Features[i]
		column(&st.Features[i], missingRate(d.Missing, d.Count))
	}
	column(&st.Score, 0)
	p := &st.Perf
	if delta := math.Abs(p.AlertRate - p.ReferenceAlertRate); delta > cfg.AlertRateDelta {
		out = append(out, crossing{feature: "score", metric: eventsv1.DriftMetric_DRIFT_METRIC_ALERT_RATE, value: delta, threshold: cfg.AlertRateDelta,
			severity: severity(delta, cfg.AlertRateDelta, 0), detail: fmt.Sprintf("alert share %.4f vs reference %.4f", p.AlertRate, p.ReferenceAlertRate)})
	}
	if ref.Ref.Regression {
		if p.RealizedJudged && p.MSE > cfg.MSEThreshold {
			out = append(out, crossing{metric: eventsv1.DriftMetric_DRIFT_METRIC_MSE, value: p.MSE, threshold: cfg.MSEThreshold,
				severity: severity(p.MSE, cfg.MSEThreshold, 0), detail: fmt.Sprintf("MAE %.4f over %d labels", p.MAE, p.Labelled)})
		}
		return out
	}
	// Realized AUC carries sampling noise (a window's labels hold few positives): a drop or a
	// gap counts only beyond twice its standard error as well as beyond the configured size.
	noise := 2 * p.AUCStdErr
	if math.IsNaN(noise) {
		noise = 0
	}
	if !math.IsNaN(p.ReferenceAUC) {
		floor := p.ReferenceAUC - max(cfg.AUCDrop, noise)
		if p.RealizedJudged && p.AUC < floor {
			out = append(out, crossing{metric: eventsv1.DriftMetric_DRIFT_METRIC_AUC, value: p.AUC, threshold: floor,
				severity: lowSeverity(p.AUC, floor, cfg.AUCDrop), detail: fmt.Sprintf("reference %.4f, %d labels, %d positives, SE %.3f", p.ReferenceAUC, p.LabelledAUCSample, p.Positives, p.AUCStdErr)})
		}
	}
	// Estimates compare with the calibration's estimate on the holdout (its own bias, see
	// profile.EstimatedAUC), not with the realized holdout AUC.
	// The estimate wanders with the few positives a window expects: it alarms only below the
	// lowest estimate a window of the holdout gave, as well as below the drop.
	spread := p.ReferenceEstAUC - p.ReferenceEstFloor
	if !math.IsNaN(spread) {
		floor := min(p.ReferenceEstFloor, p.ReferenceEstAUC-cfg.AUCDrop)
		if p.EstAUC < floor {
			out = append(out, crossing{metric: eventsv1.DriftMetric_DRIFT_METRIC_ESTIMATED_AUC, value: p.EstAUC, threshold: floor,
				severity: lowSeverity(p.EstAUC, floor, cfg.AUCDrop), detail: fmt.Sprintf("reference estimate %.4f", p.ReferenceEstAUC)})
		}
	}
	// The gap between estimated and realized AUC on the same labelled rows, less the gap the
	// calibration shows on the holdout: what is left is the change of P(label | score).
	if base := p.ReferenceEstAUC - p.ReferenceAUC; p.RealizedJudged && !math.IsNaN(base) && !math.IsNaN(spread) {
		if th := max(cfg.EstimationGap, noise+spread); p.EstAUCLabelled-p.AUC-base > th {
			gap := p.EstAUCLabelled - p.AUC - base
			out = append(out, crossing{metric: eventsv1.DriftMetric_DRIFT_METRIC_ESTIMATION_GAP, value: gap, threshold: th,
				severity: severity(gap, th, 0), detail: fmt.Sprintf("estimated %.4f, realized %.4f (SE %.3f), holdout gap %.4f: concept drift", p.EstAUCLabelled, p.AUC, p.AUCStdErr, base)})
		}
	}
	return out
}

// severity is critical past critical (when set) or past twice the threshold, else warning.
func severity(v, threshold, critical float64) eventsv1.Severity {
	if (critical > 0 && v > critical) || v > 2*threshold {
		return eventsv1.Severity_SEVERITY_CRITICAL
	}
	return eventsv1.Severity_SEVERITY_WARNING
}

// lowSeverity is critical when v is more than margin under the floor.
func lowSeverity(v, floor, margin float64) eventsv1.Severity {
	if v < floor-margin {
		return eventsv1.Severity_SEVERITY_CRITICAL
	}
	return eventsv1.Severity_SEVERITY_WARNING
}

func missingRate(missing, count int64) float64 {
	if missing+count == 0 {
		return 0
	}
	return float64(missing) / float64(missing+count)
}

func nonzero(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Abs(x)
}

func ts(ns int64) *timestamppb.Timestamp {
	if ns == math.MaxInt64 || ns == math.MinInt64 {
		return nil
	}
	return timestamppb.New(time.Unix(0, ns).UTC())
}
