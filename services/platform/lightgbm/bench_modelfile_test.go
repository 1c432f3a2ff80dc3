package lightgbm

import (
	"encoding/csv"
	"os"
	"strconv"
	"testing"
)

// BenchmarkPredictModelFile is the model-time baseline of make bench-peers: single-row fast
// predict on a given model file and given rows, through the binding (FastPredictor.Predict) and
// as LightGBM's own C loop (no Go, no cgo per row). MLOPS_BENCH_MODEL names the LightGBM text
// model and MLOPS_BENCH_ROWS a CSV of feature rows (a header line, then one row per line, as
// loadtest/grpcload writes them). It is skipped without them: the other benchmarks cover the
// binding on synthetic models.
func BenchmarkPredictModelFile(b *testing.B) {
	modelPath, rowsPath := os.Getenv("MLOPS_BENCH_MODEL"), os.Getenv("MLOPS_BENCH_ROWS")
	if modelPath == "" || rowsPath == "" {
		b.Skip("MLOPS_BENCH_MODEL and MLOPS_BENCH_ROWS name the model file and the rows (make bench-peers sets them)")
	}
	lib := testLib(b)
	bst, err := lib.LoadModelFile(modelPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bst.Close() })
	m := readBenchRows(b, rowsPath, bst.NumFeatures())
	b.Run("binding", func(b *testing.B) {
		fp, err := bst.NewFastPredictor(FastOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer fp.Close()
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
	b.Run("direct-c", func(b *testing.B) {
		fp, err := bst.NewFastPredictor(FastOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer fp.Close()
		b.ResetTimer()
		if err := fp.benchDirect(m, b.N); err != nil {
			b.Fatal(err)
		}
	})
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
