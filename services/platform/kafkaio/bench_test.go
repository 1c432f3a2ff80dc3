package kafkaio_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
)

// benchInput creates an input and an output topic of 3 partitions and fills the input with
// n records of 100 bytes.
func benchInput(b *testing.B, brokers []string, n int) (in, out string) {
	b.Helper()
	in, out = kafkaiotest.UniqueName("bench-in"), kafkaiotest.UniqueName("bench-out")
	kafkaiotest.CreateTopics(b, brokers, 3, in, out)
	value := make([]byte, 100)
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		msgs := make([]kafka.Message, 0, chunk)
		for i := start; i < min(n, start+chunk); i++ {
			msgs = append(msgs, kafka.Message{Topic: in, Key: []byte("acct-" + strconv.Itoa(i%1000)), Value: value})
		}
		kafkaiotest.Produce(b, brokers, msgs...)
	}
	return in, out
}

// BenchmarkConsumeProduce measures the consumer loop end to end on the in-process broker:
// fetch, handle (copy each record to an output topic), write with acks=all, commit.
func BenchmarkConsumeProduce(b *testing.B) {
	brokers := kafkaiotest.StartBroker(b)
	in, out := benchInput(b, brokers, b.N)
	h := func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
		return []kafka.Message{{Topic: out, Key: m.Key, Value: m.Value, Headers: m.Headers}}, nil
	}
	cfg := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("bench"), in)
	reg := prometheus.NewRegistry()
	c, err := kafkaio.NewConsumer(cfg, kafkaio.PerMessage(h), discardLogger(), reg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- c.Run(ctx) }()
	kafkaiotest.WaitFor(b, 10*time.Minute, "all records consumed", func() (bool, error) {
		return kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in}) >= float64(b.N), nil
	})
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkPlainKafkaGoLoop is the baseline: the at-least-once loop written directly with
// kafka-go, one record at a time (FetchMessage, WriteMessages with acks=all, CommitMessages).
func BenchmarkPlainKafkaGoLoop(b *testing.B) {
	brokers := kafkaiotest.StartBroker(b)
	in, out := benchInput(b, brokers, b.N)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: kafkaiotest.UniqueName("plain"), GroupTopics: []string{in},
		MaxWait: 50 * time.Millisecond, HeartbeatInterval: 250 * time.Millisecond, SessionTimeout: 6 * time.Second,
		StartOffset: kafka.FirstOffset,
	})
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Microsecond, Transport: tr}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.WriteMessages(ctx, kafka.Message{Topic: out, Key: m.Key, Value: m.Value, Headers: m.Headers}); err != nil {
			b.Fatal(err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Error(err)
	}
	if err := r.Close(); err != nil {
		b.Error(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkPlainKafkaGoConsume is the ceiling: kafka-go fetching alone, with asynchronous
// commits every second and nothing produced.
func BenchmarkPlainKafkaGoConsume(b *testing.B) {
	brokers := kafkaiotest.StartBroker(b)
	in, _ := benchInput(b, brokers, b.N)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: kafkaiotest.UniqueName("plain"), GroupTopics: []string{in},
		MaxWait: 50 * time.Millisecond, HeartbeatInterval: 250 * time.Millisecond, SessionTimeout: 6 * time.Second,
		StartOffset: kafka.FirstOffset, CommitInterval: time.Second, QueueCapacity: 500,
	})
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := r.Close(); err != nil {
		b.Error(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
