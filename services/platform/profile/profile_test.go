package profile_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/streaming-mlops/mlops/services/platform/profile"
)

func TestBuildQuantileBins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		values    []float64
		wantEdges []float64
		wantFrac  []float64
		missing   int64
	}{
		// Quintiles 2.8 … 8.2 and the tail quantiles, between edges that close the range
		// [1, 10]; the outer bins get the weight of one value each (12 = 10 values + 2).
		{name: "uniform 1..10 in 5 bins", values: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			wantEdges: []float64{below(1), 1.09, 2.8, 4.6, 6.4, 8.2, 9.91, 10},
			wantFrac:  twelfths(1, 1, 1, 2, 2, 2, 1, 1, 1)},
		{name: "binary feature: a bin per value", values: []float64{0, 0, 0, 1, 1, 0, 0, 1, 0, 0},
			wantEdges: []float64{below(0), 0, 1}, wantFrac: twelfths(1, 7, 3, 1)},
		{name: "constant", values: []float64{3, 3, 3}, wantEdges: []float64{below(3), 3}, wantFrac: []float64{.2, .6, .2}},
		{name: "missing counted apart", values: []float64{1, math.NaN(), 2, 3, 4, 5, 6, 7, 8, 9, 10},
			wantEdges: []float64{below(1), 1.09, 2.8, 4.6, 6.4, 8.2, 9.91, 10},
			wantFrac:  twelfths(1, 1, 1, 2, 2, 2, 1, 1, 1), missing: 1},
		{name: "all missing", values: []float64{math.NaN(), math.NaN()}, wantEdges: nil, wantFrac: []float64{1}, missing: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := profile.Build("spec", []string{"x"}, tt.values, nil, profile.Options{Bins: 5})
			if err != nil {
				t.Fatal(err)
			}
			d := p.Features[0]
			approx := cmpopts.EquateApprox(0, 1e-12)
			if diff := cmp.Diff(tt.wantEdges, d.Edges, approx, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("edges (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantFrac, d.Fractions, approx); diff != "" {
				t.Errorf("fractions (-want +got):\n%s", diff)
			}
			if d.Missing != tt.missing {
				t.Errorf("missing = %d, want %d", d.Missing, tt.missing)
			}
		})
	}
}

// below is the largest float64 below x.
func below(x float64) float64 { return math.Nextafter(x, math.Inf(-1)) }

// twelfths divides counts by 12.
func twelfths(counts ...float64) []float64 {
	for i := range counts {
		counts[i] /= 12
	}
	return counts
}

func TestBinBoundaries(t *testing.T) {
	t.Parallel()
	d := profile.Distribution{Edges: []float64{1, 2, 3}}
	for x, want := range map[float64]int{0: 0, 1: 0, 1.5: 1, 2: 1, 3: 2, 3.01: 3, math.Inf(1): 3, math.Inf(-1): 0} {
		if got := d.Bin(x); got != want {
			t.Errorf("Bin(%v) = %d, want %d", x, got, want)
		}
	}
	if got := d.Bin(math.NaN()); got != -1 {
		t.Errorf("Bin(NaN) = %d, want -1", got)
	}
}

func TestRoundTripAndStats(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	const rows = 20000
	m := make([]float64, rows*2)
	scores := make([]float64, rows)
	for i := range rows {
		m[2*i] = r.NormFloat64()*2 + 5
		m[2*i+1] = r.ExpFloat64()
		scores[i] = r.Float64()
	}
	p, err := profile.Build("fraud-v1-x", []string{"a", "b"}, m, scores, profile.Options{SampleSize: 1000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	a := p.Feature("a")
	if math.Abs(a.Mean-5) > 0.05 || math.Abs(a.Std-2) > 0.05 {
		t.Errorf("a: mean %.3f std %.3f, want about 5 and 2", a.Mean, a.Std)
	}
	// Deciles, the tail quantiles 0.01 and 0.99 and the two edges closing the range.
	if len(a.Sample) != 1000 || len(a.Edges) != 13 {
		t.Errorf("a: sample %d edges %d, want 1000 and 13", len(a.Sample), len(a.Edges))
	}
	levels := []float64{0, 0, .01, .1, .2, .3, .4, .5, .6, .7, .8, .9, .99, 1, 1}
	for i, f := range a.Fractions {
		if want := levels[i+1] - levels[i]; math.Abs(f-want) > 1e-3 {
			t.Errorf("bin %d: fraction %.4f, want %.2f", i, f, want)
		}
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := profile.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if _, err := profile.Unmarshal([]byte(`{"version":1,"features":[{"name":"x","edges":[1],"fractions":[1]}]}`)); err == nil {
		t.Error("Unmarshal accepted a profile with mismatched fractions")
	}
	// A profile written before the range was closed: interior quantile edges, open-ended
	// end bins. It loads as it is and bins on its own edges.
	old, err := profile.Unmarshal([]byte(`{"version":2,"features":[{"name":"x","edges":[1,2],"fractions":[0.3,0.4,0.3],"count":10,"min":0,"max":3}]}`))
	if err != nil {
		t.Fatalf("Unmarshal of an open-ended profile: %v", err)
	}
	if x := old.Feature("x"); !slices.Equal(x.Edges, []float64{1, 2}) || x.Bin(-100) != 0 || x.Bin(100) != 2 {
		t.Errorf("open-ended profile: edges %v, Bin(-100) %d, Bin(100) %d; want [1 2], 0, 2", x.Edges, x.Bin(-100), x.Bin(100))
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	if _, err := profile.Build("s", []string{"a", "b"}, []float64{1, 2, 3}, nil, profile.Options{}); err == nil {
		t.Error("ragged matrix accepted")
	}
	if _, err := profile.Build("s", []string{"a"}, []float64{1, 2}, []float64{1}, profile.Options{}); err == nil {
		t.Error("score count mismatch accepted")
	}
}
