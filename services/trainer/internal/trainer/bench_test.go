package trainer

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// BenchmarkTrain1M measures one fraud training run on 1,000,000 simulated rows (700k train,
// 150k validation with early stopping, 150k holdout evaluated): the boosting, scoring and
// evaluation of Fit, with the trainer's default parameters (at most 500 rounds, early stop
// after 30). Simulating the rows (loadtest/cmd/simulate) and reading them back is reported
// separately as sim-seconds.
//
//	go test -run '^$' -bench BenchmarkTrain1M -benchtime 1x ./internal/trainer
func BenchmarkTrain1M(b *testing.B) {
	lib, err := lightgbm.Open(stacktest.LightGBMLib(b))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	file := datasetfiletest.Simulate(b, "-n", "1000000", "-seed", "1", "-accounts", "20000", "-warmup", "24h")
	ds, err := FileSource{Paths: []string{file}}.Load(context.Background(), DataQuery{Spec: featurespec.Fraud()})
	if err != nil {
		b.Fatal(err)
	}
	simSeconds := time.Since(start).Seconds()
	split, err := SplitByTime(ds, TrainFraction, ValidFraction)
	if err != nil {
		b.Fatal(err)
	}
	tp, err := BuildParams(featurespec.TaskBinary, 500, 30, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var last *Trained
	for b.Loop() {
		if last, err = Fit(context.Background(), lib, split, tp, Evaluator{Threshold: 0.8, ReviewCost: 5}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(simSeconds, "sim-seconds")
	b.ReportMetric(float64(last.BestIteration), "best-iteration")
	b.ReportMetric(last.Metrics["auc"], "holdout-auc")
	b.ReportMetric(last.Duration.Seconds(), "boost-seconds")
}

// BenchmarkPromotionBootstrap20k measures the promotion decision's paired bootstrap at the
// defaults (1000 resamples, 95%) on a 20,000-row holdout.
func BenchmarkPromotionBootstrap20k(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	y, champ, chall := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		if r.Float64() < 0.03 {
			y[i] = 1
		}
		champ[i] = y[i] + r.NormFloat64()
		chall[i] = y[i] + r.NormFloat64()*0.9
	}
	for _, task := range []featurespec.Task{featurespec.TaskBinary, featurespec.TaskRegression} {
		b.Run(string(task), func(b *testing.B) {
			for b.Loop() {
				Compare(task, champ, chall, y, 1000, 0.95, 1)
			}
		})
	}
}
