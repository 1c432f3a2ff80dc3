package lightgbm

// #include <stdlib.h>
// #include "capi.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"unsafe"
)

// Eval is one metric on one dataset at one iteration.
type Eval struct {
	Dataset      string  // "training" or the validation set's name
	Metric       string  // LightGBM's metric name, e.g. "auc", "binary_logloss"
	Value        float64 // the metric's value
	HigherBetter bool    // whether larger values are better (auc, ndcg@k, map@k, average_precision)
}

// Iteration is what Train reports after each boosting round.
type Iteration struct {
	Round int    // 1-based boosting round just finished
	Evals []Eval // metrics on the validation sets (first the training data's, with EvalTraining)
}

// TrainOptions control Train.
type TrainOptions struct {
	// NumRounds is the maximum number of boosting rounds. Required (> 0).
	NumRounds int
	// Valid are validation Datasets built with the training Dataset as Reference.
	Valid []*Dataset
	// ValidNames name the validation sets in Evals. Default: valid_0, valid_1, ...
	ValidNames []string
	// EarlyStoppingRounds stops training when the monitored metric on the first validation
	// set has not improved for this many rounds, then rolls the model back to its best
	// iteration. 0 disables early stopping. As in Python's early_stopping callback, the model
	// is also rolled back to the best iteration when NumRounds is reached first.
	EarlyStoppingRounds int
	// EarlyStoppingMetric names the monitored metric. Default: the first metric.
	EarlyStoppingMetric string
	// EvalTraining also reports the metrics on the training data every round (LightGBM
	// computes them; Python does so when the training set is in valid_sets). Default: off.
	EvalTraining bool
	// OnIteration, if set, is called after every round (e.g. to drive a progress bar). A
	// non-nil error stops training and Train returns it. It runs while Train holds
	// LightGBM's thread setting (see threadGate): a LightGBM call from it that asks for
	// another num_threads (a dataset, a batch prediction, a FastPredictor) would wait for
	// Train, which waits for it. Do such work after Train returns.
	OnIteration func(Iteration) error
}

// higherBetter mirrors Python LightGBM's rule for which built-in metrics are maximised.
func higherBetter(metric string) bool {
	for _, p := range []string{"auc", "ndcg@", "map@", "average_precision"} {
		if strings.HasPrefix(metric, p) {
			return true
		}
	}
	return false
}

// Train boosts a model on train with params (LGBM_BoosterCreate, LGBM_BoosterUpdateOneIter).
// The datasets must stay open until Train returns. Training is deterministic for a given
// params when it contains deterministic=true (and num_threads is fixed). ctx is checked
// between rounds.
func Train(ctx context.Context, params Params, train *Dataset, opts TrainOptions) (*Booster, error) {
	if train == nil {
		return nil, fmt.Errorf("train: nil training dataset")
	}
	if opts.NumRounds <= 0 {
		return nil, fmt.Errorf("train: NumRounds must be > 0, got %d", opts.NumRounds)
	}
	if opts.EarlyStoppingRounds < 0 {
		return nil, fmt.Errorf("train: EarlyStoppingRounds must be >= 0, got %d", opts.EarlyStoppingRounds)
	}
	if opts.EarlyStoppingRounds > 0 && len(opts.Valid) == 0 {
		return nil, fmt.Errorf("train: early stopping needs at least one validation dataset")
	}
	if opts.ValidNames != nil && len(opts.ValidNames) != len(opts.Valid) {
		return nil, fmt.Errorf("train: %d validation names for %d validation datasets", len(opts.ValidNames), len(opts.Valid))
	}
	names := make([]string, len(opts.Valid))
	for i := range names {
		if opts.ValidNames != nil {
			names[i] = opts.ValidNames[i]
		} else {
			names[i] = fmt.Sprintf("valid_%d", i)
		}
	}
	cparams, err := params.cString()
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer C.free(unsafe.Pointer(cparams))

	// From LGBM_BoosterCreate to the last round LightGBM reads params' num_threads. The gate
	// is taken before the datasets' locks, in the order NewDataset takes them.
	lgbmThreads.enter(numThreads(params))
	defer lgbmThreads.leave()

	// Hold every dataset's read lock for the whole run so none is freed under LightGBM. Each
	// distinct dataset is locked once (the training set may also be a validation set).
	datasets := append([]*Dataset{train}, opts.Valid...)
	defer runtime.KeepAlive(datasets)
	ptrs := make([]unsafe.Pointer, len(datasets))
	locked := make(map[*Dataset]bool, len(datasets))
	for i, d := range datasets {
		if d == nil {
			return nil, fmt.Errorf("train: nil validation dataset %d", i-1)
		}
		if !locked[d] {
			locked[d] = true
			d.h.mu.RLock()
			defer d.h.mu.RUnlock()
		}
		if d.h.ptr == nil {
			return nil, fmt.Errorf("train: dataset %d: %w", i, ErrClosed)
		}
		ptrs[i] = d.h.ptr
	}
	lib := train.lib
	api := lib.api

	var bptr unsafe.Pointer
	if err := lgbmErr("LGBM_BoosterCreate", C.mlops_booster_create(api, ptrs[0], cparams, &bptr)); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	b := &Booster{lib: lib, h: &boosterHandle{api: api, ptr: bptr}}
	runtime.AddCleanup(b, func(h *boosterHandle) { _ = h.close() }, b.h)
	fail := func(err error) (*Booster, error) {
		if cerr := b.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("train: %w", err)
	}
	for i, vp := range ptrs[1:] {
		if err := lgbmErr("LGBM_BoosterAddValidData", C.mlops_booster_add_valid_data(api, bptr, vp)); err != nil {
			return fail(fmt.Errorf("validation set %q: %w", names[i], err))
		}
	}
	var nEval C.int
	if err := lgbmErr("LGBM_BoosterGetEvalCounts", C.mlops_booster_get_eval_counts(api, bptr, &nEval)); err != nil {
		return fail(err)
	}
	metrics, err := readStrings(int(nEval), func(n C.int, outLen *C.int, bufLen C.size_t, need *C.size_t, out **C.char) *C.char {
		return C.mlops_booster_get_eval_names(api, bptr, n, outLen, bufLen, need, out)
	}, "LGBM_BoosterGetEvalNames")
	if err != nil {
		return fail(err)
	}
	monitor := 0
	if opts.EarlyStoppingRounds > 0 {
		if len(metrics) == 0 {
			return fail(fmt.Errorf("early stopping needs a metric (set params[\"metric\"])"))
		}
		if opts.EarlyStoppingMetric != "" {
			monitor = -1
			for i, m := range metrics {
				if m == opts.EarlyStoppingMetric {
					monitor = i
				}
			}
			if monitor < 0 {
				return fail(fmt.Errorf("early stopping metric %q is not among the metrics %v", opts.EarlyStoppingMetric, metrics))
			}
		}
	}

	evalBuf := make([]float64, max(len(metrics), 1))
	// evalAt reads the metrics of dataset idx (0 = training, i+1 = validation set i).
	evalAt := func(idx int, name string, into []Eval) ([]Eval, error) {
		var n C.int
		if err := lgbmErr("LGBM_BoosterGetEval", C.mlops_booster_get_eval(api, bptr, C.int(idx), &n, (*C.double)(unsafe.Pointer(&evalBuf[0])))); err != nil {
			return nil, err
		}
		for j := 0; j < int(n) && j < len(metrics); j++ {
			into = append(into, Eval{Dataset: name, Metric: metrics[j], Value: evalBuf[j], HigherBetter: higherBetter(metrics[j])})
		}
		return into, nil
	}

	var history [][]Eval
	best, bestRound := math.NaN(), 0
	for round := 1; round <= opts.NumRounds; round++ {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		var finished C.int
		if err := lgbmErr("LGBM_BoosterUpdateOneIter", C.mlops_booster_update_one_iter(api, bptr, &finished)); err != nil {
			return fail(fmt.Errorf("round %d: %w", round, err))
		}
		if finished != 0 {
			// No split met the requirements: every further round would add nothing.
			break
		}
		var evals []Eval
		if len(metrics) > 0 {
			var err error
			if opts.EvalTraining {
				if evals, err = evalAt(0, "training", evals); err != nil {
					return fail(fmt.Errorf("round %d: %w", round, err))
				}
			}
			for i := range opts.Valid {
				if evals, err = evalAt(i+1, names[i], evals); err != nil {
					return fail(fmt.Errorf("round %d: %w", round, err))
				}
			}
		}
		history = append(history, evals)
		if opts.OnIteration != nil {
			if err := opts.OnIteration(Iteration{Round: round, Evals: evals}); err != nil {
				return fail(fmt.Errorf("round %d: callback: %w", round, err))
			}
		}
		if opts.EarlyStoppingRounds > 0 {
			v, hb, ok := monitored(evals, names[0], metrics[monitor])
			if !ok {
				return fail(fmt.Errorf("round %d: no %s on %s", round, metrics[monitor], names[0]))
			}
			if math.IsNaN(best) || (hb && v > best) || (!hb && v < best) {
				best, bestRound = v, round
			} else if round-bestRound >= opts.EarlyStoppingRounds {
				break
			}
		}
	}

	var cur C.int
	if err := lgbmErr("LGBM_BoosterGetCurrentIteration", C.mlops_booster_get_current_iteration(api, bptr, &cur)); err != nil {
		return fail(err)
	}
	if opts.EarlyStoppingRounds > 0 && bestRound > 0 {
		for it := int(cur); it > bestRound; it-- {
			if err := lgbmErr("LGBM_BoosterRollbackOneIter", C.mlops_booster_rollback_one_iter(api, bptr)); err != nil {
				return fail(err)
			}
		}
		cur = C.int(bestRound)
	}
	var nf, nc C.int
	if err := lgbmErr("LGBM_BoosterGetNumFeature", C.mlops_booster_get_num_feature(api, bptr, &nf)); err != nil {
		return fail(err)
	}
	if err := lgbmErr("LGBM_BoosterGetNumClasses", C.mlops_booster_get_num_classes(api, bptr, &nc)); err != nil {
		return fail(err)
	}
	b.numFeatures, b.numClasses, b.bestIteration = int(nf), int(nc), int(cur)
	if int(cur) >= 1 && int(cur) <= len(history) {
		b.bestEval = history[cur-1]
		if opts.EvalTraining {
			b.bestEval = b.bestEval[min(len(metrics), len(b.bestEval)):]
		}
	}
	return b, nil
}

func monitored(evals []Eval, dataset, metric string) (value float64, higher, ok bool) {
	for _, e := range evals {
		if e.Dataset == dataset && e.Metric == metric {
			return e.Value, e.HigherBetter, true
		}
	}
	return 0, false, false
}
