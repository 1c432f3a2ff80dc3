package driftstat

import "math"

// Platt is a logistic calibration of a score s: p = σ(A·logit(s) + B), with s clipped to
// [1e-12, 1−1e-12]. Unlike isotonic regression it is strictly increasing (for A > 0), so a
// confidence-based estimate of AUC over calibrated probabilities keeps the model's ranking
// instead of flattening it inside steps. It is a plain value, safe for concurrent use; its
// JSON form is what a profile stores.
type Platt struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// Apply returns the calibrated probability of s.
func (c Platt) Apply(s float64) float64 {
	return 1 / (1 + math.Exp(-(c.A*plattLogit(s) + c.B)))
}

func plattLogit(s float64) float64 {
	s = min(max(s, 1e-12), 1-1e-12)
	return math.Log(s / (1 - s))
}

// FitPlatt fits A and B by maximum likelihood (Newton's method on the log loss of the labels)
// over the rows whose score is not NaN. It returns ok false when a class is missing or the
// fit does not converge.
func FitPlatt(scores []float64, labels []bool) (c Platt, ok bool) {
	if len(scores) != len(labels) {
		return Platt{}, false
	}
	xs := make([]float64, 0, len(scores))
	ys := make([]float64, 0, len(scores))
	var pos, neg int
	for i, s := range scores {
		if math.IsNaN(s) {
			continue
		}
		xs = append(xs, plattLogit(s))
		if labels[i] {
			ys = append(ys, 1)
			pos++
		} else {
			ys = append(ys, 0)
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return Platt{}, false
	}
	a, b := 1.0, 0.0
	for range 100 {
		// Gradient and Hessian of the mean log loss in (a, b), with a small ridge for
		// stability on separable data.
		var ga, gb, haa, hab, hbb float64
		for i, x := range xs {
			p := 1 / (1 + math.Exp(-(a*x + b)))
			d := p - ys[i]
			w := p * (1 - p)
			ga += d * x
			gb += d
			haa += w * x * x
			hab += w * x
			hbb += w
		}
		const ridge = 1e-6
		n := float64(len(xs))
		ga, gb = ga/n+ridge*a, gb/n
		haa, hab, hbb = haa/n+ridge, hab/n, hbb/n+ridge
		det := haa*hbb - hab*hab
		if det <= 0 || math.IsNaN(det) {
			return Platt{}, false
		}
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		a, b = a-da, b-db
		if math.Abs(da) < 1e-10 && math.Abs(db) < 1e-10 {
			return Platt{A: a, B: b}, !math.IsNaN(a) && !math.IsNaN(b)
		}
	}
	return Platt{A: a, B: b}, !math.IsNaN(a) && !math.IsNaN(b)
}
