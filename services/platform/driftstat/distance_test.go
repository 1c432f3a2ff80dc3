package driftstat_test

import (
	"math"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

var nan = math.NaN()

func TestPSI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ref, cur []float64
		want     float64
	}{
		{name: "identical", ref: []float64{.25, .25, .5}, cur: []float64{.25, .25, .5}, want: 0},
		{name: "shifted", ref: []float64{.5, .5}, cur: []float64{.25, .75},
			want: (0.25-0.5)*math.Log(0.25/0.5) + (0.75-0.5)*math.Log(0.75/0.5)},
		{name: "symmetric in its arguments", ref: []float64{.25, .75}, cur: []float64{.5, .5},
			want: (0.25-0.5)*math.Log(0.25/0.5) + (0.75-0.5)*math.Log(0.75/0.5)},
		{name: "empty current bin floored at Epsilon", ref: []float64{.5, .5}, cur: []float64{1, 0},
			want: 0.5*math.Log(1/0.5) + (driftstat.Epsilon-0.5)*math.Log(driftstat.Epsilon/0.5)},
		{name: "new bin in current floored at Epsilon", ref: []float64{.5, .5, 0}, cur: []float64{.5, .4, .1},
			want: -0.1*math.Log(0.4/0.5) + (0.1-driftstat.Epsilon)*math.Log(0.1/driftstat.Epsilon)},
		{name: "bin empty on both sides contributes nothing", ref: []float64{.5, .5, 0}, cur: []float64{.5, .5, 0}, want: 0},
		{name: "single bin", ref: []float64{1}, cur: []float64{1}, want: 0},
		{name: "empty", ref: nil, cur: nil, want: nan},
		{name: "lengths differ", ref: []float64{.5, .5}, cur: []float64{1}, want: nan},
		{name: "negative fraction", ref: []float64{1.5, -.5}, cur: []float64{.5, .5}, want: nan},
		{name: "NaN fraction", ref: []float64{nan, 1}, cur: []float64{.5, .5}, want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.PSI(tt.ref, tt.cur); !closeTo(got, tt.want, 1e-15) {
				t.Errorf("PSI(%v, %v) = %.17g, want %.17g", tt.ref, tt.cur, got, tt.want)
			}
		})
	}
}

func TestPSICounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ref    []float64
		counts []int64
		want   float64
	}{
		{name: "same as PSI of the fractions", ref: []float64{.5, .5}, counts: []int64{1, 3},
			want: driftstat.PSI([]float64{.5, .5}, []float64{.25, .75})},
		{name: "empty bin floored", ref: []float64{.5, .5, 0}, counts: []int64{5, 4, 1},
			want: driftstat.PSI([]float64{.5, .5, 0}, []float64{.5, .4, .1})},
		{name: "identical", ref: []float64{.2, .8}, counts: []int64{20, 80}, want: 0},
		{name: "zero total", ref: []float64{.5, .5}, counts: []int64{0, 0}, want: nan},
		{name: "negative count", ref: []float64{.5, .5}, counts: []int64{3, -1}, want: nan},
		{name: "lengths differ", ref: []float64{.5, .5}, counts: []int64{3}, want: nan},
		{name: "empty", want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.PSICounts(tt.ref, tt.counts); !closeTo(got, tt.want, 1e-15) {
				t.Errorf("PSICounts(%v, %v) = %.17g, want %.17g", tt.ref, tt.counts, got, tt.want)
			}
		})
	}
}

func TestJSDistance(t *testing.T) {
	t.Parallel()
	// p = (1, 0), q = (.5, .5), m = (.75, .25).
	half := math.Sqrt((math.Log(1/0.75) + 0.5*math.Log(0.5/0.75) + 0.5*math.Log(0.5/0.25)) / math.Ln2 / 2)
	tests := []struct {
		name string
		p, q []float64
		want float64
	}{
		{name: "identical", p: []float64{.2, .3, .5}, q: []float64{.2, .3, .5}, want: 0},
		{name: "disjoint is 1 in base 2", p: []float64{1, 0}, q: []float64{0, 1}, want: 1},
		{name: "hand computed", p: []float64{1, 0}, q: []float64{.5, .5}, want: half},
		{name: "symmetric", p: []float64{.5, .5}, q: []float64{1, 0}, want: half},
		{name: "inputs are normalised", p: []float64{10, 0}, q: []float64{3, 3}, want: half},
		{name: "counts and fractions agree", p: []float64{2, 2}, q: []float64{.5, .5}, want: 0},
		{name: "zero sum", p: []float64{0, 0}, q: []float64{.5, .5}, want: nan},
		{name: "negative", p: []float64{-1, 2}, q: []float64{.5, .5}, want: nan},
		{name: "NaN", p: []float64{nan, 1}, q: []float64{.5, .5}, want: nan},
		{name: "infinite", p: []float64{math.Inf(1), 1}, q: []float64{.5, .5}, want: nan},
		{name: "lengths differ", p: []float64{1}, q: []float64{.5, .5}, want: nan},
		{name: "empty", want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.JSDistance(tt.p, tt.q); !closeTo(got, tt.want, 1e-15) {
				t.Errorf("JSDistance(%v, %v) = %.17g, want %.17g", tt.p, tt.q, got, tt.want)
			}
		})
	}
}

func TestJSDistanceCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ref    []float64
		counts []int64
		want   float64
	}{
		{name: "same as JSDistance", ref: []float64{.5, .5}, counts: []int64{7, 0},
			want: driftstat.JSDistance([]float64{.5, .5}, []float64{1, 0})},
		{name: "identical", ref: []float64{.25, .75}, counts: []int64{1, 3}, want: 0},
		{name: "zero total", ref: []float64{.5, .5}, counts: []int64{0, 0}, want: nan},
		{name: "negative count", ref: []float64{.5, .5}, counts: []int64{-1, 2}, want: nan},
		{name: "zero reference", ref: []float64{0, 0}, counts: []int64{1, 2}, want: nan},
		{name: "lengths differ", ref: []float64{1}, counts: []int64{1, 2}, want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.JSDistanceCounts(tt.ref, tt.counts); !closeTo(got, tt.want, 1e-15) {
				t.Errorf("JSDistanceCounts(%v, %v) = %.17g, want %.17g", tt.ref, tt.counts, got, tt.want)
			}
		})
	}
}
