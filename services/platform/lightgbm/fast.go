package lightgbm

// #include <stdlib.h>
// #include "capi.h"
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// FastOptions configure a FastPredictor.
type FastOptions struct {
	// Kind is what Predict returns. Default: PredictNormal.
	Kind PredictKind
	// StartIteration is the first iteration used (0-based). Default: 0.
	StartIteration int
	// NumIterations limits the iterations used; <= 0 means all.
	NumIterations int
	// NumThreads is LightGBM's num_threads, fixed when the predictor is made; <= 0 keeps
	// LightGBM's default. A single row is scored on the calling thread either way.
	NumThreads int
	// Params are further prediction parameters.
	Params Params
	// OnCPUSample, when set, receives the CPU time the calling thread spent inside LightGBM for
	// one call in every CPUSampleEvery (read in C around the call, so neither the cgo crossing
	// nor time spent waiting for a core counts): what a prediction costs under the process's
	// real load and cache pressure, beside the wall clock the caller measures. It runs on the
	// predicting goroutine after the call and must be cheap (a histogram observation).
	OnCPUSample func(time.Duration)
	// CPUSampleEvery is how many calls of one predictor make one sample. Default:
	// DefaultCPUSampleEvery.
	CPUSampleEvery int
}

// DefaultCPUSampleEvery is FastOptions.CPUSampleEvery's and ForestOptions.CPUSampleEvery's
// default: one call in 1024. A sample costs two CLOCK_THREAD_CPUTIME_ID reads, which are real
// system calls, and the return from a system call is where the kernel preempts a thread whose
// core is wanted: on two busy cores a sampled prediction now and then waited a time slice.
// Sampling one call in 16 put those waits into the percentiles (in-process Score benchmark, 2
// callers: inference p99 0.7-1.4 ms, Score p99 1.7-2.1 ms; one in 256 or 1024: inference p99
// 5-6 µs); one in 1024 keeps them below the p99.9 and still gives dozens of samples a second
// at a few thousand predictions a second.
const DefaultCPUSampleEvery = 1024

// fastHandle owns the C side of a FastPredictor and its reference on the booster.
type fastHandle struct {
	f    *C.mlops_fast
	bh   *boosterHandle
	once sync.Once
	err  error
}

func (h *fastHandle) close() error {
	h.once.Do(func() {
		C.mlops_fast_free(h.f)
		h.f = nil
		h.err = h.bh.release()
	})
	return h.err
}

// FastPredictor scores one row at a time through LightGBM's single-row fast path
// (LGBM_BoosterPredictForMatSingleRowFastInit once, then
// LGBM_BoosterPredictForMatSingleRowFast per row). LightGBM reads the caller's row in place
// (Go memory, for the duration of the call only) and writes into an output buffer allocated
// in C when the predictor is made, so Predict copies and allocates nothing.
//
// A FastPredictor is NOT safe for concurrent use: its buffers are shared by every call (and
// LightGBM serialises calls on one FastConfig with a mutex anyway). Give each goroutine its
// own predictor, or share a FastPredictorPool. The Booster may be closed before its
// predictors; the model is freed when the last of them is closed.
type FastPredictor struct {
	h      *fastHandle
	out    []float64 // view of h.f.out (C memory)
	ncol   int
	outLen int
	kind   PredictKind

	onCPU    func(time.Duration)
	cpuEvery uint64
	calls    uint64
}

// NewFastPredictor makes a single-row predictor for rows of NumFeatures values.
func (b *Booster) NewFastPredictor(opts FastOptions) (*FastPredictor, error) {
	if err := opts.Kind.validate(); err != nil {
		return nil, fmt.Errorf("new fast predictor: %w", err)
	}
	popts := PredictOptions{StartIteration: opts.StartIteration, NumIterations: opts.NumIterations, NumThreads: opts.NumThreads, Params: opts.Params}
	outLen, err := b.numPredict(1, opts.Kind, popts)
	if err != nil {
		return nil, fmt.Errorf("new fast predictor: %w", err)
	}
	params, err := popts.cParams()
	if err != nil {
		return nil, fmt.Errorf("new fast predictor: %w", err)
	}
	defer C.free(unsafe.Pointer(params))
	var f *C.mlops_fast
	lgbmThreads.enter(popts.numThreads())
	err = b.h.acquire(func(p unsafe.Pointer) error {
		return lgbmErr("LGBM_BoosterPredictForMatSingleRowFastInit", C.mlops_fast_new(b.lib.api, p, C.int(opts.Kind),
			C.int(opts.StartIteration), C.int(opts.NumIterations), C.int32_t(b.numFeatures), C.int64_t(outLen), params, &f))
	})
	lgbmThreads.leave()
	if err != nil {
		return nil, fmt.Errorf("new fast predictor: %w", err)
	}
	fp := &FastPredictor{
		h:      &fastHandle{f: f, bh: b.h},
		out:    unsafe.Slice((*float64)(unsafe.Pointer(f.out)), outLen),
		ncol:   b.numFeatures,
		outLen: outLen,
		kind:   opts.Kind,
	}
	if opts.OnCPUSample != nil {
		fp.onCPU, fp.cpuEvery = opts.OnCPUSample, DefaultCPUSampleEvery
		if opts.CPUSampleEvery > 0 {
			fp.cpuEvery = uint64(opts.CPUSampleEvery)
		}
	}
	runtime.AddCleanup(fp, func(h *fastHandle) { _ = h.close() }, fp.h)
	return fp, nil
}

// NumFeatures returns the row length Predict expects.
func (p *FastPredictor) NumFeatures() int { return p.ncol }

// OutputLen returns the number of values one row yields (see Booster.OutputLen).
func (p *FastPredictor) OutputLen() int { return p.outLen }

// Predict scores row (NumFeatures values, NaN for missing) and returns the single output
// value: the probability (PredictNormal) or raw score (PredictRaw) of a binary or regression
// model. Use PredictInto when OutputLen() > 1 (multiclass or contributions).
func (p *FastPredictor) Predict(row []float64) (float64, error) {
	if err := p.run(row); err != nil {
		return 0, err
	}
	if p.outLen != 1 {
		return 0, fmt.Errorf("fast predict: %w: model yields %d values per row for %v, use PredictInto", ErrShape, p.outLen, p.kind)
	}
	return p.out[0], nil
}

// PredictInto scores row and copies the OutputLen() values into dst, returning how many were
// written. For PredictContrib they are one SHAP value per feature then the bias, per class.
func (p *FastPredictor) PredictInto(dst, row []float64) (int, error) {
	if len(dst) < p.outLen {
		return 0, fmt.Errorf("fast predict: %w: output buffer holds %d values, need %d", ErrShape, len(dst), p.outLen)
	}
	if err := p.run(row); err != nil {
		return 0, err
	}
	n := int(p.h.f.out_len)
	return copy(dst, p.out[:n]), nil
}

func (p *FastPredictor) run(row []float64) error {
	if p.h.f == nil {
		return ErrClosed
	}
	if len(row) != p.ncol {
		return fmt.Errorf("fast predict: %w: row has %d values, model expects %d", ErrShape, len(row), p.ncol)
	}
	var in *C.double // nil: the predictor's own (zeroed) input buffer, for a model without features
	if p.ncol > 0 {
		// A []float64 holds no Go pointers, so C may read it during the call (cgo's rules);
		// LightGBM does not keep it.
		in = (*C.double)(unsafe.Pointer(&row[0]))
	}
	var rc C.int
	sampled := p.onCPU != nil && p.calls%p.cpuEvery == 0
	p.calls++
	if sampled {
		rc = C.mlops_fast_predict_cpu(p.h.f, in)
	} else {
		rc = C.mlops_fast_predict(p.h.f, in)
	}
	if sampled && rc == 0 {
		p.onCPU(time.Duration(p.h.f.cpu_ns))
	}
	// p must stay reachable until C is done: its cleanup frees p.h.f. row is an argument of
	// the cgo call, so it stays reachable for the call's duration.
	runtime.KeepAlive(p)
	if rc != 0 {
		return fmt.Errorf("fast predict: %w", &Error{Op: "LGBM_BoosterPredictForMatSingleRowFast", Msg: C.GoString(&p.h.f.err[0])})
	}
	return nil
}

// benchDirect scores n rows cycling through m from a C loop that hands each row in place to
// LightGBM's fast predict: the floor BenchmarkPredictSingleRowDirectC compares the binding
// against. It returns the CPU time the calling thread spent in the loop.
func (p *FastPredictor) benchDirect(m Matrix, n int) (time.Duration, error) {
	if m.validate() != nil || m.Cols != p.ncol {
		return 0, fmt.Errorf("bench: %w", ErrShape)
	}
	defer runtime.KeepAlive(p)
	var cpu C.int64_t
	if C.mlops_fast_bench_loop(p.h.f, (*C.double)(unsafe.Pointer(&m.Data[0])), C.int64_t(m.Rows), C.int64_t(n), &cpu) != 0 {
		return 0, &Error{Op: "LGBM_BoosterPredictForMatSingleRowFast", Msg: C.GoString(C.mlops_lgbm_last_error(p.h.f.api))}
	}
	return time.Duration(cpu), nil
}

// threadCPU returns the calling OS thread's CPU time (benchmarks only: the caller locks its
// goroutine to the thread around the measured span).
func threadCPU() time.Duration { return time.Duration(C.mlops_thread_cpu_ns()) }

// Close frees the predictor. It is idempotent.
func (p *FastPredictor) Close() error {
	if err := p.h.close(); err != nil {
		return fmt.Errorf("close fast predictor: %w", err)
	}
	return nil
}

// FastPredictorPool shares FastPredictors between goroutines: each call borrows an idle
// predictor (making a new one when none is idle) and returns it afterwards, so the pool
// holds as many predictors as the highest concurrency seen. It is safe for concurrent use.
type FastPredictorPool struct {
	b      *Booster
	opts   FastOptions
	ncol   int
	outLen int

	mu     sync.Mutex
	idle   []*FastPredictor
	closed bool
}

// NewFastPredictorPool makes a pool of single-row predictors (one is made up front to
// validate opts).
func (b *Booster) NewFastPredictorPool(opts FastOptions) (*FastPredictorPool, error) {
	fp, err := b.NewFastPredictor(opts)
	if err != nil {
		return nil, err
	}
	return &FastPredictorPool{b: b, opts: opts, ncol: fp.ncol, outLen: fp.outLen, idle: []*FastPredictor{fp}}, nil
}

func (p *FastPredictorPool) get() (*FastPredictor, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		fp := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return fp, nil
	}
	p.mu.Unlock()
	return p.b.NewFastPredictor(p.opts)
}

func (p *FastPredictorPool) put(fp *FastPredictor) {
	p.mu.Lock()
	if !p.closed {
		p.idle = append(p.idle, fp)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = fp.Close()
}

// NumFeatures returns the row length Predict expects.
func (p *FastPredictorPool) NumFeatures() int { return p.ncol }

// OutputLen returns the number of values one row yields.
func (p *FastPredictorPool) OutputLen() int { return p.outLen }

// Predict is FastPredictor.Predict on a borrowed predictor.
func (p *FastPredictorPool) Predict(row []float64) (float64, error) {
	fp, err := p.get()
	if err != nil {
		return 0, fmt.Errorf("fast predict: %w", err)
	}
	v, err := fp.Predict(row)
	p.put(fp)
	return v, err
}

// PredictInto is FastPredictor.PredictInto on a borrowed predictor.
func (p *FastPredictorPool) PredictInto(dst, row []float64) (int, error) {
	fp, err := p.get()
	if err != nil {
		return 0, fmt.Errorf("fast predict: %w", err)
	}
	n, err := fp.PredictInto(dst, row)
	p.put(fp)
	return n, err
}

// Close frees the idle predictors; predictors in use are freed when their call returns.
// It is idempotent.
func (p *FastPredictorPool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	var errs []error
	for _, fp := range idle {
		if err := fp.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close fast predictor pool: %w", err)
	}
	return nil
}
