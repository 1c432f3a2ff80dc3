package lightgbm

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestForestMatchesLightGBM checks the compact evaluator against LightGBM's single-row fast
// predict on the same booster, bit for bit, for probabilities and raw scores, on models that
// use every missing-value rule, trees wider than 64 nodes, single-leaf trees, a sigmoid
// parameter other than 1 and regression, over their evaluation rows and rows made of their
// thresholds, the doubles either side, zeros, tiny values and NaN.
func TestForestMatchesLightGBM(t *testing.T) {
	cases := treeSHAPCases(t)
	lib := testLib(t)
	m, y := synthFraud(5000, 8, 11)
	for i := range m.Data {
		if i%41 == 7 {
			m.Data[i] = math.NaN()
		}
	}
	eval := Matrix{Data: m.Data[:1000*8], Rows: 1000, Cols: 8}
	cases = append(cases,
		// use_missing=false: every split has missing type None, NaN is read as 0.
		treeSHAPCase{name: "no-missing-sigmoid-half", rows: eval,
			bst: trainOn(t, lib, m, y, Params{"objective": "binary", "sigmoid": "0.5", "use_missing": "false", "verbosity": "-1", "min_data_in_leaf": "5"}, 15)},
		// A gain threshold no split reaches: one single-leaf tree holding the average.
		treeSHAPCase{name: "stumps", rows: eval,
			bst: trainOn(t, lib, m, y, Params{"objective": "binary", "min_gain_to_split": "1e9", "verbosity": "-1"}, 3)},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fo, trees, err := parseForestFromBooster(t, tc.bst)
			if err != nil {
				t.Fatal(err)
			}
			_ = fo.Close()
			if tc.name == "stumps" && !hasStump(trees) {
				t.Fatal("no single-leaf tree in the model")
			}
			rows := tc.rows
			probe := forestProbeRows(trees, rows.Cols, 2000)
			rows = Matrix{Data: append(append([]float64(nil), rows.Data...), probe.Data...), Rows: rows.Rows + probe.Rows, Cols: rows.Cols}
			for _, kind := range []PredictKind{PredictNormal, PredictRaw} {
				fo, err := tc.bst.NewForest(ForestOptions{Kind: kind})
				if err != nil {
					t.Fatal(err)
				}
				defer fo.Close()
				lg, err := tc.bst.NewFastPredictor(FastOptions{Kind: kind, NumThreads: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer lg.Close()
				for r := range rows.Rows {
					row := rows.Data[r*rows.Cols : (r+1)*rows.Cols]
					got, err := fo.Predict(row)
					if err != nil {
						t.Fatal(err)
					}
					want, err := lg.Predict(row)
					if err != nil {
						t.Fatal(err)
					}
					if math.Float64bits(got) != math.Float64bits(want) {
						t.Fatalf("%v row %d: forest %v, LightGBM %v (row %v)", kind, r, got, want, row)
					}
				}
			}
		})
	}
}

func hasStump(trees []modelTree) bool {
	for _, tr := range trees {
		if len(tr.leafValue) == 1 {
			return true
		}
	}
	return false
}

func parseForestFromBooster(t *testing.T, b *Booster) (*Forest, []modelTree, error) {
	t.Helper()
	text, err := b.SaveModelString()
	if err != nil {
		t.Fatal(err)
	}
	return parseForest(text, ForestOptions{})
}

// TestForestErrors checks the models the evaluator refuses, shape errors and use after Close.
func TestForestErrors(t *testing.T) {
	text, _ := fixtureTreeSHAP(t)
	for _, tc := range []struct {
		name, from, to string
		unsupported    bool
	}{
		{name: "multiclass", from: "num_class=1", to: "num_class=3", unsupported: true},
		{name: "categorical", from: "num_cat=0", to: "num_cat=1", unsupported: true},
		{name: "categorical decision", from: "decision_type=2 ", to: "decision_type=3 ", unsupported: true},
		{name: "linear", from: "is_linear=0", to: "is_linear=1", unsupported: true},
		{name: "random forest", from: "objective=binary sigmoid:1\n", to: "objective=binary sigmoid:1\naverage_output\n", unsupported: true},
		{name: "cross entropy", from: "objective=binary sigmoid:1", to: "objective=cross_entropy", unsupported: true},
		{name: "regression sqrt", from: "objective=binary sigmoid:1", to: "objective=regression sqrt", unsupported: true},
		{name: "no objective", from: "objective=binary sigmoid:1", to: "", unsupported: true},
		{name: "bad sigmoid", from: "sigmoid:1", to: "sigmoid:x", unsupported: false},
		{name: "child cycle", from: "left_child=2 7", to: "left_child=0 7", unsupported: false},
		{name: "feature out of range", from: "split_feature=1 2", to: "split_feature=9 2", unsupported: false},
		{name: "truncated", from: "end of trees", to: "", unsupported: false},
	} {
		bad := strings.Replace(string(text), tc.from, tc.to, 1)
		if bad == string(text) {
			t.Fatalf("%s: %q not in the fixture", tc.name, tc.from)
		}
		_, err := ParseForest(bad, ForestOptions{})
		if err == nil || errors.Is(err, ErrForestUnsupported) != tc.unsupported {
			t.Errorf("%s: err = %v, want an error (unsupported: %v)", tc.name, err, tc.unsupported)
		}
	}
	if _, err := ParseForest(string(text), ForestOptions{Kind: PredictContrib}); !errors.Is(err, ErrForestUnsupported) {
		t.Errorf("contrib: err = %v, want ErrForestUnsupported", err)
	}
	// Raw scores need no objective transform.
	if fo, err := ParseForest(strings.Replace(string(text), "objective=binary sigmoid:1", "objective=cross_entropy", 1), ForestOptions{Kind: PredictRaw}); err != nil {
		t.Errorf("raw scores of a cross_entropy model: %v", err)
	} else {
		_ = fo.Close()
	}
	fo, err := ParseForest(string(text), ForestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fo.Predict(make([]float64, fo.NumFeatures()+1)); !errors.Is(err, ErrShape) {
		t.Errorf("long row: err = %v, want ErrShape", err)
	}
	_ = fo.Close()
	_ = fo.Close()
	if _, err := fo.Predict(make([]float64, fo.NumFeatures())); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: err = %v, want ErrClosed", err)
	}
}

// TestForestConcurrent checks that goroutines sharing one Forest get what one gets alone.
func TestForestConcurrent(t *testing.T) {
	bst := fixtureBooster(t)
	fo, err := bst.NewForest(ForestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fo.Close()
	rows, _ := synthFraud(400, fo.NumFeatures(), 3)
	want := make([]float64, rows.Rows)
	for r := range want {
		if want[r], err = fo.Predict(rows.Data[r*rows.Cols : (r+1)*rows.Cols]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				r := (i*7 + g) % rows.Rows
				got, err := fo.Predict(rows.Data[r*rows.Cols : (r+1)*rows.Cols])
				if err != nil || got != want[r] {
					errs <- errors.Join(err, errors.New("concurrent prediction differs"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestForestAllocsAndCPUSample checks that a prediction allocates nothing, sampled or not,
// and that the CPU samples arrive at about the asked rate with plausible values.
func TestForestAllocsAndCPUSample(t *testing.T) {
	bst := fixtureBooster(t)
	var mu sync.Mutex
	var samples []time.Duration
	fo, err := bst.NewForest(ForestOptions{OnCPUSample: func(d time.Duration) {
		mu.Lock()
		samples = append(samples, d)
		mu.Unlock()
	}, CPUSampleEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer fo.Close()
	row := make([]float64, fo.NumFeatures())
	samples = make([]time.Duration, 0, 10000)
	if n := testing.AllocsPerRun(4000, func() { _, _ = fo.Predict(row) }); n != 0 {
		t.Errorf("Predict allocates %v times per row", n)
	}
	// 4001 calls (AllocsPerRun adds a warm-up), one in 4 sampled: about 1000.
	if len(samples) < 800 || len(samples) > 1200 {
		t.Errorf("%d CPU samples in 4001 calls, want about 1000", len(samples))
	}
	for _, d := range samples {
		if d < 0 || d > time.Second {
			t.Fatalf("CPU sample %v", d)
		}
	}
}

// fixtureBooster loads testdata/model.txt.
func fixtureBooster(t *testing.T) *Booster {
	t.Helper()
	bst, err := testLib(t).LoadModelFile("testdata/model.txt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bst.Close() })
	return bst
}
