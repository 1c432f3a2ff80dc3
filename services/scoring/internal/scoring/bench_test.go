package scoring

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

// benchRounds is the size of the benchmark model (binary, 7 leaves per tree, 16 features).
const benchRounds = 100

// BenchmarkScoreGRPC measures the sync path end to end over a loopback gRPC connection with
// 8 concurrent callers (features in the request, no explanation asked; alerts are still
// explained for the prediction log, as in production). It reports requests/s, the p50 and
// p99 latency seen by the callers and the p99 of the inference time the service measured
// (Latency.inference_seconds, what mlops_scoring_inference_duration_seconds observes), with
// no alerts and with a quarter of the vectors crossing the threshold.
func BenchmarkScoreGRPC(b *testing.B) {
	l := lib(b)
	d := scoringtest.FraudData(b)
	text := scoringtest.TrainModel(b, l, benchRounds)
	reqs := make([]*scoringv1.ScoreRequest, 1000)
	for i := range reqs {
		reqs[i] = &scoringv1.ScoreRequest{Features: vector(d, i, "bench")}
	}
	scores := slices.Clone(expectedScores(b, l, text, d, lightgbm.PredictNormal)[:len(reqs)])
	slices.Sort(scores)
	for _, bc := range []struct {
		name      string
		threshold float64
	}{
		{name: "alerts=0", threshold: 1},
		{name: "alerts=25pct", threshold: scores[len(scores)*3/4]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig(b)
			s, _ := newTestServer(b, cfg, syncBenchDeps(b, cfg), localModel(b, l, text, "1", bc.threshold))
			runActor(b, "sync log", s.SyncLogActor().Run)
			client := scoringv1.NewScoringServiceClient(serveGRPC(b, s.Register))
			var mu sync.Mutex
			var lat, infer []time.Duration
			b.SetParallelism(4) // 4 x GOMAXPROCS callers
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				mine := make([]time.Duration, 0, 1024)
				mineInf := make([]time.Duration, 0, 1024)
				i := 0
				for pb.Next() {
					t0 := time.Now()
					resp, err := client.Score(b.Context(), reqs[i%len(reqs)])
					if err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
					mineInf = append(mineInf, time.Duration(resp.GetLatency().GetInferenceSeconds()*1e9))
					i++
				}
				mu.Lock()
				lat = append(lat, mine...)
				infer = append(infer, mineInf...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			slices.Sort(infer)
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(infer[len(infer)*99/100].Nanoseconds())/1000, "infer-p99-µs")
			}
		})
	}
}

// BenchmarkHandleFeatures measures the stream handler per record: decode, check, predict,
// explain alerts and the 1% sample, encode, build the output record.
func BenchmarkHandleFeatures(b *testing.B) {
	l := lib(b)
	d := scoringtest.FraudData(b)
	text := scoringtest.TrainModel(b, l, benchRounds)
	const batch = 500
	msgs := make([]kafka.Message, batch)
	for i := range msgs {
		v, err := proto.Marshal(vector(d, i, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: "features.v1", Offset: int64(i), Value: v}
	}
	for _, bc := range []struct {
		name       string
		threshold  float64
		sampleRate float64
	}{
		{name: "explain-alerts-and-1pct", threshold: 0.8, sampleRate: 0.01},
		{name: "no-explanations", threshold: 2, sampleRate: 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.ExplainSampleRate = bc.sampleRate
			s, _ := newTestServer(b, cfg, Deps{}, localModel(b, l, text, "1", bc.threshold))
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				res, err := s.HandleFeatures(b.Context(), msgs)
				if err != nil || len(res) != batch || res[0].Err != nil {
					b.Fatalf("HandleFeatures() = %v", err)
				}
			}
			b.StopTimer()
			explained := 0
			res, _ := s.HandleFeatures(b.Context(), msgs)
			for _, r := range res {
				var p eventsv1.Prediction
				if proto.Unmarshal(r.Output[0].Value, &p) == nil && p.Explanation != nil {
					explained++
				}
			}
			b.ReportMetric(float64(explained)/batch, "explained/record")
		})
	}
}

// BenchmarkPredictSingleRow compares the scorer's model call (FastPredictorPool behind the
// Predictor interface) with LightGBM's fast single-row predictor used directly.
func BenchmarkPredictSingleRow(b *testing.B) {
	l := lib(b)
	d := scoringtest.FraudData(b)
	text := scoringtest.TrainModel(b, l, benchRounds)
	b.Run("scoring-model", func(b *testing.B) {
		m := localModel(b, l, text, "1", 0.8)
		defer m.release()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := m.predictor.Predict(d.Row(i % 1000)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lightgbm-fast-direct", func(b *testing.B) {
		bo, err := l.LoadModelString(string(text))
		if err != nil {
			b.Fatal(err)
		}
		defer bo.Close()
		fp, err := bo.NewFastPredictor(lightgbm.FastOptions{NumThreads: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer fp.Close()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := fp.Predict(d.Row(i % 1000)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStreamBatchVsSingleRow compares, per row, scoring a fetched batch of 500 rows with
// 500 single-row calls against one batch Predict call (one thread, as several consumers
// would share the cores; and LightGBM's OpenMP default).
func BenchmarkStreamBatchVsSingleRow(b *testing.B) {
	l := lib(b)
	d := scoringtest.FraudData(b)
	text := scoringtest.TrainModel(b, l, benchRounds)
	const rows = 500
	mat := lightgbm.Matrix{Data: d.X[:rows*d.Width], Rows: rows, Cols: d.Width}
	b.Run("single-row", func(b *testing.B) {
		m := localModel(b, l, text, "1", 0.8)
		defer m.release()
		for n := 0; n < b.N; n += rows {
			for i := range rows {
				if _, err := m.predictor.Predict(d.Row(i)); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	for _, threads := range []int{1, 0} {
		name := "batch-1-thread"
		if threads == 0 {
			name = "batch-openmp"
		}
		b.Run(name, func(b *testing.B) {
			bo, err := l.LoadModelString(string(text))
			if err != nil {
				b.Fatal(err)
			}
			defer bo.Close()
			out := make([]float64, rows)
			for n := 0; n < b.N; n += rows {
				if _, err := bo.PredictInto(out, mat, lightgbm.PredictNormal, lightgbm.PredictOptions{NumThreads: threads}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScoreSync measures the sync Score call in process (no gRPC): validation, predict,
// the answer and the prediction handed to the log, which publishes it to a real broker in
// the background; no alerts, so nothing is explained. It is the service's own share of a
// Score request's CPU next to the transport's.
func BenchmarkScoreSync(b *testing.B) {
	l := lib(b)
	d := scoringtest.FraudData(b)
	text := scoringtest.TrainModel(b, l, benchRounds)
	cfg := testConfig(b)
	s, _ := newTestServer(b, cfg, syncBenchDeps(b, cfg), localModel(b, l, text, "1", 1))
	runActor(b, "sync log", s.SyncLogActor().Run)
	reqs := make([]*scoringv1.ScoreRequest, 1000)
	for i := range reqs {
		reqs[i] = &scoringv1.ScoreRequest{Features: vector(d, i, "bench-sync")}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Score(b.Context(), reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}
