package driftstat

import (
	"math"
	"math/rand/v2"
	"slices"
)

// pcgStream is the second PCG seed of every resampling function, so that a caller's seed
// alone decides the sequence of draws.
const pcgStream = 0x6472696674737461 // "driftsta"

// newRand returns the deterministic generator the resampling functions draw from.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, pcgStream)) }

// PairedBootstrapAUCDiff compares two classifiers scored on the same labelled rows. diff is
// AUC(scoresB) − AUC(scoresA) on all rows (positive: B ranks better); lo and hi are the
// percentile bootstrap interval of that difference at the given confidence (for example
// 0.95): each of the resamples draws len(labels) row indices with replacement, the same
// indices for both models (a paired bootstrap, so the noise the models share cancels), and
// the interval is the (1−confidence)/2 and (1+confidence)/2 quantiles (linear interpolation,
// numpy's default) of the resampled differences. Resamples that draw only one class are
// skipped.
//
// Draws come from math/rand/v2's PCG seeded with seed, so equal inputs and seed give equal
// results. Each resample costs O(n): rows are sorted by score once per model and a resample
// is a vector of multiplicities over them.
//
// diff is NaN when AUC is (empty or mismatched slices, one class, NaN scores); lo and hi are
// NaN then, and also when resamples <= 0, confidence is not in (0, 1), or no resample held
// both classes.
func PairedBootstrapAUCDiff(scoresA, scoresB []float64, labels []bool, resamples int, confidence float64, seed uint64) (diff, lo, hi float64) {
	nan := math.NaN()
	n := len(labels)
	if n == 0 || len(scoresA) != n || len(scoresB) != n {
		return nan, nan, nan
	}
	orderA, okA := descendingOrder(scoresA)
	orderB, okB := descendingOrder(scoresB)
	if !okA || !okB {
		return nan, nan, nan
	}
	labelWeight := func(i int32) (pos, neg float64) {
		if labels[i] {
			return 1, 0
		}
		return 0, 1
	}
	diff = rocArea(scoresB, orderB, labelWeight) - rocArea(scoresA, orderA, labelWeight)
	if math.IsNaN(diff) || resamples <= 0 || !(confidence > 0 && confidence < 1) {
		return diff, nan, nan
	}

	r := newRand(seed)
	counts := make([]float64, n)
	countWeight := func(i int32) (pos, neg float64) {
		if labels[i] {
			return counts[i], 0
		}
		return 0, counts[i]
	}
	diffs := make([]float64, 0, resamples)
	for range resamples {
		clear(counts)
		pos := 0
		for range n {
			i := r.IntN(n)
			counts[i]++
			if labels[i] {
				pos++
			}
		}
		if pos == 0 || pos == n {
			continue
		}
		diffs = append(diffs, rocArea(scoresB, orderB, countWeight)-rocArea(scoresA, orderA, countWeight))
	}
	lo, hi = percentileInterval(diffs, confidence)
	return diff, lo, hi
}

// PairedBootstrapMSEDiff compares two regressors on the same rows: diff is MSE(predA) −
// MSE(predB) on all rows (positive: B is better) and lo, hi the paired percentile bootstrap
// interval of that difference, drawn as for PairedBootstrapAUCDiff (same seeding, same
// quantile rule, O(n) per resample and no per-resample allocation).
//
// diff is NaN when the slices are empty or of different lengths (NaN values propagate); lo
// and hi are NaN then and when resamples <= 0 or confidence is not in (0, 1).
func PairedBootstrapMSEDiff(predA, predB, targets []float64, resamples int, confidence float64, seed uint64) (diff, lo, hi float64) {
	nan := math.NaN()
	n := len(targets)
	if n == 0 || len(predA) != n || len(predB) != n {
		return nan, nan, nan
	}
	// d[i] is row i's contribution to the difference of squared errors.
	d := make([]float64, n)
	var sum float64
	for i, t := range targets {
		ea, eb := predA[i]-t, predB[i]-t
		d[i] = ea*ea - eb*eb
		sum += d[i]
	}
	diff = sum / float64(n)
	if math.IsNaN(diff) || resamples <= 0 || !(confidence > 0 && confidence < 1) {
		return diff, nan, nan
	}
	r := newRand(seed)
	diffs := make([]float64, resamples)
	for k := range diffs {
		var s float64
		for range n {
			s += d[r.IntN(n)]
		}
		diffs[k] = s / float64(n)
	}
	lo, hi = percentileInterval(diffs, confidence)
	return diff, lo, hi
}

// percentileInterval sorts xs in place and returns its central confidence interval, NaN
// when xs is empty.
func percentileInterval(xs []float64, confidence float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(xs)
	return quantileSorted(xs, (1-confidence)/2), quantileSorted(xs, (1+confidence)/2)
}

// quantileSorted is the q-quantile of sorted, non-empty xs with linear interpolation between
// order statistics (numpy's default method 'linear'); q is clamped to [0, 1].
func quantileSorted(xs []float64, q float64) float64 {
	q = min(max(q, 0), 1)
	pos := q * float64(len(xs)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(xs)-1)
	frac := pos - float64(lo)
	if frac == 0 {
		return xs[lo]
	}
	return xs[lo] + (xs[hi]-xs[lo])*frac
}
