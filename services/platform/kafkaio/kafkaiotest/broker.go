// Package kafkaiotest helps test Kafka code: an in-process Kafka-protocol broker for fast
// tests, helpers to create, read and inspect topics and consumer groups, and
// RunHandlerContract, the suite every Kafka handler of the project passes.
package kafkaiotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// StartBroker starts an in-process Kafka-protocol cluster (franz-go's kfake) of one broker
// on a loopback port, closed when the test ends, and returns its bootstrap address. Group
// session timeouts down to 100ms are accepted so tests can use short ones; topics are not
// created implicitly (use kafkaio.EnsureTopics). opts are appended to those defaults.
func StartBroker(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	all := append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.DefaultNumPartitions(3),
	}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// ConsumerConfig returns a consumer configuration tuned for tests: short fetch waits,
// heartbeats and backoffs, so rebalances and retries take milliseconds to a second instead
// of seconds. The session timeout stays at 6s, the smallest real Kafka accepts by default.
func ConsumerConfig(brokers []string, group string, topics ...string) kafkaio.Config {
	return kafkaio.Config{
		Brokers:           brokers,
		ClientID:          "kafkaiotest",
		GroupID:           group,
		Topics:            topics,
		MaxWait:           50 * time.Millisecond,
		RetryBackoffMin:   5 * time.Millisecond,
		RetryBackoffMax:   100 * time.Millisecond,
		ShutdownTimeout:   5 * time.Second,
		SessionTimeout:    6 * time.Second,
		HeartbeatInterval: 250 * time.Millisecond,
		RebalanceTimeout:  5 * time.Second,
		LagInterval:       50 * time.Millisecond,
	}
}

// UniqueName returns prefix followed by a random suffix, for topics and groups that must not
// collide with other tests or earlier runs against the same broker.
func UniqueName(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// CreateTopics creates topics with the given partition count (replication factor 1) and
// waits until they have leaders; it fails the test on error.
func CreateTopics(t testing.TB, brokers []string, partitions int, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	specs := make([]kafkaio.TopicSpec, 0, len(topics))
	for _, name := range topics {
		specs = append(specs, kafkaio.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: 1})
	}
	if err := kafkaio.EnsureTopics(ctx, brokers, specs); err != nil {
		t.Fatalf("create topics %v: %v", topics, err)
	}
}

// client returns a kafka-go admin client and a function releasing its connections.
func client(brokers []string) (*kafka.Client, func()) {
	tr := &kafka.Transport{ClientID: "kafkaiotest", DialTimeout: 10 * time.Second}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: tr}, tr.CloseIdleConnections
}

// Partitions returns the partition ids of topic, sorted (kafkaio.Partitions).
func Partitions(ctx context.Context, brokers []string, topic string) ([]int, error) {
	return kafkaio.Partitions(ctx, brokers, topic)
}

// EndOffsets returns the high watermark (the offset the next record will get) of each
// partition of topic (kafkaio.EndOffsets).
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int]int64, error) {
	return kafkaio.EndOffsets(ctx, brokers, topic)
}

// CommittedOffsets returns the offsets group has committed on each partition of topic (the
// offset of the next record to consume; -1 when nothing was committed).
func CommittedOffsets(ctx context.Context, brokers []string, group, topic string) (map[int]int64, error) {
	ids, err := Partitions(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	c, done := client(brokers)
	defer done()
	resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, resp.Error)
	}
	out := make(map[int]int64, len(ids))
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetch offsets of group %q partition %d: %w", group, p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// ReadTopic returns every record currently in topic, partition by partition in offset order
// (kafkaio.ReadTopic). It fails the test if the records cannot be read within 30s.
func ReadTopic(t testing.TB, brokers []string, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	if err := kafkaio.ReadTopic(ctx, brokers, topic, func(m kafka.Message) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatalf("read topic %q: %v", topic, err)
	}
	return out
}

// Produce writes msgs (each naming its Topic) with acks=all and fails the test on error.
func Produce(t testing.TB, brokers []string, msgs ...kafka.Message) {
	t.Helper()
	p, err := kafkaio.NewProducer(kafkaio.Config{Brokers: brokers, ClientID: "kafkaiotest", BatchTimeout: time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A topic created a moment ago may still be electing its leaders ("Not Leader For
	// Partition"): the records that failed with a temporary error are sent again, the others
	// are not (no duplicates).
	pending := msgs
	for {
		err = p.WriteMessages(ctx, pending...)
		var werrs kafka.WriteErrors
		if err == nil || !errors.As(err, &werrs) || ctx.Err() != nil {
			break
		}
		var again []kafka.Message
		for i, e := range werrs {
			if e == nil {
				continue
			}
			var ke kafka.Error
			if !errors.As(e, &ke) || !ke.Temporary() {
				again = nil
				break
			}
			again = append(again, pending[i])
		}
		if len(again) == 0 {
			break
		}
		pending = again
		time.Sleep(200 * time.Millisecond) // the broker's leader election, not a goroutine
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("produce %d records: %v", len(msgs), err)
	}
}

// WaitFor polls cond every 10ms until it returns true, and fails the test when it has not
// within timeout. cond's error message (the last one) explains the failure.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last: %v)", timeout, what, last)
		}
		<-tick.C
	}
}
