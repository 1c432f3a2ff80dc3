package driftstat

import (
	"math"
	"slices"
)

// NullQuantiles calibrates alarm thresholds for one feature from its own reference data: it
// returns the q-quantiles (for example q = 0.99) of PSI, the KS statistic and the JS distance
// that windows of windowSize values drawn from the reference distribution itself produce,
// i.e. the values the drift detector sees when nothing has drifted.
//
// values is the full reference column (NaN-free; a NaN would be counted in the last bin).
// Each of the resamples windows draws windowSize values from it uniformly with replacement,
// bins them on edges exactly as profile.Distribution.Bin does (bin i holds x with
// edges[i−1] < x <= edges[i], i.e. index sort.SearchFloat64s(edges, x)), and scores the
// window with PSICounts and JSDistanceCounts against refFractions (len(edges)+1 fractions)
// and with KSStatistic of the sorted window against refSample (the profile's sorted sample).
// Quantiles interpolate linearly between order statistics (numpy's default).
//
// Draws come from math/rand/v2's PCG seeded with seed, so the result is deterministic. The
// cost is O(resamples · windowSize · log windowSize) with three buffers allocated once: a
// column of a million values with windows of 5000 and 200 resamples takes tens of
// milliseconds.
//
// All three results are NaN when values or refSample is empty, len(refFractions) !=
// len(edges)+1, windowSize or resamples is not positive, or q is not in [0, 1].
func NullQuantiles(values []float64, edges []float64, refFractions []float64, refSample []float64, windowSize, resamples int, q float64, seed uint64) (psi, ks, js float64) {
	return nullQuantiles(values, edges, refFractions, refSample, windowSize, resamples, q, seed, false)
}

// NullQuantilesBlocks is NullQuantiles with windows of consecutive values: values must be
// in time order, and each window is values[start:start+windowSize] for a random start. Live
// windows are consecutive records too, so this null keeps what independent draws hide —
// time of day, bursts of one account, episodes — and the thresholds it gives do not fire on
// the reference's own rhythm. windowSize must not exceed len(values) (else NaN).
func NullQuantilesBlocks(values []float64, edges []float64, refFractions []float64, refSample []float64, windowSize, resamples int, q float64, seed uint64) (psi, ks, js float64) {
	if windowSize > len(values) {
		return math.NaN(), math.NaN(), math.NaN()
	}
	return nullQuantiles(values, edges, refFractions, refSample, windowSize, resamples, q, seed, true)
}

func nullQuantiles(values []float64, edges []float64, refFractions []float64, refSample []float64, windowSize, resamples int, q float64, seed uint64, contiguous bool) (psi, ks, js float64) {
	nan := math.NaN()
	if len(values) == 0 || len(refSample) == 0 || len(refFractions) != len(edges)+1 ||
		windowSize <= 0 || resamples <= 0 || !(q >= 0 && q <= 1) {
		return nan, nan, nan
	}
	r := newRand(seed)
	window := make([]float64, windowSize)
	counts := make([]int64, len(refFractions))
	stats := make([]float64, 3*resamples)
	psis, kss, jss := stats[:resamples], stats[resamples:2*resamples], stats[2*resamples:]
	n := len(values)
	for k := range resamples {
		clear(counts)
		start := 0
		if contiguous {
			start = r.IntN(n - windowSize + 1)
		}
		for w := range window {
			var x float64
			if contiguous {
				x = values[start+w]
			} else {
				x = values[r.IntN(n)]
			}
			window[w] = x
			counts[binIndex(edges, x)]++
		}
		psis[k] = PSICounts(refFractions, counts)
		jss[k] = JSDistanceCounts(refFractions, counts)
		slices.Sort(window)
		kss[k] = KSStatistic(window, refSample)
	}
	slices.Sort(psis)
	slices.Sort(kss)
	slices.Sort(jss)
	return quantileSorted(psis, q), quantileSorted(kss, q), quantileSorted(jss, q)
}

// binIndex is sort.SearchFloat64s(edges, x) without the closure: the smallest i with
// edges[i] >= x, or len(edges) (which is also where a NaN lands).
func binIndex(edges []float64, x float64) int {
	lo, hi := 0, len(edges)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if !(edges[mid] >= x) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
