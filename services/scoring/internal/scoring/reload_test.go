package scoring

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

// TestHotReloadUnderLoad promotes a new champion in MLflow and announces it on model.events
// while concurrent Score calls and a features stream are in flight: no call fails, every
// answer is exactly one of the two versions' LightGBM output, the answers end on the new
// version, the old model is freed after its last request, and every streamed vector gets a
// prediction from one of the two versions.
func TestHotReloadUnderLoad(t *testing.T) {
	t.Parallel()
	mlflowURL := stacktest.MLflowURL(t)
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	l := lib(t)
	d := scoringtest.FraudData(t)
	texts := map[string][]byte{}
	want := map[string][]float64{}
	c := mlflow.New(mlflowURL)
	t.Cleanup(c.HTTP.CloseIdleConnections)
	name := scoringtest.UniqueModelName("test-scoring-reload")
	for _, rounds := range []int{20, 5} {
		text := scoringtest.TrainModel(t, l, rounds)
		v := scoringtest.Publish(t, c, name, text, 0.5)
		texts[v], want[v] = text, expectedScores(t, l, text, d, lightgbm.PredictNormal)
	}
	scoringtest.Promote(t, c, name, modelstore.AliasChampion, "1")

	featuresTopic, predTopic, eventsTopic := kafkaiotest.UniqueName("reload-features"), kafkaiotest.UniqueName("reload-predictions"), kafkaiotest.UniqueName("reload-model-events")
	kafkaiotest.CreateTopics(t, brokers, 3, featuresTopic, predTopic)
	kafkaiotest.CreateTopics(t, brokers, 1, eventsTopic)
	cfg := testConfig(t)
	cfg.ModelName, cfg.CacheDir, cfg.PollInterval = name, t.TempDir(), time.Hour // only model.events can trigger the reload
	cfg.Kafka = kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("scoring"), featuresTopic)
	cfg.PredictionsTopic, cfg.ModelEventsTopic = predTopic, eventsTopic
	producer, err := kafkaio.NewProducer(cfg.Kafka, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, reg := newTestServer(t, cfg, Deps{Lib: l, Store: &modelstore.Store{Client: c, CacheDir: cfg.CacheDir}, Producer: producer}, nil)
	if err := s.LoadModels(t.Context()); err != nil {
		t.Fatal(err)
	}
	consumer, err := kafkaio.NewConsumer(cfg.Kafka, s.HandleFeatures, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runActor(t, "consumer", consumer.Run)
	runActor(t, "reload", s.ReloadActor().Run)
	runActor(t, "sync log", s.SyncLogActor().Run)
	client := scoringv1.NewScoringServiceClient(serveGRPC(t, s.Register))
	select {
	case <-s.WatchingModelEvents():
	case <-time.After(30 * time.Second):
		t.Fatal("model events watcher not started")
	}

	type answer struct {
		row     int
		version string
		score   float64
	}
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		answers  [4][]answer
		failures []error
		nAnswers atomic.Int64
		newSeen  atomic.Int64
		streamed atomic.Int64
	)
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				row := i % d.Rows
				resp, err := client.Score(t.Context(), &scoringv1.ScoreRequest{Features: vector(d, row, "load")})
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					continue
				}
				answers[w] = append(answers[w], answer{row, resp.ModelVersion, resp.Score})
				nAnswers.Add(1)
				if resp.ModelVersion == "2" {
					newSeen.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		for batch := 0; ; batch++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			msgs := make([]kafka.Message, 0, 10)
			for j := range 10 {
				fv := vector(d, (batch*10+j)%d.Rows, "stream")
				fv.TransactionId = "tx-stream-" + itoa(batch*10+j)
				b, err := proto.Marshal(fv)
				if err != nil {
					t.Error(err)
					return
				}
				msgs = append(msgs, kafka.Message{Topic: featuresTopic, Key: []byte(fv.AccountId), Value: b})
			}
			kafkaiotest.Produce(t, brokers, msgs...)
			streamed.Add(int64(len(msgs)))
		}
	})
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	kafkaiotest.WaitFor(t, 30*time.Second, "answers from version 1", func() (bool, error) { return nAnswers.Load() >= 300, nil })
	// And the stream scored some records with version 1 (on a busy machine the producer can lag
	// the sync callers by seconds).
	kafkaiotest.WaitFor(t, 60*time.Second, "stream predictions from version 1", func() (bool, error) {
		n := 0
		for _, m := range kafkaiotest.ReadTopic(t, brokers, predTopic) {
			var p eventsv1.Prediction
			if err := proto.Unmarshal(m.Value, &p); err != nil {
				return false, err
			}
			if p.Path == eventsv1.ScoringPath_SCORING_PATH_STREAM {
				n++
			}
		}
		return n >= 10, nil
	})
	old := s.champion.peek()
	scoringtest.Promote(t, c, name, modelstore.AliasChampion, "2")
	ev := &eventsv1.ModelEvent{EventId: "ev-" + name, EventTime: timestamppb.Now(), Type: eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED,
		ModelName: name, FromVersion: "1", ToVersion: "2", Alias: modelstore.AliasChampion, Actor: "test"}
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	promotedAt := time.Now()
	kafkaiotest.Produce(t, brokers, kafka.Message{Topic: eventsTopic, Key: []byte(name), Value: b})
	kafkaiotest.WaitFor(t, 30*time.Second, "answers from version 2", func() (bool, error) { return newSeen.Load() >= 300, nil })
	t.Logf("version 2 serving %v after the model event", s.champion.peek().LoadedAt.Sub(promotedAt))
	// Keep streaming a little past the swap, so the stream provably reaches version 2 too:
	// records produced from here on are fetched, and so scored, after version 2 took over.
	afterSwap := streamed.Load()
	kafkaiotest.WaitFor(t, 30*time.Second, "stream records after the swap", func() (bool, error) { return streamed.Load() >= afterSwap+30, nil })
	stopLoad()

	select {
	case <-old.Closed():
	case <-time.After(10 * time.Second):
		t.Error("version 1 not freed after its last request")
	}
	if len(failures) > 0 {
		t.Fatalf("%d Score calls failed during the reload, first: %v", len(failures), failures[0])
	}
	for w, as := range answers {
		for _, a := range as {
			if wv, ok := want[a.version]; !ok || wv[a.row] != a.score {
				t.Fatalf("worker %d: row %d answered %v by version %q, which does not match that version's model", w, a.row, a.score, a.version)
			}
		}
		if last := as[len(as)-1]; last.version != "2" {
			t.Errorf("worker %d ended on version %s, want 2", w, last.version)
		}
	}
	if got := testutil.ToFloat64(s.m.modelInfo.WithLabelValues(name, "2", "champion", cfg.Spec.Fingerprint())); got != 1 {
		t.Errorf("model_info for version 2 = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "mlops_scoring_model_info"); err != nil || n != 1 {
		t.Errorf("mlops_scoring_model_info series = %d, %v; want only the new version", n, err)
	}

	// Every streamed vector ends as a prediction of one of the two versions.
	total := int(streamed.Load())
	versions := map[string]int{}
	kafkaiotest.WaitFor(t, 60*time.Second, "stream predictions", func() (bool, error) {
		seen := map[string]bool{}
		clear(versions)
		for _, m := range kafkaiotest.ReadTopic(t, brokers, predTopic) {
			var p eventsv1.Prediction
			if err := proto.Unmarshal(m.Value, &p); err != nil {
				return false, err
			}
			if p.Path != eventsv1.ScoringPath_SCORING_PATH_STREAM {
				continue
			}
			row := (atoiSuffix(p.TransactionId)) % d.Rows
			if wv, ok := want[p.ModelVersion]; !ok || wv[row] != p.Score {
				return false, errors.New("stream prediction " + p.TransactionId + " does not match its version's model")
			}
			seen[p.TransactionId] = true
			versions[p.ModelVersion]++
		}
		return len(seen) == total, nil
	})
	if versions["1"] == 0 || versions["2"] == 0 {
		t.Errorf("stream predictions by version = %v, want both", versions)
	}
	t.Logf("sync answers %d (version 2: %d), stream predictions %v", nAnswers.Load(), newSeen.Load(), versions)
}

func atoiSuffix(id string) int {
	var i int
	_, _ = fmtSscanSuffix(id, &i)
	return i
}

// TestStartFromCacheWhileMLflowDown loads a champion once with MLflow up, then starts a
// second server with MLflow unreachable and the same cache directory: it serves the same,
// re-verified version. Without a cache the start fails with ErrNoCache.
func TestStartFromCacheWhileMLflowDown(t *testing.T) {
	t.Parallel()
	c := mlflow.New(stacktest.MLflowURL(t))
	t.Cleanup(c.HTTP.CloseIdleConnections)
	l := lib(t)
	d := scoringtest.FraudData(t)
	text := scoringtest.TrainModel(t, l, 20)
	want := expectedScores(t, l, text, d, lightgbm.PredictNormal)
	name := scoringtest.UniqueModelName("test-scoring-cache")
	v := scoringtest.Publish(t, c, name, text, 0.7)
	scoringtest.Promote(t, c, name, modelstore.AliasChampion, v)

	cfg := testConfig(t)
	cfg.ModelName, cfg.CacheDir = name, t.TempDir()
	up, _ := newTestServer(t, cfg, Deps{Lib: l, Store: &modelstore.Store{Client: c, CacheDir: cfg.CacheDir}}, nil)
	if err := up.LoadModels(t.Context()); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	down := mlflow.New(deadURL)
	down.Retry = mlflow.RetryPolicy{Attempts: 2, BaseDelay: time.Millisecond}
	t.Cleanup(down.HTTP.CloseIdleConnections)

	t.Run("with cache", func(t *testing.T) {
		s, _ := newTestServer(t, cfg, Deps{Lib: l, Store: &modelstore.Store{Client: down, CacheDir: cfg.CacheDir}}, nil)
		if err := s.LoadModels(t.Context()); err != nil {
			t.Fatalf("LoadModels() with MLflow down = %v, want the cached copy", err)
		}
		m := s.champion.peek()
		if m.Version != v || !m.FromCache() || m.Threshold != 0.7 || m.SHA256 != modelstore.SHA256Hex(text) {
			t.Errorf("loaded version %s fromCache %v threshold %v, want cached version %s", m.Version, m.FromCache(), m.Threshold, v)
		}
		resp, err := s.Score(t.Context(), &scoringv1.ScoreRequest{Features: vector(d, 11, "cache")})
		if err != nil || resp.Score != want[11] {
			t.Errorf("Score() = %v, %v; want %v", resp, err, want[11])
		}
		// A poll while MLflow stays down keeps the model.
		if err := s.refresh(t.Context(), modelstore.AliasChampion); err == nil || s.champion.peek() != m {
			t.Errorf("refresh() with MLflow down = %v, want an error and the same model", err)
		}
	})
	t.Run("without cache", func(t *testing.T) {
		cfg := cfg
		cfg.CacheDir = t.TempDir()
		s, _ := newTestServer(t, cfg, Deps{Lib: l, Store: &modelstore.Store{Client: down, CacheDir: cfg.CacheDir}}, nil)
		if err := s.LoadModels(t.Context()); !errors.Is(err, modelstore.ErrNoCache) {
			t.Errorf("LoadModels() with MLflow down and no cache = %v, want ErrNoCache", err)
		}
		if s.Ready(t.Context()) == nil {
			t.Error("Ready() without a model = nil")
		}
	})
}
