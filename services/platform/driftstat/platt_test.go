package driftstat

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFitPlatt: scores that are a known logistic distortion of the true probability are
// calibrated back (A and B recovered), and the estimate of AUC over the calibrated
// probabilities is close to the realized AUC.
func TestFitPlatt(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	scores := make([]float64, n)
	labels := make([]bool, n)
	probs := make([]float64, n)
	for i := range n {
		z := r.NormFloat64()*2 - 3
		p := 1 / (1 + math.Exp(-z))
		labels[i] = r.Float64() < p
		// The model's score: logit(s) = (z - 0.5) / 2, so p = σ(2·logit(s) + 0.5).
		scores[i] = 1 / (1 + math.Exp(-(z-0.5)/2))
	}
	c, ok := FitPlatt(scores, labels)
	if !ok || math.Abs(c.A-2) > 0.05 || math.Abs(c.B-0.5) > 0.05 {
		t.Fatalf("FitPlatt = %+v, %v; want A≈2, B≈0.5", c, ok)
	}
	for i, s := range scores {
		probs[i] = c.Apply(s)
	}
	est := EstimatePerformance(probs, 0.5, scores).AUC
	if real := AUC(scores, labels); math.Abs(est-real) > 0.01 {
		t.Errorf("estimated AUC %.4f, realized %.4f: want within 0.01", est, real)
	}
	if _, ok := FitPlatt([]float64{0.1, 0.2}, []bool{false, false}); ok {
		t.Error("FitPlatt with one class reported ok")
	}
}
