package drift

import (
	"fmt"
	"math"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
)

// watch follows a newly promoted champion for Config.RollbackWatch judged windows and
// compares its live performance with the champion it replaced: realized on labels when both
// have enough, estimated from calibrated scores otherwise (binary models).
type watch struct {
	prev, cur                   string
	prevRealized, prevEstimated float64 // baselines of prev over its last windows; NaN unknown
	windowsLeft, bad            int
}

// baselineWindows is how many of the previous champion's last judged windows make its
// baseline.
const baselineWindows = 5

// startWatch begins watching ref, which replaces old, unless ref is older than old (a
// rollback is not watched, or the two would take turns).
func (mo *monitor) startWatch(old, ref *Reference) {
	mo.watch = nil
	if mo.cfg.RollbackWatch <= 0 || old == nil || !(versionNumber(ref.Version) > versionNumber(old.Version)) {
		return
	}
	w := &watch{prev: old.Version, cur: ref.Version, windowsLeft: mo.cfg.RollbackWatch}
	prev := versionNumber(old.Version)
	var sumR, sumE float64
	var nR, nE int
	for i := len(mo.history) - 1; i >= 0 && (nE < baselineWindows); i-- {
		c := mo.history[i]
		if c.Version != old.Version || !c.Stats.Perf.Judged {
			continue
		}
		if vp, ok := c.ByVersion[prev]; ok && int64(vp.Labels) >= mo.cfg.minLabels() && !math.IsNaN(vp.Metric) && nR < baselineWindows {
			sumR += vp.Metric * float64(vp.Labels)
			nR += vp.Labels
		}
		if e := c.Stats.Perf.EstAUC; !math.IsNaN(e) {
			sumE += e
			nE++
		}
	}
	w.prevRealized, w.prevEstimated = math.NaN(), math.NaN()
	if nR > 0 {
		w.prevRealized = sumR / float64(nR)
	}
	if nE > 0 {
		w.prevEstimated = sumE / float64(nE)
	}
	if math.IsNaN(w.prevRealized) && math.IsNaN(w.prevEstimated) {
		return // nothing to compare with
	}
	mo.watch = w
}

// checkWatch compares a judged window of the watched champion with the previous one's
// baseline and returns the rollback event when the new champion has been worse by more than
// the margin for Persist consecutive windows.
func (mo *monitor) checkWatch(c *Closed, regression bool) *eventsv1.DriftEvent {
	w := mo.watch
	if w == nil || c.Version != w.cur || !c.Stats.Perf.Judged {
		return nil
	}
	w.windowsLeft--
	defer func() {
		if w.windowsLeft <= 0 && mo.watch == w {
			mo.watch = nil
		}
	}()
	margin := mo.cfg.RollbackMargin
	value, base := math.NaN(), math.NaN()
	metric := eventsv1.DriftMetric_DRIFT_METRIC_AUC
	if vp, ok := c.ByVersion[versionNumber(w.cur)]; ok && int64(vp.Labels) >= mo.cfg.minLabels() && !math.IsNaN(w.prevRealized) {
		value, base = vp.Metric, w.prevRealized
		if se := c.Stats.Perf.AUCStdErr; !regression && !math.IsNaN(se) {
			margin = max(margin, 2*se) // beyond the window's sampling noise
		}
	} else if spread := c.Stats.Perf.ReferenceEstAUC - c.Stats.Perf.ReferenceEstFloor; !regression && !math.IsNaN(w.prevEstimated) && !math.IsNaN(spread) {
		value, base, metric = c.Stats.Perf.EstAUC, w.prevEstimated, eventsv1.DriftMetric_DRIFT_METRIC_ESTIMATED_AUC
		margin = max(margin, spread) // beyond how far an estimate wanders on its own
	}
	if regression {
		metric = eventsv1.DriftMetric_DRIFT_METRIC_MSE
	}
	if math.IsNaN(value) || math.IsNaN(base) {
		return nil
	}
	threshold := base - margin
	worse := value < threshold
	if regression {
		threshold = base + margin
		worse = value > threshold
	}
	if !worse {
		w.bad = 0
		return nil
	}
	w.bad++
	if w.bad < mo.cfg.Persist {
		return nil
	}
	mo.watch = nil // one rollback per promotion
	st := &c.Stats
	return &eventsv1.DriftEvent{
		EventId:          eventid.Derived("drift-rollback", []byte(mo.model), []byte(w.cur), []byte(w.prev)),
		EventTime:        ts(st.End),
		ModelName:        mo.model,
		ModelVersion:     w.cur,
		Metric:           metric,
		Value:            value,
		Threshold:        threshold,
		Window:           windowProto(st),
		Severity:         eventsv1.Severity_SEVERITY_CRITICAL,
		ReferenceRunId:   c.RunID,
		WindowsPersisted: int32(w.bad),
		Rollback:         true,
		PreviousVersion:  w.prev,
		Message: fmt.Sprintf("version %s %s %.4f is worse than version %s's %.4f by more than %.3g for %d windows since its promotion: roll back to %s",
			w.cur, metricName(metric), value, w.prev, base, margin, w.bad, w.prev),
	}
}

func (c Config) minLabels() int64 { return int64(max(c.MinLabels, 1)) }
