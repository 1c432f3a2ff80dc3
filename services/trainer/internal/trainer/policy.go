package trainer

import (
	"fmt"
	"math"

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
	// Reason explains it, e.g. "auc 0.9410 > champion 0.9280 + margin 0.0010".
	Reason string
}

// Decide applies the promotion policy: the challenger replaces the champion only when it
// beats it on the primary metric, measured on the same holdout, by more than margin. With
// no champion (hasChampion false) the challenger is promoted. A challenger whose primary
// metric is not a number is never promoted.
func Decide(task featurespec.Task, challenger, champion map[string]float64, hasChampion bool, margin float64) Decision {
	name, higher := Primary(task)
	c, ok := challenger[name]
	if !ok || math.IsNaN(c) {
		return Decision{Reason: fmt.Sprintf("challenger has no %s", name)}
	}
	if !hasChampion {
		return Decision{Promote: true, Reason: fmt.Sprintf("no champion yet; %s %.4f", name, c)}
	}
	p, ok := champion[name]
	if !ok || math.IsNaN(p) {
		return Decision{Promote: true, Reason: fmt.Sprintf("champion has no %s on the holdout; %s %.4f", name, name, c)}
	}
	if higher {
		if c > p+margin {
			return Decision{Promote: true, Reason: fmt.Sprintf("%s %.4f > champion %.4f + margin %.4f", name, c, p, margin)}
		}
		return Decision{Reason: fmt.Sprintf("%s %.4f <= champion %.4f + margin %.4f", name, c, p, margin)}
	}
	if c < p-margin {
		return Decision{Promote: true, Reason: fmt.Sprintf("%s %.6f < champion %.6f - margin %.6f", name, c, p, margin)}
	}
	return Decision{Reason: fmt.Sprintf("%s %.6f >= champion %.6f - margin %.6f", name, c, p, margin)}
}
