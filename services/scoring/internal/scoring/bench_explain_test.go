package scoring

import (
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

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

// BenchmarkInferenceWhileExplaining measures the champion's single-row predict, timed as the
// service times it (wall clock around the call, what mlops_scoring_inference_duration_seconds
// observes), from 8 goroutines while another computes SHAP contributions of the same model
// without pause, as the sync path did for alerts. Next to the wall-clock percentiles it
// reports the CPU time the calling thread spent in the same window (CLOCK_THREAD_CPUTIME_ID:
// a cgo call stays on its thread): when the wall p99 is far above the CPU p99, the time went
// to waiting for a core (the thread descheduled mid-call), not to the model.
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
	var mu sync.Mutex
	var wall, cpu []time.Duration
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var w, c []time.Duration
		for i := 0; pb.Next(); i++ {
			c0, t0 := threadCPU(), time.Now()
			if _, err := m.predictor.Predict(d.Row(i % 1000)); err != nil {
				b.Error(err)
				return
			}
			w = append(w, time.Since(t0))
			c = append(c, threadCPU()-c0)
		}
		mu.Lock()
		wall, cpu = append(wall, w...), append(cpu, c...)
		mu.Unlock()
	})
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	slices.Sort(wall)
	slices.Sort(cpu)
	if len(wall) > 0 {
		b.ReportMetric(float64(wall[len(wall)/2].Nanoseconds())/1000, "wall-p50-µs")
		b.ReportMetric(float64(wall[len(wall)*99/100].Nanoseconds())/1000, "wall-p99-µs")
		b.ReportMetric(float64(cpu[len(cpu)/2].Nanoseconds())/1000, "cpu-p50-µs")
		b.ReportMetric(float64(cpu[len(cpu)*99/100].Nanoseconds())/1000, "cpu-p99-µs")
	}
}

// threadCPU returns the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}
