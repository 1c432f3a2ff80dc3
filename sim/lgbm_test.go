package sim_test

import (
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/sim"
)

// trainerParams are the trainer's default LightGBM parameters (services/trainer
// BuildParams) for the objective, with the trainer's round limit and early stopping.
func trainerParams(objective string) lightgbm.Params {
	p := lightgbm.Params{
		"learning_rate": "0.05", "num_leaves": "31", "min_data_in_leaf": "50", "feature_fraction": "0.9",
		"bagging_fraction": "0.8", "bagging_freq": "1", "lambda_l2": "1", "max_bin": "255", "seed": "42",
		"deterministic": "true", "force_row_wise": "true", "verbosity": "-1", "objective": objective,
	}
	if objective == "binary" {
		p["metric"] = "auc,binary_logloss"
	} else {
		p["metric"] = "l2,l1"
	}
	return p
}

const (
	trainerRounds        = 500
	trainerEarlyStopping = 30
)

// model is a LightGBM booster trained as the trainer trains.
type model struct {
	b    *lightgbm.Booster
	cols int
}

// predict scores the rows of d.
func (m *model) predict(t testing.TB, d *sim.Dataset) []float64 {
	t.Helper()
	p, err := m.b.Predict(lightgbm.Matrix{Data: d.X, Rows: d.Rows(), Cols: m.cols}, lightgbm.PredictNormal, lightgbm.PredictOptions{})
	if err != nil {
		t.Fatalf("predict: %v", err)
	}
	return p
}

// openLightGBM opens the project's LightGBM library (skipped when MLOPS_TEST_LIGHTGBM_LIB is
// unset, failed under MLOPS_TEST_REQUIRE_STACK=1).
func openLightGBM(t testing.TB) *lightgbm.Library {
	t.Helper()
	lib, err := lightgbm.Open(stacktest.LightGBMLib(t))
	if err != nil {
		t.Fatalf("open lightgbm: %v", err)
	}
	return lib
}

// fit trains on train with early stopping on valid, the trainer's way. y picks the target
// (d.Y, or d.Outcome for the purchase scenario).
func fit(t testing.TB, lib *lightgbm.Library, objective string, train, valid *sim.Dataset, y func(*sim.Dataset) []float64) *model {
	t.Helper()
	params := trainerParams(objective)
	w := train.Spec.Len()
	opts := lightgbm.DatasetOptions{FeatureNames: train.Spec.Names(), Params: params}
	dtrain, err := lib.NewDataset(lightgbm.Matrix{Data: train.X, Rows: train.Rows(), Cols: w}, y(train), opts)
	if err != nil {
		t.Fatalf("train dataset: %v", err)
	}
	defer dtrain.Close()
	opts.Reference = dtrain
	dvalid, err := lib.NewDataset(lightgbm.Matrix{Data: valid.X, Rows: valid.Rows(), Cols: w}, y(valid), opts)
	if err != nil {
		t.Fatalf("valid dataset: %v", err)
	}
	defer dvalid.Close()
	b, err := lightgbm.Train(t.Context(), params, dtrain, lightgbm.TrainOptions{NumRounds: trainerRounds,
		Valid: []*lightgbm.Dataset{dvalid}, EarlyStoppingRounds: trainerEarlyStopping})
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &model{b: b, cols: w}
}

// slice returns rows [from, to) of d (views of its slices).
func slice(d *sim.Dataset, from, to int) *sim.Dataset {
	w := d.Spec.Len()
	out := &sim.Dataset{Spec: d.Spec, X: d.X[from*w : to*w], Y: d.Y[from:to], EventTimes: d.EventTimes[from:to],
		LabelTimes: d.LabelTimes[from:to]}
	if d.Outcome != nil {
		out.Outcome = d.Outcome[from:to]
	}
	if d.Patterns != nil {
		out.Patterns = d.Patterns[from:to]
	}
	if d.Truth != nil {
		out.Truth = d.Truth[from:to]
	}
	return out
}

// splitByTime cuts d (in event-time order) 70/15/15 into train, validation and holdout,
// as the trainer does.
func splitByTime(d *sim.Dataset) (train, valid, holdout *sim.Dataset) {
	n := d.Rows()
	a, b := n*70/100, n*85/100
	return slice(d, 0, a), slice(d, a, b), slice(d, b, n)
}

func labels(d *sim.Dataset) []float64   { return d.Y }
func outcomes(d *sim.Dataset) []float64 { return d.Outcome }

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func mse(pred, y []float64) float64 {
	var s float64
	for i := range pred {
		s += (pred[i] - y[i]) * (pred[i] - y[i])
	}
	return s / float64(len(pred))
}
