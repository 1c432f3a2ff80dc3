package driftstat_test

import (
	"math"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

func TestAUC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scores []float64
		labels []bool
		want   float64
	}{
		{name: "perfect", scores: []float64{.1, .2, .8, .9}, labels: []bool{false, false, true, true}, want: 1},
		{name: "inverted", scores: []float64{.9, .8, .2, .1}, labels: []bool{false, false, true, true}, want: 0},
		{name: "sklearn docs example", scores: []float64{.1, .4, .35, .8}, labels: []bool{false, false, true, true}, want: 0.75},
		// Pairs (positive, negative): (.5, .5) counts 1/2, the other three count 1: 3.5/4.
		{name: "tie across classes counts half", scores: []float64{.5, .5, .2, .8}, labels: []bool{true, false, false, true}, want: 0.875},
		{name: "all scores equal", scores: []float64{3, 3, 3, 3}, labels: []bool{true, false, true, false}, want: 0.5},
		{name: "order of rows does not matter", scores: []float64{.8, .35, .4, .1}, labels: []bool{true, true, false, false}, want: 0.75},
		{name: "one class", scores: []float64{.1, .2}, labels: []bool{true, true}, want: nan},
		{name: "NaN score", scores: []float64{nan, .2}, labels: []bool{true, false}, want: nan},
		{name: "lengths differ", scores: []float64{.1, .2}, labels: []bool{true}, want: nan},
		{name: "empty", want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.AUC(tt.scores, tt.labels); !closeTo(got, tt.want, 1e-15) {
				t.Errorf("AUC() = %.17g, want %.17g", got, tt.want)
			}
		})
	}
}

func TestLogLoss(t *testing.T) {
	t.Parallel()
	eps := 0x1p-52
	tests := []struct {
		name   string
		probs  []float64
		labels []bool
		want   float64
	}{
		{name: "hand computed", probs: []float64{.8, .3}, labels: []bool{true, false}, want: (-math.Log(.8) - math.Log(.7)) / 2},
		{name: "confident mistakes are clipped at machine epsilon", probs: []float64{1, 0}, labels: []bool{false, true}, want: -math.Log(eps)},
		{name: "confident hits cost almost nothing", probs: []float64{1, 0}, labels: []bool{true, false}, want: -math.Log(1 - eps)},
		{name: "out of range probabilities are clipped", probs: []float64{1.5, -0.5}, labels: []bool{true, false}, want: -math.Log(1 - eps)},
		{name: "one class is fine", probs: []float64{.5, .25}, labels: []bool{true, true}, want: (math.Log(2) + math.Log(4)) / 2},
		{name: "NaN", probs: []float64{nan, .5}, labels: []bool{true, true}, want: nan},
		{name: "lengths differ", probs: []float64{.5}, labels: []bool{true, true}, want: nan},
		{name: "empty", want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.LogLoss(tt.probs, tt.labels); !closeTo(got, tt.want, 1e-15) {
				t.Errorf("LogLoss() = %.17g, want %.17g", got, tt.want)
			}
		})
	}
}

func TestPrecisionRecall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                      string
		scores                    []float64
		labels                    []bool
		threshold                 float64
		wantPrecision, wantRecall float64
	}{
		{name: "hand computed", scores: []float64{.9, .6, .4, .2}, labels: []bool{true, false, true, false}, threshold: .5,
			wantPrecision: .5, wantRecall: .5},
		{name: "score equal to the threshold is positive", scores: []float64{.5}, labels: []bool{true}, threshold: .5,
			wantPrecision: 1, wantRecall: 1},
		{name: "nothing predicted positive", scores: []float64{.1, .2}, labels: []bool{true, false}, threshold: 2,
			wantPrecision: nan, wantRecall: 0},
		{name: "no positive labels", scores: []float64{.1, .2}, labels: []bool{false, false}, threshold: 0,
			wantPrecision: 0, wantRecall: nan},
		{name: "NaN score is never positive", scores: []float64{nan, .9}, labels: []bool{true, true}, threshold: .5,
			wantPrecision: 1, wantRecall: .5},
		{name: "lengths differ", scores: []float64{.1}, labels: nil, wantPrecision: nan, wantRecall: nan},
		{name: "empty", wantPrecision: nan, wantRecall: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, r := driftstat.PrecisionRecall(tt.scores, tt.labels, tt.threshold)
			if !closeTo(p, tt.wantPrecision, 0) || !closeTo(r, tt.wantRecall, 0) {
				t.Errorf("PrecisionRecall() = (%g, %g), want (%g, %g)", p, r, tt.wantPrecision, tt.wantRecall)
			}
		})
	}
}

func TestMSEAndMAE(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		preds, targets []float64
		wantMSE        float64
		wantMAE        float64
	}{
		{name: "hand computed", preds: []float64{1, 2, 3}, targets: []float64{1, 2, 5}, wantMSE: 4.0 / 3, wantMAE: 2.0 / 3},
		{name: "signs do not cancel", preds: []float64{1, -1}, targets: []float64{0, 0}, wantMSE: 1, wantMAE: 1},
		{name: "perfect", preds: []float64{.5}, targets: []float64{.5}, wantMSE: 0, wantMAE: 0},
		{name: "NaN propagates", preds: []float64{nan}, targets: []float64{0}, wantMSE: nan, wantMAE: nan},
		{name: "lengths differ", preds: []float64{1}, targets: nil, wantMSE: nan, wantMAE: nan},
		{name: "empty", wantMSE: nan, wantMAE: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := driftstat.MSE(tt.preds, tt.targets); !closeTo(got, tt.wantMSE, 1e-15) {
				t.Errorf("MSE() = %.17g, want %.17g", got, tt.wantMSE)
			}
			if got := driftstat.MAE(tt.preds, tt.targets); !closeTo(got, tt.wantMAE, 1e-15) {
				t.Errorf("MAE() = %.17g, want %.17g", got, tt.wantMAE)
			}
		})
	}
}
