package lightgbm

// #cgo LDFLAGS: -lm
// #cgo noescape mlops_forest_predict
// #cgo nocallback mlops_forest_predict
// #cgo noescape mlops_forest_predict_cpu
// #cgo nocallback mlops_forest_predict_cpu
// #include <stdlib.h>
// #include "capi.h"
import "C"

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// ErrForestUnsupported means the compact evaluator does not cover the model (categorical
// splits, linear trees, several trees per iteration, an objective whose output transform it
// does not reproduce); score it with a FastPredictor instead.
var ErrForestUnsupported = errors.New("model not supported by the compact evaluator")

// ForestOptions configure a Forest.
type ForestOptions struct {
	// Kind is PredictNormal (the objective's output: a probability for binary models) or
	// PredictRaw. Default: PredictNormal.
	Kind PredictKind
	// OnCPUSample and CPUSampleEvery are FastOptions': the calling thread's CPU time inside
	// the evaluation, for about one call in CPUSampleEvery (default DefaultCPUSampleEvery).
	OnCPUSample    func(time.Duration)
	CPUSampleEvery int
}

// Forest scores one row at a time with the project's compact evaluator instead of
// LightGBM's: the same trees, the same decisions (LightGBM's numerical decision with its
// missing-value rules, the row read as LightGBM's single-row path reads it), the trees summed
// in LightGBM's order and the output transformed with the same libm call, so the result is
// the same double. What differs is the layout: LightGBM keeps each tree's split features,
// thresholds, decision types and children in separate arrays of separately allocated trees,
// so a prediction touches several cache lines per node; the Forest packs every node into 16
// bytes of one array in preorder (a left child right after its parent, leaves inline), so a
// prediction touches about one line per node it visits. In a service, where decoding,
// answering and logging requests evict the model from the core's caches between two
// predictions, that is most of a prediction's cost (see BenchmarkPredictModelFileColdCache).
//
// A Forest is read-only once built: it is safe for concurrent use without a pool or a lock.
type Forest struct {
	h        *forestHandle
	ncol     int
	onCPU    func(time.Duration)
	cpuEvery uint32
}

type forestHandle struct {
	f    *C.mlops_forest
	once sync.Once
}

func (h *forestHandle) close() {
	h.once.Do(func() {
		C.mlops_forest_free(h.f)
		h.f = nil
	})
}

// ParseForest builds the compact evaluator of a LightGBM text model. It fails with
// ErrForestUnsupported for models it does not reproduce exactly. Prefer Booster.NewForest,
// which also checks the evaluator against LightGBM on the booster.
func ParseForest(modelText string, opts ForestOptions) (*Forest, error) {
	fo, _, err := parseForest(modelText, opts)
	return fo, err
}

func parseForest(modelText string, opts ForestOptions) (*Forest, []modelTree, error) {
	mt, err := parseModelText(modelText)
	if err != nil {
		return nil, nil, fmt.Errorf("parse forest: %w", err)
	}
	if err := mt.singleOutput(ErrForestUnsupported); err != nil {
		return nil, nil, fmt.Errorf("parse forest: %w", err)
	}
	if _, ok := mt.header["average_output"]; ok {
		return nil, nil, fmt.Errorf("parse forest: %w: average_output (random forest mode)", ErrForestUnsupported)
	}
	transform, sigmoid := C.int32_t(C.MLOPS_FOREST_IDENTITY), 0.0
	switch opts.Kind {
	case PredictRaw:
	case PredictNormal:
		var err error
		if transform, sigmoid, err = forestTransform(mt.header["objective"]); err != nil {
			return nil, nil, fmt.Errorf("parse forest: %w", err)
		}
	default:
		return nil, nil, fmt.Errorf("parse forest: %w: %v", ErrForestUnsupported, opts.Kind)
	}
	if mt.numFeatures >= 1<<27 {
		return nil, nil, fmt.Errorf("parse forest: %w: %d features", ErrForestUnsupported, mt.numFeatures)
	}
	trees := make([]modelTree, len(mt.trees))
	nnodes := 0
	for i, block := range mt.trees {
		if trees[i], err = parseModelTree(block, mt.numFeatures, ErrForestUnsupported); err != nil {
			return nil, nil, fmt.Errorf("parse forest: tree %d: %w", i, err)
		}
		nnodes += 2*len(trees[i].leafValue) - 1
	}
	if nnodes > math.MaxInt32 {
		return nil, nil, fmt.Errorf("parse forest: %w: %d nodes", ErrForestUnsupported, nnodes)
	}
	cf := C.mlops_forest_new(C.int32_t(nnodes), C.int32_t(len(trees)), transform, C.double(sigmoid))
	if cf == nil {
		return nil, nil, errors.New("parse forest: out of memory")
	}
	nodes := unsafe.Slice(cf.nodes, nnodes)
	start := unsafe.Slice(cf.start, len(trees))
	at := 0
	for i := range trees {
		start[i] = C.int32_t(at)
		at = trees[i].layout(nodes, at)
	}
	fo := &Forest{h: &forestHandle{f: cf}, ncol: mt.numFeatures}
	fo.sampleCPU(opts)
	runtime.AddCleanup(fo, func(h *forestHandle) { h.close() }, fo.h)
	return fo, trees, nil
}

func (f *Forest) sampleCPU(opts ForestOptions) {
	if opts.OnCPUSample != nil {
		f.onCPU, f.cpuEvery = opts.OnCPUSample, DefaultCPUSampleEvery
		if opts.CPUSampleEvery > 0 {
			f.cpuEvery = uint32(opts.CPUSampleEvery)
		}
	}
}

// forestTransform reads the model's objective line ("binary sigmoid:1", "regression", ...)
// into the output transform LightGBM's objective applies.
func forestTransform(objective string) (C.int32_t, float64, error) {
	f := strings.Fields(objective)
	if len(f) == 0 {
		return 0, 0, fmt.Errorf("%w: no objective line", ErrForestUnsupported)
	}
	switch {
	case f[0] == "binary" && len(f) == 2 && strings.HasPrefix(f[1], "sigmoid:"):
		s, err := strconv.ParseFloat(strings.TrimPrefix(f[1], "sigmoid:"), 64)
		if err != nil || !(s > 0) {
			return 0, 0, fmt.Errorf("objective %q: bad sigmoid", objective)
		}
		return C.MLOPS_FOREST_SIGMOID, s, nil
	case len(f) == 1 && slices.Contains([]string{"regression", "regression_l1", "huber", "fair", "quantile", "mape"}, f[0]):
		// Objectives whose output is the raw score ("regression sqrt" squares it back: not here).
		return C.MLOPS_FOREST_IDENTITY, 0, nil
	}
	return 0, 0, fmt.Errorf("%w: objective %q", ErrForestUnsupported, objective)
}

// layout writes the tree's nodes in preorder into nodes from index at and returns the index
// after them. Right-child indices are relative to the tree's first node.
func (tr *modelTree) layout(nodes []C.mlops_forest_node, at int) int {
	base := at
	var walk func(n int32)
	walk = func(n int32) {
		i := at
		at++
		if n < 0 {
			nodes[i] = C.mlops_forest_node{v: C.double(tr.leafValue[^n]), meta: C.MLOPS_FOREST_LEAF}
			return
		}
		dt := uint32(tr.decision[n])
		meta := uint32(tr.feat[n])<<4 | ((dt>>2)&3)<<C.MLOPS_FOREST_MISSING_SHIFT
		if dt&decisionDefaultLeft != 0 {
			meta |= C.MLOPS_FOREST_DEFAULT_LEFT
		}
		walk(tr.left[n])
		nodes[i] = C.mlops_forest_node{v: C.double(tr.thr[n]), right: C.int32_t(at - base), meta: C.uint32_t(meta)}
		walk(tr.right[n])
	}
	if len(tr.leafValue) == 1 {
		walk(^0)
	} else {
		walk(0)
	}
	return at
}

// NewForest builds the compact evaluator of the booster's model (its text, as
// SaveModelString returns it) and checks it against LightGBM before returning it: a few
// thousand rows made of every split's threshold, the doubles either side of it, zero, tiny
// values LightGBM reads as zero, NaN and infinities, scored by both, must give the same
// bits. A model it does not cover fails with ErrForestUnsupported.
func (b *Booster) NewForest(opts ForestOptions) (*Forest, error) {
	text, err := b.SaveModelString()
	if err != nil {
		return nil, fmt.Errorf("new forest: %w", err)
	}
	// The check's predictions are not the caller's: no CPU samples until it passed.
	fo, trees, err := parseForest(text, ForestOptions{Kind: opts.Kind})
	if err != nil {
		return nil, fmt.Errorf("new forest: %w", err)
	}
	if fo.ncol != b.numFeatures {
		_ = fo.Close()
		return nil, fmt.Errorf("new forest: the model text has %d features, the booster %d", fo.ncol, b.numFeatures)
	}
	probe := forestProbeRows(trees, fo.ncol, 2048)
	want, err := b.Predict(probe, opts.Kind, PredictOptions{NumThreads: 1})
	if err != nil {
		_ = fo.Close()
		return nil, fmt.Errorf("new forest: %w", err)
	}
	for r := range probe.Rows {
		row := probe.Data[r*probe.Cols : (r+1)*probe.Cols]
		got, err := fo.Predict(row)
		if err != nil {
			_ = fo.Close()
			return nil, fmt.Errorf("new forest: %w", err)
		}
		if math.Float64bits(got) != math.Float64bits(want[r]) && !(math.IsNaN(got) && math.IsNaN(want[r])) {
			_ = fo.Close()
			return nil, fmt.Errorf("new forest: %w: probe row %d scored %v, LightGBM %v (row %v)", ErrForestUnsupported, r, got, want[r], row)
		}
	}
	fo.sampleCPU(opts)
	return fo, nil
}

// forestProbeRows makes n rows whose values sit on and around the model's split thresholds,
// with the values the missing-value rules treat specially, drawn with a fixed seed.
func forestProbeRows(trees []modelTree, ncol, n int) Matrix {
	special := []float64{0, math.Copysign(0, -1), math.NaN(), kZeroThreshold, -kZeroThreshold, kZeroThreshold / 2, -kZeroThreshold / 2,
		1e-300, math.Inf(1), math.Inf(-1), 1, -1, 1e300}
	cand := make([][]float64, ncol)
	for i := range cand {
		cand[i] = special
	}
	for _, tr := range trees {
		for i, f := range tr.feat {
			t := tr.thr[i]
			if len(cand[f]) == len(special) {
				cand[f] = slices.Clone(special)
			}
			cand[f] = append(cand[f], t, math.Nextafter(t, math.Inf(1)), math.Nextafter(t, math.Inf(-1)))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	m := Matrix{Data: make([]float64, n*ncol), Rows: n, Cols: ncol}
	for i := range m.Data {
		c := cand[i%ncol]
		m.Data[i] = c[rng.IntN(len(c))]
	}
	return m
}

// NumFeatures returns the row length Predict expects.
func (f *Forest) NumFeatures() int { return f.ncol }

// Predict scores row (NumFeatures values, NaN for missing).
func (f *Forest) Predict(row []float64) (float64, error) {
	h := f.h
	if h.f == nil {
		return 0, ErrClosed
	}
	if len(row) != f.ncol {
		return 0, fmt.Errorf("forest predict: %w: row has %d values, model expects %d", ErrShape, len(row), f.ncol)
	}
	var in *C.double
	if f.ncol > 0 {
		in = (*C.double)(unsafe.Pointer(&row[0]))
	}
	var v float64
	if f.onCPU != nil && rand.Uint32N(f.cpuEvery) == 0 {
		r := C.mlops_forest_predict_cpu(h.f, in)
		v = float64(r.v)
		f.onCPU(time.Duration(r.cpu_ns))
	} else {
		v = float64(C.mlops_forest_predict(h.f, in))
	}
	runtime.KeepAlive(f)
	return v, nil
}

// benchDirect scores n rows cycling through m in a C loop (benchmarks only) and returns the
// thread's CPU time.
func (f *Forest) benchDirect(m Matrix, n int) (time.Duration, error) {
	if m.validate() != nil || m.Cols != f.ncol {
		return 0, fmt.Errorf("bench: %w", ErrShape)
	}
	defer runtime.KeepAlive(f)
	r := C.mlops_forest_bench_loop(f.h.f, (*C.double)(unsafe.Pointer(&m.Data[0])), C.int64_t(m.Rows), C.int32_t(m.Cols), C.int64_t(n))
	return time.Duration(r.cpu_ns), nil
}

// Close frees the evaluator. It is idempotent; a Predict after Close returns ErrClosed, and
// Close must not run while a Predict is in flight.
func (f *Forest) Close() error {
	f.h.close()
	return nil
}
