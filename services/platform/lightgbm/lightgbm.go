// Package lightgbm binds LightGBM's C API (v4) for training, evaluation, model text
// save/load, batch and single-row prediction and SHAP contributions. It is the one place
// in the project where cgo lives.
//
// The shared library is not linked at build time: [Open] loads it with dlopen at run time
// (the package itself links only -ldl and -lm), so every module builds and vets on a machine
// without LightGBM. The project uses lib_lightgbm.so from the `lightgbm` wheel installed
// into the project virtualenv; [FindLibrary] locates it.
//
// Besides LightGBM's own prediction paths the package has two evaluators of its own that read
// a model's trees from its text: [TreeSHAP] (SHAP contributions) and [Forest] (predictions,
// the same doubles as LightGBM from a cache-friendlier layout).
//
// Memory and lifetime: [Dataset], [Booster], [FastPredictor], [FastPredictorPool] and [Forest]
// own C memory. Call Close when done (Close is idempotent); a cleanup registered with
// runtime.AddCleanup frees a handle that was never closed, but only as a safety net.
//
// Concurrency: a [Library], [Dataset] and [Booster] are safe for concurrent use (Close
// waits for calls in flight); so are a [Forest] and a [TreeSHAP], read-only once built (a
// Forest must not be closed while a call is in flight). A [FastPredictor] is not: give each
// goroutine its own, or share a [FastPredictorPool].
package lightgbm

// #cgo LDFLAGS: -ldl
// #include <stdlib.h>
// #include "capi.h"
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"
)

// Sentinel errors callers may branch on with errors.Is.
var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("lightgbm: use of closed handle")
	// ErrShape is returned when a matrix, row or label slice has the wrong size.
	ErrShape = errors.New("lightgbm: wrong shape")
	// ErrNotFound is returned by FindLibrary when no shared library is found.
	ErrNotFound = errors.New("lightgbm: shared library not found")
)

// Error is a failure reported by LightGBM itself. Msg is LGBM_GetLastError's text, read on
// the same OS thread as the failing call.
type Error struct {
	Op  string // the C function that failed, e.g. "LGBM_BoosterLoadModelFromString"
	Msg string // LightGBM's message
}

// Error implements error.
func (e *Error) Error() string { return "lightgbm: " + e.Op + ": " + e.Msg }

// lgbmErr converts a trampoline result (NULL or a malloc'd message) into an error.
func lgbmErr(op string, msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return &Error{Op: op, Msg: C.GoString(msg)}
}

// Library is a loaded lib_lightgbm.so. It is safe for concurrent use and is meant to be
// opened once per process and shared. It has no Close: LightGBM starts OpenMP worker
// threads that make unloading unsafe, so the library stays mapped until the process exits.
type Library struct {
	api     *C.mlops_lgbm_api
	path    string
	version string
}

// Open loads LightGBM's shared library from path (RTLD_NOW|RTLD_LOCAL) and resolves every C
// function the binding uses. The version is read from the wheel's lightgbm/VERSION.txt, next
// to the lib/ directory, because the C API has no version function; Version returns "" when
// that file is absent (e.g. a library built from source).
func Open(path string) (*Library, error) {
	if path == "" {
		return nil, fmt.Errorf("open lightgbm library: empty path")
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var errbuf [512]C.char
	api := C.mlops_lgbm_open(cpath, &errbuf[0], C.size_t(len(errbuf)))
	if api == nil {
		return nil, fmt.Errorf("open lightgbm library %q: %s", path, C.GoString(&errbuf[0]))
	}
	l := &Library{api: api, path: path}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(path)), "VERSION.txt")); err == nil {
		l.version = strings.TrimSpace(string(b))
	}
	return l, nil
}

// Path returns the path the library was opened from.
func (l *Library) Path() string { return l.path }

// Version returns the LightGBM version from the wheel's VERSION.txt, or "" if unknown.
func (l *Library) Version() string { return l.version }

// Environment variables FindLibrary consults, in order.
const (
	EnvLib      = "LIGHTGBM_LIB"
	EnvMLOpsLib = "MLOPS_LIGHTGBM_LIB"
)

// FindLibrary returns the path of lib_lightgbm.so. It tries, in order: the environment
// variables LIGHTGBM_LIB and MLOPS_LIGHTGBM_LIB (returned as given, even if missing, so a
// misconfiguration fails loudly in Open); the wheel inside $VIRTUAL_ENV; and the wheel inside
// a .venv directory in the working directory or any of its parents (the project virtualenv
// made by scripts/venv.sh). It returns an error wrapping ErrNotFound when nothing matches.
func FindLibrary(getenv func(string) string) (string, error) {
	wd, _ := os.Getwd()
	return findLibrary(getenv, wd)
}

func findLibrary(getenv func(string) string, wd string) (string, error) {
	for _, env := range []string{EnvLib, EnvMLOpsLib} {
		if p := getenv(env); p != "" {
			return p, nil
		}
	}
	var venvs []string
	if v := getenv("VIRTUAL_ENV"); v != "" {
		venvs = append(venvs, v)
	}
	if wd != "" {
		for dir := wd; ; dir = filepath.Dir(dir) {
			venvs = append(venvs, filepath.Join(dir, ".venv"))
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, v := range venvs {
		matches, _ := filepath.Glob(filepath.Join(v, "lib", "python3*", "site-packages", "lightgbm", "lib", "lib_lightgbm.so"))
		sort.Strings(matches)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && !st.IsDir() {
				return m, nil
			}
		}
	}
	return "", fmt.Errorf("%w: set %s or create the project virtualenv (scripts/venv.sh)", ErrNotFound, EnvLib)
}

// Params are LightGBM parameters (https://lightgbm.readthedocs.io/en/stable/Parameters.html)
// as key/value strings, e.g. {"objective": "binary", "metric": "auc", "num_leaves": "31"}.
// LightGBM logs to stdout unless "verbosity" is "-1".
type Params map[string]string

// String returns the parameters in LightGBM's "key=value key=value" form, keys sorted.
func (p Params) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(p[k])
	}
	return sb.String()
}

// cString validates p and returns it as a C string the caller frees.
func (p Params) cString() (*C.char, error) {
	for k, v := range p {
		if k == "" || strings.ContainsAny(k, "= \t\r\n") || strings.ContainsAny(v, " \t\r\n") {
			return nil, fmt.Errorf("invalid lightgbm parameter %q=%q: keys and values must be non-empty and contain no whitespace or '=' in the key", k, v)
		}
	}
	return C.CString(p.String()), nil
}

func freeCString(s *C.char) { C.free(unsafe.Pointer(s)) }

// Matrix is a dense row-major matrix of float64: element (i, j) is Data[i*Cols+j]. NaN marks
// a missing value. LightGBM reads the data only during the call it is passed to.
type Matrix struct {
	Data       []float64
	Rows, Cols int
}

func (m Matrix) validate() error {
	if m.Rows <= 0 || m.Cols <= 0 || m.Rows > math.MaxInt32 || m.Cols > math.MaxInt32 {
		return fmt.Errorf("%w: matrix is %dx%d", ErrShape, m.Rows, m.Cols)
	}
	if len(m.Data) != m.Rows*m.Cols {
		return fmt.Errorf("%w: matrix data has %d values, want %d rows x %d cols = %d", ErrShape, len(m.Data), m.Rows, m.Cols, m.Rows*m.Cols)
	}
	return nil
}

// PredictKind selects what a prediction returns.
type PredictKind int

// Prediction kinds (C_API_PREDICT_* in c_api.h).
const (
	// PredictNormal returns the transformed score: a probability for binary objectives,
	// one probability per class for multiclass, the value for regression.
	PredictNormal PredictKind = C.MLOPS_PREDICT_NORMAL
	// PredictRaw returns the untransformed score (log-odds for binary).
	PredictRaw PredictKind = C.MLOPS_PREDICT_RAW_SCORE
	// PredictContrib returns SHAP contributions: per row and class, one value per feature
	// followed by the bias (expected value), cols+1 values in all. They sum to the raw score.
	PredictContrib PredictKind = C.MLOPS_PREDICT_CONTRIB
)

// String returns the kind's name.
func (k PredictKind) String() string {
	switch k {
	case PredictNormal:
		return "normal"
	case PredictRaw:
		return "raw"
	case PredictContrib:
		return "contrib"
	default:
		return fmt.Sprintf("PredictKind(%d)", int(k))
	}
}

func (k PredictKind) validate() error {
	switch k {
	case PredictNormal, PredictRaw, PredictContrib:
		return nil
	default:
		return fmt.Errorf("unsupported prediction kind %v", k)
	}
}

// cStrings copies ss into a C array of C strings; free releases all of it.
func cStrings(ss []string) (arr **C.char, free func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	ptrs := (**C.char)(C.malloc(C.size_t(len(ss)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	view := unsafe.Slice(ptrs, len(ss))
	for i, s := range ss {
		view[i] = C.CString(s)
	}
	return ptrs, func() {
		for _, p := range view {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(ptrs))
	}
}

// readStrings calls a LightGBM "get names" function that fills n caller-allocated buffers,
// growing the buffers once if a name did not fit.
func readStrings(n int, call func(n C.int, outLen *C.int, bufLen C.size_t, needLen *C.size_t, out **C.char) *C.char, op string) ([]string, error) {
	if n == 0 {
		return nil, nil
	}
	bufLen := C.size_t(256)
	for attempt := 0; attempt < 2; attempt++ {
		ptrs := (**C.char)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		view := unsafe.Slice(ptrs, n)
		for i := range view {
			view[i] = (*C.char)(C.calloc(bufLen, 1))
		}
		freeAll := func() {
			for _, p := range view {
				C.free(unsafe.Pointer(p))
			}
			C.free(unsafe.Pointer(ptrs))
		}
		var outLen C.int
		var need C.size_t
		if err := lgbmErr(op, call(C.int(n), &outLen, bufLen, &need, ptrs)); err != nil {
			freeAll()
			return nil, err
		}
		if need > bufLen {
			freeAll()
			bufLen = need
			continue
		}
		out := make([]string, min(int(outLen), n))
		for i := range out {
			out[i] = C.GoString(view[i])
		}
		freeAll()
		return out, nil
	}
	return nil, fmt.Errorf("lightgbm: %s: names grew between calls", op)
}
