package trainer

import (
	"fmt"
	"math"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// Primary returns the metric that decides promotion for task and whether higher is better:
// AUC for binary classification, MSE (lower is better) for regression.
func Primary(task featurespec.Task) (name string, higherBetter bool) {
	if task == featurespec.TaskRegression {
		return "mse", false
	}
	return "auc", true
}

// Decision is the promotion policy's verdict.
type Decision struct {
	Promote bool
	// Reason explains it, e.g. "delta_auc 0.0123 [0.0071, 0.0180] (95% paired bootstrap,
	// 1000 resamples, 3000 holdout rows): lower bound > margin 0.0010".
	Reason string
	// Shadow means the promotion waits for a shadow period on live traffic (ShadowConfig).
	Shadow bool
	// Metrics are the comparison's numbers (delta_<metric>, delta_<metric>_lo,
	// delta_<metric>_hi), empty when there was nothing to compare with.
	Metrics map[string]float64
}

// Comparison is the paired comparison of challenger and champion on the same holdout rows.
// Diff is the challenger's improvement on the primary metric (AUC challenger − AUC champion
// for binary, MSE champion − MSE challenger for regression: positive means the challenger is
// better either way), and [Lo, Hi] its paired percentile bootstrap interval.
type Comparison struct {
	Diff, Lo, Hi float64
	// Rows is the number of holdout rows both models were scored on.
	Rows int
	// Resamples and Confidence are the bootstrap's settings.
	Resamples  int
	Confidence float64
}

// Compare runs the paired bootstrap of the primary metric of task on rows scored by both
// models: champion and challenger hold their scores (predictions) of the same rows, y the
// labels (0/1) or targets. The seed makes the result reproducible.
func Compare(task featurespec.Task, champion, challenger, y []float64, resamples int, confidence float64, seed uint64) Comparison {
	c := Comparison{Rows: len(y), Resamples: resamples, Confidence: confidence}
	if task == featurespec.TaskRegression {
		// diff = MSE(champion) − MSE(challenger): positive when the challenger is better.
		c.Diff, c.Lo, c.Hi = driftstat.PairedBootstrapMSEDiff(champion, challenger, y, resamples, confidence, seed)
		return c
	}
	labels := make([]bool, len(y))
	for i, v := range y {
		labels[i] = v == 1
	}
	// diff = AUC(challenger) − AUC(champion).
	c.Diff, c.Lo, c.Hi = driftstat.PairedBootstrapAUCDiff(champion, challenger, labels, resamples, confidence, seed)
	return c
}

// DeltaKey is the name of the comparison metric of task: "delta_auc" or "delta_mse".
func DeltaKey(task featurespec.Task) string {
	name, _ := Primary(task)
	return "delta_" + name
}

// Decide applies the promotion policy.
//
//   - A challenger whose primary metric is not a number is never promoted.
//   - With no champion (hasChampion false) the challenger is promoted.
//   - Otherwise both were scored on the same holdout rows, which neither trained on, and cmp
//     holds the paired bootstrap interval of the challenger's improvement. The challenger is
//     promoted only when the interval's lower bound clears margin: Lo > margin. An
//     undefined interval (too few rows, one class, no rows left after the champion's
//     training range) never promotes.
//
// Decide is pure; the reason carries the numbers and the rule.
func Decide(task featurespec.Task, challenger map[string]float64, hasChampion bool, cmp Comparison, margin float64) Decision {
	name, _ := Primary(task)
	c, ok := challenger[name]
	if !ok || math.IsNaN(c) {
		return Decision{Reason: fmt.Sprintf("challenger has no %s", name)}
	}
	if !hasChampion {
		return Decision{Promote: true, Reason: fmt.Sprintf("no champion yet; %s %.4f", name, c)}
	}
	key := DeltaKey(task)
	d := Decision{Metrics: map[string]float64{}}
	for k, v := range map[string]float64{key: cmp.Diff, key + "_lo": cmp.Lo, key + "_hi": cmp.Hi} {
		if !math.IsNaN(v) {
			d.Metrics[k] = v
		}
	}
	what := fmt.Sprintf("%s %.4f [%.4f, %.4f] (%g%% paired bootstrap, %d resamples, %d holdout rows)",
		key, cmp.Diff, cmp.Lo, cmp.Hi, 100*cmp.Confidence, cmp.Resamples, cmp.Rows)
	if task == featurespec.TaskRegression {
		what = fmt.Sprintf("%s %.6f [%.6f, %.6f] (mse champion − challenger; %g%% paired bootstrap, %d resamples, %d holdout rows)",
			key, cmp.Diff, cmp.Lo, cmp.Hi, 100*cmp.Confidence, cmp.Resamples, cmp.Rows)
	}
	switch {
	case math.IsNaN(cmp.Diff) || math.IsNaN(cmp.Lo):
		d.Reason = fmt.Sprintf("%s: no confidence interval on the shared holdout; not promoted", what)
	case cmp.Lo > margin:
		d.Promote = true
		d.Reason = fmt.Sprintf("%s: lower bound > margin %g", what, margin)
	default:
		d.Reason = fmt.Sprintf("%s: lower bound <= margin %g", what, margin)
	}
	return d
}
