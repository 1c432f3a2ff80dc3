package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
)

// OffsetRange is what one partition holds: offsets First (the log start) up to End (the high
// watermark, the offset the next record will get), End exclusive. End == First means empty.
type OffsetRange struct {
	First, End int64
}

// The package-level reads (Partitions, Offsets, EndOffsets, ReadRange, ReadTopic) take a
// bootstrap list and speak plain text without authentication, for tests and the local stack;
// the Config methods of the same names (PartitionIDs for Partitions) use the Config's
// brokers, TLS and SASL settings.

// adminClient returns a kafka-go client for one-off requests, with c's TLS and SASL, and a
// function releasing its connections.
func (c Config) adminClient(clientID string) (*kafka.Client, func()) {
	tr := c.mustTransport()
	tr.ClientID = clientID
	return &kafka.Client{Addr: kafka.TCP(c.withDefaults().Brokers...), Timeout: 10 * time.Second, Transport: tr}, tr.CloseIdleConnections
}

// Partitions returns the partition ids of topic, sorted. A missing topic is an error.
func Partitions(ctx context.Context, brokers []string, topic string) ([]int, error) {
	return Config{Brokers: brokers}.PartitionIDs(ctx, topic)
}

// PartitionIDs is the package-level Partitions with c's brokers and security (the field
// Partitions is the partition count of new topics).
func (c Config) PartitionIDs(ctx context.Context, topic string) ([]int, error) {
	cl, done := c.adminClient("mlops-admin")
	defer done()
	return partitionsOf(ctx, cl, topic)
}

func partitionsOf(ctx context.Context, c *kafka.Client, topic string) ([]int, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %q: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %q: %w", topic, t.Error)
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("topic %q has no partitions", topic)
		}
		sort.Ints(ids)
		return ids, nil
	}
	return nil, fmt.Errorf("metadata of %q: %w", topic, kafka.UnknownTopicOrPartition)
}

// Offsets returns the offset range of every partition of topic, read in one ListOffsets
// request.
func Offsets(ctx context.Context, brokers []string, topic string) (map[int]OffsetRange, error) {
	return Config{Brokers: brokers}.Offsets(ctx, topic)
}

// Offsets is the package-level Offsets with cfg's brokers and security.
func (cfg Config) Offsets(ctx context.Context, topic string) (map[int]OffsetRange, error) {
	c, done := cfg.adminClient("mlops-offsets")
	defer done()
	ids, err := partitionsOf(ctx, c, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(ids))
	for _, p := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %q: %w", topic, err)
	}
	out := make(map[int]OffsetRange, len(ids))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %q partition %d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = OffsetRange{First: po.FirstOffset, End: po.LastOffset}
	}
	if len(out) != len(ids) {
		return nil, fmt.Errorf("list offsets of %q: %d of %d partitions answered", topic, len(out), len(ids))
	}
	return out, nil
}

// EndOffsets returns the high watermark (the offset the next record will get) of every
// partition of topic.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int]int64, error) {
	return Config{Brokers: brokers}.EndOffsets(ctx, topic)
}

// EndOffsets is the package-level EndOffsets with c's brokers and security.
func (c Config) EndOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	ranges, err := c.Offsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(ranges))
	for p, r := range ranges {
		out[p] = r.End
	}
	return out, nil
}

// ReadRange reads offsets [from, to) of one partition of topic without a consumer group
// (nothing is committed) and calls fn with each record in offset order; from below the log
// start reads from the log start. It returns fn's first error, or when the partition's
// records up to to-1 were read (records compacted or deleted away are skipped). ctx bounds
// the read: a range beyond the high watermark waits for records until ctx ends.
func ReadRange(ctx context.Context, brokers []string, topic string, partition int, from, to int64, fn func(kafka.Message) error) (err error) {
	return Config{Brokers: brokers}.ReadRange(ctx, topic, partition, from, to, fn)
}

// ReadRange is the package-level ReadRange with c's brokers and security.
func (c Config) ReadRange(ctx context.Context, topic string, partition int, from, to int64, fn func(kafka.Message) error) (err error) {
	if to <= from {
		return nil
	}
	dialer := c.mustDialer()
	dialer.ClientID = "mlops-read"
	rc := kafka.ReaderConfig{
		Brokers: c.withDefaults().Brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: DefaultMaxBytes, MaxWait: 100 * time.Millisecond,
		Dialer:         dialer,
		ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: time.Second,
	}
	if err := rc.Validate(); err != nil {
		return fmt.Errorf("read %s/%d: %w", topic, partition, err)
	}
	r := kafka.NewReader(rc)
	defer func() { err = errors.Join(err, r.Close()) }()
	if err := r.SetOffset(max(from, 0)); err != nil {
		return fmt.Errorf("read %s/%d: seek to %d: %w", topic, partition, from, err)
	}
	for n := 0; ; n++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s/%d after %d records: %w", topic, partition, n, err)
		}
		if m.Offset >= to {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset >= to-1 {
			return nil
		}
	}
}

// ReadTopic reads every record topic holds when it is called, partition by partition (in
// ascending partition order, each in offset order), and calls fn with each. It returns fn's
// first error.
func ReadTopic(ctx context.Context, brokers []string, topic string, fn func(kafka.Message) error) error {
	return Config{Brokers: brokers}.ReadTopic(ctx, topic, fn)
}

// ReadTopic is the package-level ReadTopic with c's brokers and security.
func (c Config) ReadTopic(ctx context.Context, topic string, fn func(kafka.Message) error) error {
	ranges, err := c.Offsets(ctx, topic)
	if err != nil {
		return err
	}
	parts := make([]int, 0, len(ranges))
	for p := range ranges {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	for _, p := range parts {
		if err := c.ReadRange(ctx, topic, p, ranges[p].First, ranges[p].End, fn); err != nil {
			return err
		}
	}
	return nil
}
