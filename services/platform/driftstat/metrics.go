package driftstat

import (
	"cmp"
	"math"
	"slices"
)

// AUC returns the area under the ROC curve of scores against labels (true = positive): the
// probability that a random positive scores higher than a random negative, counting ties as
// one half. Tied scores form one ROC step (the trapezoid rule over distinct thresholds,
// which equals the Mann–Whitney statistic with average ranks), so AUC equals
// sklearn.metrics.roc_auc_score to rounding. It sorts a copy of the row order: O(n log n)
// time, one allocation of n int32 row indices.
//
// AUC is NaN when the slices are empty or of different lengths, when either class is absent
// (where sklearn raises), and when any score is NaN.
func AUC(scores []float64, labels []bool) float64 {
	if len(scores) == 0 || len(scores) != len(labels) {
		return math.NaN()
	}
	order, ok := descendingOrder(scores)
	if !ok {
		return math.NaN()
	}
	return rocArea(scores, order, func(i int32) (pos, neg float64) {
		if labels[i] {
			return 1, 0
		}
		return 0, 1
	})
}

// descendingOrder returns the row indices sorted by descending score; ok is false when a
// score is NaN.
func descendingOrder(scores []float64) (order []int32, ok bool) {
	order = make([]int32, len(scores))
	for i, s := range scores {
		if math.IsNaN(s) {
			return nil, false
		}
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(scores[b], scores[a]) })
	return order, true
}

// rocArea walks the rows in order (descending score) and returns the trapezoid area under
// the ROC curve, where weight gives each row's mass on the positive and the negative class
// (1/0 for labels, a probability for expected labels, a multiplicity times that for a
// bootstrap resample). Rows with equal scores form one step. NaN when either class has no
// mass.
func rocArea(scores []float64, order []int32, weight func(i int32) (pos, neg float64)) float64 {
	var tp, fp, area float64
	for k := 0; k < len(order); {
		s := scores[order[k]]
		var dtp, dfp float64
		for ; k < len(order) && scores[order[k]] == s; k++ {
			p, n := weight(order[k])
			dtp += p
			dfp += n
		}
		area += dfp * (2*tp + dtp) / 2
		tp += dtp
		fp += dfp
	}
	if tp <= 0 || fp <= 0 {
		return math.NaN()
	}
	return area / (tp * fp)
}

// LogLoss returns the mean binary cross-entropy of the predicted probabilities probs of the
// positive class against labels, in nats: mean of −ln(p) for positives and −ln(1−p) for
// negatives. Like sklearn.metrics.log_loss, p and 1−p are first clipped to [ε, 1−ε] with ε the
// float64 machine epsilon (2⁻⁵²), so a confident mistake costs about 36 nats rather than +Inf;
// unlike sklearn it accepts a single class and probabilities outside [0, 1] (clipped too).
//
// LogLoss is NaN when the slices are empty or of different lengths and when any probability
// is NaN.
func LogLoss(probs []float64, labels []bool) float64 {
	if len(probs) == 0 || len(probs) != len(labels) {
		return math.NaN()
	}
	var s float64
	for i, p := range probs {
		if math.IsNaN(p) {
			return math.NaN()
		}
		if labels[i] {
			s -= math.Log(clipProb(p))
		} else {
			s -= math.Log(clipProb(1 - p))
		}
	}
	return s / float64(len(probs))
}

// clipProb clamps p to [ε, 1−ε] as sklearn's log_loss does.
func clipProb(p float64) float64 { return min(max(p, dblEpsilon), 1-dblEpsilon) }

// PrecisionRecall returns the precision TP/(TP+FP) and recall TP/(TP+FN) of the decision
// "positive when score >= threshold" against labels. Precision is NaN when no row is
// predicted positive and recall is NaN when no row is labelled positive (0/0; sklearn
// warns and returns 0 there). Both are NaN when the slices are empty or of different lengths.
// A NaN score is never predicted positive.
func PrecisionRecall(scores []float64, labels []bool, threshold float64) (precision, recall float64) {
	if len(scores) == 0 || len(scores) != len(labels) {
		return math.NaN(), math.NaN()
	}
	var tp, fp, fn int
	for i, s := range scores {
		switch pred := s >= threshold; {
		case pred && labels[i]:
			tp++
		case pred:
			fp++
		case labels[i]:
			fn++
		}
	}
	return ratio(float64(tp), float64(tp+fp)), ratio(float64(tp), float64(tp+fn))
}

// ratio is a/b, NaN when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// MSE returns the mean squared error of preds against targets, in squared target units. It
// is NaN when the slices are empty or of different lengths; NaN values propagate.
func MSE(preds, targets []float64) float64 {
	if len(preds) == 0 || len(preds) != len(targets) {
		return math.NaN()
	}
	var s float64
	for i, p := range preds {
		e := p - targets[i]
		s += e * e
	}
	return s / float64(len(preds))
}

// MAE returns the mean absolute error of preds against targets, in target units. It is NaN
// when the slices are empty or of different lengths; NaN values propagate.
func MAE(preds, targets []float64) float64 {
	if len(preds) == 0 || len(preds) != len(targets) {
		return math.NaN()
	}
	var s float64
	for i, p := range preds {
		s += math.Abs(p - targets[i])
	}
	return s / float64(len(preds))
}
