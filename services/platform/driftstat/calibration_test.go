package driftstat_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

func TestFitIsotonic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scores []float64
		labels []bool
		want   driftstat.Isotonic
	}{
		{name: "already non-decreasing", scores: []float64{1, 2, 3}, labels: []bool{false, true, true},
			want: driftstat.Isotonic{X: []float64{1, 2, 3}, Y: []float64{0, 1, 1}}},
		{name: "violators pooled", scores: []float64{1, 2, 3, 4}, labels: []bool{false, true, false, true},
			want: driftstat.Isotonic{X: []float64{1, 2, 3, 4}, Y: []float64{0, .5, .5, 1}}},
		{name: "rows are sorted first", scores: []float64{4, 3, 2, 1}, labels: []bool{true, false, true, false},
			want: driftstat.Isotonic{X: []float64{1, 2, 3, 4}, Y: []float64{0, .5, .5, 1}}},
		// Points: x=1 (1/2, 2 rows), x=2 (0, 2 rows), x=3 (1, 1 row); the first two pool to 1/4.
		{name: "tied scores weigh by count", scores: []float64{1, 1, 2, 2, 3}, labels: []bool{true, false, false, false, true},
			want: driftstat.Isotonic{X: []float64{1, 2, 3}, Y: []float64{.25, .25, 1}}},
		{name: "interior points of a flat run are dropped", scores: []float64{1, 2, 3, 4, 5}, labels: []bool{false, false, false, false, true},
			want: driftstat.Isotonic{X: []float64{1, 4, 5}, Y: []float64{0, 0, 1}}},
		{name: "one label only", scores: []float64{1, 2, 3}, labels: []bool{true, true, true},
			want: driftstat.Isotonic{X: []float64{1, 3}, Y: []float64{1, 1}}},
		{name: "decreasing labels pool into one level", scores: []float64{1, 2, 3}, labels: []bool{true, true, false},
			want: driftstat.Isotonic{X: []float64{1, 3}, Y: []float64{2.0 / 3, 2.0 / 3}}},
		{name: "single distinct score", scores: []float64{2, 2}, labels: []bool{true, false},
			want: driftstat.Isotonic{X: []float64{2}, Y: []float64{.5}}},
		{name: "scores within 1e-15 are one point", scores: []float64{.5, .5 + 3e-16, .6}, labels: []bool{false, true, true},
			want: driftstat.Isotonic{X: []float64{.5, .6}, Y: []float64{.5, 1}}},
		{name: "NaN scores ignored", scores: []float64{math.NaN(), 1, 2}, labels: []bool{true, false, true},
			want: driftstat.Isotonic{X: []float64{1, 2}, Y: []float64{0, 1}}},
		{name: "only NaN", scores: []float64{math.NaN()}, labels: []bool{true}, want: driftstat.Isotonic{}},
		{name: "lengths differ", scores: []float64{1}, labels: nil, want: driftstat.Isotonic{}},
		{name: "empty", want: driftstat.Isotonic{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := driftstat.FitIsotonic(tt.scores, tt.labels)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), cmpopts.EquateApprox(0, 1e-15)); diff != "" {
				t.Errorf("FitIsotonic() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsotonicApply(t *testing.T) {
	t.Parallel()
	c := driftstat.Isotonic{X: []float64{1, 2, 4}, Y: []float64{0, .5, 1}}
	tests := []struct {
		name string
		iso  driftstat.Isotonic
		s    float64
		want float64
	}{
		{name: "below the first point is clipped", iso: c, s: -3, want: 0},
		{name: "first point", iso: c, s: 1, want: 0},
		{name: "interpolated", iso: c, s: 1.5, want: .25},
		{name: "interior point", iso: c, s: 2, want: .5},
		{name: "interpolated on a wider segment", iso: c, s: 3, want: .75},
		{name: "last point", iso: c, s: 4, want: 1},
		{name: "above the last point is clipped", iso: c, s: 100, want: 1},
		{name: "NaN score", iso: c, s: math.NaN(), want: math.NaN()},
		{name: "single point is constant", iso: driftstat.Isotonic{X: []float64{2}, Y: []float64{.3}}, s: 7, want: .3},
		{name: "zero value", iso: driftstat.Isotonic{}, s: 1, want: math.NaN()},
		{name: "malformed", iso: driftstat.Isotonic{X: []float64{1, 2}, Y: []float64{1}}, s: 1, want: math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.iso.Apply(tt.s); !closeTo(got, tt.want, 1e-15) {
				t.Errorf("Apply(%g) = %.17g, want %.17g", tt.s, got, tt.want)
			}
		})
	}
}

func TestIsotonicJSON(t *testing.T) {
	t.Parallel()
	c := driftstat.Isotonic{X: []float64{0.1, 0.5, 0.9}, Y: []float64{0.02, 0.3, 0.95}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"x":[0.1,0.5,0.9],"y":[0.02,0.3,0.95]}`; string(b) != want {
		t.Errorf("json.Marshal = %s, want %s", b, want)
	}
	var back driftstat.Isotonic
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestEstimatePerformance(t *testing.T) {
	t.Parallel()
	// Rows by descending score: p = .9, .8, .3, .1; threshold .65 predicts the first two.
	// TP = 1.7, FP = .3, FN = .4; Σp = 2.1, Σ(1−p) = 1.9. Expected AUC: each row's positive
	// mass against the negative mass ranked below it, plus half its own (a tie):
	// .9·1.8 + .8·1.6 + .3·.9 + ½(.09+.16+.21+.09) = 3.445, over 2.1·1.9.
	probs, scores := []float64{.9, .8, .3, .1}, []float64{.95, .7, .6, .2}
	tests := []struct {
		name      string
		probs     []float64
		threshold float64
		scores    []float64
		want      driftstat.Estimate
	}{
		{name: "hand computed", probs: probs, threshold: .65, scores: scores,
			want: driftstat.Estimate{Precision: 1.7 / 2, Recall: 1.7 / 2.1, AUC: 3.445 / (2.1 * 1.9), ExpectedPositives: 2.1}},
		{name: "rows in any order", probs: []float64{.3, .1, .9, .8}, threshold: .65, scores: []float64{.6, .2, .95, .7},
			want: driftstat.Estimate{Precision: 1.7 / 2, Recall: 1.7 / 2.1, AUC: 3.445 / (2.1 * 1.9), ExpectedPositives: 2.1}},
		{name: "certain labels give the ordinary metrics", probs: []float64{1, 0, 1, 0}, threshold: .5, scores: []float64{.9, .8, .3, .1},
			want: driftstat.Estimate{Precision: .5, Recall: .5, AUC: driftstat.AUC([]float64{.9, .8, .3, .1}, []bool{true, false, true, false}), ExpectedPositives: 2}},
		{name: "nothing predicted positive", probs: probs, threshold: 2, scores: scores,
			want: driftstat.Estimate{Precision: nan, Recall: 0, AUC: 3.445 / (2.1 * 1.9), ExpectedPositives: 2.1}},
		{name: "no expected positives", probs: []float64{0, 0}, threshold: .5, scores: []float64{.9, .1},
			want: driftstat.Estimate{Precision: 0, Recall: nan, AUC: nan, ExpectedPositives: 0}},
		{name: "NaN probability", probs: []float64{nan, .5}, threshold: .5, scores: []float64{.9, .1},
			want: driftstat.Estimate{Precision: nan, Recall: nan, AUC: nan, ExpectedPositives: nan}},
		{name: "NaN score", probs: []float64{.5, .5}, threshold: .5, scores: []float64{nan, .1},
			want: driftstat.Estimate{Precision: nan, Recall: nan, AUC: nan, ExpectedPositives: nan}},
		{name: "lengths differ", probs: []float64{.5}, threshold: .5, scores: nil,
			want: driftstat.Estimate{Precision: nan, Recall: nan, AUC: nan, ExpectedPositives: nan}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := driftstat.EstimatePerformance(tt.probs, tt.threshold, tt.scores)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateNaNs(), cmpopts.EquateApprox(0, 1e-15)); diff != "" {
				t.Errorf("EstimatePerformance() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
