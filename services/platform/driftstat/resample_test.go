package driftstat_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

// twoModels returns labels and the scores of a weak model A and a stronger model B.
func twoModels(n int, seed uint64) (a, b []float64, labels []bool) {
	r := rand.New(rand.NewPCG(seed, 1))
	for range n {
		y := r.Float64() < 0.4
		s := 0.0
		if y {
			s = 1
		}
		labels = append(labels, y)
		a = append(a, 0.3*s+r.NormFloat64())
		b = append(b, 1.5*s+r.NormFloat64())
	}
	return a, b, labels
}

func TestPairedBootstrapAUCDiff(t *testing.T) {
	t.Parallel()
	a, b, labels := twoModels(2000, 1)
	diff, lo, hi := driftstat.PairedBootstrapAUCDiff(a, b, labels, 300, 0.95, 7)
	if want := driftstat.AUC(b, labels) - driftstat.AUC(a, labels); diff != want {
		t.Errorf("diff = %g, want AUC(B) − AUC(A) = %g", diff, want)
	}
	if !(lo < diff && diff < hi && lo > 0) {
		t.Errorf("interval [%g, %g] should contain diff %g and exclude 0 (B is much better)", lo, hi, diff)
	}
	d2, lo2, hi2 := driftstat.PairedBootstrapAUCDiff(a, b, labels, 300, 0.95, 7)
	if d2 != diff || lo2 != lo || hi2 != hi {
		t.Errorf("same seed gave (%g, %g, %g) then (%g, %g, %g)", diff, lo, hi, d2, lo2, hi2)
	}
	_, lo3, hi3 := driftstat.PairedBootstrapAUCDiff(a, b, labels, 300, 0.95, 8)
	if lo3 == lo && hi3 == hi {
		t.Errorf("a different seed gave the same interval [%g, %g]", lo, hi)
	}
	_, lo4, hi4 := driftstat.PairedBootstrapAUCDiff(a, b, labels, 300, 0.5, 7)
	if !(lo4 > lo && hi4 < hi) {
		t.Errorf("50%% interval [%g, %g] should be inside the 95%% one [%g, %g]", lo4, hi4, lo, hi)
	}
	// Comparing a model with itself: every paired resample gives exactly 0.
	if d, l, h := driftstat.PairedBootstrapAUCDiff(a, a, labels, 50, 0.95, 1); d != 0 || l != 0 || h != 0 {
		t.Errorf("model against itself = (%g, %g, %g), want zeros", d, l, h)
	}
}

func TestPairedBootstrapAUCDiffEdgeCases(t *testing.T) {
	t.Parallel()
	a, b, labels := twoModels(50, 2)
	tests := []struct {
		name                      string
		a, b                      []float64
		labels                    []bool
		resamples                 int
		confidence                float64
		wantDiffNaN, wantBoundNaN bool
	}{
		{name: "no resamples", a: a, b: b, labels: labels, resamples: 0, confidence: .95, wantBoundNaN: true},
		{name: "confidence 1", a: a, b: b, labels: labels, resamples: 10, confidence: 1, wantBoundNaN: true},
		{name: "confidence 0", a: a, b: b, labels: labels, resamples: 10, confidence: 0, wantBoundNaN: true},
		{name: "one class", a: a[:2], b: b[:2], labels: []bool{true, true}, resamples: 10, confidence: .95, wantDiffNaN: true, wantBoundNaN: true},
		{name: "NaN score", a: []float64{nan, 1}, b: []float64{0, 1}, labels: []bool{true, false}, resamples: 10, confidence: .95, wantDiffNaN: true, wantBoundNaN: true},
		{name: "lengths differ", a: a, b: b[:3], labels: labels, resamples: 10, confidence: .95, wantDiffNaN: true, wantBoundNaN: true},
		{name: "empty", resamples: 10, confidence: .95, wantDiffNaN: true, wantBoundNaN: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, lo, hi := driftstat.PairedBootstrapAUCDiff(tt.a, tt.b, tt.labels, tt.resamples, tt.confidence, 1)
			if math.IsNaN(d) != tt.wantDiffNaN || math.IsNaN(lo) != tt.wantBoundNaN || math.IsNaN(hi) != tt.wantBoundNaN {
				t.Errorf("PairedBootstrapAUCDiff() = (%g, %g, %g), want diff NaN %v, bounds NaN %v", d, lo, hi, tt.wantDiffNaN, tt.wantBoundNaN)
			}
		})
	}
}

func TestPairedBootstrapMSEDiff(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 3))
	n := 3000
	pa, pb, tg := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		tg[i] = 5 * r.Float64()
		pa[i] = tg[i] + 1.5*r.NormFloat64()
		pb[i] = tg[i] + r.NormFloat64()
	}
	diff, lo, hi := driftstat.PairedBootstrapMSEDiff(pa, pb, tg, 200, 0.95, 11)
	if want := driftstat.MSE(pa, tg) - driftstat.MSE(pb, tg); math.Abs(diff-want) > 1e-12 {
		t.Errorf("diff = %g, want MSE(A) − MSE(B) = %g", diff, want)
	}
	if !(lo < diff && diff < hi && lo > 0) {
		t.Errorf("interval [%g, %g] should contain diff %g and exclude 0 (B is better)", lo, hi, diff)
	}
	if d2, lo2, hi2 := driftstat.PairedBootstrapMSEDiff(pa, pb, tg, 200, 0.95, 11); d2 != diff || lo2 != lo || hi2 != hi {
		t.Errorf("same seed gave different results")
	}
	for _, c := range []struct {
		name               string
		a, b, t            []float64
		resamples          int
		conf               float64
		diffNaN, boundsNaN bool
	}{
		{name: "no resamples", a: pa, b: pb, t: tg, resamples: 0, conf: .9, boundsNaN: true},
		{name: "bad confidence", a: pa, b: pb, t: tg, resamples: 5, conf: 1.5, boundsNaN: true},
		{name: "lengths differ", a: pa[:1], b: pb, t: tg, resamples: 5, conf: .9, diffNaN: true, boundsNaN: true},
		{name: "NaN", a: []float64{nan}, b: []float64{1}, t: []float64{1}, resamples: 5, conf: .9, diffNaN: true, boundsNaN: true},
		{name: "empty", resamples: 5, conf: .9, diffNaN: true, boundsNaN: true},
	} {
		d, l, h := driftstat.PairedBootstrapMSEDiff(c.a, c.b, c.t, c.resamples, c.conf, 1)
		if math.IsNaN(d) != c.diffNaN || math.IsNaN(l) != c.boundsNaN || math.IsNaN(h) != c.boundsNaN {
			t.Errorf("%s: PairedBootstrapMSEDiff() = (%g, %g, %g)", c.name, d, l, h)
		}
	}
}

func TestNullQuantiles(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(4, 4))
	values := make([]float64, 50000)
	for i := range values {
		values[i] = r.NormFloat64()
	}
	sorted := slices.Sorted(slices.Values(values))
	edges := []float64{-1.28, -0.84, -0.52, -0.25, 0, 0.25, 0.52, 0.84, 1.28}
	fractions := make([]float64, len(edges)+1)
	for _, x := range values {
		i, _ := slices.BinarySearch(edges, x)
		fractions[i] += 1.0 / float64(len(values))
	}
	var sample []float64
	for i := 0; i < len(sorted); i += 10 {
		sample = append(sample, sorted[i])
	}

	psi50, ks50, js50 := driftstat.NullQuantiles(values, edges, fractions, sample, 1000, 100, 0.5, 1)
	psi99, ks99, js99 := driftstat.NullQuantiles(values, edges, fractions, sample, 1000, 100, 0.99, 1)
	if !(psi50 < psi99 && ks50 < ks99 && js50 < js99) {
		t.Errorf("quantiles not increasing in q: q=.5 (%g, %g, %g), q=.99 (%g, %g, %g)", psi50, ks50, js50, psi99, ks99, js99)
	}
	// Under the null, PSI of a window of n over k bins is about (k−1)/n and the KS statistic
	// about 0.87/√n at the median: check the order of magnitude.
	if !(psi50 > 0.002 && psi50 < 0.02) || !(ks50 > 0.01 && ks50 < 0.05) || !(js50 > 0.01 && js50 < 0.08) {
		t.Errorf("medians (%g, %g, %g) are not what windows of 1000 from the reference give", psi50, ks50, js50)
	}
	if p, k, j := driftstat.NullQuantiles(values, edges, fractions, sample, 1000, 100, 0.99, 1); p != psi99 || k != ks99 || j != js99 {
		t.Errorf("same seed gave different quantiles")
	}
	for _, c := range []struct {
		name              string
		values, edges, fr []float64
		sample            []float64
		window, resamples int
		q                 float64
	}{
		{name: "no values", edges: edges, fr: fractions, sample: sample, window: 10, resamples: 10, q: .9},
		{name: "fractions do not fit edges", values: values, edges: edges, fr: fractions[1:], sample: sample, window: 10, resamples: 10, q: .9},
		{name: "no sample", values: values, edges: edges, fr: fractions, window: 10, resamples: 10, q: .9},
		{name: "no window", values: values, edges: edges, fr: fractions, sample: sample, window: 0, resamples: 10, q: .9},
		{name: "no resamples", values: values, edges: edges, fr: fractions, sample: sample, window: 10, resamples: 0, q: .9},
		{name: "q above 1", values: values, edges: edges, fr: fractions, sample: sample, window: 10, resamples: 10, q: 1.1},
		{name: "q NaN", values: values, edges: edges, fr: fractions, sample: sample, window: 10, resamples: 10, q: nan},
	} {
		p, k, j := driftstat.NullQuantiles(c.values, c.edges, c.fr, c.sample, c.window, c.resamples, c.q, 1)
		if !math.IsNaN(p) || !math.IsNaN(k) || !math.IsNaN(j) {
			t.Errorf("%s: NullQuantiles() = (%g, %g, %g), want NaNs", c.name, p, k, j)
		}
	}
}
