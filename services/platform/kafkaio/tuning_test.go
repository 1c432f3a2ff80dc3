package kafkaio_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// The tuning knobs parse from flags and environment like the others, default to what the
// benchmarks chose, and reject what kafka-go cannot do with a clear error.
func TestTuningConfig(t *testing.T) {
	t.Parallel()
	parse := func(t *testing.T, args []string, env map[string]string) kafkaio.Config {
		t.Helper()
		var c kafkaio.Config
		fs := flag.NewFlagSet("svc", flag.ContinueOnError)
		c.RegisterFlags(fs, func(k string) string { return env[k] })
		if err := flagenv.Parse(fs, args); err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("defaults", func(t *testing.T) {
		c := parse(t, nil, nil)
		if c.Compression != kafkaio.DefaultCompression || c.CommitInterval != kafkaio.DefaultCommitInterval ||
			c.BatchWait != kafkaio.DefaultBatchWait || c.BatchSize != kafkaio.DefaultBatchSize {
			t.Errorf("Compression %q CommitInterval %v BatchWait %v BatchSize %d, want the defaults", c.Compression, c.CommitInterval, c.BatchWait, c.BatchSize)
		}
	})
	t.Run("flags over env", func(t *testing.T) {
		c := parse(t, []string{"-kafka.compression", "zstd", "-kafka.commit-interval", "-1s"},
			map[string]string{"KAFKA_COMPRESSION": "lz4", "KAFKA_COMMIT_INTERVAL": "1s", "KAFKA_BATCH_WAIT": "3ms"})
		if c.Compression != "zstd" || c.CommitInterval != -time.Second || c.BatchWait != 3*time.Millisecond {
			t.Errorf("Compression %q CommitInterval %v BatchWait %v, want zstd -1s 3ms", c.Compression, c.CommitInterval, c.BatchWait)
		}
	})
	for _, codec := range []string{"", "none", "gzip", "snappy", "lz4", "zstd"} {
		if err := (kafkaio.Config{Compression: codec}).Validate(); err != nil {
			t.Errorf("Validate(Compression %q) = %v, want nil", codec, err)
		}
	}
	err := kafkaio.Config{Compression: "brotli", BatchWait: -time.Millisecond}.Validate()
	for _, want := range []string{`kafka compression "brotli": want none, gzip, snappy, lz4 or zstd`, "kafka batch wait -1ms: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, want)
		}
	}
}

// Every codec the producer offers round-trips through the real broker: values, keys and
// headers come back as written.
func TestProducerCompressionRealKafka(t *testing.T) {
	t.Parallel()
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			topic := kafkaiotest.UniqueName("compress-" + codec)
			kafkaiotest.CreateTopics(t, brokers, 1, topic)
			kafkaiotest.DeleteTopicsOnCleanup(t, brokers, topic)
			p, err := kafkaio.NewProducer(kafkaio.Config{Brokers: brokers, Compression: codec, BatchTimeout: time.Millisecond}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			var want []kafka.Message
			for i := range 200 {
				v := []byte(strings.Repeat(fmt.Sprintf("record %d of %s; ", i, codec), 8))
				want = append(want, kafkaio.NewRecord(topic, []byte(fmt.Sprint("k", i%7)), v, kafkaio.ContentTypeJSON, nil))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.WriteMessages(ctx, want...); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			got := kafkaiotest.ReadTopic(t, brokers, topic)
			type rec struct{ Key, Value, Headers string }
			flat := func(ms []kafka.Message) map[string]rec {
				out := map[string]rec{}
				for _, m := range ms {
					out[string(m.Value)] = rec{string(m.Key), string(m.Value), fmt.Sprint(m.Headers)}
				}
				return out
			}
			if len(got) != len(want) {
				t.Fatalf("read %d records, want %d", len(got), len(want))
			}
			if diff := cmp.Diff(flat(want), flat(got)); diff != "" {
				t.Errorf("records (-written +read):\n%s", diff)
			}
		})
	}
}

// With a commit interval longer than the test, the only commit is the one the consumer
// makes when it stops: every record it finished is committed by the time Run returns, and
// nothing while it runs. A negative interval commits each batch before the next one.
func TestConsumerCommitInterval(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	const n = 20
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"flushed on stop", time.Hour}, {"synchronous", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, out := kafkaiotest.UniqueName("commit-in"), kafkaiotest.UniqueName("commit-out")
			kafkaiotest.CreateTopics(t, brokers, 1, in, out)
			var msgs []kafka.Message
			for i := range n {
				msgs = append(msgs, kafka.Message{Topic: in, Value: fmt.Appendf(nil, "%d", i)})
			}
			kafkaiotest.Produce(t, brokers, msgs...)
			group := kafkaiotest.UniqueName("g")
			cfg := kafkaiotest.ConsumerConfig(brokers, group, in)
			cfg.CommitInterval = tc.interval
			reg := prometheus.NewRegistry()
			var mu sync.Mutex
			handled := 0
			h := func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
				mu.Lock()
				handled++
				mu.Unlock()
				return []kafka.Message{{Topic: out, Value: m.Value}}, nil
			}
			c, err := kafkaio.NewConsumer(cfg, kafkaio.PerMessage(h), discardLogger(), reg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			committed := func() int64 {
				offs, err := kafkaiotest.CommittedOffsets(context.Background(), brokers, group, in)
				if err != nil {
					t.Fatal(err)
				}
				return offs[0]
			}
			kafkaiotest.WaitFor(t, 30*time.Second, "all records handled", func() (bool, error) {
				return kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in}) >= n, nil
			})
			if tc.interval < 0 {
				if got := committed(); got != n {
					t.Errorf("committed offset while running = %d, want %d (synchronous commits)", got, n)
				}
			} else if got := committed(); got > 0 {
				t.Errorf("committed offset while running = %d, want none before the interval or the stop", got)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := committed(); got != n {
				t.Errorf("committed offset after Run returned = %d, want %d", got, n)
			}
			if got := len(kafkaiotest.ReadTopic(t, brokers, out)); got != n {
				t.Errorf("%d outputs, want %d", got, n)
			}
		})
	}
}

// BatchWait holds a batch open for records that arrive soon after its first one, up to
// MaxBatch, which ends the wait early.
func TestConsumerBatchWait(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	in := kafkaiotest.UniqueName("wait-in")
	kafkaiotest.CreateTopics(t, brokers, 1, in)
	cfg := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("g"), in)
	cfg.BatchWait, cfg.MaxBatch = time.Minute, 5
	var mu sync.Mutex
	var sizes []int
	h := func(_ context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
		mu.Lock()
		sizes = append(sizes, len(msgs))
		mu.Unlock()
		return make([]kafkaio.Result, len(msgs)), nil
	}
	reg := prometheus.NewRegistry()
	c, err := kafkaio.NewConsumer(cfg, h, discardLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// One record at a time, each produce acknowledged before the next: the first batch
	// must still hold five.
	for i := range 10 {
		kafkaiotest.Produce(t, brokers, kafka.Message{Topic: in, Value: fmt.Appendf(nil, "%d", i)})
	}
	kafkaiotest.WaitFor(t, 30*time.Second, "ten records handled", func() (bool, error) {
		return kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in}) >= 10, nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]int{5, 5}, sizes); diff != "" {
		t.Errorf("batch sizes (-want +got):\n%s", diff)
	}
}

// With the default fetch wait (2s: an idle partition's fetch is held that long), stopping a
// consumer still takes at most about one fetch wait, and the records it finished are
// committed.
func TestConsumerStopsWithDefaultMaxWait(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	in := kafkaiotest.UniqueName("idle")
	kafkaiotest.CreateTopics(t, brokers, 3, in)
	group := kafkaiotest.UniqueName("g")
	cfg := kafkaio.Config{Brokers: brokers, GroupID: group, Topics: []string{in}, SessionTimeout: 6 * time.Second,
		HeartbeatInterval: 250 * time.Millisecond, DLQTopic: kafkaiotest.UniqueName("dlq")}
	reg := prometheus.NewRegistry()
	c, err := kafkaio.NewConsumer(cfg, kafkaio.PerMessage(func(context.Context, kafka.Message) ([]kafka.Message, error) { return nil, nil }), discardLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	kafkaiotest.Produce(t, brokers, kafka.Message{Topic: in, Key: []byte("k"), Value: []byte("v")})
	kafkaiotest.WaitFor(t, time.Minute, "the record consumed", func() (bool, error) {
		return kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in}) >= 1, nil
	})
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > kafkaio.DefaultMaxWait+2*time.Second {
		t.Errorf("Run took %v to return after cancel, want about one fetch wait (%v) at most", took, kafkaio.DefaultMaxWait)
	}
	offs, err := kafkaiotest.CommittedOffsets(context.Background(), brokers, group, in)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, o := range offs {
		sum += max(o, 0)
	}
	if sum != 1 {
		t.Errorf("committed offsets %v, want the one record committed", offs)
	}
}
