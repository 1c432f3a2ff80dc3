package lightgbm

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parityTol is the largest difference allowed between Go and Python LightGBM. Both call the
// same C++ code, so in practice the values are bit-identical.
const parityTol = 1e-12

type pythonPredictions struct {
	Normal       []float64   `json:"normal"`
	Raw          []float64   `json:"raw"`
	Contrib      [][]float64 `json:"contrib"`
	NumFeatures  int         `json:"num_features"`
	FeatureNames []string    `json:"feature_names"`
	Version      string      `json:"version"`
}

// TestLightGBMParityPredict scores the committed 10-tree fixture with every Go prediction
// path and compares each with Python LightGBM's Booster.predict on the same file and rows.
func TestLightGBMParityPredict(t *testing.T) {
	t.Parallel()
	lib := testLib(t)
	python := testPython(t)
	modelPath := filepath.Join("testdata", "model.txt")
	rowsPath := filepath.Join("testdata", "rows.csv")

	var want pythonPredictions
	runPython(t, python, &want, "predict", modelPath, rowsPath)
	if lib.Version() != "" && lib.Version() != want.Version {
		t.Errorf("library version %q, python lightgbm %q: not the same wheel", lib.Version(), want.Version)
	}
	rows, header := readRowsCSV(t, rowsPath)
	if len(want.Normal) != rows.Rows {
		t.Fatalf("python scored %d rows, Go read %d", len(want.Normal), rows.Rows)
	}
	wantContrib := make([]float64, 0, rows.Rows*(rows.Cols+1))
	for _, r := range want.Contrib {
		wantContrib = append(wantContrib, r...)
	}

	text, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := lib.LoadModelFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fromFile.Close()
	fromString, err := lib.LoadModelString(string(text))
	if err != nil {
		t.Fatal(err)
	}
	defer fromString.Close()

	worst := 0.0
	for _, tc := range []struct {
		name string
		b    *Booster
	}{{"file", fromFile}, {"string", fromString}} {
		b := tc.b
		if b.NumFeatures() != want.NumFeatures || b.NumClasses() != 1 || b.BestIteration() != 10 {
			t.Errorf("%s: NumFeatures=%d NumClasses=%d BestIteration=%d, want %d, 1, 10", tc.name, b.NumFeatures(), b.NumClasses(), b.BestIteration(), want.NumFeatures)
		}
		names, err := b.FeatureNames()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.FeatureNames, names); diff != "" {
			t.Errorf("%s: feature names (-python +go):\n%s", tc.name, diff)
		}
		if diff := cmp.Diff(header, names); diff != "" {
			t.Errorf("%s: feature names vs rows.csv header (-csv +go):\n%s", tc.name, diff)
		}

		for _, kind := range []struct {
			kind PredictKind
			want []float64
		}{{PredictNormal, want.Normal}, {PredictRaw, want.Raw}, {PredictContrib, wantContrib}} {
			per := len(kind.want) / rows.Rows
			check := func(path string, got []float64) {
				t.Helper()
				d, at := maxAbsDiff(t, tc.name+"/"+path, got, kind.want)
				worst = max(worst, d)
				if d > parityTol {
					t.Errorf("%s/%s/%v: max |go-python| = %g at row %d value %d (go %v, python %v)", tc.name, path, kind.kind, d, at/per, at%per, got[at], kind.want[at])
				}
			}

			batch, err := b.Predict(rows, kind.kind, PredictOptions{})
			if err != nil {
				t.Fatal(err)
			}
			check("batch", batch)

			par, err := b.PredictParallel(context.Background(), rows, kind.kind, PredictOptions{}, 3)
			if err != nil {
				t.Fatal(err)
			}
			check("parallel", par)

			fp, err := b.NewFastPredictor(FastOptions{Kind: kind.kind})
			if err != nil {
				t.Fatal(err)
			}
			pool, err := b.NewFastPredictorPool(FastOptions{Kind: kind.kind})
			if err != nil {
				t.Fatal(err)
			}
			single := make([]float64, 0, len(kind.want))
			pooled := make([]float64, 0, len(kind.want))
			buf := make([]float64, fp.OutputLen())
			for i := 0; i < rows.Rows; i++ {
				row := rows.Data[i*rows.Cols : (i+1)*rows.Cols]
				if fp.OutputLen() == 1 {
					v, err := fp.Predict(row)
					if err != nil {
						t.Fatal(err)
					}
					single = append(single, v)
					pv, err := pool.Predict(row)
					if err != nil {
						t.Fatal(err)
					}
					pooled = append(pooled, pv)
					continue
				}
				n, err := fp.PredictInto(buf, row)
				if err != nil {
					t.Fatal(err)
				}
				single = append(single, buf[:n]...)
				n, err = pool.PredictInto(buf, row)
				if err != nil {
					t.Fatal(err)
				}
				pooled = append(pooled, buf[:n]...)
			}
			check("fast", single)
			check("pool", pooled)
			if kind.kind != PredictContrib {
				// The compact evaluator the scoring service serves with.
				fo, err := b.NewForest(ForestOptions{Kind: kind.kind})
				if err != nil {
					t.Fatal(err)
				}
				var forest []float64
				for i := 0; i < rows.Rows; i++ {
					v, err := fo.Predict(rows.Data[i*rows.Cols : (i+1)*rows.Cols])
					if err != nil {
						t.Fatal(err)
					}
					forest = append(forest, v)
				}
				check("forest", forest)
				_ = fo.Close()
			}
			if kind.kind == PredictContrib {
				// The Go TreeSHAP, to the same tolerance.
				ts, err := b.NewTreeSHAP()
				if err != nil {
					t.Fatal(err)
				}
				var goSHAP []float64
				for i := 0; i < rows.Rows; i++ {
					n, err := ts.PredictInto(buf, rows.Data[i*rows.Cols:(i+1)*rows.Cols])
					if err != nil {
						t.Fatal(err)
					}
					goSHAP = append(goSHAP, buf[:n]...)
				}
				check("treeshap", goSHAP)
			}
			if err := fp.Close(); err != nil {
				t.Error(err)
			}
			if err := pool.Close(); err != nil {
				t.Error(err)
			}
		}
	}

	t.Logf("LightGBM %s: %d rows x (normal, raw, contrib) x (batch, parallel, fast, pool; normal and raw also the Forest, contrib the Go TreeSHAP) x (file, string): max |go-python| = %g",
		want.Version, rows.Rows, worst)

	// Contributions sum to the raw score: a check of the layout (features..., bias).
	per := rows.Cols + 1
	for i := 0; i < rows.Rows; i++ {
		var sum float64
		for _, v := range wantContrib[i*per : (i+1)*per] {
			sum += v
		}
		if d := sum - want.Raw[i]; d > 1e-9 || d < -1e-9 {
			t.Fatalf("row %d: contributions sum to %v, raw score %v", i, sum, want.Raw[i])
		}
	}
}

// TestLightGBMParityTrainAUC trains the same model from Go and from Python LightGBM (same
// data, params, early stopping) and compares best iteration, validation AUC, test
// predictions and test AUC (computed in Go for Go's model, by sklearn for Python's).
func TestLightGBMParityTrainAUC(t *testing.T) {
	t.Parallel()
	lib := testLib(t)
	python := testPython(t)
	const cols, rounds, stop = 8, 300, 15
	names := []string{"amount", "location_score", "device_risk", "secs_since_last_tx", "f4", "f5", "f6", "f7"}
	params := Params{
		"objective": "binary", "metric": "auc", "num_leaves": "31", "learning_rate": "0.05",
		"feature_fraction": "0.8", "bagging_fraction": "0.8", "bagging_freq": "1", "min_data_in_leaf": "20",
		"deterministic": "true", "num_threads": "1", "seed": "42", "verbosity": "-1",
	}
	trainX, trainY := synthFraud(20000, cols, 1)
	validX, validY := synthFraud(5000, cols, 2)
	testX, testY := synthFraud(5000, cols, 3)

	dir := t.TempDir()
	for name, v := range map[string][]float64{
		"train_x": trainX.Data, "train_y": trainY, "valid_x": validX.Data, "valid_y": validY, "test_x": testX.Data, "test_y": testY,
	} {
		writeF64(t, filepath.Join(dir, name+".f64"), v)
	}
	meta, err := json.Marshal(map[string]any{"cols": cols, "feature_names": names, "params": params, "rounds": rounds, "early_stopping": stop})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
	var py struct {
		BestIteration int       `json:"best_iteration"`
		BestScore     float64   `json:"best_score"`
		Pred          []float64 `json:"pred"`
		AUC           float64   `json:"auc"`
		Model         string    `json:"model"`
	}
	runPython(t, python, &py, "train", dir)

	train, err := lib.NewDataset(trainX, trainY, DatasetOptions{FeatureNames: names, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	defer train.Close()
	valid, err := lib.NewDataset(validX, validY, DatasetOptions{FeatureNames: names, Params: params, Reference: train})
	if err != nil {
		t.Fatal(err)
	}
	defer valid.Close()
	var seen []Iteration
	b, err := Train(context.Background(), params, train, TrainOptions{
		NumRounds: rounds, Valid: []*Dataset{valid}, ValidNames: []string{"valid"}, EarlyStoppingRounds: stop,
		OnIteration: func(it Iteration) error { seen = append(seen, it); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	if b.BestIteration() != py.BestIteration {
		t.Errorf("best iteration: go %d, python %d", b.BestIteration(), py.BestIteration)
	}
	if len(seen) != b.BestIteration()+stop && len(seen) != rounds {
		t.Errorf("callback saw %d rounds, want best %d + %d (or all %d)", len(seen), b.BestIteration(), stop, rounds)
	}
	best := b.BestEval()
	if len(best) != 1 || best[0].Dataset != "valid" || best[0].Metric != "auc" || !best[0].HigherBetter {
		t.Fatalf("BestEval = %+v, want one valid auc", best)
	}
	if d := best[0].Value - py.BestScore; d > parityTol || d < -parityTol {
		t.Errorf("best valid auc: go %v, python %v", best[0].Value, py.BestScore)
	}

	pred, err := b.Predict(testX, PredictNormal, PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d, at := maxAbsDiff(t, "test predictions", pred, py.Pred); d > parityTol {
		t.Errorf("test predictions: max |go-python| = %g at row %d", d, at)
	}
	goAUC := auc(pred, testY)
	if d := goAUC - py.AUC; d > parityTol || d < -parityTol {
		t.Errorf("test AUC: go %v, python (sklearn) %v", goAUC, py.AUC)
	}
	if goAUC < 0.6 {
		t.Errorf("test AUC %v: the model learned nothing", goAUC)
	}

	goModel, err := b.SaveModelString()
	if err != nil {
		t.Fatal(err)
	}
	trees := func(s string) string { // the model without its trailing parameters section
		if i := strings.Index(s, "\nparameters:"); i >= 0 {
			return s[:i]
		}
		return s
	}
	if trees(goModel) != trees(py.Model) {
		t.Errorf("model text differs from python's (trees section)")
	}
	t.Logf("best iteration %d, valid auc %.6f, test auc go %.12f python %.12f, identical trees: %v",
		b.BestIteration(), best[0].Value, goAUC, py.AUC, trees(goModel) == trees(py.Model))
}
