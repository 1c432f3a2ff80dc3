package lightgbm_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
)

// This example trains a binary model with early stopping, saves it, and scores one row on
// the single-row fast path. (Compiled, not run: it needs lib_lightgbm.so.)
func Example() {
	path, err := lightgbm.FindLibrary(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	lib, err := lightgbm.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	params := lightgbm.Params{"objective": "binary", "metric": "auc", "verbosity": "-1"}
	// Two features per row, row-major.
	trainX := lightgbm.Matrix{Data: []float64{ /* ... */ }, Rows: 1000, Cols: 2}
	trainY := make([]float64, 1000)
	train, err := lib.NewDataset(trainX, trainY, lightgbm.DatasetOptions{Params: params, FeatureNames: []string{"amount", "device_risk"}})
	if err != nil {
		log.Fatal(err)
	}
	defer train.Close()
	validX := lightgbm.Matrix{Data: []float64{ /* ... */ }, Rows: 200, Cols: 2}
	valid, err := lib.NewDataset(validX, make([]float64, 200), lightgbm.DatasetOptions{Params: params, Reference: train})
	if err != nil {
		log.Fatal(err)
	}
	defer valid.Close()

	booster, err := lightgbm.Train(context.Background(), params, train, lightgbm.TrainOptions{
		NumRounds: 500, Valid: []*lightgbm.Dataset{valid}, EarlyStoppingRounds: 20,
		OnIteration: func(it lightgbm.Iteration) error {
			fmt.Printf("round %d: %s=%.4f\n", it.Round, it.Evals[0].Metric, it.Evals[0].Value)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer booster.Close()
	if err := booster.SaveModelFile("model.txt"); err != nil {
		log.Fatal(err)
	}

	// One FastPredictor per goroutine (or a FastPredictorPool shared by all).
	fp, err := booster.NewFastPredictor(lightgbm.FastOptions{Kind: lightgbm.PredictNormal})
	if err != nil {
		log.Fatal(err)
	}
	defer fp.Close()
	p, err := fp.Predict([]float64{125.0, 0.7})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("fraud probability %.3f (best iteration %d)\n", p, booster.BestIteration())
}
