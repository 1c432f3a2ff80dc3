package lightgbm

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests need no shared library: they check argument validation done in Go.

func TestFindLibrary(t *testing.T) {
	t.Parallel()
	venv := t.TempDir()
	lib := filepath.Join(venv, "lib", "python3.11", "site-packages", "lightgbm", "lib", "lib_lightgbm.so")
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lib, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := os.Symlink(venv, filepath.Join(repo, ".venv")); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(repo, "services", "platform", "lightgbm")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	repoLib := filepath.Join(repo, ".venv", "lib", "python3.11", "site-packages", "lightgbm", "lib", "lib_lightgbm.so")

	tests := []struct {
		name    string
		env     map[string]string
		wd      string
		want    string
		wantErr error
	}{
		{name: "LIGHTGBM_LIB wins", env: map[string]string{EnvLib: "/x/a.so", EnvMLOpsLib: "/x/b.so", "VIRTUAL_ENV": venv}, wd: deep, want: "/x/a.so"},
		{name: "MLOPS_LIGHTGBM_LIB", env: map[string]string{EnvMLOpsLib: "/x/b.so"}, wd: deep, want: "/x/b.so"},
		{name: "VIRTUAL_ENV", env: map[string]string{"VIRTUAL_ENV": venv}, wd: t.TempDir(), want: lib},
		{name: "repo .venv above working dir", wd: deep, want: repoLib},
		{name: "nothing", wd: t.TempDir(), wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := findLibrary(func(k string) string { return tt.env[k] }, tt.wd)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("findLibrary() error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("findLibrary() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenMissingLibrary(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lib_lightgbm.so")
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(missing) = %v, want an error naming %s", err, path)
	}
}

func TestParamsString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       Params
		want    string
		wantErr bool
	}{
		{name: "empty", p: nil, want: ""},
		{name: "sorted", p: Params{"objective": "binary", "metric": "auc,binary_logloss", "eta": "0.1"}, want: "eta=0.1 metric=auc,binary_logloss objective=binary"},
		{name: "space in value", p: Params{"metric": "auc binary_logloss"}, wantErr: true},
		{name: "equals in key", p: Params{"a=b": "1"}, wantErr: true},
		{name: "empty key", p: Params{"": "1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.String(); !tt.wantErr && got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			cs, err := tt.p.cString()
			if (err != nil) != tt.wantErr {
				t.Fatalf("cString() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				freeCString(cs)
			}
		})
	}
}

func TestNewDatasetShapeErrors(t *testing.T) {
	t.Parallel()
	lib := &Library{} // never reaches C: every case fails validation first
	ok := Matrix{Data: make([]float64, 6), Rows: 3, Cols: 2}
	tests := []struct {
		name   string
		m      Matrix
		labels []float64
		opts   DatasetOptions
	}{
		{name: "empty matrix", m: Matrix{}, labels: nil},
		{name: "data length", m: Matrix{Data: make([]float64, 5), Rows: 3, Cols: 2}, labels: make([]float64, 3)},
		{name: "labels", m: ok, labels: make([]float64, 2)},
		{name: "weights", m: ok, labels: make([]float64, 3), opts: DatasetOptions{Weights: make([]float64, 4)}},
		{name: "feature names", m: ok, labels: make([]float64, 3), opts: DatasetOptions{FeatureNames: []string{"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := lib.NewDataset(tt.m, tt.labels, tt.opts); !errors.Is(err, ErrShape) {
				t.Errorf("NewDataset() error = %v, want ErrShape", err)
			}
		})
	}
}

func TestAUC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		scores, labels []float64
		want           float64
	}{
		{name: "perfect", scores: []float64{0.1, 0.2, 0.8, 0.9}, labels: []float64{0, 0, 1, 1}, want: 1},
		{name: "inverted", scores: []float64{0.9, 0.8, 0.2, 0.1}, labels: []float64{0, 0, 1, 1}, want: 0},
		{name: "all ties", scores: []float64{0.5, 0.5, 0.5, 0.5}, labels: []float64{0, 1, 0, 1}, want: 0.5},
		{name: "one swap", scores: []float64{0.1, 0.6, 0.5, 0.9}, labels: []float64{0, 0, 1, 1}, want: 0.75},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := auc(tt.scores, tt.labels); math.Abs(got-tt.want) > 1e-15 {
				t.Errorf("auc() = %v, want %v", got, tt.want)
			}
		})
	}
}

// The tests below need the shared library (skipped without it).

func TestLoadModelStringError(t *testing.T) {
	t.Parallel()
	lib := testLib(t)
	tests := []struct {
		name, model, wantMsg string
	}{
		{name: "garbage", model: "this is not a model", wantMsg: "Model file doesn't specify the number of classes"},
		{name: "empty", model: "", wantMsg: "Model file doesn't specify the number of classes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := lib.LoadModelString(tt.model)
			var lerr *Error
			if !errors.As(err, &lerr) {
				t.Fatalf("LoadModelString() error = %v, want *Error", err)
			}
			if lerr.Op != "LGBM_BoosterLoadModelFromString" || !strings.Contains(lerr.Msg, tt.wantMsg) {
				t.Errorf("error = %+v, want op LGBM_BoosterLoadModelFromString and message containing %q", lerr, tt.wantMsg)
			}
		})
	}
	if _, err := lib.LoadModelFile(filepath.Join(t.TempDir(), "missing.txt")); !errors.As(err, new(*Error)) {
		t.Errorf("LoadModelFile(missing) error = %v, want *Error", err)
	}
}

func TestWrongFeatureCount(t *testing.T) {
	t.Parallel()
	lib := testLib(t)
	b, err := lib.LoadModelFile(filepath.Join("testdata", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	nf := b.NumFeatures()

	// Batch: LightGBM itself rejects the matrix; its message is carried through.
	_, err = b.Predict(Matrix{Data: make([]float64, 2*(nf-1)), Rows: 2, Cols: nf - 1}, PredictNormal, PredictOptions{})
	var lerr *Error
	if !errors.As(err, &lerr) || !strings.Contains(lerr.Msg, "The number of features in data") {
		t.Errorf("Predict(%d cols) error = %v, want LightGBM's feature-count error", nf-1, err)
	}
	// Single row: checked in Go before calling C.
	fp, err := b.NewFastPredictor(FastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	for _, n := range []int{0, nf - 1, nf + 1} {
		if _, err := fp.Predict(make([]float64, n)); !errors.Is(err, ErrShape) {
			t.Errorf("FastPredictor.Predict(%d values) error = %v, want ErrShape", n, err)
		}
	}
	// Multi-value output through the single-value method.
	cp, err := b.NewFastPredictor(FastOptions{Kind: PredictContrib})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if cp.OutputLen() != nf+1 {
		t.Errorf("contrib OutputLen() = %d, want %d", cp.OutputLen(), nf+1)
	}
	if _, err := cp.Predict(make([]float64, nf)); !errors.Is(err, ErrShape) {
		t.Errorf("contrib Predict() error = %v, want ErrShape", err)
	}
	if _, err := cp.PredictInto(make([]float64, nf), make([]float64, nf)); !errors.Is(err, ErrShape) {
		t.Errorf("contrib PredictInto(short dst) error = %v, want ErrShape", err)
	}
	if _, err := b.PredictInto(make([]float64, 1), Matrix{Data: make([]float64, 2*nf), Rows: 2, Cols: nf}, PredictNormal, PredictOptions{}); !errors.Is(err, ErrShape) {
		t.Errorf("PredictInto(short dst) error = %v, want ErrShape", err)
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	t.Parallel()
	lib := testLib(t)
	b, err := lib.LoadModelFile(filepath.Join("testdata", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	row := make([]float64, b.NumFeatures())
	fp, err := b.NewFastPredictor(FastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := b.NewFastPredictorPool(FastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := fp.Predict(row)
	if err != nil {
		t.Fatal(err)
	}

	// Closing the booster first keeps the model alive for its fast predictors.
	for i := 0; i < 2; i++ {
		if err := b.Close(); err != nil {
			t.Fatalf("Booster.Close #%d: %v", i+1, err)
		}
	}
	if _, err := b.Predict(Matrix{Data: row, Rows: 1, Cols: len(row)}, PredictNormal, PredictOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Predict after Close: %v, want ErrClosed", err)
	}
	if _, err := b.SaveModelString(); !errors.Is(err, ErrClosed) {
		t.Errorf("SaveModelString after Close: %v, want ErrClosed", err)
	}
	if _, err := b.NewFastPredictor(FastOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewFastPredictor after Close: %v, want ErrClosed", err)
	}
	if got, err := fp.Predict(row); err != nil || got != want {
		t.Errorf("fast Predict after Booster.Close = %v, %v; want %v, nil", got, err, want)
	}
	if got, err := pool.Predict(row); err != nil || got != want {
		t.Errorf("pool Predict after Booster.Close = %v, %v; want %v, nil", got, err, want)
	}
	for i := 0; i < 2; i++ {
		if err := fp.Close(); err != nil {
			t.Fatalf("FastPredictor.Close #%d: %v", i+1, err)
		}
		if err := pool.Close(); err != nil {
			t.Fatalf("FastPredictorPool.Close #%d: %v", i+1, err)
		}
	}
	if _, err := fp.Predict(row); !errors.Is(err, ErrClosed) {
		t.Errorf("fast Predict after Close: %v, want ErrClosed", err)
	}
	if _, err := pool.Predict(row); !errors.Is(err, ErrClosed) {
		t.Errorf("pool Predict after Close: %v, want ErrClosed", err)
	}

	m, y := synthFraud(100, 4, 9)
	ds, err := lib.NewDataset(m, y, DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := ds.Close(); err != nil {
			t.Fatalf("Dataset.Close #%d: %v", i+1, err)
		}
	}
	if _, err := Train(context.Background(), Params{"verbosity": "-1"}, ds, TrainOptions{NumRounds: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Train on closed dataset: %v, want ErrClosed", err)
	}
	if _, err := lib.NewDataset(m, y, DatasetOptions{Reference: ds}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewDataset with closed reference: %v, want ErrClosed", err)
	}
}

func TestTrainSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	lib := testLib(t)
	b := trainSmall(t, lib, 12)
	if b.BestIteration() != 12 || b.NumFeatures() != 5 || b.NumClasses() != 1 {
		t.Fatalf("BestIteration=%d NumFeatures=%d NumClasses=%d, want 12, 5, 1", b.BestIteration(), b.NumFeatures(), b.NumClasses())
	}
	names, err := b.FeatureNames()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d", "e"}, names); diff != "" {
		t.Errorf("FeatureNames (-want +got):\n%s", diff)
	}
	text, err := b.SaveModelString()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.txt")
	if err := b.SaveModelFile(path); err != nil {
		t.Fatal(err)
	}
	fileText, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(fileText) != text {
		t.Errorf("SaveModelFile and SaveModelString differ")
	}
	m, _ := synthFraud(300, 5, 11)
	want, err := b.Predict(m, PredictRaw, PredictOptions{NumThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, load := range []struct {
		name string
		fn   func() (*Booster, error)
	}{
		{"string", func() (*Booster, error) { return lib.LoadModelString(text) }},
		{"file", func() (*Booster, error) { return lib.LoadModelFile(path) }},
	} {
		lb, err := load.fn()
		if err != nil {
			t.Fatal(err)
		}
		got, err := lb.Predict(m, PredictRaw, PredictOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: reloaded predictions differ (-trained +reloaded):\n%s", load.name, diff)
		}
		if lb.BestIteration() != 12 {
			t.Errorf("%s: reloaded BestIteration = %d, want 12", load.name, lb.BestIteration())
		}
		if err := lb.Close(); err != nil {
			t.Error(err)
		}
	}
	// A subset of iterations via PredictOptions.
	first, err := b.Predict(m, PredictRaw, PredictOptions{NumIterations: 3})
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Equal(first, want) {
		t.Errorf("NumIterations=3 gave the same scores as all 12 iterations")
	}
}

func TestTrainOptions(t *testing.T) {
	t.Parallel()
	lib := testLib(t)
	m, y := synthFraud(2000, 5, 21)
	vm, vy := synthFraud(500, 5, 22)
	params := Params{"objective": "binary", "metric": "binary_logloss,auc", "verbosity": "-1", "num_threads": "1", "deterministic": "true", "learning_rate": "0.3"}
	train, err := lib.NewDataset(m, y, DatasetOptions{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	defer train.Close()
	valid, err := lib.NewDataset(vm, vy, DatasetOptions{Params: params, Reference: train, Weights: make1(500)})
	if err != nil {
		t.Fatal(err)
	}
	defer valid.Close()
	stopErr := errors.New("stop here")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		params  Params
		opts    TrainOptions
		wantErr error  // errors.Is target, if any
		wantMsg string // substring of the error, if any
		wantC   bool   // a LightGBM *Error
		check   func(t *testing.T, b *Booster, seen []Iteration)
	}{
		{name: "no rounds", opts: TrainOptions{}, wantMsg: "NumRounds"},
		{name: "early stopping without valid", opts: TrainOptions{NumRounds: 5, EarlyStoppingRounds: 2}, wantMsg: "validation"},
		{name: "unknown stopping metric", opts: TrainOptions{NumRounds: 5, Valid: []*Dataset{valid}, EarlyStoppingRounds: 2, EarlyStoppingMetric: "ndcg"}, wantMsg: "ndcg"},
		{name: "cancelled", ctx: cancelled, opts: TrainOptions{NumRounds: 5}, wantErr: context.Canceled},
		{name: "callback error", opts: TrainOptions{NumRounds: 5, OnIteration: func(it Iteration) error {
			if it.Round == 2 {
				return stopErr
			}
			return nil
		}}, wantErr: stopErr},
		{name: "bad param", params: Params{"objective": "no_such_objective", "verbosity": "-1"}, opts: TrainOptions{NumRounds: 1}, wantC: true},
		{name: "training set also validation", opts: TrainOptions{NumRounds: 3, Valid: []*Dataset{train, valid}},
			check: func(t *testing.T, b *Booster, seen []Iteration) {
				if len(seen) != 3 || len(seen[2].Evals) != 4 || seen[2].Evals[0].Dataset != "valid_0" {
					t.Errorf("iterations %+v, want 3 rounds with 2 metrics on 2 validation sets", seen)
				}
			}},
		{name: "early stop on logloss with training eval", opts: TrainOptions{NumRounds: 200, Valid: []*Dataset{valid}, EarlyStoppingRounds: 5, EvalTraining: true},
			check: func(t *testing.T, b *Booster, seen []Iteration) {
				if len(seen) != b.BestIteration()+5 {
					t.Errorf("trained %d rounds, best %d: want best+5 (learning rate 0.3 overfits well before 200)", len(seen), b.BestIteration())
				}
				best := seen[b.BestIteration()-1].Evals
				wantNames := []string{"training/binary_logloss", "training/auc", "valid_0/binary_logloss", "valid_0/auc"}
				var gotNames []string
				for _, e := range best {
					gotNames = append(gotNames, e.Dataset+"/"+e.Metric)
				}
				if diff := cmp.Diff(wantNames, gotNames); diff != "" {
					t.Errorf("eval names (-want +got):\n%s", diff)
				}
				for _, it := range seen {
					if it.Evals[2].Value < best[2].Value {
						t.Errorf("round %d valid logloss %v beats best round %d's %v", it.Round, it.Evals[2].Value, b.BestIteration(), best[2].Value)
					}
				}
				if diff := cmp.Diff(best[2:], b.BestEval()); diff != "" {
					t.Errorf("BestEval (-want +got):\n%s", diff)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			p := tt.params
			if p == nil {
				p = params
			}
			var seen []Iteration
			if tt.opts.OnIteration == nil {
				tt.opts.OnIteration = func(it Iteration) error { seen = append(seen, it); return nil }
			}
			b, err := Train(ctx, p, train, tt.opts)
			switch {
			case tt.wantC:
				if !errors.As(err, new(*Error)) {
					t.Fatalf("Train() error = %v, want *Error", err)
				}
				t.Logf("LightGBM said: %v", err)
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Train() error = %v, want %v", err, tt.wantErr)
				}
				return
			case tt.wantMsg != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Train() error = %v, want one mentioning %q", err, tt.wantMsg)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			defer b.Close()
			tt.check(t, b, seen)
		})
	}
}

func make1(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// TestFastPredictorPoolConcurrent scores from many goroutines through one pool and checks
// every result against the batch prediction (run with -race).
func TestFastPredictorPoolConcurrent(t *testing.T) {
	t.Parallel()
	lib := testLib(t)
	b := trainSmall(t, lib, 20)
	m, _ := synthFraud(400, 5, 5)
	want, err := b.Predict(m, PredictNormal, PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := b.NewFastPredictorPool(FastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const workers = 8
	got := make([]float64, m.Rows)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < m.Rows; i += workers {
				v, err := pool.Predict(m.Data[i*m.Cols : (i+1)*m.Cols])
				if err != nil {
					errs[w] = err
					return
				}
				got[i] = v
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pool predictions differ from batch (-batch +pool):\n%s", diff)
	}
}

// TestFastPredictAllocs checks the single-row path allocates nothing.
func TestFastPredictAllocs(t *testing.T) {
	_, fp := fixtureFast(t)
	row := []float64{12.5, 0.3, 0.2, 600, 3, 0.7}
	dst := make([]float64, 1)
	if n := testing.AllocsPerRun(200, func() {
		if _, err := fp.Predict(row); err != nil {
			t.Fatal(err)
		}
		if _, err := fp.PredictInto(dst, row); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("FastPredictor allocates %v times per Predict+PredictInto, want 0", n)
	}
	// Nor does sampling the thread CPU of every call.
	var total time.Duration
	b, _ := fixtureFast(t)
	sampled, err := b.NewFastPredictor(FastOptions{CPUSampleEvery: 1, OnCPUSample: func(d time.Duration) { total += d }})
	if err != nil {
		t.Fatal(err)
	}
	defer sampled.Close()
	if n := testing.AllocsPerRun(200, func() {
		if _, err := sampled.Predict(row); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("a FastPredictor sampling its CPU allocates %v times per Predict, want 0", n)
	}
	if total <= 0 {
		t.Errorf("201 sampled predictions took %v of thread CPU", total)
	}
}

func TestFastPredictorCPUSample(t *testing.T) {
	t.Parallel()
	b, plain := fixtureFast(t)
	var samples []time.Duration
	pool, err := b.NewFastPredictorPool(FastOptions{CPUSampleEvery: 4, OnCPUSample: func(d time.Duration) { samples = append(samples, d) }})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m, _ := synthFraud(40, b.NumFeatures(), 9)
	for i := range m.Rows {
		row := m.Data[i*m.Cols : (i+1)*m.Cols]
		got, err := pool.Predict(row)
		if err != nil {
			t.Fatal(err)
		}
		want, err := plain.Predict(row)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("row %d: sampled predictor %v, plain %v", i, got, want)
		}
	}
	// One goroutine: the pool reuses one predictor, which samples calls 0, 4, ..., 36.
	if len(samples) != 10 {
		t.Fatalf("%d CPU samples over 40 calls every 4th, want 10", len(samples))
	}
	var sum time.Duration
	for i, d := range samples {
		if d < 0 || d > time.Second {
			t.Errorf("sample %d: %v of thread CPU for one row", i, d)
		}
		sum += d
	}
	if sum <= 0 {
		t.Errorf("10 sampled predictions took %v of thread CPU in total", sum)
	}
	// A row that errs before C is called is neither sampled nor counted.
	if _, err := pool.Predict(nil); !errors.Is(err, ErrShape) {
		t.Fatalf("Predict(nil) error = %v, want ErrShape", err)
	}
	if _, err := pool.Predict(m.Data[:m.Cols]); err != nil || len(samples) != 11 {
		t.Fatalf("call 40: error %v, %d samples, want the 11th", err, len(samples))
	}
}

// fixtureFast loads testdata/model.txt and makes a FastPredictor of it with default options;
// both are closed when the test ends.
func fixtureFast(t *testing.T) (*Booster, *FastPredictor) {
	t.Helper()
	b, err := testLib(t).LoadModelFile(filepath.Join("testdata", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	fp, err := b.NewFastPredictor(FastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fp.Close() })
	return b, fp
}
