package scoring

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfig is a valid Config for in-process servers.
func testConfig(t testing.TB) Config {
	t.Helper()
	cfg, err := ParseConfig([]string{"-explain.sample-rate", "0", "-sync.spill-dir", t.TempDir()}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// lib returns the real LightGBM library (skips without it).
func lib(t testing.TB) *lightgbm.Library {
	t.Helper()
	return scoringtest.Library(t, stacktest.LightGBMLib(t))
}

// localModel builds a Model from text as if loaded from the registry as version.
func localModel(t testing.TB, l *lightgbm.Library, text []byte, version string, threshold float64) *Model {
	t.Helper()
	spec := featurespec.Fraud()
	m, err := buildModel(l, modelstore.Loaded{
		ModelName: "fraud-test", Version: version, ModelText: text, Spec: spec,
		Manifest: modelstore.Manifest{ModelName: "fraud-test", SHA256: modelstore.SHA256Hex(text), FeatureSpecFingerprint: spec.Fingerprint(), Task: "binary", Threshold: threshold},
	}, modelOptions{DefaultThreshold: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// expectedScores scores every row of d with a fresh booster of text, batch API.
func expectedScores(t testing.TB, l *lightgbm.Library, text []byte, d *scoringtest.Data, kind lightgbm.PredictKind) []float64 {
	t.Helper()
	b, err := l.LoadModelString(string(text))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out, err := b.Predict(lightgbm.Matrix{Data: d.X, Rows: d.Rows, Cols: d.Width}, kind, lightgbm.PredictOptions{NumThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vector returns row i of d as a fraud-v1 FeatureVector.
func vector(d *scoringtest.Data, i int, suffix string) *eventsv1.FeatureVector {
	now := time.Now()
	return &eventsv1.FeatureVector{
		EventId: fmt.Sprintf("fv-%s-%d", suffix, i), EventTime: timestamppb.New(now.Add(-time.Second)),
		TransactionId: fmt.Sprintf("tx-%s-%d", suffix, i), AccountId: fmt.Sprintf("acc-%d", i%50),
		SpecName: "fraud", SpecVersion: "1", Values: append([]float64(nil), d.Row(i)...),
		ComputedAt: timestamppb.New(now), IngestedAt: timestamppb.New(now.Add(-10 * time.Millisecond)), Amount: d.Row(i)[0], Currency: "EUR",
	}
}

// newTestServer returns a server with m installed as champion (m may be nil).
func newTestServer(t testing.TB, cfg Config, deps Deps, m *Model) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := New(cfg, deps, discard(), reg)
	if m != nil {
		s.Install("champion", m)
	}
	t.Cleanup(s.Close)
	return s, reg
}

// runActor runs fn until the test ends and waits for it.
func runActor(t testing.TB, name string, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := fn(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// waitExplained waits until every queued explanation job is done (benchmarks only: no Score
// call may run concurrently).
func (s *Server) waitExplained() { s.log.inflight.Wait() }

// syncBenchDeps returns Deps with a producer to a fresh in-process broker's predictions
// topic (cfg's), so benchmarks pay for the sync log like the service does.
func syncBenchDeps(t testing.TB, cfg Config) Deps {
	t.Helper()
	brokers := kafkaiotest.StartBroker(t)
	kafkaiotest.CreateTopics(t, brokers, 1, cfg.PredictionsTopic)
	kc := cfg.Kafka
	kc.Brokers = brokers
	producer, err := kafkaio.NewProducer(kc, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return Deps{Producer: producer}
}
