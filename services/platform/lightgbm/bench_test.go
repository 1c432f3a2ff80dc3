package lightgbm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchModelCache keeps the text of models trained for benchmarks so the -count repetitions
// and sub-benchmarks train each one once per process.
var benchModelCache = struct {
	sync.Mutex
	text map[int]string
}{text: map[int]string{}}

// benchBooster returns the committed 10-tree fixture (6 features) for trees=10, otherwise a
// model with that many trees on 12 features trained on 50k synthetic rows.
func benchBooster(b *testing.B, lib *Library, trees int) *Booster {
	b.Helper()
	if trees == 10 {
		bst, err := lib.LoadModelFile(filepath.Join("testdata", "model.txt"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = bst.Close() })
		return bst
	}
	benchModelCache.Lock()
	defer benchModelCache.Unlock()
	text, ok := benchModelCache.text[trees]
	if !ok {
		m, y := synthFraud(50000, 12, 77)
		params := Params{"objective": "binary", "num_leaves": "31", "learning_rate": "0.05", "verbosity": "-1", "min_data_in_leaf": "20"}
		ds, err := lib.NewDataset(m, y, DatasetOptions{Params: params})
		if err != nil {
			b.Fatal(err)
		}
		bst, err := Train(context.Background(), params, ds, TrainOptions{NumRounds: trees})
		if err != nil {
			b.Fatal(err)
		}
		if text, err = bst.SaveModelString(); err != nil {
			b.Fatal(err)
		}
		if err := bst.Close(); err != nil {
			b.Fatal(err)
		}
		if err := ds.Close(); err != nil {
			b.Fatal(err)
		}
		benchModelCache.text[trees] = text
	}
	bst, err := lib.LoadModelString(text)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bst.Close() })
	return bst
}

// benchRows are the rows the single-row benchmarks cycle through (the same for the binding
// and the direct C loop), so the trees are walked along varied paths.
func benchRows(cols int) Matrix {
	m, _ := synthFraud(1000, cols, 8)
	return m
}

var benchTrees = []int{10, 200}

// BenchmarkPredictSingleRow is the binding's single-row fast path (FastPredictor.Predict):
// one cgo call that hands LightGBM the row in place, read the result; rows cycle through
// 1000 synthetic rows.
func BenchmarkPredictSingleRow(b *testing.B) {
	lib := testLib(b)
	for _, trees := range benchTrees {
		b.Run(fmt.Sprintf("trees=%d", trees), func(b *testing.B) {
			bst := benchBooster(b, lib, trees)
			fp, err := bst.NewFastPredictor(FastOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer fp.Close()
			m := benchRows(bst.NumFeatures())
			b.ReportAllocs()
			r := 0
			for b.Loop() {
				if _, err := fp.Predict(m.Data[r*m.Cols : (r+1)*m.Cols]); err != nil {
					b.Fatal(err)
				}
				if r++; r == m.Rows {
					r = 0
				}
			}
		})
	}
}

// BenchmarkPredictSingleRowDirectC is the baseline: a C loop that hands each row in place to
// LGBM_BoosterPredictForMatSingleRowFast through its function pointer b.N times on the same
// FastConfig and the same rows as BenchmarkPredictSingleRow, so ns/op is LightGBM's own cost per row with no Go or cgo overhead.
func BenchmarkPredictSingleRowDirectC(b *testing.B) {
	lib := testLib(b)
	for _, trees := range benchTrees {
		b.Run(fmt.Sprintf("trees=%d", trees), func(b *testing.B) {
			bst := benchBooster(b, lib, trees)
			fp, err := bst.NewFastPredictor(FastOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer fp.Close()
			m := benchRows(bst.NumFeatures())
			b.ResetTimer()
			cpu, err := fp.benchDirect(m, b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkPredictSingleRowPool measures the pool (200 trees): borrow, predict, return;
// sequential and from GOMAXPROCS goroutines.
func BenchmarkPredictSingleRowPool(b *testing.B) {
	lib := testLib(b)
	bst := benchBooster(b, lib, 200)
	pool, err := bst.NewFastPredictorPool(FastOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	m := benchRows(bst.NumFeatures())
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		r := 0
		for b.Loop() {
			if _, err := pool.Predict(m.Data[r*m.Cols : (r+1)*m.Cols]); err != nil {
				b.Fatal(err)
			}
			if r++; r == m.Rows {
				r = 0
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := 0
			for pb.Next() {
				if _, err := pool.Predict(m.Data[r*m.Cols : (r+1)*m.Cols]); err != nil {
					b.Error(err)
					return
				}
				if r++; r == m.Rows {
					r = 0
				}
			}
		})
	})
}

// BenchmarkPredictBatch scores 1000 rows per op with LightGBM's OpenMP parallelism
// (Predict), one thread (Predict, num_threads=1) and Go-side chunks (PredictParallel).
func BenchmarkPredictBatch(b *testing.B) {
	lib := testLib(b)
	bst := benchBooster(b, lib, 200)
	m, _ := synthFraud(1000, bst.NumFeatures(), 8)
	out := make([]float64, m.Rows)
	b.Run("openmp", func(b *testing.B) {
		for b.Loop() {
			if _, err := bst.PredictInto(out, m, PredictNormal, PredictOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*m.Rows), "ns/row")
	})
	b.Run("threads=1", func(b *testing.B) {
		for b.Loop() {
			if _, err := bst.PredictInto(out, m, PredictNormal, PredictOptions{NumThreads: 1}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*m.Rows), "ns/row")
	})
	b.Run("go-parallel", func(b *testing.B) {
		for b.Loop() {
			if _, err := bst.PredictParallel(context.Background(), m, PredictNormal, PredictOptions{}, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*m.Rows), "ns/row")
	})
}

// BenchmarkContrib measures SHAP contributions for one row (fast path, cycling rows) and for
// 1000 rows in one batch call.
func BenchmarkContrib(b *testing.B) {
	lib := testLib(b)
	for _, trees := range benchTrees {
		b.Run(fmt.Sprintf("single-row/trees=%d", trees), func(b *testing.B) {
			bst := benchBooster(b, lib, trees)
			fp, err := bst.NewFastPredictor(FastOptions{Kind: PredictContrib})
			if err != nil {
				b.Fatal(err)
			}
			defer fp.Close()
			m := benchRows(bst.NumFeatures())
			dst := make([]float64, fp.OutputLen())
			b.ReportAllocs()
			r := 0
			for b.Loop() {
				if _, err := fp.PredictInto(dst, m.Data[r*m.Cols:(r+1)*m.Cols]); err != nil {
					b.Fatal(err)
				}
				if r++; r == m.Rows {
					r = 0
				}
			}
		})
	}
	bst := benchBooster(b, lib, 200)
	b.Run("batch-1000/trees=200", func(b *testing.B) {
		m, _ := synthFraud(1000, bst.NumFeatures(), 8)
		out := make([]float64, m.Rows*(m.Cols+1))
		for b.Loop() {
			if _, err := bst.PredictInto(out, m, PredictContrib, PredictOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTrain1M times building a Dataset from 1M rows x 12 features and training 100
// rounds (num_leaves 31, all cores). Run it alone: go test -run none -bench Train1M -benchtime 1x.
// The dataset build time is reported as dataset-s; ns/op covers both.
func BenchmarkTrain1M(b *testing.B) {
	lib := testLib(b)
	const rows, cols, rounds = 1_000_000, 12, 100
	m, y := synthFraud(rows, cols, 123)
	params := Params{"objective": "binary", "metric": "auc", "num_leaves": "31", "learning_rate": "0.1", "verbosity": "-1"}
	if n := os.Getenv("MLOPS_BENCH_NUM_THREADS"); n != "" {
		params["num_threads"] = n
	}
	b.ResetTimer()
	var dsTime, trainTime time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		ds, err := lib.NewDataset(m, y, DatasetOptions{Params: params})
		if err != nil {
			b.Fatal(err)
		}
		dsTime += time.Since(start)
		start = time.Now()
		bst, err := Train(context.Background(), params, ds, TrainOptions{NumRounds: rounds})
		if err != nil {
			b.Fatal(err)
		}
		trainTime += time.Since(start)
		b.StopTimer()
		_ = bst.Close()
		_ = ds.Close()
		b.StartTimer()
	}
	b.ReportMetric(dsTime.Seconds()/float64(b.N), "dataset-s")
	b.ReportMetric(trainTime.Seconds()/float64(b.N), "train-s")
}

// BenchmarkPredictSingleRowPaired interleaves blocks of 1000 rows through the binding
// (FastPredictor.Predict) and through the direct C loop on the same FastConfig and rows,
// alternating which goes first, so both see the same machine load. It reports each side's
// ns per row and their ratio (binding/direct); ns/op is per pair of blocks. locked=true pins
// the benchmark goroutine to its OS thread: unpinned, the goroutine can move between threads
// (and cores) between cgo calls, which costs LightGBM warm caches on larger models.
func BenchmarkPredictSingleRowPaired(b *testing.B) {
	lib := testLib(b)
	for _, tc := range []struct {
		trees  int
		locked bool
	}{{10, false}, {10, true}, {200, false}, {200, true}} {
		b.Run(fmt.Sprintf("trees=%d/locked=%v", tc.trees, tc.locked), func(b *testing.B) {
			bst := benchBooster(b, lib, tc.trees)
			fp, err := bst.NewFastPredictor(FastOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer fp.Close()
			m := benchRows(bst.NumFeatures())
			if tc.locked {
				// Pin the goroutine to its OS thread, as a dedicated scoring worker could.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			binding := func() time.Duration {
				start := time.Now()
				for r := 0; r < m.Rows; r++ {
					if _, err := fp.Predict(m.Data[r*m.Cols : (r+1)*m.Cols]); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(start)
			}
			direct := func() time.Duration {
				start := time.Now()
				if _, err := fp.benchDirect(m, m.Rows); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			var tb, td time.Duration
			blocks := 0
			for b.Loop() {
				if blocks%2 == 0 {
					tb += binding()
					td += direct()
				} else {
					td += direct()
					tb += binding()
				}
				blocks++
			}
			rows := float64(blocks * m.Rows)
			b.ReportMetric(float64(tb.Nanoseconds())/rows, "binding-ns/row")
			b.ReportMetric(float64(td.Nanoseconds())/rows, "direct-ns/row")
			b.ReportMetric(float64(tb)/float64(td), "ratio")
		})
	}
}
