package scoring

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

func TestTopK(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    []float64
		k    int
		want []int
	}{
		{name: "by absolute value", c: []float64{0.1, -3, 2, 0.5, -2.5}, k: 3, want: []int{1, 4, 2}},
		{name: "ties keep lower index first", c: []float64{1, -1, 1, 0}, k: 3, want: []int{0, 1, 2}},
		{name: "k above length", c: []float64{0.2, -0.4}, k: 3, want: []int{1, 0}},
		{name: "k one", c: []float64{0.2, -0.4, 0.3}, k: 1, want: []int{1}},
		{name: "zeros", c: []float64{0, 0, 0, 0}, k: 2, want: []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := topK(tt.c, tt.k, make([]int, 0, tt.k))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("topK(%v, %d) mismatch (-want +got):\n%s", tt.c, tt.k, diff)
			}
		})
	}
}

func TestTopKAllocs(t *testing.T) {
	c := []float64{0.1, -3, 2, 0.5, -2.5, 7, 0, 1}
	var buf [16]int
	if n := testing.AllocsPerRun(100, func() { topK(c, 3, buf[:0]) }); n != 0 {
		t.Errorf("topK allocates %v times per call, want 0", n)
	}
}

func TestSampled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		rate   float64
		lo, hi int // of 20000 ids
	}{
		{name: "never", rate: 0, lo: 0, hi: 0},
		{name: "always", rate: 1, lo: 20000, hi: 20000},
		{name: "one percent", rate: 0.01, lo: 140, hi: 260},
		{name: "half", rate: 0.5, lo: 9600, hi: 10400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := 0
			for i := range 20000 {
				id := "tx-" + itoa(i) // sequential ids, the hard case
				if sampled(id, tt.rate) {
					n++
				}
				if first, again := sampled(id, tt.rate), sampled(id, tt.rate); first != again {
					t.Fatalf("sampled(%q) is not deterministic", id)
				}
			}
			if n < tt.lo || n > tt.hi {
				t.Errorf("sampled %d of 20000 at rate %v, want [%d, %d]", n, tt.rate, tt.lo, tt.hi)
			}
		})
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestDerivedID(t *testing.T) {
	t.Parallel()
	a := predictionID("ev-1", "3", 1)
	if a != predictionID("ev-1", "3", 1) {
		t.Error("derivedID is not deterministic")
	}
	for _, other := range []string{predictionID("ev-2", "3", 1), predictionID("ev-1", "4", 1), predictionID("ev-1", "3", 2)} {
		if other == a {
			t.Errorf("derivedID collides: %s", a)
		}
	}
	if len(a) != 36 || a[14] != '8' || strings.Count(a, "-") != 4 {
		t.Errorf("derivedID = %q, want a version-8 UUID", a)
	}
	if first, again := predictionID("", "3", 1), predictionID("", "3", 1); first == again {
		t.Error("derivedID without event id should be random")
	}
}

func TestDetectionWindow(t *testing.T) {
	t.Parallel()
	w := newDetectionWindow(4)
	if got := w.rate(); got != 0 {
		t.Errorf("empty rate = %v, want 0", got)
	}
	steps := []struct {
		alert bool
		want  float64
	}{{true, 1}, {false, 0.5}, {false, 1.0 / 3}, {false, 0.25}, {false, 0}, {true, 0.25}}
	for i, s := range steps {
		w.add(s.alert)
		if got := w.rate(); math.Abs(got-s.want) > 1e-12 {
			t.Errorf("after step %d rate = %v, want %v", i, got, s.want)
		}
	}
}

// TestDetectionWindowConcurrent checks that the alert count stays that of the ring while
// many goroutines add: after a mixed phase, a window's worth of alerts gives rate 1, then a
// window's worth of passes rate 0.
func TestDetectionWindowConcurrent(t *testing.T) {
	t.Parallel()
	const window, workers = 1000, 8
	w := newDetectionWindow(window)
	phase := func(alert func(i int) bool, per int) {
		var wg sync.WaitGroup
		for g := range workers {
			wg.Go(func() {
				for i := range per {
					w.add(alert(g*per + i))
				}
			})
		}
		wg.Wait()
	}
	phase(func(i int) bool { return i%3 == 0 }, 5000)
	if got := w.rate(); got < 0 || got > 1 {
		t.Fatalf("after the mixed phase rate = %v, want within [0, 1]", got)
	}
	phase(func(int) bool { return true }, window/workers)
	if got := w.rate(); got != 1 {
		t.Errorf("after a window of alerts rate = %v, want 1", got)
	}
	phase(func(int) bool { return false }, window/workers)
	if got := w.rate(); got != 0 {
		t.Errorf("after a window of passes rate = %v, want 0", got)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr []string
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.ModelName != "fraud" || c.Spec.Fingerprint() != featurespec.Fraud().Fingerprint() || c.ExplainSampleRate != 0.01 ||
				c.ExplainTopK != 3 || c.DefaultThreshold != 0.8 || c.PollInterval.Seconds() != 30 || c.FeaturesAddr != "127.0.0.1:50052" ||
				c.Kafka.Topics[0] != "features.v1" || c.PredictionsTopic != "predictions.v1" || c.ModelEventsTopic != "model.events" || !c.ModelRequired ||
				c.Evaluator != EvaluatorForest || c.EvaluatorCheckEvery != 1000 || c.InferenceCPUEvery != 1024 {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{name: "env fallback", env: map[string]string{"MODEL_NAME": "m2", "CHALLENGER_ENABLED": "true", "EXPLAIN_SAMPLE_RATE": "0.5"},
			check: func(t *testing.T, c Config) {
				if c.ModelName != "m2" || !c.ChallengerEnabled || c.ExplainSampleRate != 0.5 {
					t.Errorf("config = %+v", c)
				}
			}},
		{name: "flag beats env", args: []string{"-model.name", "flag"}, env: map[string]string{"MODEL_NAME": "env"},
			check: func(t *testing.T, c Config) {
				if c.ModelName != "flag" {
					t.Errorf("model name = %q, want flag", c.ModelName)
				}
			}},
		{name: "purchase spec", args: []string{"-model.spec", "purchase-v1"}, check: func(t *testing.T, c Config) {
			if c.Spec.Name != "purchase" {
				t.Errorf("spec = %s", c.Spec.ID())
			}
		}},
		{name: "sync log and rollout defaults", check: func(t *testing.T, c Config) {
			if c.SpillDir != ".cache/scoring-spill" || c.SpillMaxBytes != 256<<20 || c.SyncLogRetryInterval != time.Second ||
				c.ExplainWorkers != 1 || c.ExplainQueue != 1000 || c.PreviousSpecGrace != 10*time.Minute || c.SpecHold != 2*time.Minute {
				t.Errorf("config = %+v", c)
			}
		}},
		{name: "sync log and rollout from env", env: map[string]string{"SYNC_SPILL_DIR": "", "EXPLAIN_WORKERS": "2", "MODEL_SPEC_HOLD": "5s"},
			args: []string{"-sync.spill-dir", ""},
			check: func(t *testing.T, c Config) {
				if c.SpillDir != "" || c.ExplainWorkers != 2 || c.SpecHold != 5*time.Second {
					t.Errorf("config = %+v", c)
				}
			}},
		{name: "every problem at once",
			args: []string{"-model.spec", "nope", "-explain.sample-rate", "2", "-explain.top-k", "0", "-model.poll-interval", "0s", "-mlflow.url", "ftp://x", "-features.timeout", "-1s",
				"-sync.spill-max-bytes", "10", "-explain.workers", "0", "-sync.log-retry-interval", "0s", "-model.spec-hold", "-1s",
				"-model.evaluator", "xgboost", "-model.check-every", "-1", "-metrics.inference-cpu-every", "-2"},
			wantErr: []string{"unknown feature spec", "sample rate", "top-k", "poll interval", "mlflow url", "features timeout",
				"spill max bytes", "explain workers", "retry interval", "spec hold", "model evaluator \"xgboost\"", "check-every -1", "inference-cpu-every -2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig(tt.args, func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("ParseConfig() = nil error, want one")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig() = %v", err)
			}
			tt.check(t, c)
		})
	}
}

// fakePredictor lets the slot's refcounting be tested without LightGBM.
type fakePredictor struct{ score float64 }

func (f fakePredictor) Predict([]float64) (float64, error) { return f.score, nil }

func TestSlotRetiresAfterLastUser(t *testing.T) {
	t.Parallel()
	var closed sync.Map
	mk := func(v string) *Model {
		return newModel("m", v, "champion", featurespec.Fraud(), 0.8, "", fakePredictor{}, nil, func() error { closed.Store(v, true); return nil })
	}
	var s slot
	if s.acquire() != nil {
		t.Fatal("empty slot acquired a model")
	}
	m1 := mk("1")
	s.swap(m1)
	user := s.acquire()
	if user != m1 {
		t.Fatal("acquire() did not return the installed model")
	}
	s.swap(mk("2"))
	if _, ok := closed.Load("1"); ok {
		t.Fatal("model 1 closed while a user still holds it")
	}
	if got := s.acquire(); got.Version != "2" {
		t.Fatalf("acquire() after swap = version %s, want 2", got.Version)
	} else {
		got.release()
	}
	user.release()
	select {
	case <-m1.Closed():
	default:
		t.Fatal("model 1 not closed after its last user released it")
	}
	if m1.tryAcquire() {
		t.Error("a retired model could be acquired again")
	}
	s.swap(nil)
	if _, ok := closed.Load("2"); !ok {
		t.Error("model 2 not closed after unloading")
	}
}

func TestSlotConcurrentSwaps(t *testing.T) {
	t.Parallel()
	var s slot
	var closedN sync.WaitGroup
	versions := 50
	closedN.Add(versions)
	mk := func() *Model {
		return newModel("m", "v", "champion", featurespec.Fraud(), 0.8, "", fakePredictor{}, nil, func() error { closedN.Done(); return nil })
	}
	s.swap(mk())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := s.acquire()
				if m == nil {
					errs <- errors.New("acquire() = nil while a model is installed")
					return
				}
				select {
				case <-m.Closed():
					errs <- errors.New("acquired a closed model")
					m.release()
					return
				default:
				}
				m.release()
			}
		})
	}
	for range versions - 1 {
		s.swap(mk())
	}
	close(stop)
	wg.Wait()
	s.swap(nil)
	closedN.Wait() // every model closed exactly once (a second Done would panic)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// countingPredictor answers a fixed score and counts its calls.
type countingPredictor struct {
	score float64
	calls atomic.Int64
}

func (c *countingPredictor) Predict([]float64) (float64, error) {
	c.calls.Add(1)
	return c.score, nil
}

// TestCheckedPredictorFallsBack checks the sampled comparison with LightGBM: agreeing
// answers are served from the fast evaluator, the first disagreement is reported once and
// answered with LightGBM's value, and every later call goes to LightGBM alone.
func TestCheckedPredictorFallsBack(t *testing.T) {
	t.Parallel()
	fast, ref := &countingPredictor{score: 0.25}, &countingPredictor{score: 0.25}
	var reports []float64
	c := &checkedPredictor{fast: fast, ref: ref, every: 1, mismatch: func(_ []float64, got, want float64) { reports = append(reports, got, want) }}
	for range 3 {
		if v, err := c.Predict(nil); v != 0.25 || err != nil {
			t.Fatalf("agreeing: Predict = %v, %v", v, err)
		}
	}
	if fast.calls.Load() != 3 || ref.calls.Load() != 3 || len(reports) != 0 {
		t.Fatalf("agreeing: fast %d ref %d calls, %d reports; want 3, 3, 0", fast.calls.Load(), ref.calls.Load(), len(reports))
	}
	ref.score = 0.75
	for range 3 {
		if v, err := c.Predict(nil); v != 0.75 || err != nil {
			t.Fatalf("after a disagreement: Predict = %v, %v; want LightGBM's 0.75", v, err)
		}
	}
	if fast.calls.Load() != 4 || ref.calls.Load() != 6 || !slices.Equal(reports, []float64{0.25, 0.75}) {
		t.Fatalf("disagreeing: fast %d ref %d calls, reports %v; want 4, 6, [0.25 0.75]", fast.calls.Load(), ref.calls.Load(), reports)
	}
	// Sampling: with every=8 about an eighth of the calls are checked.
	fast2, ref2 := &countingPredictor{score: 1}, &countingPredictor{score: 1}
	c2 := &checkedPredictor{fast: fast2, ref: ref2, every: 8, mismatch: func([]float64, float64, float64) { t.Error("no mismatch expected") }}
	for range 8000 {
		_, _ = c2.Predict(nil)
	}
	if n := ref2.calls.Load(); n < 700 || n > 1300 {
		t.Errorf("every=8: %d of 8000 calls checked, want about 1000", n)
	}
}
