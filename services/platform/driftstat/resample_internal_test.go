package driftstat

import (
	"math"
	"slices"
	"sort"
	"testing"
)

// These tests re-draw the same resamples as the package does (same generator, same seed) and
// recompute each statistic the slow, obvious way: materialise the resample, then call the
// public function on it. The fast paths (multiplicity vectors, reused buffers, the inlined
// bin search) must give the same numbers.

// testData returns n scores for two models and labels with a fixed pattern.
func testData(n int) (a, b []float64, labels []bool) {
	r := newRand(123)
	for range n {
		y := r.Float64() < 0.3
		labels = append(labels, y)
		signal := 0.0
		if y {
			signal = 1
		}
		// Rounded so there are ties within and across classes.
		a = append(a, math.Round((0.6*signal+r.NormFloat64())*20)/20)
		b = append(b, math.Round((1.2*signal+r.NormFloat64())*20)/20)
	}
	return a, b, labels
}

func TestPairedBootstrapAUCDiffMatchesMaterialisedResamples(t *testing.T) {
	t.Parallel()
	a, b, labels := testData(300)
	const resamples, conf, seed = 200, 0.9, 42
	diff, lo, hi := PairedBootstrapAUCDiff(a, b, labels, resamples, conf, seed)

	r := newRand(seed)
	n := len(labels)
	var diffs []float64
	ra, rb, rl := make([]float64, n), make([]float64, n), make([]bool, n)
	for range resamples {
		for k := range n {
			i := r.IntN(n)
			ra[k], rb[k], rl[k] = a[i], b[i], labels[i]
		}
		d := AUC(rb, rl) - AUC(ra, rl)
		if !math.IsNaN(d) {
			diffs = append(diffs, d)
		}
	}
	slices.Sort(diffs)
	wantLo, wantHi := quantileSorted(diffs, (1-conf)/2), quantileSorted(diffs, (1+conf)/2)
	if want := AUC(b, labels) - AUC(a, labels); math.Abs(diff-want) > 1e-15 {
		t.Errorf("diff = %.17g, want AUC(B) − AUC(A) = %.17g", diff, want)
	}
	if math.Abs(lo-wantLo) > 1e-12 || math.Abs(hi-wantHi) > 1e-12 {
		t.Errorf("interval = [%.17g, %.17g], materialised resamples give [%.17g, %.17g]", lo, hi, wantLo, wantHi)
	}
}

func TestPairedBootstrapAUCDiffSkipsOneClassResamples(t *testing.T) {
	t.Parallel()
	// Two rows, one per class: half of the resamples draw a single class and are skipped;
	// every other resample holds both rows, where AUC(B) − AUC(A) = 1 − 0, as on all data.
	a, b, labels := []float64{1, 0}, []float64{0, 1}, []bool{false, true}
	diff, lo, hi := PairedBootstrapAUCDiff(a, b, labels, 50, 0.95, 1)
	if diff != 1 || lo != 1 || hi != 1 {
		t.Errorf("PairedBootstrapAUCDiff() = (%g, %g, %g), want (1, 1, 1)", diff, lo, hi)
	}
}

func TestPairedBootstrapMSEDiffMatchesMaterialisedResamples(t *testing.T) {
	t.Parallel()
	r := newRand(5)
	n := 257
	pa, pb, tg := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		tg[i] = r.Float64() * 10
		pa[i] = tg[i] + 1.2*r.NormFloat64()
		pb[i] = tg[i] + r.NormFloat64()
	}
	const resamples, conf, seed = 150, 0.95, 77
	diff, lo, hi := PairedBootstrapMSEDiff(pa, pb, tg, resamples, conf, seed)

	rr := newRand(seed)
	diffs := make([]float64, resamples)
	ra, rb, rt := make([]float64, n), make([]float64, n), make([]float64, n)
	for k := range diffs {
		for j := range n {
			i := rr.IntN(n)
			ra[j], rb[j], rt[j] = pa[i], pb[i], tg[i]
		}
		diffs[k] = MSE(ra, rt) - MSE(rb, rt)
	}
	slices.Sort(diffs)
	if want := MSE(pa, tg) - MSE(pb, tg); math.Abs(diff-want) > 1e-12 {
		t.Errorf("diff = %.17g, want MSE(A) − MSE(B) = %.17g", diff, want)
	}
	wantLo, wantHi := quantileSorted(diffs, (1-conf)/2), quantileSorted(diffs, (1+conf)/2)
	if math.Abs(lo-wantLo) > 1e-12 || math.Abs(hi-wantHi) > 1e-12 {
		t.Errorf("interval = [%.17g, %.17g], materialised resamples give [%.17g, %.17g]", lo, hi, wantLo, wantHi)
	}
}

func TestNullQuantilesMatchesMaterialisedWindows(t *testing.T) {
	t.Parallel()
	r := newRand(9)
	values := make([]float64, 20000)
	for i := range values {
		values[i] = math.Round(r.NormFloat64()*10) / 10 // ties, and values equal to edges
	}
	sorted := slices.Sorted(slices.Values(values))
	edges := []float64{-1.3, -0.8, -0.5, -0.3, 0, 0.3, 0.5, 0.8, 1.3}
	fractions := make([]float64, len(edges)+1)
	for _, x := range values {
		fractions[sort.SearchFloat64s(edges, x)] += 1 / float64(len(values))
	}
	var sample []float64
	for i := 0; i < len(sorted); i += 7 {
		sample = append(sample, sorted[i])
	}
	const window, resamples, q, seed = 500, 60, 0.95, 3
	psi, ks, js := NullQuantiles(values, edges, fractions, sample, window, resamples, q, seed)

	rr := newRand(seed)
	var psis, kss, jss []float64
	w := make([]float64, window)
	for range resamples {
		cur := make([]float64, len(edges)+1)
		for k := range w {
			w[k] = values[rr.IntN(len(values))]
			cur[sort.SearchFloat64s(edges, w[k])]++
		}
		for i := range cur {
			cur[i] /= window
		}
		psis = append(psis, PSI(fractions, cur))
		jss = append(jss, JSDistance(fractions, cur))
		ws := slices.Sorted(slices.Values(w))
		kss = append(kss, KSStatistic(ws, sample))
	}
	for _, c := range []struct {
		what string
		got  float64
		all  []float64
	}{{"PSI", psi, psis}, {"KS", ks, kss}, {"JS", js, jss}} {
		slices.Sort(c.all)
		if want := quantileSorted(c.all, q); math.Abs(c.got-want) > 1e-12 {
			t.Errorf("%s quantile = %.17g, materialised windows give %.17g", c.what, c.got, want)
		}
	}
}

func TestCountSortedIntoIsSearchFloat64s(t *testing.T) {
	t.Parallel()
	xs := []float64{math.Inf(-1), -5, -1, -1, -0.5, 0, 0, 1e-300, 2.5, 3, 7, 7.0000001, math.Inf(1)}
	for _, edges := range [][]float64{{-1, 0, 0, 2.5, 7}, {}, {100}, {-100}} {
		want := make([]int64, len(edges)+1)
		for _, x := range xs {
			want[sort.SearchFloat64s(edges, x)]++
		}
		got := make([]int64, len(edges)+1)
		got[0] = 99 // overwritten
		countSortedInto(got, edges, xs)
		if !slices.Equal(got, want) {
			t.Errorf("edges %v: countSortedInto = %v, sort.SearchFloat64s gives %v", edges, got, want)
		}
	}
}

func TestNullQuantilesBlocksMatchesMaterialisedWindows(t *testing.T) {
	t.Parallel()
	r := newRand(10)
	values := make([]float64, 5000)
	for i := range values {
		// A slow rhythm, as time of day gives, that independent draws would hide.
		values[i] = math.Sin(float64(i)/300) + 0.3*r.NormFloat64()
	}
	edges := []float64{-1, -0.5, 0, 0.5, 1}
	fractions := make([]float64, len(edges)+1)
	for _, x := range values {
		fractions[sort.SearchFloat64s(edges, x)] += 1 / float64(len(values))
	}
	var sample []float64
	for i := 0; i < len(values); i += 3 {
		sample = append(sample, values[i])
	}
	slices.Sort(sample)
	const window, resamples, q, seed = 400, 50, 0.9, 8
	psi, ks, js := NullQuantilesBlocks(values, edges, fractions, sample, window, resamples, q, seed)

	rr := newRand(seed)
	var psis, kss, jss []float64
	for range resamples {
		start := rr.IntN(len(values) - window + 1)
		w := slices.Clone(values[start : start+window])
		cur := make([]float64, len(edges)+1)
		for _, x := range w {
			cur[sort.SearchFloat64s(edges, x)] += 1.0 / window
		}
		psis = append(psis, PSI(fractions, cur))
		jss = append(jss, JSDistance(fractions, cur))
		slices.Sort(w)
		kss = append(kss, KSStatistic(w, sample))
	}
	for _, c := range []struct {
		what string
		got  float64
		all  []float64
	}{{"PSI", psi, psis}, {"KS", ks, kss}, {"JS", js, jss}} {
		slices.Sort(c.all)
		if want := quantileSorted(c.all, q); math.Abs(c.got-want) > 1e-12 {
			t.Errorf("%s quantile = %.17g, materialised windows give %.17g", c.what, c.got, want)
		}
	}
	if p, k, j := NullQuantilesBlocks(values, edges, fractions, sample, len(values)+1, 10, q, seed); !math.IsNaN(p) || !math.IsNaN(k) || !math.IsNaN(j) {
		t.Errorf("window longer than the column: got (%g, %g, %g), want NaNs", p, k, j)
	}
}

func TestQuantileSorted(t *testing.T) {
	t.Parallel()
	xs := []float64{1, 2, 3, 4}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {1, 4}, {0.5, 2.5}, {1.0 / 3, 2}, {0.9, 3.7}, {-1, 1}, {2, 4}} {
		if got := quantileSorted(xs, c.q); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("quantileSorted(%v, %g) = %g, want %g", xs, c.q, got, c.want)
		}
	}
	if got := quantileSorted([]float64{5}, 0.3); got != 5 {
		t.Errorf("quantileSorted([5], 0.3) = %g, want 5", got)
	}
}

func TestSortFloatsIsSlicesSort(t *testing.T) {
	t.Parallel()
	r := newRand(17)
	for _, n := range []int{0, 1, 5, radixMinLen - 1, radixMinLen, 1000, 5000} {
		xs := make([]float64, n)
		for i := range xs {
			switch i % 7 {
			case 0:
				xs[i] = r.NormFloat64()
			case 1:
				xs[i] = -r.ExpFloat64() * 1e300
			case 2:
				xs[i] = math.Round(r.NormFloat64()) // ties, ±0
			case 3:
				xs[i] = r.NormFloat64() * 1e-310 // subnormal
			case 4:
				xs[i] = []float64{math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0}[r.IntN(4)]
			default:
				xs[i] = float64(r.IntN(3)) // a few values shared by many
			}
		}
		want := slices.Clone(xs)
		slices.Sort(want)
		keys, tmp := make([]uint64, n), make([]uint64, n)
		sortFloats(xs, keys, tmp)
		for i := range xs {
			if xs[i] != want[i] { // −0 == +0
				t.Fatalf("n=%d: sortFloats[%d] = %g, slices.Sort gives %g", n, i, xs[i], want[i])
			}
		}
	}
}
