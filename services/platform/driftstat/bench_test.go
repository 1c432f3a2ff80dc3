package driftstat_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

// Sizes of the batch-comparison benchmark: 16 features, a million reference and a million
// current rows each.
const (
	benchFeatures = 16
	benchRows     = 1_000_000
)

// envBenchDir names the directory TestWriteBenchData writes the benchmark data into, for
// testdata/evidently_bench.py (make bench-drift sets it).
const envBenchDir = "MLOPS_DRIFT_BENCH_DIR"

// benchColumns generates the benchmark data with a fixed seed: per feature a reference and a
// current column of benchRows values. A quarter of the features are unshifted, the others
// carry a mean shift, a variance change or a new mass far outside the reference.
func benchColumns() (ref, cur [][]float64) {
	r := rand.New(rand.NewPCG(16, 1_000_000))
	for f := range benchFeatures {
		rc, cc := make([]float64, benchRows), make([]float64, benchRows)
		for i := range rc {
			rc[i] = r.NormFloat64()
		}
		for i := range cc {
			x := r.NormFloat64()
			switch f % 4 {
			case 1:
				x += 0.02 * float64(f)
			case 2:
				x *= 1 + 0.05*float64(f)
			case 3:
				if r.Float64() < 0.01*float64(f) {
					x = 40
				}
			}
			cc[i] = x
		}
		ref, cur = append(ref, rc), append(cur, cc)
	}
	return ref, cur
}

// batchCompare does what the drift service does for one feature in a batch comparison,
// from the raw columns: sort both, take the reference's bins as a profile does
// (driftstat.ReferenceBins: deciles, tail quantiles and edges that close the reference's
// range), bin the current column (on sorted data, one binary search per edge), then PSI, JS
// and the KS test on the full columns. refBuf and curBuf are scratch space of the columns'
// lengths, curCounts of at least the number of bins.
func batchCompare(ref, cur, refBuf, curBuf []float64, curCounts []int64) (psi, js, d, p float64) {
	copy(refBuf, ref)
	copy(curBuf, cur)
	slices.Sort(refBuf)
	slices.Sort(curBuf)
	edges, fr := driftstat.ReferenceBins(refBuf, 10)
	counts := curCounts[:len(edges)+1]
	countSorted(curBuf, edges, counts)
	psi = driftstat.PSICounts(fr, counts)
	js = driftstat.JSDistanceCounts(fr, counts)
	d, p = driftstat.KSTest(refBuf, curBuf)
	return psi, js, d, p
}

// countSorted counts sorted values into right-closed bins (edges[i−1] < x <= edges[i]).
func countSorted(sorted, edges []float64, counts []int64) {
	prev := 0
	for i, e := range edges {
		// First index with value > e: everything before it is in bins 0..i.
		end := sort.Search(len(sorted), func(k int) bool { return sorted[k] > e })
		counts[i] = int64(end - prev)
		prev = end
	}
	counts[len(edges)] = int64(len(sorted) - prev)
}

// BenchmarkDriftStats1M is a batch comparison of 16 features with a million reference and a
// million current rows: PSI, JS and the KS test (on the full sorted columns) per feature,
// from the raw columns, on one goroutine. make bench-drift compares it with Evidently's
// data-drift preset on the same data.
func BenchmarkDriftStats1M(b *testing.B) {
	ref, cur := benchColumns()
	refBuf, curBuf := make([]float64, benchRows), make([]float64, benchRows)
	curCounts := make([]int64, 10+2+len(driftstat.TailQuantiles))
	b.ResetTimer()
	for b.Loop() {
		for f := range benchFeatures {
			psi, js, _, p := batchCompare(ref[f], cur[f], refBuf, curBuf, curCounts)
			if math.IsNaN(psi) || math.IsNaN(js) || math.IsNaN(p) {
				b.Fatalf("feature %d: NaN statistic", f)
			}
		}
	}
}

// TestWriteBenchData writes the data of BenchmarkDriftStats1M as .npy files (ref_NN.npy and
// cur_NN.npy) into $MLOPS_DRIFT_BENCH_DIR, for testdata/evidently_bench.py. It is skipped
// when the variable is unset.
func TestWriteBenchData(t *testing.T) {
	dir := os.Getenv(envBenchDir)
	if dir == "" {
		t.Skipf("%s not set: make bench-drift sets it to write the data Evidently is timed on", envBenchDir)
	}
	ref, cur := benchColumns()
	for f := range benchFeatures {
		writeNPY(t, filepath.Join(dir, fmt.Sprintf("ref_%02d.npy", f)), ref[f])
		writeNPY(t, filepath.Join(dir, fmt.Sprintf("cur_%02d.npy", f)), cur[f])
	}
	// Our statistics on the same data, for the record next to Evidently's.
	refBuf, curBuf := make([]float64, benchRows), make([]float64, benchRows)
	for f := range benchFeatures {
		psi, js, d, p := batchCompare(ref[f], cur[f], refBuf, curBuf, make([]int64, 10+2+len(driftstat.TailQuantiles)))
		t.Logf("feature %02d: PSI %.4f JS %.4f KS D %.5f p %.3g", f, psi, js, d, p)
	}
}

// BenchmarkNullQuantiles calibrates one feature: a reference column of a million values,
// 200 windows of 5000.
func BenchmarkNullQuantiles(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	values := make([]float64, benchRows)
	for i := range values {
		values[i] = r.NormFloat64()
	}
	sorted := slices.Sorted(slices.Values(values))
	var edges []float64
	for k := 1; k < 10; k++ {
		edges = append(edges, sorted[k*len(sorted)/10])
	}
	fractions := make([]float64, len(edges)+1)
	for i := range fractions {
		fractions[i] = 0.1
	}
	sample := make([]float64, 0, 5000)
	for i := 0; i < len(sorted); i += len(sorted) / 5000 {
		sample = append(sample, sorted[i])
	}
	b.ResetTimer()
	for b.Loop() {
		driftstat.NullQuantiles(values, edges, fractions, sample, 5000, 200, 0.99, 1)
	}
}

// BenchmarkKSTestExact is the exact path at its most expensive: two samples of about 10000
// values that differ a lot.
func BenchmarkKSTestExact(b *testing.B) {
	a, c := seq(10000, 0, 1), seq(9973, 3000, 1)
	for b.Loop() {
		driftstat.KSTest(a, c)
	}
}

// BenchmarkAUC sorts and walks 100000 scores.
func BenchmarkAUC(b *testing.B) {
	a, _, labels := twoModels(100000, 1)
	for b.Loop() {
		driftstat.AUC(a, labels)
	}
}
