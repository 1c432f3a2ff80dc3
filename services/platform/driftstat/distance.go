// Package driftstat holds the statistics the drift service and the trainer share: distances
// between binned distributions (PSI, Jensen–Shannon), the two-sample Kolmogorov–Smirnov test,
// classification and regression metrics, isotonic calibration with confidence-based
// performance estimation (CBPE), paired bootstrap intervals and null-distribution
// calibration of alarm thresholds.
//
// Every function is pure Go, allocation-light, safe for concurrent use and free of panics on
// bad input: a statistic that is undefined for its input (empty slices, slices of different
// lengths, one class only) is NaN, and each function's comment says when. The functions agree
// with the reference implementations named in their comments (scipy, scikit-learn,
// Evidently); docs/drift.md records to what tolerance and where the definitions differ.
package driftstat

import "math"

// Epsilon is the fraction PSI and PSICounts substitute for an empty bin, so that a bin empty
// on one side contributes a large but finite term instead of an infinite one.
//
// Evidently (0.7.x, legacy/calculations/stattests/utils.py get_binned_data) uses the same
// 1e-4, with one difference: when the smallest non-zero fraction of a distribution is itself
// <= 1e-4, Evidently floors that distribution's empty bins at that fraction / 1e6 instead.
// PSI here always uses Epsilon, so a value from a profile does not depend on how small its
// rarest populated bin happens to be.
const Epsilon = 1e-4

// PSI returns the population stability index of the current bin fractions cur against the
// reference bin fractions ref: Σ (cur_i − ref_i)·ln(cur_i/ref_i), in nats. Both slices hold
// one fraction per bin (the same bins, in the same order) and each sums to 1; a fraction of
// exactly 0 is replaced by Epsilon before the sum (fractions are not renormalised afterwards,
// as in Evidently). PSI is 0 for identical distributions and grows with the shift; the usual
// reading is < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift.
//
// PSI is NaN when the slices are empty or of different lengths, and when any fraction is NaN
// or negative.
func PSI(ref, cur []float64) float64 {
	if len(ref) == 0 || len(ref) != len(cur) {
		return math.NaN()
	}
	var s float64
	for i, r := range ref {
		s += psiTerm(r, cur[i])
	}
	return s
}

// PSICounts is PSI of the current bin counts curCounts, normalised to fractions, against the
// reference fractions refFractions. It does not allocate. It is NaN when the counts sum to 0,
// when a count is negative, and in the cases PSI is NaN.
func PSICounts(refFractions []float64, curCounts []int64) float64 {
	if len(refFractions) == 0 || len(refFractions) != len(curCounts) {
		return math.NaN()
	}
	total, ok := countTotal(curCounts)
	if !ok || total == 0 {
		return math.NaN()
	}
	inv := 1 / float64(total)
	var s float64
	for i, r := range refFractions {
		s += psiTerm(r, float64(curCounts[i])*inv)
	}
	return s
}

// psiTerm is one bin's term of PSI, flooring zero fractions at Epsilon.
func psiTerm(r, c float64) float64 {
	if !(r >= 0 && c >= 0) { // also catches NaN
		return math.NaN()
	}
	if r == 0 {
		r = Epsilon
	}
	if c == 0 {
		c = Epsilon
	}
	return (c - r) * math.Log(c/r)
}

// countTotal sums counts; ok is false when a count is negative.
func countTotal(counts []int64) (total int64, ok bool) {
	for _, c := range counts {
		if c < 0 {
			return 0, false
		}
		total += c
	}
	return total, true
}

// JSDistance returns the Jensen–Shannon distance between the distributions p and q with
// base-2 logarithms: sqrt((KL(p‖m) + KL(q‖m))/2) with m = (p+q)/2, a value in [0, 1]. Like
// scipy.spatial.distance.jensenshannon(p, q, base=2), which it equals to rounding, it first
// divides each slice by its sum, so counts and fractions give the same result; bins that are
// 0 on one side need no floor.
//
// One deliberate difference: rounding can make the sum under the square root a tiny negative
// number for (nearly) identical inputs, where scipy returns NaN; JSDistance returns 0.
// Evidently's "jensenshannon" drift method uses the natural logarithm instead, which scales
// the distance by sqrt(ln 2) ≈ 0.8326.
//
// JSDistance is NaN when the slices are empty or of different lengths, when either sums to
// 0, and when any entry is NaN or negative.
func JSDistance(p, q []float64) float64 {
	if len(p) == 0 || len(p) != len(q) {
		return math.NaN()
	}
	var sp, sq float64
	for i := range p {
		if !(p[i] >= 0 && q[i] >= 0) {
			return math.NaN()
		}
		sp += p[i]
		sq += q[i]
	}
	if sp == 0 || sq == 0 || math.IsInf(sp, 0) || math.IsInf(sq, 0) {
		return math.NaN()
	}
	var left, right float64
	for i := range p {
		a, b := p[i]/sp, q[i]/sq
		m := (a + b) / 2
		left += relEntr(a, m)
		right += relEntr(b, m)
	}
	return jsFinish(left + right)
}

// JSDistanceCounts is JSDistance of refFractions against the current bin counts curCounts.
// It does not allocate. It is NaN when the counts sum to 0 or a count is negative, and in
// the cases JSDistance is NaN.
func JSDistanceCounts(refFractions []float64, curCounts []int64) float64 {
	if len(refFractions) == 0 || len(refFractions) != len(curCounts) {
		return math.NaN()
	}
	total, ok := countTotal(curCounts)
	if !ok || total == 0 {
		return math.NaN()
	}
	var sp float64
	for _, r := range refFractions {
		if !(r >= 0) {
			return math.NaN()
		}
		sp += r
	}
	if sp == 0 || math.IsInf(sp, 0) {
		return math.NaN()
	}
	st := float64(total)
	var left, right float64
	for i, r := range refFractions {
		a, b := r/sp, float64(curCounts[i])/st
		m := (a + b) / 2
		left += relEntr(a, m)
		right += relEntr(b, m)
	}
	return jsFinish(left + right)
}

// relEntr is the elementwise relative entropy x·ln(x/y) of scipy.special.rel_entr for x, y >= 0
// with y > 0 whenever x > 0 (always true here since y is the midpoint of x and something >= 0).
func relEntr(x, y float64) float64 {
	if x == 0 {
		return 0
	}
	return x * math.Log(x/y)
}

// jsFinish turns the sum of the two relative entropies (nats) into the base-2 distance.
func jsFinish(s float64) float64 {
	js := s / math.Ln2 / 2
	if js <= 0 {
		return 0
	}
	return math.Sqrt(js)
}
