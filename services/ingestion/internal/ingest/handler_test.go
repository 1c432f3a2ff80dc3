package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// testConfig returns a valid configuration for brokers with the given topics.
func testConfig(t testing.TB, brokers []string, raw, validated, dlq string) Config {
	t.Helper()
	cfg, err := ParseConfig([]string{
		"-kafka.brokers", strings.Join(brokers, ","), "-kafka.topics", raw, "-kafka.dlq-topic", dlq,
		"-ingest.validated-topic", validated, "-kafka.batch-timeout", "1ms",
	}, func(string) string { return "" })
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	return cfg
}

func newTestServer(t testing.TB, cfg Config, reg prometheus.Registerer) *Server {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler), reg, WithClock(fixedClock))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// contractInput returns the i-th valid tx.raw record, JSON or protobuf in turn, with or
// without a content-type header.
func contractInput(i int) kafka.Message {
	tx := validTx()
	tx.EventId = ""
	tx.TransactionId = fmt.Sprintf("tx-%05d", i)
	tx.AccountId = fmt.Sprintf("acc-%d", i%7)
	tx.Amount = float64(i + 1)
	var value []byte
	var ct string
	if i%2 == 0 {
		value, _ = protojson.Marshal(tx)
		ct = topics.ContentTypeJSON
	} else {
		value, _ = proto.Marshal(tx)
		ct = topics.ContentTypeProtobuf
	}
	m := kafka.Message{Key: []byte(tx.AccountId), Value: value}
	if i%3 != 0 { // every third record relies on sniffing
		m.Headers = []kafka.Header{{Key: topics.HeaderContentType, Value: []byte(ct)}}
	}
	return m
}

// invalidInput returns the i-th invalid record: a decode or a validation failure.
func invalidInput(i int) kafka.Message {
	if i%2 == 0 {
		return kafka.Message{Key: []byte("bad"), Value: []byte(`{"amount": "lots"}`),
			Headers: []kafka.Header{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeJSON)}}}
	}
	tx := validTx()
	tx.TransactionId = fmt.Sprintf("bad-%d", i)
	tx.Currency = "XYZ"
	v, _ := proto.Marshal(tx)
	return kafka.Message{Key: []byte("bad"), Value: v}
}

func rawContract(t *testing.T) kafkaiotest.Contract {
	return kafkaiotest.Contract{
		Name:         "ingest",
		OutputTopics: []string{"validated"},
		NewHandler: func(tb testing.TB, env kafkaiotest.Env) kafkaio.BatchHandler {
			cfg := testConfig(tb, env.Brokers, env.InputTopic, env.Topics["validated"], env.DLQTopic)
			return newTestServer(tb, cfg, nil).RawHandler()
		},
		Valid:   contractInput,
		Invalid: invalidInput,
		Verify:  verifyValidated,
	}
}

// verifyValidated checks that every accepted input is on the validated topic as a protobuf
// Transaction keyed by account id, stamped, with a content type and trace context, and
// that nothing else is.
func verifyValidated(t testing.TB, _ kafkaiotest.Env, accepted []kafka.Message, outputs map[string][]kafka.Message) {
	t.Helper()
	want := map[string]bool{}
	for _, in := range accepted {
		var tx eventsv1.Transaction
		if err := NewDecoder(RejectUnknown).Decode(nil, false, in.Value, &tx); err != nil {
			t.Fatalf("decode accepted input: %v", err)
		}
		want[tx.TransactionId] = true
	}
	got := map[string]bool{}
	eventIDs := map[string]string{}
	for _, out := range outputs["validated"] {
		if ct, _ := kafkaio.HeaderValue(out.Headers, topics.HeaderContentType); string(ct) != topics.ContentTypeProtobuf {
			t.Errorf("output content-type %q", ct)
		}
		if tp, ok := kafkaio.HeaderValue(out.Headers, topics.HeaderTraceparent); !ok || !kafkaio.ValidTraceparent(tp) {
			t.Errorf("output without a valid traceparent")
		}
		var tx eventsv1.Transaction
		if err := proto.Unmarshal(out.Value, &tx); err != nil {
			t.Fatalf("output is not a protobuf Transaction: %v", err)
		}
		if string(out.Key) != tx.AccountId {
			t.Errorf("output key %q, want account id %q", out.Key, tx.AccountId)
		}
		if !tx.IngestedAt.AsTime().Equal(testNow) || tx.EventId == "" {
			t.Errorf("output %s: ingested_at %v, event_id %q", tx.TransactionId, tx.IngestedAt.AsTime(), tx.EventId)
		}
		if prev, ok := eventIDs[tx.TransactionId]; ok && prev != tx.EventId {
			t.Errorf("redelivered %s got event id %s, first %s", tx.TransactionId, tx.EventId, prev)
		}
		eventIDs[tx.TransactionId] = tx.EventId
		if !want[tx.TransactionId] {
			t.Errorf("unexpected output %s", tx.TransactionId)
		}
		got[tx.TransactionId] = true
	}
	for id := range want {
		if !got[id] {
			t.Errorf("accepted %s missing from the validated topic", id)
		}
	}
}

func TestRawHandlerContract(t *testing.T) {
	t.Parallel()
	kafkaiotest.RunHandlerContract(t, kafkaiotest.StartBroker(t), rawContract(t))
}

func TestRawHandlerContractRealKafka(t *testing.T) {
	t.Parallel()
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	kafkaiotest.RunHandlerContract(t, brokers, rawContract(t))
}

// TestRawHandlerOutcomes calls the handler directly: dead-letter reasons, duplicates versus
// redeliveries, and the metrics.
func TestRawHandlerOutcomes(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := newTestServer(t, testConfig(t, []string{"127.0.0.1:1"}, "raw", "validated", "dlq"), reg)
	h := s.RawHandler()
	at := func(offset int64, m kafka.Message) kafka.Message {
		m.Topic, m.Partition, m.Offset = "raw", 1, offset
		return m
	}
	first := at(10, contractInput(1))
	msgs := []kafka.Message{
		first,
		at(11, invalidInput(0)), // decode
		at(12, invalidInput(1)), // validation
		at(13, kafka.Message{Value: make([]byte, 70_000)}), // too large
		first,                    // redelivery: same partition and offset
		at(14, contractInput(1)), // same bytes at another offset: a resend
	}
	other := validTx()
	other.EventId = "another-emission"
	other.TransactionId = "tx-00001" // the id of contractInput(1), different content
	v, _ := proto.Marshal(other)
	msgs = append(msgs, at(15, kafka.Message{Value: v}))

	res, err := h(context.Background(), msgs)
	if err != nil {
		t.Fatalf("handler: %v", err)
	}
	wantReasons := []string{"", topics.ReasonDecode, topics.ReasonValidation, topics.ReasonValidation, "", "", ReasonDuplicate}
	for i, r := range res {
		if got := kafkaio.Reason(r.Err); got != wantReasons[i] {
			t.Errorf("record %d: reason %q (err %v), want %q", i, got, r.Err, wantReasons[i])
		}
		if r.Err != nil && !kafkaio.IsPermanent(r.Err) {
			t.Errorf("record %d: transient error %v", i, r.Err)
		}
		if (r.Err == nil) != (len(r.Output) == 1) {
			t.Errorf("record %d: %d outputs with err %v", i, len(r.Output), r.Err)
		}
	}
	if msg := res[2].Err.Error(); !strings.Contains(msg, `currency: "XYZ" is not an active ISO 4217 code`) || !strings.Contains(msg, "raw/1/12") {
		t.Errorf("validation error %q does not name the field and the record", msg)
	}
	if res[0].Output[0].Value == nil || string(res[0].Output[0].Key) != "acc-1" {
		t.Errorf("output key %q", res[0].Output[0].Key)
	}
	for name, tt := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"ok":         {s.metrics.event(sourceKafka, outcomeOK), 3},
		"invalid":    {s.metrics.event(sourceKafka, outcomeInvalid), 4},
		"decode":     {s.metrics.rejects[topics.ReasonDecode], 1},
		"validation": {s.metrics.rejects[topics.ReasonValidation], 2},
		"duplicate":  {s.metrics.rejects[ReasonDuplicate], 1},
		"received":   {s.metrics.received.WithLabelValues("raw"), 7},
		"currency":   {s.metrics.fieldErrs.WithLabelValues("currency", CodeUnknownValue), 1},
	} {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("metric %s = %v, want %v", name, got, tt.want)
		}
	}
}

// TestRawHandlerAcceptsSimulatorJSON feeds the JSON shape the load-test simulator writes.
func TestRawHandlerAcceptsSimulatorJSON(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig(t, []string{"127.0.0.1:1"}, "raw", "validated", "dlq"), nil)
	line := `{"transaction_id":"sim-7","account_id":"acc-00042","amount":31.2,"currency":"PLN","merchant_id":"m-0007",` +
		`"merchant_category":"grocery","device_id":"dev-1","country":"PL","latitude":52.23,"longitude":21.012,` +
		`"channel":"web","event_time":"` + testNow.Add(-time.Second).Format(time.RFC3339Nano) + `"}`
	res, err := s.RawHandler()(context.Background(), []kafka.Message{{Topic: "raw", Value: []byte(line)}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("handler: %v, %v", err, res[0].Err)
	}
	var tx eventsv1.Transaction
	if err := proto.Unmarshal(res[0].Output[0].Value, &tx); err != nil {
		t.Fatal(err)
	}
	if tx.Channel != eventsv1.Channel_CHANNEL_ONLINE || tx.GetLatitude() != 52.23 || !tx.IngestedAt.AsTime().Equal(testNow) {
		t.Errorf("decoded %v", &tx)
	}
}
