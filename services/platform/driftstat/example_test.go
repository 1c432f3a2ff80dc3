package driftstat_test

import (
	"fmt"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

func ExamplePSI() {
	ref := []float64{0.25, 0.25, 0.25, 0.25} // a profile's quartile bins
	cur := []float64{0.10, 0.20, 0.30, 0.40} // the live window's share of each bin
	fmt.Printf("PSI %.3f, JS %.3f\n", driftstat.PSI(ref, cur), driftstat.JSDistance(ref, cur))
	// Output: PSI 0.228, JS 0.201
}

func ExampleKSTest() {
	ref := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10} // both sorted ascending
	cur := []float64{4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5, 13.5}
	d, p := driftstat.KSTest(ref, cur)
	fmt.Printf("D = %.2f, p = %.4f\n", d, p)
	// Output: D = 0.40, p = 0.4175
}

func ExampleFitIsotonic() {
	scores := []float64{0.1, 0.2, 0.3, 0.4, 0.6, 0.8}
	labels := []bool{false, true, false, false, true, true}
	c := driftstat.FitIsotonic(scores, labels)
	fmt.Println(c.X, c.Y)
	fmt.Printf("%.3f %.3f %.3f\n", c.Apply(0), c.Apply(0.5), c.Apply(0.9))
	// Output:
	// [0.1 0.2 0.4 0.6 0.8] [0 0.3333333333333333 0.3333333333333333 1 1]
	// 0.000 0.667 1.000
}

func ExampleEstimatePerformance() {
	// Calibrated probabilities of an unlabelled batch, their raw scores and the serving
	// threshold on the raw score.
	probs := []float64{0.9, 0.8, 0.3, 0.1}
	scores := []float64{0.95, 0.7, 0.6, 0.2}
	e := driftstat.EstimatePerformance(probs, 0.65, scores)
	fmt.Printf("precision %.3f recall %.3f AUC %.3f expected positives %.1f\n", e.Precision, e.Recall, e.AUC, e.ExpectedPositives)
	// Output: precision 0.850 recall 0.810 AUC 0.863 expected positives 2.1
}
