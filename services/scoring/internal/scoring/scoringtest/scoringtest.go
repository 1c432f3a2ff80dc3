// Package scoringtest builds what scoring tests need on the real stack: small fraud models
// trained on simulated transactions (loadtest/cmd/simulate -dataset) with the project's LightGBM binding, published and
// registered in MLflow in the layout scoring loads.
package scoringtest

import (
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
)

// Data is a small simulated fraud data set (spec fraud-v1), shared by the tests of a process.
type Data struct {
	Rows  int
	Width int
	X     []float64 // row-major
	Y     []float64
}

// Row returns row i (a view).
func (d *Data) Row(i int) []float64 { return d.X[i*d.Width : (i+1)*d.Width : (i+1)*d.Width] }

var (
	dataOnce sync.Once
	data     *Data
)

// FraudData returns 4000 simulated transactions' fraud features and labels (seed 7), built
// once per process by the simulator's command (datasetfiletest.Simulate).
func FraudData(t testing.TB) *Data {
	t.Helper()
	dataOnce.Do(func() {
		rows := datasetfiletest.Read(t, featurespec.Fraud(), "-n", "4000", "-seed", "7", "-accounts", "400", "-fraud-rate", "0.05")
		data = &Data{Rows: rows.Len(), Width: rows.Spec.Len(), X: rows.X, Y: rows.Y}
	})
	if data == nil {
		t.Fatal("simulated fraud data unavailable (an earlier test failed to build it)")
	}
	return data
}

// Library opens LightGBM's shared library at path (stacktest.LightGBMLib gives it).
func Library(t testing.TB, path string) *lightgbm.Library {
	t.Helper()
	lib, err := lightgbm.Open(path)
	if err != nil {
		t.Fatalf("open lightgbm %s: %v", path, err)
	}
	return lib
}

var (
	modelsMu sync.Mutex
	models   = map[int]string{}
)

// TrainModel trains a binary fraud model with rounds boosting rounds on FraudData and returns
// its text; models of different rounds score differently. Results are cached per rounds.
func TrainModel(t testing.TB, lib *lightgbm.Library, rounds int) []byte {
	t.Helper()
	modelsMu.Lock()
	defer modelsMu.Unlock()
	if text, ok := models[rounds]; ok {
		return []byte(text)
	}
	d := FraudData(t)
	params := lightgbm.Params{
		"objective": "binary", "num_leaves": "7", "learning_rate": "0.2", "min_data_in_leaf": "20",
		"verbosity": "-1", "num_threads": "1", "deterministic": "true", "seed": "1",
	}
	ds, err := lib.NewDataset(lightgbm.Matrix{Data: d.X, Rows: d.Rows, Cols: d.Width}, d.Y,
		lightgbm.DatasetOptions{FeatureNames: featurespec.Fraud().Names(), Params: params})
	if err != nil {
		t.Fatalf("dataset: %v", err)
	}
	defer ds.Close()
	b, err := lightgbm.Train(t.Context(), params, ds, lightgbm.TrainOptions{NumRounds: rounds})
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	defer b.Close()
	text, err := b.SaveModelString()
	if err != nil {
		t.Fatalf("save model: %v", err)
	}
	models[rounds] = text
	return []byte(text)
}

// UniqueModelName returns a registered-model name no other test uses.
func UniqueModelName(prefix string) string {
	return fmt.Sprintf("%s-%d-%s", prefix, time.Now().UnixNano(), strings.ToLower(rand.Text()[:6]))
}

// Publish uploads text as a new version of model (spec fraud-v1, the given threshold) in a
// fresh run of experiment "test-<model>" and registers it. It returns the version.
func Publish(t testing.TB, c *mlflow.Client, model string, text []byte, threshold float64) string {
	t.Helper()
	return PublishSpec(t, c, model, text, threshold, featurespec.Fraud())
}

// PublishSpec is Publish for a model trained on spec.
func PublishSpec(t testing.TB, c *mlflow.Client, model string, text []byte, threshold float64, spec featurespec.Spec) string {
	t.Helper()
	ctx := t.Context()
	expID, err := c.EnsureExperiment(ctx, "test-"+model)
	if err != nil {
		t.Fatalf("experiment: %v", err)
	}
	run, err := c.CreateRun(ctx, expID, "scoring-test", nil)
	if err != nil {
		t.Fatalf("create run: %v", err)
	}
	m, source, err := modelstore.Publish(ctx, c, run, modelstore.Bundle{
		ModelName: model, ModelText: text, Spec: spec, Threshold: threshold, LightGBMVersion: "4.7.0",
	})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := c.FinishRun(ctx, run.ID, mlflow.RunFinished); err != nil {
		t.Fatalf("finish run: %v", err)
	}
	mv, err := modelstore.Register(ctx, c, m, source, run.ID)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return mv.Version
}

// Promote points alias of model at version.
func Promote(t testing.TB, c *mlflow.Client, model, alias, version string) {
	t.Helper()
	PromoteSpec(t, c, model, alias, version, featurespec.Fraud())
}

// PromoteSpec is Promote for a version trained on spec.
func PromoteSpec(t testing.TB, c *mlflow.Client, model, alias, version string, spec featurespec.Spec) {
	t.Helper()
	s := &modelstore.Store{Client: c}
	if _, err := s.Promote(t.Context(), model, alias, version, spec.Fingerprint()); err != nil {
		t.Fatalf("promote %s version %s to %s: %v", model, version, alias, err)
	}
}
