package driftstat

import (
	"math"
	"slices"
)

// TailQuantiles are the quantile levels ReferenceBins adds to the evenly spaced ones: a
// change of spread or a new tail moves mass within the outer percent of the reference, which
// the first and last of ten evenly spaced bins (a tenth of the reference each) dilute. Finer
// tail levels (5% and 95% as well) make no verdict of make bench-drift change, but make the
// statistics follow slow episodic movement of a reference's tails (the simulated
// location_score of TestDriftNoFalseAlarmOnCleanWindows) more closely than its own
// windows do.
var TailQuantiles = [...]float64{0.01, 0.99}

// ReferenceBins returns the bins a reference column is compared on, and the reference's
// fraction in each. sorted is the column, ascending and NaN-free. Bin i holds the values x
// with edges[i−1] < x <= edges[i] (bin 0 is x <= edges[0], the last bin x > edges[last]),
// which is the bin sort.SearchFloat64s(edges, x) gives.
//
// The edges are, in increasing order and without repeats:
//
//   - the largest float64 below the reference's minimum, so that bin 0 holds exactly the
//     values below the reference's range;
//   - the linear-interpolation quantiles (numpy's default) at k/bins for k = 1..bins−1 and
//     at TailQuantiles, those strictly between the minimum and the maximum;
//   - the reference's maximum, so that the last bin holds exactly the values above it.
//
// Bins that close at the reference's extremes keep mass the current data puts outside the
// reference's range apart: in open-ended end bins it would be diluted by the tenth of the
// reference those bins hold, so that a new mode far outside the reference (a sentinel value,
// a unit change) barely moved PSI or the Jensen–Shannon distance.
//
// The two outer bins hold no reference value. Each gets the weight of one, the reference
// fractions being (count_i + 1)/(n + 2) for the outer bins and count_i/(n + 2) for the
// others (n = len(sorted)): about the chance 1/(n+1) that one more draw from the reference's
// distribution falls beyond all n. An unshifted window, which rarely has a value there,
// thus reads as it would with an empty outer bin, while a share c of the current data
// beyond the range adds about c·ln(c·n) to PSI. Giving the outer bins 0 instead would make
// PSI depend on Epsilon alone and read a small reference's own values beyond its range as
// drift.
//
// bins below 2 is taken as 2. ReferenceBins returns nil slices when sorted is empty.
func ReferenceBins(sorted []float64, bins int) (edges, fractions []float64) {
	n := len(sorted)
	if n == 0 {
		return nil, nil
	}
	bins = max(bins, 2)
	lo, hi := sorted[0], sorted[n-1]
	levels := make([]float64, 0, bins-1+len(TailQuantiles))
	for k := 1; k < bins; k++ {
		levels = append(levels, float64(k)/float64(bins))
	}
	levels = append(levels, TailQuantiles[:]...)
	slices.Sort(levels)
	edges = make([]float64, 0, len(levels)+2)
	edges = append(edges, math.Nextafter(lo, math.Inf(-1)))
	for _, q := range levels {
		e := quantileSorted(sorted, q)
		if e > edges[len(edges)-1] && e < hi {
			edges = append(edges, e)
		}
	}
	if hi > edges[len(edges)-1] { // false only for a minimum of −Inf that is also the maximum
		edges = append(edges, hi)
	}
	counts := make([]int64, len(edges)+1)
	countSortedInto(counts, edges, sorted)
	fractions = make([]float64, len(counts))
	total := float64(n + 2)
	for i, c := range counts {
		fractions[i] = float64(c) / total
	}
	fractions[0] += 1 / total
	fractions[len(fractions)-1] += 1 / total
	return edges, fractions
}
