package lightgbm

// #include <stdlib.h>
// #include "capi.h"
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// handle guards one LightGBM handle: calls hold the read lock for the length of the C call,
// Close takes the write lock, so Close waits for calls in flight and later calls see
// ErrClosed.
type handle struct {
	mu   sync.RWMutex
	ptr  unsafe.Pointer
	free func(unsafe.Pointer) error
}

// use runs fn with the live pointer, or returns ErrClosed.
func (h *handle) use(fn func(ptr unsafe.Pointer) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.ptr == nil {
		return ErrClosed
	}
	return fn(h.ptr)
}

// close frees the handle once; later calls return nil.
func (h *handle) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ptr == nil {
		return nil
	}
	p := h.ptr
	h.ptr = nil
	return h.free(p)
}

// DatasetOptions are the optional parts of a Dataset.
type DatasetOptions struct {
	// Weights are per-row sample weights (len Rows), or nil. LightGBM stores them as float32.
	Weights []float64
	// FeatureNames name the columns (len Cols), or nil for LightGBM's Column_0, Column_1, ...
	FeatureNames []string
	// Reference is the training Dataset when this one is a validation set: it shares the
	// reference's feature bins, which LightGBM requires for validation data. The reference
	// must stay open until this Dataset has been built (NewDataset returned).
	Reference *Dataset
	// Params are dataset construction parameters (max_bin, min_data_in_bin, ...). Pass the same
	// Params used for training to reproduce what Python's lgb.train builds.
	Params Params
}

// Dataset is LightGBM's binned training or validation data. It is safe for concurrent use.
// A Dataset given to Train must stay open until Train returns; it may be closed afterwards.
type Dataset struct {
	lib          *Library
	h            *handle
	rows, cols   int
	featureNames []string
}

// NewDataset builds a Dataset from a dense row-major matrix and its labels (len m.Rows;
// LightGBM stores labels as float32, as Python LightGBM does). LightGBM copies and bins the
// data, so m may be reused as soon as NewDataset returns.
func (l *Library) NewDataset(m Matrix, labels []float64, opts DatasetOptions) (*Dataset, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("new dataset: %w", err)
	}
	if len(labels) != m.Rows {
		return nil, fmt.Errorf("new dataset: %w: %d labels for %d rows", ErrShape, len(labels), m.Rows)
	}
	if opts.Weights != nil && len(opts.Weights) != m.Rows {
		return nil, fmt.Errorf("new dataset: %w: %d weights for %d rows", ErrShape, len(opts.Weights), m.Rows)
	}
	if opts.FeatureNames != nil && len(opts.FeatureNames) != m.Cols {
		return nil, fmt.Errorf("new dataset: %w: %d feature names for %d columns", ErrShape, len(opts.FeatureNames), m.Cols)
	}
	params, err := opts.Params.cString()
	if err != nil {
		return nil, fmt.Errorf("new dataset: %w", err)
	}
	defer C.free(unsafe.Pointer(params))

	var out unsafe.Pointer
	lgbmThreads.enter(numThreads(opts.Params))
	defer lgbmThreads.leave()
	create := func(ref unsafe.Pointer) error {
		return lgbmErr("LGBM_DatasetCreateFromMat", C.mlops_dataset_create_from_mat(l.api,
			(*C.double)(unsafe.Pointer(&m.Data[0])), C.int32_t(m.Rows), C.int32_t(m.Cols), params, ref, &out))
	}
	if opts.Reference != nil {
		err = opts.Reference.h.use(create)
	} else {
		err = create(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("new dataset: %w", err)
	}
	d := &Dataset{lib: l, rows: m.Rows, cols: m.Cols, h: &handle{ptr: out, free: func(p unsafe.Pointer) error {
		return lgbmErr("LGBM_DatasetFree", C.mlops_dataset_free(l.api, p))
	}}}
	runtime.AddCleanup(d, func(h *handle) { _ = h.close() }, d.h)

	if err := d.setFloat32Field("label", labels); err != nil {
		return nil, fmt.Errorf("new dataset: %w", joinClose(err, d))
	}
	if opts.Weights != nil {
		if err := d.setFloat32Field("weight", opts.Weights); err != nil {
			return nil, fmt.Errorf("new dataset: %w", joinClose(err, d))
		}
	}
	if opts.FeatureNames != nil {
		names, free := cStrings(opts.FeatureNames)
		defer free()
		err := lgbmErr("LGBM_DatasetSetFeatureNames", C.mlops_dataset_set_feature_names(l.api, out, names, C.int(len(opts.FeatureNames))))
		if err != nil {
			return nil, fmt.Errorf("new dataset: %w", joinClose(err, d))
		}
		d.featureNames = append([]string(nil), opts.FeatureNames...)
	}
	return d, nil
}

func joinClose(err error, d *Dataset) error {
	if cerr := d.Close(); cerr != nil {
		return fmt.Errorf("%w (and close: %w)", err, cerr)
	}
	return err
}

func (d *Dataset) setFloat32Field(name string, vals []float64) error {
	f32 := make([]float32, len(vals))
	for i, v := range vals {
		f32[i] = float32(v)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return d.h.use(func(p unsafe.Pointer) error {
		return lgbmErr("LGBM_DatasetSetField", C.mlops_dataset_set_field_f32(d.lib.api, p, cname, (*C.float)(unsafe.Pointer(&f32[0])), C.int(len(f32))))
	})
}

// NumRows returns the number of rows.
func (d *Dataset) NumRows() int { return d.rows }

// NumFeatures returns the number of columns.
func (d *Dataset) NumFeatures() int { return d.cols }

// FeatureNames returns the names given in DatasetOptions, or nil.
func (d *Dataset) FeatureNames() []string { return append([]string(nil), d.featureNames...) }

// Close frees the Dataset. It is idempotent and waits for calls in flight.
func (d *Dataset) Close() error {
	if err := d.h.close(); err != nil {
		return fmt.Errorf("close dataset: %w", err)
	}
	return nil
}
