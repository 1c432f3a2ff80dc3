package predlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

// Topic names the unit-level tests hand records from (the handler dispatches on them).
const (
	predTopic  = "test-predictions"
	labelTopic = "test-labels"
)

// baseTime is the event time of the test transactions.
var baseTime = time.Date(2026, 11, 14, 9, 26, 53, 589_000_000, time.UTC)

// testES is a client to the real Elasticsearch plus a unique index namespace that is deleted
// when the test ends.
type testES struct {
	es     *esbulk.Client
	cfg    predlog.WriterConfig
	logger *slog.Logger
}

func newTestES(t testing.TB) *testES {
	t.Helper()
	url := stacktest.ElasticsearchURL(t)
	return newTestESAt(t, url, kafkaiotest.UniqueName("predlogtest"))
}

func newTestESAt(t testing.TB, url, prefix string) *testES {
	t.Helper()
	es, err := esbulk.New(url, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	te := &testES{
		es:     es,
		cfg:    predlog.WriterConfig{IndexPrefix: prefix, PendingIndex: prefix + "-pending"},
		logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = es.Do(ctx, http.MethodDelete, "/"+prefix+"-*?ignore_unavailable=true", nil)
		_, _ = es.Do(ctx, http.MethodDelete, "/_index_template/"+prefix, nil)
		_, _ = es.Do(ctx, http.MethodDelete, "/_index_template/"+prefix+"-pending", nil)
	})
	return te
}

// writer returns a writer with templates installed and its registry.
func (te *testES) writer(t testing.TB) (*predlog.Writer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	w := predlog.NewWriter(te.es, te.cfg, te.logger, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.PutTemplates(ctx); err != nil {
		t.Fatalf("put templates: %v", err)
	}
	return w, reg
}

// search returns the _source of every document behind the alias, by _id.
func (te *testES) search(t testing.TB) map[string]map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := te.es.Refresh(ctx, te.cfg.IndexPrefix+"-*"); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	body, err := te.es.Do(ctx, http.MethodGet, "/"+te.cfg.IndexPrefix+"/_search?size=10000&ignore_unavailable=true&allow_no_indices=true", nil)
	if err != nil {
		if strings.Contains(err.Error(), "index_not_found") {
			return map[string]map[string]any{}
		}
		t.Fatalf("search: %v", err)
	}
	var res struct {
		Hits struct {
			Hits []struct {
				Index  string         `json:"_index"`
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("decode search: %v", err)
	}
	out := map[string]map[string]any{}
	for _, h := range res.Hits.Hits {
		if _, dup := out[h.ID]; dup {
			t.Errorf("transaction %s has more than one document (one in %s)", h.ID, h.Index)
		}
		h.Source["_index"] = h.Index
		out[h.ID] = h.Source
	}
	return out
}

// countPending returns the number of documents in the pending-label index.
func (te *testES) countPending(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = te.es.Refresh(ctx, te.cfg.PendingIndex)
	body, err := te.es.Do(ctx, http.MethodGet, "/"+te.cfg.PendingIndex+"/_count?ignore_unavailable=true&allow_no_indices=true", nil)
	if err != nil {
		if strings.Contains(err.Error(), "index_not_found") {
			return 0
		}
		t.Fatalf("count pending: %v", err)
	}
	var res struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	return res.Count
}

// fraudValues is a valid fraud-v1 vector with one missing value (NaN) at position 3.
func fraudValues(i int) []float64 {
	s := featurespec.Fraud()
	v := make([]float64, s.Len())
	for k := range v {
		v[k] = float64(k%2) + float64(i%7)/10
	}
	v[3] = nanValue()
	return v
}

func nanValue() float64 { var z float64; return z / z }

// prediction returns a fully populated prediction for transaction txID.
func prediction(txID string, i int) *eventsv1.Prediction {
	at := baseTime.Add(time.Duration(i) * time.Second)
	score := float64(i%100) / 100
	dec := eventsv1.Decision_DECISION_PASS
	if score >= 0.8 {
		dec = eventsv1.Decision_DECISION_ALERT
	}
	return &eventsv1.Prediction{
		EventId:       fmt.Sprintf("pred-%s-%d", txID, i),
		EventTime:     timestamppb.New(at),
		TransactionId: txID,
		AccountId:     fmt.Sprintf("acc-%d", i%13),
		ModelName:     "fraud",
		ModelVersion:  fmt.Sprintf("%d", 1+i%2),
		Task:          eventsv1.Task_TASK_BINARY_CLASSIFICATION,
		Score:         score,
		Decision:      dec,
		Threshold:     0.8,
		Features: &eventsv1.FeatureVector{
			EventId: "fv-" + txID, EventTime: timestamppb.New(at), TransactionId: txID,
			SpecName: "fraud", SpecVersion: "1", Values: fraudValues(i),
			ComputedAt: timestamppb.New(at.Add(2 * time.Millisecond)), Amount: 10 + float64(i), Currency: "EUR",
		},
		Explanation: &eventsv1.Explanation{BaseValue: -2.5, Method: "tree_shap", Contributions: []*eventsv1.Contribution{
			{Feature: "amount", Value: 10 + float64(i), Contribution: 0.75},
			{Feature: "device_risk_score", Value: nanValue(), Contribution: -0.25},
		}},
		Shadow: &eventsv1.ShadowPrediction{ModelName: "fraud", ModelVersion: "3", Score: 0.5,
			Decision: eventsv1.Decision_DECISION_PASS, Threshold: 0.8, InferenceSeconds: 0.0002},
		Latency:  &eventsv1.Latency{InferenceSeconds: 0.0001, FeaturesSeconds: 0.001, ExplanationSeconds: 0.0003, EndToEndSeconds: 0.02},
		ScoredAt: timestamppb.New(at.Add(5 * time.Millisecond)),
		Path:     eventsv1.ScoringPath_SCORING_PATH_STREAM,
		Trace:    &eventsv1.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
}

// label returns a fraud label for txID that became known after hours.
func label(txID string, actual float64, after time.Duration) *eventsv1.Label {
	return &eventsv1.Label{
		EventId: "label-" + txID + "-" + after.String(), EventTime: timestamppb.New(baseTime.Add(after)),
		TransactionId: txID, AccountId: "acc-1", Label: actual, Kind: eventsv1.LabelKind_LABEL_KIND_FRAUD, Source: "chargeback",
	}
}

// record wraps an event as a Kafka record of topic, as the consumer loop hands it over.
func record(t testing.TB, topic string, key string, m proto.Message, offset int64) kafka.Message {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: topic, Offset: offset, Key: []byte(key), Value: b,
		Headers: []kafka.Header{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)}}}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
