package lightgbm

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// treeSHAPCase is a model and rows to explain.
type treeSHAPCase struct {
	name string
	bst  *Booster
	rows Matrix
}

func treeSHAPCases(t *testing.T) []treeSHAPCase {
	t.Helper()
	lib := testLib(t)
	fixture, err := lib.LoadModelFile(filepath.Join("testdata", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fixture.Close() })
	// A deeper model (63 leaves, leaf-wise, so long paths that repeat features),
	// trained on rows with missing values and exact zeros so that every missing-value rule
	// of the decisions is in play.
	m, y := synthFraud(20000, 12, 5)
	for i := range m.Data {
		switch i % 37 {
		case 3:
			m.Data[i] = math.NaN()
		case 11:
			m.Data[i] = 0
		}
	}
	deep := trainOn(t, lib, m, y, Params{"objective": "binary", "num_leaves": "63", "learning_rate": "0.1", "verbosity": "-1", "min_data_in_leaf": "5"}, 40)
	// A regression model whose zeros are missing values (zero_as_missing: missing type Zero).
	reg := trainOn(t, lib, m, y, Params{"objective": "regression", "num_leaves": "31", "verbosity": "-1", "zero_as_missing": "true", "min_data_in_leaf": "5"}, 20)
	// Trees of more than 64 internal nodes take the path without bit masks.
	wide := trainOn(t, lib, m, y, Params{"objective": "binary", "num_leaves": "127", "verbosity": "-1", "min_data_in_leaf": "3"}, 8)

	eval := Matrix{Data: append([]float64(nil), m.Data[:2000*12]...), Rows: 2000, Cols: 12}
	fixRows, _ := synthFraud(500, fixture.NumFeatures(), 9)
	for i := range fixRows.Data {
		if i%29 == 4 {
			fixRows.Data[i] = math.NaN()
		}
	}
	return []treeSHAPCase{
		{name: "fixture", bst: fixture, rows: fixRows},
		{name: "deep-binary", bst: deep, rows: eval},
		{name: "zero-as-missing-regression", bst: reg, rows: eval},
		{name: "wide-trees", bst: wide, rows: eval},
	}
}

// TestTreeSHAPMatchesLightGBM checks the Go TreeSHAP against LightGBM's own contributions
// (a PredictContrib fast predictor on the same booster) row by row, to 1e-9 of the row's
// largest contribution, and that the contributions sum to the raw score.
func TestTreeSHAPMatchesLightGBM(t *testing.T) {
	for _, tc := range treeSHAPCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := tc.bst.NewTreeSHAP()
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "wide-trees" && ts.maxNodes <= 64 {
				t.Fatalf("widest tree has %d internal nodes, want more than 64", ts.maxNodes)
			}
			// The missing-value rules the case is there for are in its trees.
			missing := map[uint8]bool{}
			for _, tr := range ts.trees {
				for _, d := range tr.decision {
					missing[(d>>2)&3] = true
				}
			}
			if want := map[string]uint8{"deep-binary": missingNaN, "zero-as-missing-regression": missingZero}; want[tc.name] != 0 && !missing[want[tc.name]] {
				t.Fatalf("no split of missing type %d in the model (types %v)", want[tc.name], missing)
			}
			lg, err := tc.bst.NewFastPredictor(FastOptions{Kind: PredictContrib, NumThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer lg.Close()
			raw, err := tc.bst.NewFastPredictor(FastOptions{Kind: PredictRaw, NumThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if ts.OutputLen() != lg.OutputLen() || ts.NumFeatures() != tc.bst.NumFeatures() {
				t.Fatalf("OutputLen %d NumFeatures %d, LightGBM %d %d", ts.OutputLen(), ts.NumFeatures(), lg.OutputLen(), tc.bst.NumFeatures())
			}
			got, want := make([]float64, ts.OutputLen()), make([]float64, lg.OutputLen())
			worst := 0.0
			for r := range tc.rows.Rows {
				row := tc.rows.Data[r*tc.rows.Cols : (r+1)*tc.rows.Cols]
				if _, err := ts.PredictInto(got, row); err != nil {
					t.Fatal(err)
				}
				if _, err := lg.PredictInto(want, row); err != nil {
					t.Fatal(err)
				}
				scale := 0.0
				for _, v := range want {
					scale = max(scale, math.Abs(v))
				}
				sum := 0.0
				for i := range want {
					d := math.Abs(got[i] - want[i])
					worst = max(worst, d/scale)
					if d > 1e-9*scale {
						t.Fatalf("row %d feature %d: Go %v, LightGBM %v (row %v)", r, i, got[i], want[i], row)
					}
					sum += got[i]
				}
				rs, err := raw.Predict(row)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(sum-rs) > 1e-9*max(1, math.Abs(rs)) {
					t.Fatalf("row %d: contributions sum to %v, raw score %v", r, sum, rs)
				}
			}
			t.Logf("%d rows: largest |Go - LightGBM| / max|contribution| = %.2g", tc.rows.Rows, worst)
		})
	}
}

// TestTreeSHAPErrors checks the shape errors and the models the Go TreeSHAP refuses.
func TestTreeSHAPErrors(t *testing.T) {
	text, ts := fixtureTreeSHAP(t)
	if _, err := ts.PredictInto(make([]float64, ts.OutputLen()), make([]float64, ts.NumFeatures()+1)); !errors.Is(err, ErrShape) {
		t.Errorf("long row: err = %v, want ErrShape", err)
	}
	if _, err := ts.PredictInto(make([]float64, ts.OutputLen()-1), make([]float64, ts.NumFeatures())); !errors.Is(err, ErrShape) {
		t.Errorf("short dst: err = %v, want ErrShape", err)
	}
	for _, tc := range []struct {
		name, from, to string
		unsupported    bool
	}{
		{name: "multiclass", from: "num_class=1", to: "num_class=3", unsupported: true},
		{name: "categorical", from: "num_cat=0", to: "num_cat=1", unsupported: true},
		{name: "linear", from: "is_linear=0", to: "is_linear=1", unsupported: true},
		{name: "no counts", from: "leaf_count=", to: "leaf_counts=", unsupported: true},
		{name: "truncated", from: "end of trees", to: "", unsupported: false},
	} {
		bad := strings.Replace(string(text), tc.from, tc.to, 1)
		if bad == string(text) {
			t.Fatalf("%s: %q not in the fixture", tc.name, tc.from)
		}
		_, err := ParseTreeSHAP(bad)
		if err == nil || errors.Is(err, ErrTreeSHAPUnsupported) != tc.unsupported {
			t.Errorf("%s: err = %v, want an error (unsupported: %v)", tc.name, err, tc.unsupported)
		}
	}
}

// TestTreeSHAPAllocs checks that explaining a row allocates nothing.
func TestTreeSHAPAllocs(t *testing.T) {
	_, ts := fixtureTreeSHAP(t)
	row, dst := make([]float64, ts.NumFeatures()), make([]float64, ts.OutputLen())
	if n := testing.AllocsPerRun(100, func() { _, _ = ts.PredictInto(dst, row) }); n != 0 {
		t.Errorf("PredictInto allocates %v times per row", n)
	}
}

// trainOn trains rounds iterations with params on m and y; the booster is closed when the test
// ends.
func trainOn(t *testing.T, lib *Library, m Matrix, y []float64, params Params, rounds int) *Booster {
	t.Helper()
	ds, err := lib.NewDataset(m, y, DatasetOptions{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	bst, err := Train(context.Background(), params, ds, TrainOptions{NumRounds: rounds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bst.Close() })
	return bst
}

// fixtureTreeSHAP reads testdata/model.txt and parses it for the Go TreeSHAP.
func fixtureTreeSHAP(t *testing.T) ([]byte, *TreeSHAP) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ParseTreeSHAP(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return text, ts
}
