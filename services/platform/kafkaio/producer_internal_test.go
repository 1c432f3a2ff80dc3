package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// A call with more records for one partition than a batch holds keeps them in order when
// part of it fails: kafka-go would write the partition's second batch after the first one
// failed, and the retry would land the first batch's records after it. Here every attempt
// at the first produce request to partition 0 fails (NOT_LEADER_FOR_PARTITION, which kafka-go retries);
// the call must report those records failed and the later ones not attempted, write none
// of them, and a retry of the whole call must leave the partition holding 0..n-1 in order.
// The same must hold with two partitions and keys on both, and the counter counts only
// what was written.
func TestProducerKeepsKeyOrderWhenABatchFails(t *testing.T) {
	t.Parallel()
	for _, partitions := range []int32{1, 2} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			t.Parallel()
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "ordered"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			const maxAttempts = 3   // newWriter's
			var failed atomic.Int32 // written in kfake's goroutine
			c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
				req := kreq.(*kmsg.ProduceRequest)
				if !hasPartition0(req) {
					return nil, nil, false // handled as usual; the control stays
				}
				if failed.Load() == maxAttempts {
					c.DropControl()
					return nil, nil, false
				}
				failed.Add(1)
				c.KeepControl()
				resp := req.ResponseKind().(*kmsg.ProduceResponse)
				for _, rt := range req.Topics {
					st := kmsg.NewProduceResponseTopic()
					st.Topic = rt.Topic
					for _, rp := range rt.Partitions {
						sp := kmsg.NewProduceResponseTopicPartition()
						sp.Partition = rp.Partition
						sp.ErrorCode = 6 // NOT_LEADER_FOR_PARTITION
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				return resp, nil, true
			})
			reg := prometheus.NewRegistry()
			cfg := Config{Brokers: c.ListenAddrs(), BatchSize: 10, RetryBackoffMin: time.Millisecond, RetryBackoffMax: 5 * time.Millisecond}.withDefaults()
			p := newProducer(cfg, time.Microsecond, nil, newMetrics(reg))
			t.Cleanup(func() { p.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const n = 35
			keys := []string{"a", "b", "c", "d"}
			msgs := make([]kafka.Message, n)
			for i := range msgs {
				msgs[i] = kafka.Message{Topic: "ordered", Key: []byte(keys[i%len(keys)]), Value: []byte(strconv.Itoa(i))}
			}
			err = p.WriteMessages(ctx, msgs...)
			var werrs kafka.WriteErrors
			if !errors.As(err, &werrs) || len(werrs) != n {
				t.Fatalf("first write = %v, want kafka.WriteErrors for %d records", err, n)
			}
			if werrs[0] == nil || errors.Is(werrs[0], errNotAttempted) {
				t.Errorf("record 0: %v, want the produce error", werrs[0])
			}
			notAttempted := 0
			for _, e := range werrs {
				if errors.Is(e, errNotAttempted) {
					notAttempted++
				}
			}
			if notAttempted == 0 {
				t.Errorf("no record was held back after the failed batch: %v", werrs)
			}
			written := n - werrs.Count()
			if got := testutil.ToFloat64(p.m.produced.WithLabelValues("ordered")); got != float64(written) {
				t.Errorf("produced counter = %v after the failed call, want %d (the records written)", got, written)
			}
			if err := p.WriteMessages(ctx, msgs...); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if n := failed.Load(); n != maxAttempts {
				t.Fatalf("%d produce requests failed, want %d", n, maxAttempts)
			}
			// Per key, the first time each record appears must follow the call's order.
			seen := map[string]bool{}
			last := map[string]int{}
			total := 0
			err = ReadTopic(ctx, c.ListenAddrs(), "ordered", func(m kafka.Message) error {
				total++
				v, _ := strconv.Atoi(string(m.Value))
				if seen[string(m.Value)] {
					return nil
				}
				seen[string(m.Value)] = true
				if prev, ok := last[string(m.Key)]; ok && v < prev {
					t.Errorf("key %s: record %d landed after record %d", m.Key, v, prev)
				}
				last[string(m.Key)] = v
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != n {
				t.Errorf("%d distinct records on the topic, want %d", len(seen), n)
			}
			if total != n+written {
				t.Errorf("%d records on the topic, want %d (the retry duplicates the %d written by the failed call)", total, n+written, written)
			}
		})
	}
}

// hasPartition0 reports whether req writes to partition 0 of a topic.
func hasPartition0(req *kmsg.ProduceRequest) bool {
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			if rp.Partition == 0 {
				return true
			}
		}
	}
	return false
}
