package lightgbm

import (
	"encoding/csv"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPredictModelFile is the model-time baseline of make bench-peers: single-row fast
// predict on a given model file and given rows, through the binding (FastPredictor.Predict) and
// as LightGBM's own C loop (no Go, no cgo per row). MLOPS_BENCH_MODEL names the LightGBM text
// model and MLOPS_BENCH_ROWS a CSV of feature rows (a header line, then one row per line, as
// loadtest/grpcload writes them). It is skipped without them: the other benchmarks cover the
// binding on synthetic models.
//
// Next to the wall-clock ns/op each side reports cpu-ns/op, the CPU time of the thread that
// scored (the goroutine is locked to it): on cores shared with other work the wall clock also
// counts the time the thread waited for a core, which differs from run to run.
func BenchmarkPredictModelFile(b *testing.B) {
	bst, m := benchModelFile(b)
	b.Run("binding", func(b *testing.B) {
		fp, err := bst.NewFastPredictor(FastOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer fp.Close()
		loopRows(b, m, func(row []float64) error { _, err := fp.Predict(row); return err })
	})
	b.Run("direct-c", func(b *testing.B) {
		fp, err := bst.NewFastPredictor(FastOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer fp.Close()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.ResetTimer()
		cpu, err := fp.benchDirect(m, b.N)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	})
	// forest is the same predictions from the project's compact evaluator (Forest.Predict, one
	// cgo call per row), forest-c the same from a C loop.
	b.Run("forest", func(b *testing.B) {
		fo := benchForest(b, bst)
		loopRows(b, m, func(row []float64) error { _, err := fo.Predict(row); return err })
	})
	b.Run("forest-c", func(b *testing.B) {
		fo := benchForest(b, bst)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.ResetTimer()
		cpu, err := fo.benchDirect(m, b.N)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	})
	// contrib is the same rows' SHAP contributions (TreeSHAP, the single-row fast path), what
	// an explained prediction costs on top.
	b.Run("contrib", func(b *testing.B) {
		fp, err := bst.NewFastPredictor(FastOptions{Kind: PredictContrib, NumThreads: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer fp.Close()
		dst := make([]float64, fp.OutputLen())
		loopRows(b, m, func(row []float64) error { _, err := fp.PredictInto(dst, row); return err })
	})
	// treeshap is the same contributions from the Go TreeSHAP.
	b.Run("treeshap", func(b *testing.B) {
		ts, err := bst.NewTreeSHAP()
		if err != nil {
			b.Fatal(err)
		}
		dst := make([]float64, ts.OutputLen())
		loopRows(b, m, func(row []float64) error { _, err := ts.PredictInto(dst, row); return err })
	})
}

// loopRows calls score on m's rows in turn, b.N times, on one locked OS thread, and reports
// that thread's CPU per call beside the wall clock.
func loopRows(b *testing.B, m Matrix, score func(row []float64) error) {
	b.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := 0
	cpu0 := threadCPU()
	for b.Loop() {
		if err := score(m.Data[r*m.Cols : (r+1)*m.Cols]); err != nil {
			b.Fatal(err)
		}
		if r++; r == m.Rows {
			r = 0
		}
	}
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

func readBenchRows(b *testing.B, path string, cols int) Matrix {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		b.Fatal(err)
	}
	if len(recs) < 2 {
		b.Fatalf("%s: no rows", path)
	}
	m := Matrix{Cols: cols}
	for i, rec := range recs[1:] {
		if len(rec) != cols {
			b.Fatalf("%s row %d: %d values, the model has %d features", path, i+1, len(rec), cols)
		}
		for _, s := range rec {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				b.Fatalf("%s row %d: %v", path, i+1, err)
			}
			m.Data = append(m.Data, v)
		}
		m.Rows++
	}
	return m
}

// BenchmarkPredictModelFileColdCache is BenchmarkPredictModelFile's binding and forest sides
// with other work between predictions, as in a service, where each prediction sits between
// decoding a request, encoding the answer and logging it: before each row it writes evict
// bytes of a buffer (pushing the model's trees out of the core's caches), then times the
// prediction alone, wall clock and thread CPU. evict=0 is the hot loop.
func BenchmarkPredictModelFileColdCache(b *testing.B) {
	bst, m := benchModelFile(b)
	junk := make([]byte, 8<<20)
	for _, impl := range []string{"binding", "forest"} {
		for _, evict := range []int{0, 256 << 10, 1 << 20, 8 << 20} {
			b.Run(fmt.Sprintf("%s/evict=%dKiB", impl, evict>>10), func(b *testing.B) {
				var predict func(row []float64) (float64, error)
				if impl == "forest" {
					predict = benchForest(b, bst).Predict
				} else {
					fp, err := bst.NewFastPredictor(FastOptions{NumThreads: 1})
					if err != nil {
						b.Fatal(err)
					}
					defer fp.Close()
					predict = fp.Predict
				}
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var wall, cpu time.Duration
				r := 0
				for b.Loop() {
					for i := 0; i < evict; i += 64 {
						junk[i]++
					}
					c0, t0 := threadCPU(), time.Now()
					if _, err := predict(m.Data[r*m.Cols : (r+1)*m.Cols]); err != nil {
						b.Fatal(err)
					}
					wall += time.Since(t0)
					cpu += threadCPU() - c0
					if r++; r == m.Rows {
						r = 0
					}
				}
				b.ReportMetric(float64(wall.Nanoseconds())/float64(b.N), "predict-ns")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "predict-cpu-ns")
			})
		}
	}
}

// benchForest makes the booster's Forest, closed when the benchmark ends.
func benchForest(b *testing.B, bst *Booster) *Forest {
	b.Helper()
	fo, err := bst.NewForest(ForestOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = fo.Close() })
	return fo
}

// benchModelFile loads MLOPS_BENCH_MODEL and the rows of MLOPS_BENCH_ROWS, or skips.
func benchModelFile(b *testing.B) (*Booster, Matrix) {
	b.Helper()
	modelPath, rowsPath := os.Getenv("MLOPS_BENCH_MODEL"), os.Getenv("MLOPS_BENCH_ROWS")
	if modelPath == "" || rowsPath == "" {
		b.Skip("MLOPS_BENCH_MODEL and MLOPS_BENCH_ROWS name the model file and the rows (make bench-peers sets them)")
	}
	bst, err := testLib(b).LoadModelFile(modelPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bst.Close() })
	return bst, readBenchRows(b, rowsPath, bst.NumFeatures())
}
