package driftstat_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// ksScipyScript computes, for the manifest it is given, scipy's ks_2samp on pairs of .npy
// samples and scipy's one-sample distributions (kstwo.sf, smirnov) on a grid.
const ksScipyScript = pyFloatHelpers + `
import json, sys, warnings
import numpy as np
from scipy import stats, special
warnings.simplefilter("error")  # an exact-path fallback warning would change the algorithm
m = json.load(open(sys.argv[1]))
out = {"pairs": [], "kstwo": [], "smirnov": []}
for c in m["pairs"]:
    a, b = np.load(c["a"]), np.load(c["b"])
    r = stats.ks_2samp(a, b)
    out["pairs"].append({"d": fl(r.statistic), "p": fl(r.pvalue)})
for n, x in m["kstwo"]:
    out["kstwo"].append(fl(stats.kstwo.sf(x, n)))
for n, x in m["smirnov"]:
    out["smirnov"].append(fl(special.smirnov(n, x)))
print(json.dumps(out))
`

// ksPair is one two-sample case of TestKSTestAgreesWithScipy.
type ksPair struct {
	name string
	a, b []float64
}

// ksPairs generates samples of many size combinations, covering scipy's exact path (equal
// and unequal sizes, ties, identical samples) and its asymptotic path (including a small
// effective n, where the Durbin matrix is used).
func ksPairs() []ksPair {
	r := rand.New(rand.NewPCG(7, 11))
	normal := func(n int, mu, sigma float64) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = mu + sigma*r.NormFloat64()
		}
		return xs
	}
	rounded := func(xs []float64) []float64 {
		for i := range xs {
			xs[i] = math.Round(xs[i]*2) / 2
		}
		return xs
	}
	var out []ksPair
	sizes := [][2]int{
		{1, 1}, {1, 5}, {3, 7}, {10, 10}, {50, 50}, {37, 91}, {100, 250}, {400, 300},
		{1000, 1000}, {999, 1000}, {3000, 7001}, {10000, 10000}, {10000, 9973},
		{10001, 5}, {20000, 60}, {20000, 140}, {15000, 400}, {20000, 20000}, {200000, 150000},
	}
	for _, sz := range sizes {
		for _, shift := range []float64{0, 0.02, 0.1, 0.3, 1} {
			// Big samples make any shift decisive; keep the largest cases few.
			if sz[0]*sz[1] > 1e8 && shift != 0.02 && shift != 0 {
				continue
			}
			out = append(out, ksPair{
				name: fmt.Sprintf("n%d_m%d_shift%g", sz[0], sz[1], shift),
				a:    normal(sz[0], 0, 1),
				b:    normal(sz[1], shift, 1),
			})
		}
	}
	same := normal(500, 0, 1)
	out = append(out,
		ksPair{name: "identical", a: same, b: slices.Clone(same)},
		ksPair{name: "ties_500_700", a: rounded(normal(500, 0, 1)), b: rounded(normal(700, 0.1, 1))},
		ksPair{name: "ties_20000_3000", a: rounded(normal(20000, 0, 1)), b: rounded(normal(3000, 0.05, 1))},
		ksPair{name: "disjoint_40_60", a: normal(40, 0, 1), b: normal(60, 100, 1)},
	)
	return out
}

// kolmogorovGrid returns (n, x) points that exercise every branch of the one-sample
// distribution: Ruben–Gambino at both ends, x >= 1/2, Durbin's matrix, the Pelz–Good
// expansion, the one-sided tail and the cut-overs between them. Large n get a few points
// only, because scipy's smirnov takes seconds per call there.
func kolmogorovGrid() [][2]float64 {
	var grid [][2]float64
	add := func(n int, cs ...float64) {
		fn := float64(n)
		for _, c := range cs {
			if x := math.Sqrt(c / fn); x > 0 && x < 1 {
				grid = append(grid, [2]float64{fn, x})
			}
		}
	}
	for _, n := range []int{1, 2, 3, 5, 10, 50, 100, 140, 141, 500, 1000, 5000, 10000} {
		fn := float64(n)
		for _, x := range []float64{0.4 / fn, 0.75 / fn, 1 / fn, 1.5 / fn, 0.5, 0.7, 1 - 1/fn, 1 - 0.5/fn, 0.999} {
			if x > 0 && x < 1 {
				grid = append(grid, [2]float64{fn, x})
			}
		}
		add(n, 0.02, 0.05, 0.3, 0.7, 0.75, 0.76, 1, 1.5, 2, 2.19, 2.21, 3, 4, 4.1, 10, 18, 100, 369, 371)
	}
	add(99999, 0.02, 0.3, 1, 2)
	add(100001, 0.02, 0.3, 1, 2, 2.21)
	add(500000, 0.05, 1, 2.19, 5, 400)
	add(1000000, 0.05, 1)
	add(2500000, 0.05, 1, 2.21, 4, 30)
	return grid
}

// TestKSTestAgreesWithScipy compares KSTest with scipy.stats.ks_2samp (defaults) on samples
// of many sizes, and the one-sample distributions behind its asymptotic path with
// scipy.stats.kstwo.sf and scipy.special.smirnov on a grid covering each algorithm.
func TestKSTestAgreesWithScipy(t *testing.T) {
	t.Parallel()
	python := stacktest.Python(t)
	dir := t.TempDir()
	pairs := ksPairs()
	type pairFiles struct {
		A string `json:"a"`
		B string `json:"b"`
	}
	manifest := struct {
		Pairs   []pairFiles  `json:"pairs"`
		KSTwo   [][2]float64 `json:"kstwo"`
		Smirnov [][2]float64 `json:"smirnov"`
	}{KSTwo: kolmogorovGrid()}
	for _, nx := range manifest.KSTwo {
		// scipy's smirnov needs seconds per call for large n below the one-sided tail; the
		// one-sample SF only calls it from n·x² = 2.2 on, so those points are skipped.
		if n := nx[0]; n < 1e5 || n > 1e6 || n*nx[1]*nx[1] >= 2.2 {
			manifest.Smirnov = append(manifest.Smirnov, nx)
		}
	}
	for i, c := range pairs {
		a, b := filepath.Join(dir, fmt.Sprintf("a%d.npy", i)), filepath.Join(dir, fmt.Sprintf("b%d.npy", i))
		writeNPY(t, a, c.a)
		writeNPY(t, b, c.b)
		manifest.Pairs = append(manifest.Pairs, pairFiles{A: a, B: b})
	}
	var got struct {
		Pairs []struct {
			D pyFloat `json:"d"`
			P pyFloat `json:"p"`
		} `json:"pairs"`
		KSTwo   []pyFloat `json:"kstwo"`
		Smirnov []pyFloat `json:"smirnov"`
	}
	runPython(t, python, writeScript(t, dir, "ks.py", ksScipyScript), &got, writeJSON(t, dir, "manifest.json", manifest))

	const tol = 1e-9
	t.Run("ks_2samp", func(t *testing.T) {
		t.Parallel()
		var maxExact, maxAsymp float64
		defer func() { t.Logf("largest |Δp|: exact path %.3g, asymptotic path %.3g", maxExact, maxAsymp) }()
		for i, c := range pairs {
			a, b := slices.Clone(c.a), slices.Clone(c.b)
			slices.Sort(a)
			slices.Sort(b)
			d, p := driftstat.KSTest(a, b)
			want := got.Pairs[i]
			if delta := math.Abs(p - float64(want.P)); max(len(a), len(b)) <= 10000 {
				maxExact = max(maxExact, delta)
			} else {
				maxAsymp = max(maxAsymp, delta)
			}
			if !closeTo(d, float64(want.D), 1e-15) || !closeTo(p, float64(want.P), tol) {
				t.Errorf("%s: KSTest = (%.17g, %.17g), scipy ks_2samp = (%.17g, %.17g), |Δp| = %.3g",
					c.name, d, p, want.D, want.P, math.Abs(p-float64(want.P)))
			}
		}
	})
	t.Run("kstwo_sf", func(t *testing.T) {
		t.Parallel()
		var maxDelta float64
		defer func() { t.Logf("largest |Δ| over %d points: %.3g", len(manifest.KSTwo), maxDelta) }()
		for i, nx := range manifest.KSTwo {
			got, want := driftstat.KolmogorovSF(int(nx[0]), nx[1]), float64(got.KSTwo[i])
			maxDelta = max(maxDelta, math.Abs(got-want))
			if !closeTo(got, want, tol) {
				t.Errorf("kolmogorovSF(%d, %.17g) = %.17g, scipy kstwo.sf = %.17g (n·x² = %.4g)",
					int(nx[0]), nx[1], got, want, nx[0]*nx[1]*nx[1])
			}
		}
	})
	t.Run("smirnov", func(t *testing.T) {
		t.Parallel()
		var maxDelta float64
		defer func() { t.Logf("largest |Δ| over %d points: %.3g", len(manifest.Smirnov), maxDelta) }()
		for i, nx := range manifest.Smirnov {
			got, want := driftstat.SmirnovSF(int(nx[0]), nx[1]), float64(got.Smirnov[i])
			maxDelta = max(maxDelta, math.Abs(got-want))
			if !closeTo(got, want, tol) {
				t.Errorf("smirnovSF(%d, %.17g) = %.17g, scipy smirnov = %.17g", int(nx[0]), nx[1], got, want)
			}
		}
	})
}
