package kafkaio_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// A service consumes tx.raw, writes an upper-cased copy of each record to tx.validated and
// dead-letters empty records. The consumer commits a record only after its output was
// acknowledged by Kafka.
func ExampleConsumerActor() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	ctx := context.Background()
	if err := kafkaio.EnsureTopics(ctx, brokers, []kafkaio.TopicSpec{
		{Name: "tx.raw", Partitions: 1}, {Name: "tx.validated", Partitions: 1}, {Name: "tx.dlq", Partitions: 1},
	}); err != nil {
		panic(err)
	}

	// Publish three records, one of them invalid.
	p, err := kafkaio.NewProducer(kafkaio.Config{Brokers: brokers, ClientID: "example"}, nil, nil)
	if err != nil {
		panic(err)
	}
	for _, v := range []string{"a", "", "b"} {
		if err := p.WriteMessages(ctx, kafkaio.NewRecord("tx.raw", []byte("acct-1"), []byte(v), "text/plain", nil)); err != nil {
			panic(err)
		}
	}
	if err := p.Close(); err != nil {
		panic(err)
	}

	handle := func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
		if len(m.Value) == 0 {
			return nil, kafkaio.PermanentReason(kafkaio.ReasonValidation, fmt.Errorf("empty record at offset %d", m.Offset))
		}
		up := []byte(strings.ToUpper(string(m.Value)))
		return []kafka.Message{kafkaio.NewRecord("tx.validated", m.Key, up, "text/plain", m.Headers)}, nil
	}
	cfg := kafkaio.Config{
		Brokers: brokers, ClientID: "example", GroupID: "example", Topics: []string{"tx.raw"}, DLQTopic: "tx.dlq",
		MaxWait: 50 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: time.Second,
	}
	actor := kafkaio.ConsumerActor(cfg, handle, slog.New(slog.DiscardHandler), prometheus.NewRegistry())

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- actor.Run(runCtx) }()

	// Read the two outputs and the dead letter, then stop the consumer.
	read := func(topic string, n int) []kafka.Message {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, MaxWait: 50 * time.Millisecond})
		defer r.Close()
		var out []kafka.Message
		for len(out) < n {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				panic(err)
			}
			out = append(out, m)
		}
		return out
	}
	for _, m := range read("tx.validated", 2) {
		fmt.Printf("validated %s=%s\n", m.Key, m.Value)
	}
	dead := read("tx.dlq", 1)[0]
	reason, _ := kafkaio.HeaderValue(dead.Headers, kafkaio.HeaderDLQReason)
	offset, _ := kafkaio.HeaderValue(dead.Headers, kafkaio.HeaderDLQSourceOffset)
	fmt.Printf("dead letter from offset %s: %s\n", offset, reason)
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// validated acct-1=A
	// validated acct-1=B
	// dead letter from offset 1: validation
	// stopped: <nil>
}
