package lightgbm

// #include <stdlib.h>
// #include "capi.h"
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// boosterHandle is a Booster's C handle, reference-counted by the FastPredictors made from
// it: LightGBM's FastConfig points into the booster, so the booster is freed only once the
// Booster is closed and its last FastPredictor is closed.
type boosterHandle struct {
	api *C.mlops_lgbm_api
	mu  sync.RWMutex
	ptr unsafe.Pointer
	// closed is set by Booster.Close; refs counts open FastPredictors.
	closed bool
	refs   int
}

func (h *boosterHandle) use(fn func(ptr unsafe.Pointer) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed || h.ptr == nil {
		return ErrClosed
	}
	return fn(h.ptr)
}

// acquire registers a FastPredictor built by fn; fn runs under the write lock.
func (h *boosterHandle) acquire(fn func(ptr unsafe.Pointer) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.ptr == nil {
		return ErrClosed
	}
	if err := fn(h.ptr); err != nil {
		return err
	}
	h.refs++
	return nil
}

// freeLocked frees the C booster if it is closed and unreferenced. h.mu must be held.
func (h *boosterHandle) freeLocked() error {
	if !h.closed || h.refs > 0 || h.ptr == nil {
		return nil
	}
	p := h.ptr
	h.ptr = nil
	return lgbmErr("LGBM_BoosterFree", C.mlops_booster_free(h.api, p))
}

func (h *boosterHandle) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refs--
	return h.freeLocked()
}

func (h *boosterHandle) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	return h.freeLocked()
}

// Booster is a trained or loaded LightGBM model. It is safe for concurrent use: LightGBM
// guards a booster with a shared lock for prediction. Close frees it.
type Booster struct {
	lib *Library
	h   *boosterHandle

	numFeatures   int
	numClasses    int
	bestIteration int
	bestEval      []Eval
}

func (l *Library) newBooster(ptr unsafe.Pointer) (*Booster, error) {
	b := &Booster{lib: l, h: &boosterHandle{api: l.api, ptr: ptr}}
	runtime.AddCleanup(b, func(h *boosterHandle) { _ = h.close() }, b.h)
	var nf, nc, it C.int
	err := lgbmErr("LGBM_BoosterGetNumFeature", C.mlops_booster_get_num_feature(l.api, ptr, &nf))
	if err == nil {
		err = lgbmErr("LGBM_BoosterGetNumClasses", C.mlops_booster_get_num_classes(l.api, ptr, &nc))
	}
	if err == nil {
		err = lgbmErr("LGBM_BoosterGetCurrentIteration", C.mlops_booster_get_current_iteration(l.api, ptr, &it))
	}
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	b.numFeatures, b.numClasses, b.bestIteration = int(nf), int(nc), int(it)
	return b, nil
}

// LoadModelString loads a model from LightGBM's text format (as written by SaveModelString,
// SaveModelFile or Python's Booster.save_model / model_to_string).
func (l *Library) LoadModelString(model string) (*Booster, error) {
	cs := C.CString(model)
	defer C.free(unsafe.Pointer(cs))
	var iters C.int
	var out unsafe.Pointer
	if err := lgbmErr("LGBM_BoosterLoadModelFromString", C.mlops_booster_load_model_from_string(l.api, cs, &iters, &out)); err != nil {
		return nil, fmt.Errorf("load model from string: %w", err)
	}
	b, err := l.newBooster(out)
	if err != nil {
		return nil, fmt.Errorf("load model from string: %w", err)
	}
	return b, nil
}

// LoadModelFile loads a model from a LightGBM text model file.
func (l *Library) LoadModelFile(path string) (*Booster, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var iters C.int
	var out unsafe.Pointer
	if err := lgbmErr("LGBM_BoosterCreateFromModelfile", C.mlops_booster_create_from_modelfile(l.api, cs, &iters, &out)); err != nil {
		return nil, fmt.Errorf("load model file %q: %w", path, err)
	}
	b, err := l.newBooster(out)
	if err != nil {
		return nil, fmt.Errorf("load model file %q: %w", path, err)
	}
	return b, nil
}

// Close releases the Booster. It is idempotent and waits for calls in flight. The C model
// is freed once every FastPredictor made from it is closed too (a FastPredictorPool's
// predictors are closed by the pool's Close).
func (b *Booster) Close() error {
	if err := b.h.close(); err != nil {
		return fmt.Errorf("close booster: %w", err)
	}
	return nil
}

// NumFeatures returns the number of features the model expects per row.
func (b *Booster) NumFeatures() int { return b.numFeatures }

// NumClasses returns the number of classes (1 for binary and regression).
func (b *Booster) NumClasses() int { return b.numClasses }

// BestIteration returns the number of boosting iterations in the model. After Train with
// early stopping the model is rolled back to its best iteration, so this is that iteration
// (1-based), as Python's Booster.best_iteration.
func (b *Booster) BestIteration() int { return b.bestIteration }

// BestEval returns the validation metrics at BestIteration recorded by Train, or nil for a
// loaded model.
func (b *Booster) BestEval() []Eval { return append([]Eval(nil), b.bestEval...) }

// FeatureNames returns the feature names stored in the model.
func (b *Booster) FeatureNames() ([]string, error) {
	var names []string
	err := b.h.use(func(p unsafe.Pointer) error {
		var err error
		names, err = readStrings(b.numFeatures, func(n C.int, outLen *C.int, bufLen C.size_t, need *C.size_t, out **C.char) *C.char {
			return C.mlops_booster_get_feature_names(b.lib.api, p, n, outLen, bufLen, need, out)
		}, "LGBM_BoosterGetFeatureNames")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("booster feature names: %w", err)
	}
	return names, nil
}

// SaveModelString returns the model in LightGBM's text format (all iterations).
func (b *Booster) SaveModelString() (string, error) {
	var s string
	err := b.h.use(func(p unsafe.Pointer) error {
		var out *C.char
		var n C.int64_t
		if err := lgbmErr("LGBM_BoosterSaveModelToString", C.mlops_booster_save_model_to_string(b.lib.api, p, 0, -1, &out, &n)); err != nil {
			return err
		}
		defer C.free(unsafe.Pointer(out))
		s = C.GoStringN(out, C.int(n))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("save model to string: %w", err)
	}
	return s, nil
}

// SaveModelFile writes the model in LightGBM's text format to path.
func (b *Booster) SaveModelFile(path string) error {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	err := b.h.use(func(p unsafe.Pointer) error {
		return lgbmErr("LGBM_BoosterSaveModel", C.mlops_booster_save_model(b.lib.api, p, 0, -1, cs))
	})
	if err != nil {
		return fmt.Errorf("save model file %q: %w", path, err)
	}
	return nil
}

// PredictOptions tune a prediction. The zero value predicts with every iteration and
// LightGBM's default thread count.
type PredictOptions struct {
	// StartIteration is the first iteration used (0-based). Default: 0.
	StartIteration int
	// NumIterations limits the iterations used; <= 0 means all. Default: all.
	NumIterations int
	// NumThreads is LightGBM's num_threads for this call; <= 0 keeps LightGBM's default
	// (OpenMP's, normally one per core).
	NumThreads int
	// Params are further prediction parameters (e.g. "predict_disable_shape_check").
	Params Params
}

// numThreads is the num_threads the call asks LightGBM for (0: its default).
func (o PredictOptions) numThreads() int {
	if o.NumThreads > 0 {
		return o.NumThreads
	}
	return numThreads(o.Params)
}

func (o PredictOptions) cParams() (*C.char, error) {
	p := make(Params, len(o.Params)+1)
	for k, v := range o.Params {
		p[k] = v
	}
	if o.NumThreads > 0 {
		p["num_threads"] = fmt.Sprint(o.NumThreads)
	}
	return p.cString()
}

// OutputLen returns the number of values one row yields for kind: 1 for binary or
// regression normal/raw, NumClasses for multiclass, (NumFeatures+1)*NumClasses for contrib.
func (b *Booster) OutputLen(kind PredictKind) (int, error) {
	n, err := b.numPredict(1, kind, PredictOptions{})
	if err != nil {
		return 0, fmt.Errorf("output length: %w", err)
	}
	return n, nil
}

func (b *Booster) numPredict(rows int, kind PredictKind, opts PredictOptions) (int, error) {
	if err := kind.validate(); err != nil {
		return 0, err
	}
	var n C.int64_t
	err := b.h.use(func(p unsafe.Pointer) error {
		return lgbmErr("LGBM_BoosterCalcNumPredict", C.mlops_booster_calc_num_predict(b.lib.api, p, C.int(rows), C.int(kind), C.int(opts.StartIteration), C.int(opts.NumIterations), &n))
	})
	return int(n), err
}

// Predict scores every row of m (LGBM_BoosterPredictForMat; LightGBM parallelises over
// rows with OpenMP) and returns rows*OutputLen(kind) values, row by row. For PredictContrib
// each row holds, per class, one SHAP value per feature followed by the bias.
func (b *Booster) Predict(m Matrix, kind PredictKind, opts PredictOptions) ([]float64, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	n, err := b.numPredict(m.Rows, kind, opts)
	if err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	out := make([]float64, n)
	if _, err := b.PredictInto(out, m, kind, opts); err != nil {
		return nil, err
	}
	return out, nil
}

// PredictInto is Predict writing into dst, which must hold rows*OutputLen(kind) values. It
// returns the number of values written.
func (b *Booster) PredictInto(dst []float64, m Matrix, kind PredictKind, opts PredictOptions) (int, error) {
	if err := m.validate(); err != nil {
		return 0, fmt.Errorf("predict: %w", err)
	}
	if err := kind.validate(); err != nil {
		return 0, fmt.Errorf("predict: %w", err)
	}
	params, err := opts.cParams()
	if err != nil {
		return 0, fmt.Errorf("predict: %w", err)
	}
	defer C.free(unsafe.Pointer(params))
	lgbmThreads.enter(opts.numThreads())
	defer lgbmThreads.leave()
	var outLen C.int64_t
	err = b.h.use(func(p unsafe.Pointer) error {
		var need C.int64_t
		if err := lgbmErr("LGBM_BoosterCalcNumPredict", C.mlops_booster_calc_num_predict(b.lib.api, p, C.int(m.Rows), C.int(kind), C.int(opts.StartIteration), C.int(opts.NumIterations), &need)); err != nil {
			return err
		}
		if int64(len(dst)) < int64(need) {
			return fmt.Errorf("%w: output buffer holds %d values, need %d", ErrShape, len(dst), need)
		}
		return lgbmErr("LGBM_BoosterPredictForMat", C.mlops_booster_predict_for_mat(b.lib.api, p,
			(*C.double)(unsafe.Pointer(&m.Data[0])), C.int32_t(m.Rows), C.int32_t(m.Cols), C.int(kind),
			C.int(opts.StartIteration), C.int(opts.NumIterations), params, &outLen, (*C.double)(unsafe.Pointer(&dst[0]))))
	})
	if err != nil {
		return 0, fmt.Errorf("predict %d rows (%v): %w", m.Rows, kind, err)
	}
	return int(outLen), nil
}

// PredictParallel is Predict split into row chunks scored by workers goroutines, each
// calling LightGBM with num_threads=1 (opts.NumThreads is ignored). It suits callers that
// already control parallelism in Go; for a single large batch LightGBM's own OpenMP
// parallelism (Predict) is usually as fast. workers <= 0 means runtime.GOMAXPROCS(0).
// It returns early with ctx's error if ctx is done before all chunks start.
func (b *Booster) PredictParallel(ctx context.Context, m Matrix, kind PredictKind, opts PredictOptions, workers int) ([]float64, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("predict parallel: %w", err)
	}
	per, err := b.numPredict(1, kind, opts)
	if err != nil {
		return nil, fmt.Errorf("predict parallel: %w", err)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, m.Rows)
	out := make([]float64, m.Rows*per)
	opts.NumThreads = 1
	chunk := (m.Rows + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, m.Rows)
		if lo >= hi {
			break
		}
		if err := ctx.Err(); err != nil {
			errs[w] = err
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := Matrix{Data: m.Data[lo*m.Cols : hi*m.Cols], Rows: hi - lo, Cols: m.Cols}
			_, errs[w] = b.PredictInto(out[lo*per:hi*per], sub, kind, opts)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("predict parallel: %w", err)
		}
	}
	return out, nil
}
