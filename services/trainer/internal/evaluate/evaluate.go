// Package evaluate computes the metrics a model version is judged by: for binary
// classification AUC, PR-AUC (average precision), log loss, precision/recall/F1 at the alert
// threshold and the expected cost of its decisions together with the cost-minimising
// threshold; for regression MSE, MAE and R². It also builds the curves the model card plots.
package evaluate

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Binary holds the metrics of a binary classifier on one evaluation set.
type Binary struct {
	N         int     `json:"n"`
	Positives int     `json:"positives"`
	AUC       float64 `json:"auc"`
	PRAUC     float64 `json:"pr_auc"`
	LogLoss   float64 `json:"logloss"`
	Threshold float64 `json:"threshold"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	// Cost is the expected cost of the decisions at Threshold: every missed fraud costs its
	// amount, every false alarm the review cost.
	Cost float64 `json:"cost"`
	// BestThreshold minimises Cost over all distinct scores; BestCost is that minimum.
	BestThreshold float64 `json:"best_threshold"`
	BestCost      float64 `json:"best_cost"`
}

// Metrics returns the metrics as a flat name → value map (the names logged to MLflow).
func (b Binary) Metrics() map[string]float64 {
	return map[string]float64{
		"auc": b.AUC, "pr_auc": b.PRAUC, "logloss": b.LogLoss, "precision": b.Precision,
		"recall": b.Recall, "f1": b.F1, "cost": b.Cost, "best_threshold": b.BestThreshold,
		"best_cost": b.BestCost, "positives": float64(b.Positives), "n": float64(b.N),
	}
}

// CostModel prices decisions: a missed positive costs its amount (AmountCost true) or
// MissCost, a false alarm costs ReviewCost.
type CostModel struct {
	ReviewCost float64
	MissCost   float64
	// Amounts, when set, gives each row's amount; a missed positive then costs its amount.
	Amounts []float64
}

// EvaluateBinary computes Binary metrics for scores (probabilities in [0, 1]) against labels
// (0 or 1) at threshold (flag when score >= threshold).
func EvaluateBinary(scores, labels []float64, threshold float64, cost CostModel) (Binary, error) {
	if err := check(scores, labels); err != nil {
		return Binary{}, err
	}
	if cost.Amounts != nil && len(cost.Amounts) != len(scores) {
		return Binary{}, fmt.Errorf("evaluate: %d amounts for %d rows", len(cost.Amounts), len(scores))
	}
	b := Binary{N: len(scores), Threshold: threshold}
	missCost := func(i int) float64 {
		if cost.Amounts != nil {
			return cost.Amounts[i]
		}
		return cost.MissCost
	}
	var tp, fp, fn float64
	var ll float64
	for i, s := range scores {
		y := labels[i]
		if y != 0 && y != 1 {
			return Binary{}, fmt.Errorf("evaluate: label %v at row %d is not 0 or 1", y, i)
		}
		if y == 1 {
			b.Positives++
		}
		p := math.Min(math.Max(s, 1e-15), 1-1e-15)
		ll -= y*math.Log(p) + (1-y)*math.Log(1-p)
		flagged := s >= threshold
		switch {
		case flagged && y == 1:
			tp++
		case flagged && y == 0:
			fp++
			b.Cost += cost.ReviewCost
		case !flagged && y == 1:
			fn++
			b.Cost += missCost(i)
		}
	}
	b.LogLoss = ll / float64(len(scores))
	b.Precision = ratio(tp, tp+fp)
	b.Recall = ratio(tp, tp+fn)
	b.F1 = ratio(2*b.Precision*b.Recall, b.Precision+b.Recall)

	order := byScoreDesc(scores)
	b.AUC = auc(order, scores, labels)
	b.PRAUC = averagePrecision(order, scores, labels)

	// Cost as the threshold sweeps down through the distinct scores: start with nothing
	// flagged (every positive missed), then flag each group of tied scores.
	var missed float64
	for i, y := range labels {
		if y == 1 {
			missed += missCost(i)
		}
	}
	best, bestT := missed, math.Nextafter(1, 2) // flag nothing
	cur := missed
	for k := 0; k < len(order); {
		s := scores[order[k]]
		for ; k < len(order) && scores[order[k]] == s; k++ {
			i := order[k]
			if labels[i] == 1 {
				cur -= missCost(i)
			} else {
				cur += cost.ReviewCost
			}
		}
		if cur < best {
			best, bestT = cur, s
		}
	}
	b.BestCost, b.BestThreshold = best, bestT
	return b, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func check(scores, labels []float64) error {
	if len(scores) == 0 {
		return errors.New("evaluate: no rows")
	}
	if len(scores) != len(labels) {
		return fmt.Errorf("evaluate: %d scores for %d labels", len(scores), len(labels))
	}
	for i, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return fmt.Errorf("evaluate: score %v at row %d is not finite", s, i)
		}
	}
	return nil
}

// byScoreDesc returns row indexes ordered by descending score (stable).
func byScoreDesc(scores []float64) []int {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	return order
}

// auc is the area under the ROC curve with ties counted half (the Mann-Whitney statistic),
// as scikit-learn's roc_auc_score computes it. It is NaN when one class is absent.
func auc(order []int, scores, labels []float64) float64 {
	var pos, neg float64
	for _, y := range labels {
		if y == 1 {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	var area, tp, fp float64
	for k := 0; k < len(order); {
		s := scores[order[k]]
		var dtp, dfp float64
		for ; k < len(order) && scores[order[k]] == s; k++ {
			if labels[order[k]] == 1 {
				dtp++
			} else {
				dfp++
			}
		}
		area += dfp * (tp + dtp/2) // trapezoid over a tie group
		tp += dtp
		fp += dfp
	}
	return area / (pos * neg)
}

// averagePrecision is the step-wise area under the precision-recall curve, as
// scikit-learn's average_precision_score computes it.
func averagePrecision(order []int, scores, labels []float64) float64 {
	var pos float64
	for _, y := range labels {
		pos += y
	}
	if pos == 0 {
		return math.NaN()
	}
	var ap, tp, fp, prevRecall float64
	for k := 0; k < len(order); {
		s := scores[order[k]]
		for ; k < len(order) && scores[order[k]] == s; k++ {
			if labels[order[k]] == 1 {
				tp++
			} else {
				fp++
			}
		}
		recall := tp / pos
		ap += (recall - prevRecall) * tp / (tp + fp)
		prevRecall = recall
	}
	return ap
}

// Regression holds the metrics of a regression model on one evaluation set.
type Regression struct {
	N   int     `json:"n"`
	MSE float64 `json:"mse"`
	MAE float64 `json:"mae"`
	R2  float64 `json:"r2"`
}

// Metrics returns the metrics as a flat name → value map.
func (r Regression) Metrics() map[string]float64 {
	return map[string]float64{"mse": r.MSE, "mae": r.MAE, "r2": r.R2, "n": float64(r.N)}
}

// EvaluateRegression computes MSE, MAE and R² of predictions against targets.
func EvaluateRegression(pred, target []float64) (Regression, error) {
	if err := check(pred, target); err != nil {
		return Regression{}, err
	}
	n := float64(len(pred))
	var mean float64
	for _, y := range target {
		mean += y
	}
	mean /= n
	var sse, sae, sst float64
	for i, p := range pred {
		d := p - target[i]
		sse += d * d
		sae += math.Abs(d)
		sst += (target[i] - mean) * (target[i] - mean)
	}
	r := Regression{N: len(pred), MSE: sse / n, MAE: sae / n}
	if sst > 0 {
		r.R2 = 1 - sse/sst
	}
	return r, nil
}

// Point is one point of a curve.
type Point struct{ X, Y float64 }

// ROC returns the ROC curve (false-positive rate, true-positive rate), one point per distinct
// score plus the origin.
func ROC(scores, labels []float64) []Point {
	order := byScoreDesc(scores)
	var pos, neg float64
	for _, y := range labels {
		if y == 1 {
			pos++
		} else {
			neg++
		}
	}
	pts := []Point{{0, 0}}
	var tp, fp float64
	for k := 0; k < len(order); {
		s := scores[order[k]]
		for ; k < len(order) && scores[order[k]] == s; k++ {
			if labels[order[k]] == 1 {
				tp++
			} else {
				fp++
			}
		}
		pts = append(pts, Point{ratio(fp, neg), ratio(tp, pos)})
	}
	return pts
}

// PR returns the precision-recall curve (recall, precision), one point per distinct score.
func PR(scores, labels []float64) []Point {
	order := byScoreDesc(scores)
	var pos float64
	for _, y := range labels {
		pos += y
	}
	var pts []Point
	var tp, fp float64
	for k := 0; k < len(order); {
		s := scores[order[k]]
		for ; k < len(order) && scores[order[k]] == s; k++ {
			if labels[order[k]] == 1 {
				tp++
			} else {
				fp++
			}
		}
		pts = append(pts, Point{ratio(tp, pos), ratio(tp, tp+fp)})
	}
	return pts
}

// Calibration returns, for bins equal-width score bins, the mean predicted score (X) and the
// observed positive rate (Y) of each non-empty bin.
func Calibration(scores, labels []float64, bins int) []Point {
	sum := make([]float64, bins)
	pos := make([]float64, bins)
	cnt := make([]float64, bins)
	for i, s := range scores {
		b := min(int(s*float64(bins)), bins-1)
		b = max(b, 0)
		sum[b] += s
		pos[b] += labels[i]
		cnt[b]++
	}
	var pts []Point
	for b := range bins {
		if cnt[b] > 0 {
			pts = append(pts, Point{sum[b] / cnt[b], pos[b] / cnt[b]})
		}
	}
	return pts
}
