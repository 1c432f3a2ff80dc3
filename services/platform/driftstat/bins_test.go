package driftstat_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

func TestReferenceBins(t *testing.T) {
	t.Parallel()
	below := func(x float64) float64 { return math.Nextafter(x, math.Inf(-1)) }
	tests := []struct {
		name      string
		sorted    []float64
		bins      int
		wantEdges []float64
		wantFrac  []float64 // before dividing by len(sorted)+2
	}{
		// Quintiles 2.8 … 8.2, tail quantiles 1.09 and 9.91, closed at 1 and 10.
		{name: "1..10 in 5 bins", sorted: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, bins: 5,
			wantEdges: []float64{below(1), 1.09, 2.8, 4.6, 6.4, 8.2, 9.91, 10},
			wantFrac:  []float64{1, 1, 1, 2, 2, 2, 1, 1, 1}},
		{name: "binary feature: one bin per value", sorted: []float64{0, 0, 0, 0, 0, 0, 0, 1, 1, 1}, bins: 5,
			wantEdges: []float64{below(0), 0, 1}, wantFrac: []float64{1, 7, 3, 1}},
		{name: "constant: any other value is outside", sorted: []float64{3, 3, 3}, bins: 10,
			wantEdges: []float64{below(3), 3}, wantFrac: []float64{1, 3, 1}},
		{name: "single value", sorted: []float64{-2}, bins: 10,
			wantEdges: []float64{below(-2), -2}, wantFrac: []float64{1, 1, 1}},
		{name: "bins below 2 taken as 2", sorted: []float64{1, 2, 3, 4, 5}, bins: 0,
			wantEdges: []float64{below(1), 1.04, 3, 4.96, 5}, wantFrac: []float64{1, 1, 2, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			edges, frac := driftstat.ReferenceBins(tt.sorted, tt.bins)
			if diff := cmp.Diff(tt.wantEdges, edges, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("edges (-want +got):\n%s", diff)
			}
			want := make([]float64, len(tt.wantFrac))
			for i, c := range tt.wantFrac {
				want[i] = c / float64(len(tt.sorted)+2)
			}
			if diff := cmp.Diff(want, frac, cmpopts.EquateApprox(0, 1e-15)); diff != "" {
				t.Errorf("fractions (-want +got):\n%s", diff)
			}
		})
	}
	if e, f := driftstat.ReferenceBins(nil, 10); e != nil || f != nil {
		t.Errorf("ReferenceBins(nil) = %v, %v, want nil, nil", e, f)
	}
}

// TestReferenceBinsCloseTheRange: on a large column the outer bins hold no reference value,
// the edges are strictly increasing, the fractions sum to 1 and the tail quantiles are edges.
func TestReferenceBinsCloseTheRange(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	xs := make([]float64, 100_000)
	for i := range xs {
		xs[i] = math.Exp(r.NormFloat64())
	}
	slices.Sort(xs)
	edges, frac := driftstat.ReferenceBins(xs, 10)
	if len(edges) != 9+len(driftstat.TailQuantiles)+2 || len(frac) != len(edges)+1 {
		t.Fatalf("%d edges, %d fractions, want %d and one more", len(edges), len(frac), 9+len(driftstat.TailQuantiles)+2)
	}
	for i := 1; i < len(edges); i++ {
		if !(edges[i] > edges[i-1]) {
			t.Fatalf("edges[%d] = %v after %v", i, edges[i], edges[i-1])
		}
	}
	if !(edges[0] < xs[0]) || edges[len(edges)-1] != xs[len(xs)-1] {
		t.Errorf("edges span [%v, %v], reference [%v, %v]", edges[0], edges[len(edges)-1], xs[0], xs[len(xs)-1])
	}
	one := 1 / float64(len(xs)+2)
	if frac[0] != one || frac[len(frac)-1] != one {
		t.Errorf("outer fractions %v, %v, want the weight of one value %v", frac[0], frac[len(frac)-1], one)
	}
	var sum float64
	for _, f := range frac {
		sum += f
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("fractions sum to %v", sum)
	}
	for _, q := range driftstat.TailQuantiles {
		pos := q * float64(len(xs)-1)
		lo := int(pos)
		want := xs[lo] + (xs[lo+1]-xs[lo])*(pos-float64(lo))
		if !slices.ContainsFunc(edges, func(e float64) bool { return math.Abs(e-want) <= 1e-12*math.Abs(want) }) {
			t.Errorf("no edge at the %v quantile %v: %v", q, want, edges)
		}
	}
}

// TestDriftSeesMassBeyondReference: a share of the current data at a value far outside the
// reference is drift by PSI and by the Jensen–Shannon distance on the reference's bins, and
// a change of spread by 30 % is drift by PSI, while an unshifted sample is not. With the
// evenly spaced quantile bins alone (open-ended end bins) none of the three shifts crosses
// the threshold.
func TestDriftSeesMassBeyondReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	const n = 200_000
	ref := make([]float64, n)
	for i := range ref {
		ref[i] = r.NormFloat64()
	}
	slices.Sort(ref)
	gen := func(f func() float64) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = f()
		}
		return xs
	}
	spike := func(share float64) func() float64 {
		return func() float64 {
			if r.Float64() < share {
				return 40
			}
			return r.NormFloat64()
		}
	}
	jsThr := jsThreshold / math.Sqrt(math.Ln2)
	edges, frac := driftstat.ReferenceBins(ref, 10)
	// The interior deciles only, for comparison: what profiles carried before.
	var deciles []float64
	for k := 1; k < 10; k++ {
		deciles = append(deciles, ref[k*n/10])
	}
	decFrac := binFractions(deciles, ref)
	for _, tt := range []struct {
		name     string
		cur      []float64
		psiDrift bool
		jsDrift  bool
	}{
		{name: "unshifted", cur: gen(r.NormFloat64)},
		{name: "3% far beyond the maximum", cur: gen(spike(0.03)), psiDrift: true, jsDrift: true},
		{name: "7% far beyond the maximum", cur: gen(spike(0.07)), psiDrift: true, jsDrift: true},
		{name: "spread 1.3x", cur: gen(func() float64 { return 1.3 * r.NormFloat64() }), psiDrift: true, jsDrift: true},
	} {
		counts := binCounts(edges, tt.cur)
		psi, js := driftstat.PSICounts(frac, counts), driftstat.JSDistanceCounts(frac, counts)
		dc := binCounts(deciles, tt.cur)
		dpsi, djs := driftstat.PSICounts(decFrac, dc), driftstat.JSDistanceCounts(decFrac, dc)
		t.Logf("%-26s PSI %.4f JS %.4f | deciles only: PSI %.4f JS %.4f", tt.name, psi, js, dpsi, djs)
		if (psi >= psiThreshold) != tt.psiDrift || (js >= jsThr) != tt.jsDrift {
			t.Errorf("%s: PSI %.4f, JS %.4f; want drift by PSI %v, by JS %v", tt.name, psi, js, tt.psiDrift, tt.jsDrift)
		}
		if tt.psiDrift || tt.jsDrift {
			continue
		}
		if psi > 0.01 || js > 0.02 {
			t.Errorf("%s: PSI %.4f, JS %.4f on an unshifted sample", tt.name, psi, js)
		}
	}
	// The comparison with the old bins is what motivates the closed range and tail edges.
	for _, tt := range []struct {
		name string
		cur  []float64
	}{{"3% far beyond the maximum", gen(spike(0.03))}, {"spread 1.3x", gen(func() float64 { return 1.3 * r.NormFloat64() })}} {
		dc := binCounts(deciles, tt.cur)
		if dpsi := driftstat.PSICounts(decFrac, dc); dpsi >= psiThreshold {
			t.Errorf("%s: PSI %.4f on deciles alone; the test no longer shows what the closed bins add", tt.name, dpsi)
		}
	}
}

// binCounts counts xs into the right-closed bins of edges.
func binCounts(edges, xs []float64) []int64 {
	c := make([]int64, len(edges)+1)
	for _, x := range xs {
		c[sort.SearchFloat64s(edges, x)]++
	}
	return c
}

// binFractions is binCounts divided by len(xs).
func binFractions(edges, xs []float64) []float64 {
	c := binCounts(edges, xs)
	f := make([]float64, len(c))
	for i, v := range c {
		f[i] = float64(v) / float64(len(xs))
	}
	return f
}
