package scoring

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

// BenchmarkScoreSyncAlert measures how long a sync Score call of an alert takes to answer
// (in process, no gRPC): with the explanation requested by the caller (computed before the
// answer) and without (the log's explanation is computed by the explanation workers after
// the answer). Between calls the timer stops until the explanation workers are idle, so the
// number is the answer latency of an unsaturated server, not the explainer's throughput.
func BenchmarkScoreSyncAlert(b *testing.B) {
	l := lib(b)
	d := scoringtest.FraudData(b)
	text := scoringtest.TrainModel(b, l, benchRounds)
	for _, bc := range []struct {
		name    string
		explain bool
	}{
		{name: "explain=false", explain: false},
		{name: "explain=true", explain: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig(b)
			// A tiny threshold: every vector is an alert, so every prediction is explained for the
			// log. The producer is never written to while the broker address refuses: records
			// go to the spill directory.
			s, _ := newTestServer(b, cfg, Deps{}, localModel(b, l, text, "1", 1e-9))
			runActor(b, "sync log", s.SyncLogActor().Run)
			reqs := make([]*scoringv1.ScoreRequest, 1000)
			for i := range reqs {
				reqs[i] = &scoringv1.ScoreRequest{Features: vector(d, i, "bench-alert"), Explain: bc.explain}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Score(b.Context(), reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.waitExplained()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkInferenceWhileExplaining measures the champion's single-row predict while another
// goroutine computes SHAP contributions of the same model without pause, as the sync path
// does for alerts. LightGBM serialises single-row predictions of one booster (an exclusive
// lock in Booster::PredictSingleRow), so a predictor sharing its booster with the explainer
// waits for whole TreeSHAP computations. Reports p50 and p99 of predict in µs.
func BenchmarkInferenceWhileExplaining(b *testing.B) {
	l := lib(b)
	d := scoringtest.FraudData(b)
	m := localModel(b, l, scoringtest.TrainModel(b, l, benchRounds), "1", 0.8)
	defer m.release()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]float64, d.Width+1)
		for i := 0; !stop.Load(); i++ {
			if _, err := m.explainer.PredictInto(buf, d.Row(i%1000)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := m.predictor.Predict(d.Row(i % 1000)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
}
