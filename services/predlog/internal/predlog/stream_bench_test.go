package predlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

// Knobs of BenchmarkStreamIndexing (environment), so variants can be compared in one sitting
// without editing code.
const (
	envBenchDocs     = "PREDLOG_BENCH_DOCS"      // predictions in the topic (default 20000)
	envBenchMaxBatch = "PREDLOG_BENCH_MAX_BATCH" // kafka.max-batch of the consumer (default: kafkaio's)
	envBenchRefresh  = "PREDLOG_BENCH_REFRESH"   // es.refresh-interval of the indices (default: predlog's)
	envBenchInFlight = "PREDLOG_BENCH_IN_FLIGHT" // es.bulk-in-flight (default: predlog's)
)

// BenchmarkStreamIndexing measures the whole stream path of predlog against the real Kafka and
// Elasticsearch: a unique 6-partition topic (as predictions.v1) is pre-filled once with
// PREDLOG_BENCH_DOCS realistic predictions (16 named fraud features, latencies, trace, a top-3
// explanation on alerts and on 1% of the others, as scoring emits them); each iteration then
// runs the service's real consumer (kafkaio loop + Writer.Handler) with a fresh group into
// fresh indices until every prediction is acknowledged, checks that the index holds exactly
// that many documents, and reports
//
//   - docs/s: predictions acknowledged per wall second;
//   - predlog-cpu-s/1k-docs: CPU of this process (user+sys) per 1,000 documents;
//   - es-cpu-s/1k-docs: CPU of the Elasticsearch node (its process counter) per 1,000
//     documents; the shared node serves other users too, so compare medians;
//   - docs/cpu-s: documents per CPU second of predlog and Elasticsearch together.
//
// Run it one pass per sample: go test -run '^$' -bench StreamIndexing -benchtime 1x -count 5.
func BenchmarkStreamIndexing(b *testing.B) {
	brokers := strings.Split(stacktest.KafkaBrokers(b), ",")
	esURL := stacktest.ElasticsearchURL(b)
	n := envInt(b, envBenchDocs, 20000)
	topic := kafkaiotest.UniqueName("predlog-bench-pred")
	labels := topic + "-labels" // handler dispatch only: the benchmark sends no labels
	kafkaiotest.CreateTopics(b, brokers, 6, topic)
	b.Cleanup(func() { deleteTopics(b, brokers, topic, topic+"-dlq") })
	prefill(b, brokers, topic, n)

	for b.Loop() {
		benchPass(b, brokers, esURL, topic, labels, n)
	}
}

// benchPass consumes the whole topic once into fresh indices and reports the pass's metrics.
func benchPass(b *testing.B, brokers []string, esURL, topic, labels string, n int) {
	b.StopTimer()
	te := newTestESAt(b, esURL, kafkaiotest.UniqueName("predlogbench"))
	cfg := te.cfg
	if v := os.Getenv(envBenchRefresh); v != "" {
		cfg.RefreshInterval = v
	}
	cfg.BulkInFlight = envInt(b, envBenchInFlight, 0)
	reg := prometheus.NewRegistry()
	w := predlog.NewWriter(te.es, cfg, te.logger, reg)
	ctx := ctxT(b)
	if err := w.PutTemplates(ctx); err != nil {
		b.Fatalf("put templates: %v", err)
	}
	kc := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("predlog-bench"), topic)
	kc.DLQTopic = topic + "-dlq"
	kc.MaxWait = kafkaio.DefaultMaxWait // the service's default (kafkaiotest shortens it for tests)
	kc.MaxBatch = envInt(b, envBenchMaxBatch, 0)
	logger := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The clock starts when the first batch reaches the handler: joining the group takes
	// seconds that have nothing to do with indexing. It stops when the handler has
	// acknowledged n predictions (counted here rather than by polling the registry, which
	// would add its own CPU to predlog's).
	var first atomic.Int64
	var acked atomic.Int64
	all := make(chan struct{})
	h := w.Handler(topic, labels)
	c, err := kafkaio.NewConsumer(kc, func(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
		first.CompareAndSwap(0, time.Now().UnixNano())
		res, err := h(ctx, msgs)
		ok := 0
		for _, r := range res {
			if r.Err == nil {
				ok++
			}
		}
		if err == nil && acked.Add(int64(ok)) == int64(n) {
			close(all)
		}
		return res, err
	}, logger, reg)
	if err != nil {
		b.Fatal(err)
	}
	esCPU0 := esCPUMillis(b, te)
	cpu0 := processCPU()
	b.StartTimer()
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	select {
	case <-all:
	case err := <-done:
		b.Fatalf("consumer stopped: %v", err)
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d predictions acknowledged after 5 minutes", acked.Load(), n)
	}
	b.StopTimer()
	wall := time.Since(time.Unix(0, first.Load()))
	cpu := processCPU() - cpu0
	esCPU := esCPUMillis(b, te) - esCPU0
	cancel()
	if err := <-done; err != nil {
		b.Fatalf("consumer: %v", err)
	}
	if got := kafkaiotest.MetricValue(reg, "mlops_predlog_docs_written_total", map[string]string{"kind": "prediction"}); got != float64(n) {
		b.Fatalf("mlops_predlog_docs_written_total = %v, want %d", got, n)
	}
	if got := countDocs(b, te); got != n {
		b.Fatalf("index holds %d documents, want %d", got, n)
	}
	k := float64(n) / 1000
	esSec := float64(esCPU) / 1000
	b.ReportMetric(float64(n)/wall.Seconds(), "docs/s")
	b.ReportMetric(cpu.Seconds()/k, "predlog-cpu-s/1k-docs")
	b.ReportMetric(esSec/k, "es-cpu-s/1k-docs")
	b.ReportMetric(float64(n)/(cpu.Seconds()+esSec), "docs/cpu-s")
	deleteIndices(b, te)
	b.StartTimer()
}

// prefill writes n realistic predictions to topic, keyed by transaction id.
func prefill(b *testing.B, brokers []string, topic string, n int) {
	b.Helper()
	const chunk = 5000
	for from := 0; from < n; from += chunk {
		msgs := make([]kafka.Message, 0, min(chunk, n-from))
		for i := from; i < min(from+chunk, n); i++ {
			tx := fmt.Sprintf("tx-%s-%d", topic[len(topic)-10:], i)
			v, err := proto.Marshal(streamPrediction(tx, i))
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(tx), Value: v,
				Headers: []kafka.Header{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)}}})
		}
		kafkaiotest.Produce(b, brokers, msgs...)
	}
}

// streamPrediction is a prediction as the stream path produces it: fraud-v1 features
// (positional, named by the spec), amount and currency, latencies, trace; about 3% alerts, and
// a top-3 explanation on alerts and on 1% of the others (scoring's defaults); no shadow.
func streamPrediction(tx string, i int) *eventsv1.Prediction {
	at := time.Now().UTC().Add(-time.Duration(i) * time.Millisecond)
	s := featurespec.Fraud()
	values := make([]float64, s.Len())
	for k := range values {
		values[k] = float64((i*31+k*17)%1000) / 37
	}
	score := float64((i*7919)%1000) / 1000
	dec := eventsv1.Decision_DECISION_PASS
	if score >= 0.97 {
		dec = eventsv1.Decision_DECISION_ALERT
	}
	p := &eventsv1.Prediction{
		EventId: "pred-" + tx, EventTime: timestamppb.New(at), TransactionId: tx,
		AccountId: "acc-" + strconv.Itoa(i%2000), ModelName: "fraud", ModelVersion: "3",
		Task: eventsv1.Task_TASK_BINARY_CLASSIFICATION, Score: score, Decision: dec, Threshold: 0.97,
		Features: &eventsv1.FeatureVector{
			EventId: "fv-" + tx, EventTime: timestamppb.New(at), TransactionId: tx,
			SpecName: "fraud", SpecVersion: strconv.Itoa(s.Version), Values: values,
			ComputedAt: timestamppb.New(at.Add(2 * time.Millisecond)), Amount: 10 + float64(i%5000)/7, Currency: "EUR",
		},
		Latency: &eventsv1.Latency{InferenceSeconds: 0.00011, FeaturesSeconds: 0.0012, ExplanationSeconds: 0.0003,
			EndToEndSeconds: 0.021},
		ScoredAt: timestamppb.New(at.Add(5 * time.Millisecond)),
		Path:     eventsv1.ScoringPath_SCORING_PATH_STREAM,
		Trace:    &eventsv1.TraceContext{Traceparent: fmt.Sprintf("00-%032x-%016x-01", i+1, i+7)},
	}
	if dec == eventsv1.Decision_DECISION_ALERT || i%100 == 0 {
		names := s.Names()
		p.Explanation = &eventsv1.Explanation{BaseValue: -2.5, Method: "tree_shap"}
		for k := range 3 {
			p.Explanation.Contributions = append(p.Explanation.Contributions,
				&eventsv1.Contribution{Feature: names[k], Value: values[k], Contribution: 0.3 - float64(k)/10})
		}
	}
	return p
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// esCPUMillis is the CPU time the Elasticsearch node's process has used (node stats).
func esCPUMillis(b *testing.B, te *testES) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := te.es.Do(ctx, http.MethodGet, "/_nodes/_local/stats/process?filter_path=nodes.*.process.cpu.total_in_millis", nil)
	if err != nil {
		b.Fatalf("node stats: %v", err)
	}
	var res struct {
		Nodes map[string]struct {
			Process struct {
				CPU struct {
					TotalInMillis int64 `json:"total_in_millis"`
				} `json:"cpu"`
			} `json:"process"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Nodes) != 1 {
		b.Fatalf("node stats %s: %v", body, err)
	}
	for _, n := range res.Nodes {
		return n.Process.CPU.TotalInMillis
	}
	return 0
}

func countDocs(b *testing.B, te *testES) int {
	b.Helper()
	ctx := ctxT(b)
	if err := te.es.Refresh(ctx, te.cfg.IndexPrefix+"-*"); err != nil {
		b.Fatalf("refresh: %v", err)
	}
	body, err := te.es.Do(ctx, http.MethodGet, "/"+te.cfg.IndexPrefix+"/_count", nil)
	if err != nil {
		b.Fatalf("count: %v", err)
	}
	var res struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		b.Fatal(err)
	}
	return res.Count
}

func deleteIndices(b *testing.B, te *testES) {
	b.Helper()
	pattern := te.cfg.IndexPrefix + "-*"
	if _, err := te.es.Do(ctxT(b), http.MethodDelete, "/"+pattern+"?ignore_unavailable=true", nil); err != nil {
		b.Errorf("delete %s: %v", pattern, err)
	}
}

// deleteTopics removes the benchmark's topics: each run's 20,000 records and partitions would
// otherwise stay on the shared broker.
func deleteTopics(b *testing.B, brokers []string, names ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &kafka.Transport{ClientID: "predlog-bench"}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second, Transport: tr}
	res, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	if err != nil {
		b.Errorf("delete topics %v: %v", names, err)
		return
	}
	for name, err := range res.Errors {
		if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
			b.Errorf("delete topic %s: %v", name, err)
		}
	}
}
