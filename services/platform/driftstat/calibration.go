package driftstat

import (
	"cmp"
	"math"
	"slices"
)

// Isotonic is a fitted non-decreasing calibration map from a model score to the probability
// of the positive label: the piecewise-linear function through the points (X[i], Y[i]), held
// constant beyond the first and last point. X is strictly increasing and Y non-decreasing,
// with len(X) == len(Y). The zero value (no points) maps every score to NaN. It is a plain
// value, safe for concurrent use, and its JSON form is what a profile stores.
type Isotonic struct {
	X []float64 `json:"x"`
	Y []float64 `json:"y"`
}

// isotonicMergeTol is the absolute distance below which FitIsotonic treats two scores as one
// point: numpy's float64 resolution, 1e-15, as sklearn's isotonic regression uses.
const isotonicMergeTol = 1e-15

// FitIsotonic fits the isotonic (non-decreasing) regression of labels (1 for true, 0 for
// false) on scores by the pool-adjacent-violators algorithm, as
// sklearn.isotonic.IsotonicRegression(out_of_bounds='clip').fit(scores, labels) does:
// rows with equal scores are first merged into one point weighted by their count (as in
// sklearn, scores less than 1e-15 above a point's first score join that point), the
// weighted least-squares non-decreasing fit is computed over the distinct scores, and a point
// is dropped when its fitted value equals both neighbours' (interpolation through it would not
// change). The result matches sklearn's X_thresholds_ and y_thresholds_ to rounding.
//
// Rows with a NaN score are ignored. The zero Isotonic is returned when no row is left or
// the slices have different lengths.
func FitIsotonic(scores []float64, labels []bool) Isotonic {
	if len(scores) != len(labels) {
		return Isotonic{}
	}
	idx := make([]int32, 0, len(scores))
	for i, s := range scores {
		if !math.IsNaN(s) {
			idx = append(idx, int32(i))
		}
	}
	if len(idx) == 0 {
		return Isotonic{}
	}
	slices.SortFunc(idx, func(a, b int32) int { return cmp.Compare(scores[a], scores[b]) })

	// One block per distinct score: value = share of positives, weight = rows. Blocks are
	// pooled with their left neighbour while they would violate monotonicity, so the stack
	// always holds a non-decreasing sequence of pooled blocks.
	type block struct {
		x0, x1 float64 // first and last distinct score pooled into the block
		n      int     // distinct scores pooled
		sumY   float64 // positives
		w      float64 // rows
	}
	var xs []float64 // the distinct scores, ascending
	var stack []block
	for k := 0; k < len(idx); {
		x := scores[idx[k]]
		var pos, w float64
		// Like sklearn, a point gathers every score less than isotonicMergeTol above its
		// first one, so scores that differ only by rounding share one point.
		for ; k < len(idx) && scores[idx[k]]-x < isotonicMergeTol; k++ {
			if labels[idx[k]] {
				pos++
			}
			w++
		}
		xs = append(xs, x)
		b := block{x0: x, x1: x, n: 1, sumY: pos, w: w}
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			// Pool while the previous block's mean is not below this one's
			// (top.sumY/top.w >= b.sumY/b.w, compared without division).
			if top.sumY*b.w < b.sumY*top.w {
				break
			}
			b = block{x0: top.x0, x1: b.x1, n: top.n + b.n, sumY: top.sumY + b.sumY, w: top.w + b.w}
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, b)
	}

	// Expand the blocks to one fitted value per distinct score, then keep the first and last
	// point and every point whose value differs from a neighbour's.
	ys := make([]float64, 0, len(xs))
	for _, b := range stack {
		v := b.sumY / b.w
		for range b.n {
			ys = append(ys, v)
		}
	}
	out := Isotonic{X: make([]float64, 0, 2*len(stack)), Y: make([]float64, 0, 2*len(stack))}
	for i := range xs {
		if i == 0 || i == len(xs)-1 || ys[i] != ys[i-1] || ys[i] != ys[i+1] {
			out.X = append(out.X, xs[i])
			out.Y = append(out.Y, ys[i])
		}
	}
	return out
}

// Apply returns the calibrated probability for score s: s is clipped to [X[0], X[len−1]] and
// the map is interpolated linearly between the surrounding points, as sklearn's
// IsotonicRegression(out_of_bounds='clip').predict does. Apply is NaN for a NaN score and for
// the zero Isotonic; a single-point map is constant.
func (c Isotonic) Apply(s float64) float64 {
	n := len(c.X)
	if n == 0 || n != len(c.Y) || math.IsNaN(s) {
		return math.NaN()
	}
	if n == 1 {
		return c.Y[0]
	}
	s = min(max(s, c.X[0]), c.X[n-1])
	// hi is the first point with X >= s but at least 1, lo the one before: the segment
	// scipy's interp1d (searchsorted, side left) picks, so a score equal to a point is
	// interpolated from the segment on its left.
	hi, _ := slices.BinarySearch(c.X, s)
	hi = max(hi, 1)
	lo := hi - 1
	slope := (c.Y[hi] - c.Y[lo]) / (c.X[hi] - c.X[lo])
	return slope*(s-c.X[lo]) + c.Y[lo]
}

// Estimate is a confidence-based performance estimate (CBPE, as in NannyML) of a binary
// classifier on unlabelled data. Precision, Recall and AUC are expected values under the
// calibrated probabilities; ExpectedPositives is the expected number of positive labels,
// Σ p over all rows.
type Estimate struct {
	Precision         float64 `json:"precision"`
	Recall            float64 `json:"recall"`
	AUC               float64 `json:"auc"`
	ExpectedPositives float64 `json:"expected_positives"`
}

// EstimatePerformance estimates, without labels, how the classifier performs on a batch:
// probs are the calibrated probabilities of the positive label (for example Isotonic.Apply
// of each score), scores the raw model scores and threshold the serving threshold, so the
// decision is score >= threshold while each row's calibrated probability is its expected
// label. With TP = Σ p and FP = Σ (1−p) over predicted positives and FN = Σ p over predicted
// negatives, Precision = TP/(TP+FP) and Recall = TP/(TP+FN). AUC is the ROC area under
// expected labels: the trapezoid over all score thresholds of the expected TPR and FPR, which
// is AUC with fractional labels (ties in score form one step).
//
// Precision is NaN when no row is predicted positive, Recall and AUC when Σ p = 0, AUC also
// when Σ (1−p) = 0. Everything is NaN when the slices are empty or of different lengths or a
// probability or score is NaN.
func EstimatePerformance(probs []float64, threshold float64, scores []float64) Estimate {
	nan := Estimate{Precision: math.NaN(), Recall: math.NaN(), AUC: math.NaN(), ExpectedPositives: math.NaN()}
	if len(probs) == 0 || len(probs) != len(scores) {
		return nan
	}
	var tp, fp, fn float64
	predPos := 0
	for i, p := range probs {
		if math.IsNaN(p) {
			return nan
		}
		if scores[i] >= threshold {
			tp += p
			fp += 1 - p
			predPos++
		} else {
			fn += p
		}
	}
	order, ok := descendingOrder(scores)
	if !ok {
		return nan
	}
	e := Estimate{
		Precision:         math.NaN(),
		Recall:            ratio(tp, tp+fn),
		ExpectedPositives: tp + fn,
		AUC: rocArea(scores, order, func(i int32) (pos, neg float64) {
			return probs[i], 1 - probs[i]
		}),
	}
	if predPos > 0 {
		e.Precision = ratio(tp, tp+fp)
	}
	return e
}
