package trainer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/trainer/internal/evaluate"
)

// ErrInvalidParams means a parameter override is unknown or malformed.
var ErrInvalidParams = errors.New("invalid training parameters")

// tunable lists the LightGBM parameters a retrain request may override, with the check of
// their value. Everything else (objective, metric, verbosity) is the trainer's business.
var tunable = map[string]func(string) error{
	"num_iterations":          positiveInt,
	"early_stopping_round":    nonNegativeInt,
	"learning_rate":           positiveFloat,
	"num_leaves":              positiveInt,
	"max_depth":               anyInt,
	"min_data_in_leaf":        nonNegativeInt,
	"min_sum_hessian_in_leaf": nonNegativeFloat,
	"feature_fraction":        positiveFloat,
	"bagging_fraction":        positiveFloat,
	"bagging_freq":            nonNegativeInt,
	"lambda_l1":               nonNegativeFloat,
	"lambda_l2":               nonNegativeFloat,
	"min_gain_to_split":       nonNegativeFloat,
	"max_bin":                 positiveInt,
	"scale_pos_weight":        positiveFloat,
	"seed":                    anyInt,
	"num_threads":             nonNegativeInt,
}

func parseInt(s string, ok func(int) bool) error {
	v, err := strconv.Atoi(s)
	if err != nil || !ok(v) {
		return fmt.Errorf("%q is not a valid integer here", s)
	}
	return nil
}

func parseFloat(s string, ok func(float64) bool) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || !ok(v) {
		return fmt.Errorf("%q is not a valid number here", s)
	}
	return nil
}

func positiveInt(s string) error      { return parseInt(s, func(v int) bool { return v > 0 }) }
func nonNegativeInt(s string) error   { return parseInt(s, func(v int) bool { return v >= 0 }) }
func anyInt(s string) error           { return parseInt(s, func(int) bool { return true }) }
func positiveFloat(s string) error    { return parseFloat(s, func(v float64) bool { return v > 0 }) }
func nonNegativeFloat(s string) error { return parseFloat(s, func(v float64) bool { return v >= 0 }) }

// TrainParams are the effective settings of one run.
type TrainParams struct {
	// Booster holds the LightGBM parameters (without num_iterations and early stopping).
	Booster lightgbm.Params
	// NumRounds is the most boosting rounds; EarlyStopping the patience (0 disables).
	NumRounds, EarlyStopping int
}

// BuildParams returns the trainer's defaults for task with overrides applied. An unknown
// or malformed override is an error matching ErrInvalidParams.
func BuildParams(task featurespec.Task, numRounds, earlyStopping int, overrides map[string]string) (TrainParams, error) {
	p := lightgbm.Params{
		"learning_rate":    "0.05",
		"num_leaves":       "31",
		"min_data_in_leaf": "50",
		"feature_fraction": "0.9",
		"bagging_fraction": "0.8",
		"bagging_freq":     "1",
		"lambda_l2":        "1",
		"max_bin":          "255",
		"seed":             "42",
		"deterministic":    "true",
		"force_row_wise":   "true",
		"verbosity":        "-1",
	}
	switch task {
	case featurespec.TaskBinary:
		p["objective"] = "binary"
		p["metric"] = "auc,binary_logloss"
	case featurespec.TaskRegression:
		p["objective"] = "regression"
		p["metric"] = "l2,l1"
	default:
		return TrainParams{}, fmt.Errorf("%w: unsupported task %q", ErrInvalidParams, task)
	}
	tp := TrainParams{Booster: p, NumRounds: numRounds, EarlyStopping: earlyStopping}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(overrides)) {
		v := strings.TrimSpace(overrides[k])
		check, ok := tunable[k]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown parameter %q (allowed: %s)", k, strings.Join(slices.Sorted(maps.Keys(tunable)), ", ")))
			continue
		}
		if err := check(v); err != nil {
			errs = append(errs, fmt.Errorf("parameter %s: %w", k, err))
			continue
		}
		switch k {
		case "num_iterations":
			tp.NumRounds, _ = strconv.Atoi(v)
		case "early_stopping_round":
			tp.EarlyStopping, _ = strconv.Atoi(v)
		default:
			p[k] = v
		}
	}
	if err := errors.Join(errs...); err != nil {
		return TrainParams{}, fmt.Errorf("%w: %w", ErrInvalidParams, err)
	}
	return tp, nil
}

// Progress is a report of a running training run.
type Progress struct {
	Stage, Message           string
	Iteration, MaxIterations int
	ValidMetric              float64
	ValidMetricName          string
}

// Trained is the outcome of Fit: the model and everything measured on it.
type Trained struct {
	Spec          featurespec.Spec
	Params        TrainParams
	ModelText     []byte
	BestIteration int
	Split         Split
	// TrainScores are the model's scores on the training rows (for the reference profile);
	// HoldoutScores on the holdout rows.
	TrainScores, HoldoutScores []float64
	// Metrics are the holdout metrics (evaluate's names).
	Metrics    map[string]float64
	Binary     *evaluate.Binary
	Regression *evaluate.Regression
	// Importance is the total gain per feature, in spec order.
	Importance []float64
	// Duration is the wall time of the boosting alone.
	Duration time.Duration
}

// Evaluator scores the holdout the same way for the challenger and the champion.
type Evaluator struct {
	Threshold  float64
	ReviewCost float64
}

// Evaluate computes the holdout metrics of scores.
func (e Evaluator) Evaluate(task featurespec.Task, holdout *Dataset, scores []float64) (map[string]float64, *evaluate.Binary, *evaluate.Regression, error) {
	if task == featurespec.TaskRegression {
		r, err := evaluate.EvaluateRegression(scores, holdout.Y)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("evaluate holdout: %w", err)
		}
		return r.Metrics(), nil, &r, nil
	}
	b, err := evaluate.EvaluateBinary(scores, holdout.Y, e.Threshold, evaluate.CostModel{ReviewCost: e.ReviewCost, Amounts: holdout.Amounts})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("evaluate holdout: %w", err)
	}
	return b.Metrics(), &b, nil, nil
}

// Fit trains a model on split.Train with early stopping on split.Valid and evaluates it on
// split.Holdout. progress, if set, is called from Fit's goroutine.
func Fit(ctx context.Context, lib *lightgbm.Library, split Split, tp TrainParams, ev Evaluator, progress func(Progress)) (_ *Trained, err error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	spec := split.Train.Spec
	names := spec.Names()
	w := spec.Len()
	matrix := func(d *Dataset) lightgbm.Matrix { return lightgbm.Matrix{Data: d.X, Rows: d.Rows(), Cols: w} }
	train, err := lib.NewDataset(matrix(split.Train), split.Train.Y, lightgbm.DatasetOptions{FeatureNames: names, Params: tp.Booster})
	if err != nil {
		return nil, fmt.Errorf("build training dataset: %w", err)
	}
	defer func() { err = errors.Join(err, train.Close()) }()
	valid, err := lib.NewDataset(matrix(split.Valid), split.Valid.Y, lightgbm.DatasetOptions{FeatureNames: names, Params: tp.Booster, Reference: train})
	if err != nil {
		return nil, fmt.Errorf("build validation dataset: %w", err)
	}
	defer func() { err = errors.Join(err, valid.Close()) }()

	// Stop on a proper scoring rule (log loss, l2), not on AUC: AUC saturates long before
	// the probabilities are calibrated, and the threshold acts on probabilities.
	monitor := "binary_logloss"
	if spec.Task == featurespec.TaskRegression {
		monitor = "l2"
	}
	opts := lightgbm.TrainOptions{
		NumRounds: tp.NumRounds, Valid: []*lightgbm.Dataset{valid}, ValidNames: []string{"valid"},
		EarlyStoppingRounds: tp.EarlyStopping, EarlyStoppingMetric: monitor,
		OnIteration: func(it lightgbm.Iteration) error {
			p := Progress{Stage: "train", Iteration: it.Round, MaxIterations: tp.NumRounds, ValidMetricName: monitor}
			for _, e := range it.Evals {
				if e.Metric == monitor {
					p.ValidMetric = e.Value
				}
			}
			progress(p)
			return nil
		},
	}
	start := time.Now()
	booster, err := lightgbm.Train(ctx, tp.Booster, train, opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer func() { err = errors.Join(err, booster.Close()) }()
	t := &Trained{Spec: spec, Params: tp, Split: split, BestIteration: booster.BestIteration(), Duration: time.Since(start)}
	text, err := booster.SaveModelString()
	if err != nil {
		return nil, fmt.Errorf("save model: %w", err)
	}
	t.ModelText = []byte(text)
	progress(Progress{Stage: "evaluate", Message: fmt.Sprintf("best iteration %d of %d", t.BestIteration, tp.NumRounds)})
	if t.TrainScores, err = booster.Predict(matrix(split.Train), lightgbm.PredictNormal, lightgbm.PredictOptions{}); err != nil {
		return nil, fmt.Errorf("score training rows: %w", err)
	}
	if t.HoldoutScores, err = booster.Predict(matrix(split.Holdout), lightgbm.PredictNormal, lightgbm.PredictOptions{}); err != nil {
		return nil, fmt.Errorf("score holdout: %w", err)
	}
	if t.Metrics, t.Binary, t.Regression, err = ev.Evaluate(spec.Task, split.Holdout, t.HoldoutScores); err != nil {
		return nil, err
	}
	if t.Importance, err = GainImportance(text, w); err != nil {
		return nil, err
	}
	return t, nil
}

// ScoreModel scores the holdout with a model given as LightGBM text (the champion).
func ScoreModel(lib *lightgbm.Library, modelText []byte, holdout *Dataset) (_ []float64, err error) {
	b, err := lib.LoadModelString(string(modelText))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	w := holdout.Spec.Len()
	if b.NumFeatures() != w {
		return nil, fmt.Errorf("model has %d features, the holdout %d", b.NumFeatures(), w)
	}
	return b.Predict(lightgbm.Matrix{Data: holdout.X, Rows: holdout.Rows(), Cols: w}, lightgbm.PredictNormal, lightgbm.PredictOptions{})
}

// GainImportance sums each feature's split gains over every tree of a LightGBM text model
// (LightGBM's importance_type="gain"), reading the trees' split_feature and split_gain lines.
func GainImportance(modelText string, numFeatures int) ([]float64, error) {
	out := make([]float64, numFeatures)
	var feats []string
	for line := range strings.Lines(modelText) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "split_feature="):
			feats = strings.Fields(strings.TrimPrefix(line, "split_feature="))
		case strings.HasPrefix(line, "split_gain="):
			gains := strings.Fields(strings.TrimPrefix(line, "split_gain="))
			if len(gains) != len(feats) {
				return nil, fmt.Errorf("feature importance: %d split gains for %d split features", len(gains), len(feats))
			}
			for i, g := range gains {
				f, err1 := strconv.Atoi(feats[i])
				v, err2 := strconv.ParseFloat(g, 64)
				if err1 != nil || err2 != nil || f < 0 || f >= numFeatures {
					return nil, fmt.Errorf("feature importance: bad split %q gain %q", feats[i], g)
				}
				out[f] += v
			}
			feats = nil
		}
	}
	return out, nil
}
