package driftstat_test

import (
	"math"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

// seq returns n evenly spaced values start, start+step, ….
func seq(n int, start, step float64) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = start + float64(i)*step
	}
	return xs
}

func TestKSStatistic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b []float64
		want float64
	}{
		{name: "identical", a: []float64{1, 2, 3}, b: []float64{1, 2, 3}, want: 0},
		{name: "disjoint", a: []float64{1, 2, 3}, b: []float64{4, 5, 6}, want: 1},
		{name: "disjoint reversed", a: []float64{4, 5, 6}, b: []float64{1, 2, 3}, want: 1},
		// At 1: F_a = 2/3, F_b = 1/3; at 2 both are 1.
		{name: "ties across samples", a: []float64{1, 1, 2}, b: []float64{1, 2, 2}, want: 1.0 / 3},
		// At 0: F_a = 0, F_b = 1/2; at 1: 1 and 1/2; at 2: 1 and 1.
		{name: "interleaved", a: []float64{1}, b: []float64{0, 2}, want: 0.5},
		{name: "all equal", a: []float64{7, 7}, b: []float64{7, 7, 7}, want: 0},
		{name: "one value each", a: []float64{0}, b: []float64{1}, want: 1},
		{name: "shift of 3.5 in 10", a: seq(10, 0, 1), b: seq(10, 3.5, 1), want: 0.4},
		{name: "empty a", a: nil, b: []float64{1}, want: nan},
		{name: "empty b", a: []float64{1}, b: nil, want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.KSStatistic(tt.a, tt.b); !closeTo(got, tt.want, 1e-15) {
				t.Errorf("KSStatistic(%v, %v) = %.17g, want %.17g", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestKSTest checks p-values against scipy 1.17.1's ks_2samp (values recorded once; the
// cross-check against a live scipy is TestKSTestAgreesWithScipy) and hand-counted lattice
// paths.
func TestKSTest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		a, b         []float64
		wantD, wantP float64
	}{
		// Both paths of one step each cross D = 1: p = 1.
		{name: "n=m=1", a: []float64{0}, b: []float64{1}, wantD: 1, wantP: 1},
		// 2 of the C(4,2) = 6 paths reach D = 1.
		{name: "n=m=2 disjoint", a: []float64{0, 1}, b: []float64{2, 3}, wantD: 1, wantP: 1.0 / 3},
		// 2 of the C(5,2) = 10 paths reach D = 1.
		{name: "n=3 m=2 disjoint", a: []float64{0, 1, 2}, b: []float64{3, 4}, wantD: 1, wantP: 0.2},
		{name: "ties", a: []float64{1, 1, 2}, b: []float64{1, 2, 2}, wantD: 1.0 / 3, wantP: 1},
		{name: "identical", a: seq(50, 0, 1), b: seq(50, 0, 1), wantD: 0, wantP: 1},
		{name: "equal sizes, scipy", a: seq(10, 0, 1), b: seq(10, 3.5, 1), wantD: 0.4, wantP: 0.41752365281777043},
		{name: "unequal sizes, scipy", a: seq(12, 0, 1), b: seq(7, 2.25, 1.5), wantD: 0.25, wantP: 0.8868976740493768},
		{name: "asymptotic path, scipy", a: seq(20000, 0, 1.0/20000), b: seq(15000, 0.01, 1.0/15000),
			wantD: 0.010050000000000003, wantP: 0.3498040781798891},
		{name: "empty", a: nil, b: []float64{1}, wantD: nan, wantP: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, p := driftstat.KSTest(tt.a, tt.b)
			if !closeTo(d, tt.wantD, 1e-15) || !closeTo(p, tt.wantP, 1e-12) {
				t.Errorf("KSTest() = (%.17g, %.17g), want (%.17g, %.17g)", d, p, tt.wantD, tt.wantP)
			}
		})
	}
}

// TestKolmogorovSF checks the one-sample distribution behind KSTest's asymptotic path
// against scipy 1.17.1's kstwo.sf at points that exercise each algorithm.
func TestKolmogorovSF(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		x    float64
		want float64
	}{
		{name: "x >= 1/2: twice the one-sided tail", n: 10, x: 0.6, want: 0.0005681672000000003},
		{name: "below the support", n: 50, x: 0.01, want: 1},
		{name: "n <= 140: Durbin matrix", n: 100, x: 0.1, want: 0.2526927570063874},
		{name: "n <= 140: Durbin matrix where scipy uses Pomeranz", n: 100, x: 0.2, want: 0.0005551927327988775},
		{name: "n > 140: Durbin matrix", n: 300, x: 0.03, want: 0.9424664972633843},
		{name: "n > 140: one-sided tail", n: 1000, x: 0.05, want: 0.013012074781090332},
		{name: "n > 100000: Pelz-Good", n: 200000, x: 0.003, want: 0.0545369786611305},
		{name: "x = 1", n: 10, x: 1, want: 0},
		{name: "n = 0", n: 0, x: 0.5, want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.KolmogorovSF(tt.n, tt.x); !closeTo(got, tt.want, 1e-12) {
				t.Errorf("kolmogorovSF(%d, %g) = %.17g, want %.17g", tt.n, tt.x, got, tt.want)
			}
		})
	}
}

// TestKSTestLargestExactCase runs the exact path at its most expensive: two samples of about
// 10000 values that differ a lot, so the band of lattice paths is wide (~10⁸ steps).
func TestKSTestLargestExactCase(t *testing.T) {
	t.Parallel()
	a, b := seq(10000, 0, 1), seq(9973, 3000, 1)
	d, p := driftstat.KSTest(a, b)
	if !(d > 0.29 && d < 0.31) || !(p >= 0 && p < 1e-100) || math.IsNaN(p) {
		t.Errorf("KSTest() = (%g, %g), want D ≈ 0.3 and a vanishing p", d, p)
	}
}
