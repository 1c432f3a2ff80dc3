package kafkaio_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestConsumerLifecycle(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	in := kafkaiotest.UniqueName("life")
	kafkaiotest.CreateTopics(t, brokers, 1, in)
	h := kafkaio.PerMessage(func(context.Context, kafka.Message) ([]kafka.Message, error) { return nil, nil })

	t.Run("invalid config fails the actor at once", func(t *testing.T) {
		t.Parallel()
		a := kafkaio.ConsumerActor(kafkaio.Config{}, func(context.Context, kafka.Message) ([]kafka.Message, error) { return nil, nil }, discardLogger(), nil)
		if err := a.Run(context.Background()); err == nil {
			t.Error("Run() = nil, want a config error")
		}
	})
	t.Run("cancel before any record, twice", func(t *testing.T) {
		t.Parallel()
		c, err := kafkaio.NewConsumer(kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("g"), in), h, discardLogger(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Run(ctx); err != nil {
			t.Errorf("Run(cancelled) = %v, want nil", err)
		}
		if err := c.Run(ctx); err == nil {
			t.Error("second Run() = nil, want an error")
		}
	})
}

// A batch handler that breaks its contract (an output without a topic) dead-letters the
// record with reason "handler" instead of retrying forever; a short prefix is handed back.
func TestConsumerBatchHandlerRules(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	in, out, dlq := kafkaiotest.UniqueName("in"), kafkaiotest.UniqueName("out"), kafkaiotest.UniqueName("dlq")
	kafkaiotest.CreateTopics(t, brokers, 2, in, out, dlq)
	const n = 40
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: in, Key: []byte("k" + strconv.Itoa(i%5)), Value: []byte(strconv.Itoa(i))}
	}
	kafkaiotest.Produce(t, brokers, msgs...)

	h := func(_ context.Context, batch []kafka.Message) ([]kafkaio.Result, error) {
		// Handle at most 3 records per call: the loop must hand the rest back.
		batch = batch[:min(len(batch), 3)]
		res := make([]kafkaio.Result, len(batch))
		for i, m := range batch {
			topic := out
			if string(m.Value) == "7" {
				topic = "" // contract violation
			}
			res[i].Output = []kafka.Message{{Topic: topic, Key: m.Key, Value: m.Value}}
		}
		return res, nil
	}
	cfg := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("g"), in)
	cfg.DLQTopic = dlq
	reg := prometheus.NewRegistry()
	c, err := kafkaio.NewConsumer(cfg, h, discardLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	kafkaiotest.WaitFor(t, 30*time.Second, "all records committed", func() (bool, error) {
		got := kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in})
		return got == n, errors.New("consumed " + strconv.FormatFloat(got, 'f', 0, 64))
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v", err)
	}
	outs := kafkaiotest.ReadTopic(t, brokers, out)
	if len(outs) != n-1 {
		t.Errorf("%d outputs, want %d", len(outs), n-1)
	}
	dl := kafkaiotest.ReadTopic(t, brokers, dlq)
	if len(dl) != 1 || string(dl[0].Value) != "7" {
		t.Fatalf("dlq = %v, want the record with value 7", dl)
	}
	if r, _ := kafkaio.HeaderValue(dl[0].Headers, kafkaio.HeaderDLQReason); string(r) != kafkaio.ReasonHandler {
		t.Errorf("dlq-reason = %q, want %q", r, kafkaio.ReasonHandler)
	}
	// Per key, outputs keep input order.
	last := map[string]int{}
	for _, m := range outs {
		v, _ := strconv.Atoi(string(m.Value))
		if l, ok := last[string(m.Key)]; ok && v < l {
			t.Errorf("key %s: %d after %d", m.Key, v, l)
		}
		last[string(m.Key)] = v
	}
}

// A batch handler may return an empty prefix (no result at all) without an error: nothing
// was done, and every record is handed back later, like the records after a short prefix.
// That is not a contract violation: no record may be dead-lettered or skipped, also while
// the loop narrows a permanently failing batch down one record at a time.
func TestConsumerEmptyPrefixIsHandedBack(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	in, out, dlq := kafkaiotest.UniqueName("in"), kafkaiotest.UniqueName("out"), kafkaiotest.UniqueName("dlq")
	kafkaiotest.CreateTopics(t, brokers, 1, in, out, dlq)
	const n = 20
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: in, Key: []byte("k"), Value: []byte(strconv.Itoa(i))}
	}
	kafkaiotest.Produce(t, brokers, msgs...)

	seen := map[int64]bool{} // first offsets of batches handed to h before (one goroutine calls h)
	h := func(_ context.Context, batch []kafka.Message) ([]kafkaio.Result, error) {
		if !seen[batch[0].Offset] {
			seen[batch[0].Offset] = true
			return []kafkaio.Result{}, nil // empty prefix: nothing done, try again later
		}
		if len(batch) > 1 {
			for _, m := range batch {
				if string(m.Value) == "5" {
					// Makes the loop narrow the batch down, one record per call.
					return nil, kafkaio.Permanent(errors.New("batch rejected as a whole"))
				}
			}
		}
		res := make([]kafkaio.Result, len(batch))
		for i, m := range batch {
			res[i].Output = []kafka.Message{{Topic: out, Key: m.Key, Value: m.Value}}
		}
		return res, nil
	}
	cfg := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("g"), in)
	cfg.DLQTopic = dlq
	reg := prometheus.NewRegistry()
	c, err := kafkaio.NewConsumer(cfg, h, discardLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	kafkaiotest.WaitFor(t, 30*time.Second, "all records committed", func() (bool, error) {
		got := kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in})
		return got == n, errors.New("consumed " + strconv.FormatFloat(got, 'f', 0, 64))
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v", err)
	}
	if dl := kafkaiotest.ReadTopic(t, brokers, dlq); len(dl) != 0 {
		t.Errorf("%d records dead-lettered, want none; first: value %q", len(dl), dl[0].Value)
	}
	var got []string
	for _, m := range kafkaiotest.ReadTopic(t, brokers, out) {
		got = append(got, string(m.Value))
	}
	var want []string
	for i := range n {
		want = append(want, strconv.Itoa(i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("outputs %v, want each record once in order %v", got, want)
	}
}
