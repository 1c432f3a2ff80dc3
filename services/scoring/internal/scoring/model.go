package scoring

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
)

// Predictor scores one feature vector. *lightgbm.Forest and *lightgbm.FastPredictorPool
// satisfy it.
type Predictor interface {
	Predict(row []float64) (float64, error)
}

// Explainer writes the SHAP contributions of one row (one per feature, then the bias) into
// dst. *lightgbm.TreeSHAP and *lightgbm.FastPredictorPool made with lightgbm.PredictContrib
// satisfy it.
type Explainer interface {
	PredictInto(dst, row []float64) (int, error)
}

// Model is one loaded model version with its predictors. Users hold a reference between
// acquire and release; the predictors are closed after the holder dropped the model (swap)
// and its last user released it, so a request in flight finishes on the model it started with.
type Model struct {
	Name      string
	Version   string
	Alias     string
	Spec      featurespec.Spec
	Task      eventsv1.Task
	Threshold float64
	SHA256    string
	LoadedAt  time.Time
	// Evaluator is what scores the model: EvaluatorForest or EvaluatorLightGBM.
	Evaluator string

	specVersion string
	// evaluatorNote says why a model asked to use the forest is scored by LightGBM.
	evaluatorNote error
	names         []string
	predictor     Predictor
	explainer     Explainer
	closers       []func() error

	obs *modelMetrics // per-version instruments, resolved once

	// fromCache is true while the model is the local copy served during an MLflow outage.
	fromCache atomic.Bool

	// refs counts the holder's reference (1 while installed) plus users. At zero the model
	// is closed and can never be acquired again.
	refs     atomic.Int64
	closeErr error
	closed   chan struct{}
}

// newModel wraps predictors for a verified version. closers run when the model is retired.
func newModel(name, version, alias string, spec featurespec.Spec, threshold float64, sha string, p Predictor, e Explainer, closers ...func() error) *Model {
	m := &Model{
		Name: name, Version: version, Alias: alias, Spec: spec, Threshold: threshold, SHA256: sha,
		LoadedAt: time.Now(), specVersion: strconv.Itoa(spec.Version), names: spec.Names(),
		predictor: p, explainer: e, closers: closers, closed: make(chan struct{}),
	}
	switch spec.Task {
	case featurespec.TaskBinary:
		m.Task = eventsv1.Task_TASK_BINARY_CLASSIFICATION
	case featurespec.TaskRegression:
		m.Task = eventsv1.Task_TASK_REGRESSION
	}
	m.refs.Store(1)
	return m
}

// Evaluators, the values of -model.evaluator.
const (
	// EvaluatorForest scores with the project's compact evaluator (lightgbm.Forest), checked
	// against LightGBM when the model loads and on a sample of predictions; a model it does
	// not cover is scored by LightGBM.
	EvaluatorForest = "forest"
	// EvaluatorLightGBM scores with LightGBM's single-row fast predict.
	EvaluatorLightGBM = "lightgbm"
)

// modelOptions are what buildModel takes from the service's configuration.
type modelOptions struct {
	// DefaultThreshold applies when the manifest has none.
	DefaultThreshold float64
	// Evaluator is EvaluatorForest (the default when empty) or EvaluatorLightGBM.
	Evaluator string
	// CheckEvery: one forest prediction in about CheckEvery is also scored by LightGBM and
	// compared (0: none).
	CheckEvery int
	// CPUEvery: about one prediction in CPUEvery samples its thread CPU time (0: none).
	CPUEvery int
	// Logger receives a mismatch of the check (nil: slog.Default()).
	Logger *slog.Logger
}

// buildModel loads l's text model into LightGBM and makes its single-row predictors.
func buildModel(lib *lightgbm.Library, l modelstore.Loaded, opts modelOptions) (*Model, error) {
	b, err := lib.LoadModelString(string(l.ModelText))
	if err != nil {
		return nil, fmt.Errorf("load model %q version %s into lightgbm: %w", l.ModelName, l.Version, err)
	}
	if b.NumFeatures() != l.Spec.Len() {
		return nil, errors.Join(fmt.Errorf("model %q version %s has %d features, its spec %s has %d", l.ModelName, l.Version, b.NumFeatures(), l.Spec.ID(), l.Spec.Len()), b.Close())
	}
	// The champion's predictions sample their thread CPU into the version's instruments, which
	// Install binds before the model serves.
	var m *Model
	var onCPU func(time.Duration)
	if opts.CPUEvery > 0 {
		onCPU = func(d time.Duration) {
			if o := m.obs; o != nil {
				o.inferenceCPU.Observe(d.Seconds())
			}
		}
	}
	closers := []func() error{b.Close}
	fail := func(err error) (*Model, error) {
		errs := []error{fmt.Errorf("model %q version %s: %w", l.ModelName, l.Version, err)}
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return nil, errors.Join(errs...)
	}
	lgOpts := lightgbm.FastOptions{Kind: lightgbm.PredictNormal, NumThreads: 1, CPUSampleEvery: opts.CPUEvery}
	var pred Predictor
	evaluator := EvaluatorLightGBM
	var unsupported error
	if opts.Evaluator != EvaluatorLightGBM {
		fo, err := b.NewForest(lightgbm.ForestOptions{Kind: lightgbm.PredictNormal, OnCPUSample: onCPU, CPUSampleEvery: opts.CPUEvery})
		switch {
		case err == nil:
			closers = append(closers, fo.Close)
			pred, evaluator = fo, EvaluatorForest
		case errors.Is(err, lightgbm.ErrForestUnsupported):
			unsupported = err
		default:
			return fail(err)
		}
	}
	if pred == nil {
		lgOpts.OnCPUSample = onCPU
	}
	lg, err := b.NewFastPredictorPool(lgOpts)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, lg.Close)
	switch {
	case pred == nil:
		pred = lg
	case opts.CheckEvery > 0:
		logger := opts.Logger
		if logger == nil {
			logger = slog.Default()
		}
		pred = &checkedPredictor{fast: pred, ref: lg, every: uint32(opts.CheckEvery), mismatch: func(row []float64, got, want float64) {
			if o := m.obs; o != nil {
				o.evalMismatch.Inc()
			}
			logger.Error("compact evaluator disagrees with LightGBM; this model version is scored by LightGBM from now on",
				"model", l.ModelName, "model_version", l.Version, "forest", got, "lightgbm", want, "row", row)
		}}
	}
	// Explanations come from the Go TreeSHAP (the same contributions, computed faster); a model
	// it does not cover (categorical splits, linear trees, ...) is explained by LightGBM.
	var expl Explainer
	if ts, err := lightgbm.ParseTreeSHAP(string(l.ModelText)); err == nil && ts.NumFeatures() == b.NumFeatures() {
		expl = ts
	} else {
		contrib, err := b.NewFastPredictorPool(lightgbm.FastOptions{Kind: lightgbm.PredictContrib, NumThreads: 1})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, contrib.Close)
		expl = contrib
	}
	// The booster stays open while the model serves: the pools make new predictors from it
	// when concurrency grows. Closers run in reverse: predictors before the booster.
	slices.Reverse(closers)
	th := l.Manifest.Threshold
	if th == 0 {
		th = opts.DefaultThreshold
	}
	m = newModel(l.ModelName, l.Version, l.Alias, l.Spec, th, l.Manifest.SHA256, pred, expl, closers...)
	m.Evaluator, m.evaluatorNote = evaluator, unsupported
	m.fromCache.Store(l.FromCache)
	return m, nil
}

// checkedPredictor serves the compact evaluator's predictions and, for about one in every,
// also LightGBM's for the same row: a different result is reported through mismatch, that
// call answers LightGBM's value and so does every later one of the model version.
type checkedPredictor struct {
	fast, ref Predictor
	every     uint32
	mismatch  func(row []float64, got, want float64)
	fallback  atomic.Bool
}

func (c *checkedPredictor) Predict(row []float64) (float64, error) {
	if c.fallback.Load() {
		return c.ref.Predict(row)
	}
	v, err := c.fast.Predict(row)
	if err != nil || rand.Uint32N(c.every) != 0 {
		return v, err
	}
	w, err := c.ref.Predict(row)
	if err != nil {
		// LightGBM failing on a row the forest scored is not the forest's fault: keep its answer.
		return v, nil //nolint:nilerr // the check is best effort; the answer stands
	}
	if math.Float64bits(v) != math.Float64bits(w) {
		if !c.fallback.Swap(true) {
			c.mismatch(row, v, w)
		}
		return w, nil
	}
	return v, nil
}

// tryAcquire takes a user reference unless the model is already retired.
func (m *Model) tryAcquire() bool {
	for {
		n := m.refs.Load()
		if n <= 0 {
			return false
		}
		if m.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops one reference; the last one closes the predictors.
func (m *Model) release() {
	if m.refs.Add(-1) == 0 {
		var errs []error
		for _, c := range m.closers {
			errs = append(errs, c())
		}
		m.closeErr = errors.Join(errs...)
		close(m.closed)
	}
}

// FromCache reports whether the model was loaded from the local cache during an MLflow
// outage (and not confirmed by MLflow since).
func (m *Model) FromCache() bool { return m.fromCache.Load() }

// Closed is closed once the model's predictors are freed.
func (m *Model) Closed() <-chan struct{} { return m.closed }

// decide applies the threshold.
func (m *Model) decide(score float64) eventsv1.Decision {
	if score >= m.Threshold {
		return eventsv1.Decision_DECISION_ALERT
	}
	return eventsv1.Decision_DECISION_PASS
}

// slot holds the model of one alias. It is safe for concurrent use.
type slot struct {
	cur atomic.Pointer[Model]
	mu  sync.Mutex // serialises swaps
}

// acquire returns the current model with a user reference, or nil when none is loaded.
// The caller must release it.
func (s *slot) acquire() *Model {
	for {
		m := s.cur.Load()
		if m == nil {
			return nil
		}
		if m.tryAcquire() {
			return m
		}
		// m was retired between Load and tryAcquire: a newer model is installed.
	}
}

// swap installs m (nil unloads) and retires the previous model, which closes after its
// last user. It returns the previous model (already released by the slot).
func (s *slot) swap(m *Model) *Model {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Swap(m)
	if old != nil {
		old.release()
	}
	return old
}

// peek returns the installed model without a reference, for descriptions only.
func (s *slot) peek() *Model { return s.cur.Load() }
