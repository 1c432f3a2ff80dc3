package kafkaio

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// The producer's metadata covers the topics it has written to and no others (kafka-go would
// otherwise refresh the whole cluster's every few seconds); a new topic restarts the writer
// with the larger set and the records of every topic arrive. After Close, writes fail.
func TestProducerMetadataTopics(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "a", "b", "other"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := newProducer(Config{Brokers: c.ListenAddrs()}.withDefaults(), time.Millisecond, nil, newMetrics(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	metadataTopics := func() []string {
		p.mu.RLock()
		defer p.mu.RUnlock()
		return p.transport.MetadataTopics
	}
	if err := p.WriteMessages(ctx, kafka.Message{Topic: "a", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a"}, metadataTopics()); diff != "" {
		t.Errorf("metadata topics after writing to a (-want +got):\n%s", diff)
	}
	if err := p.WriteMessages(ctx, kafka.Message{Topic: "b", Value: []byte("2")}, kafka.Message{Topic: "a", Value: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, metadataTopics()); diff != "" {
		t.Errorf("metadata topics after writing to b (-want +got):\n%s", diff)
	}
	for topic, want := range map[string]int64{"a": 2, "b": 1, "other": 0} {
		offs, err := EndOffsets(ctx, c.ListenAddrs(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if offs[0] != want {
			t.Errorf("topic %s holds %d records, want %d", topic, offs[0], want)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteMessages(ctx, kafka.Message{Topic: "a", Value: []byte("4")}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write to a known topic after Close = %v, want io.ErrClosedPipe", err)
	}
	if err := p.WriteMessages(ctx, kafka.Message{Topic: "other", Value: []byte("5")}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write to a new topic after Close = %v, want io.ErrClosedPipe", err)
	}
	unused := newProducer(Config{Brokers: c.ListenAddrs()}.withDefaults(), 0, nil, newMetrics(nil))
	if err := unused.Close(); err != nil {
		t.Errorf("Close of a producer that never wrote = %v", err)
	}
	if err := unused.WriteMessages(ctx, kafka.Message{Topic: "a"}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write after Close of a producer that never wrote = %v, want io.ErrClosedPipe", err)
	}
}
