package kafkaio

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/metadata"
)

// kafka-go splits the records a WriteMessages call has for one partition into batches of at
// most BatchSize records (and BatchBytes bytes) and writes them one after another; but when a
// batch fails, after its retries, it still writes the partition's next batches. The caller
// retries the failed records, and they land after later records of the same keys: a
// consumer downstream then sees a key's events out of order (the features service would fold
// a transaction into an account's state after a later one). This happened when a broker
// restarted under a backlog: a 133-record batch of one partition went out as 100 + 33; the
// 100 failed, the 33 were written, and the retry appended the 100 after them.
//
// The producer therefore never lets kafka-go make two batches of one partition in one call:
// a call that might need them is split into rounds, each at most one batch per partition
// (BatchSize records, BatchBytes bytes), written one after another; a failed round stops
// the call and the later rounds are reported as not attempted. The partitions are computed
// here, with the murmur2 hash kafka-go would use, and handed to kafka-go through
// presetBalancer.

// errNotAttempted is the error of a record left unwritten because an earlier round failed.
var errNotAttempted = errors.New("not written: an earlier record of the call failed, and a key's records keep their order")

// presetBalancer is the writer's balancer. A record whose Partition is negative carries the
// partition the producer chose, encoded as -(partition+1); any other record is placed with
// the murmur2 hash of its key (random without a key), as Java and franz-go clients do.
type presetBalancer struct{}

// Balance implements kafka.Balancer.
func (presetBalancer) Balance(msg kafka.Message, partitions ...int) int {
	if msg.Partition < 0 {
		if p := -msg.Partition - 1; p < len(partitions) {
			return partitions[p]
		}
	}
	return kafka.Murmur2Balancer{}.Balance(msg, partitions...)
}

// recordSize is at least the size kafka-go counts for msg against BatchBytes (the varint
// lengths of the headers taken at their widest).
func recordSize(msg *kafka.Message) int64 {
	n := int64(4+1+1+4+len(msg.Key)+4+len(msg.Value)+8) + 5
	for _, h := range msg.Headers {
		n += int64(5 + len(h.Key) + 5 + len(h.Value))
	}
	return n
}

// write writes msgs with the current writer (callers hold mu for reading) and counts what
// was written.
func (p *Producer) write(ctx context.Context, msgs []kafka.Message) error {
	batchSize, batchBytes := p.cfg.BatchSize, int64(p.cfg.MaxBytes)
	if len(msgs) <= batchSize {
		var total int64
		for i := range msgs {
			total += recordSize(&msgs[i])
		}
		if total <= batchBytes { // one batch per partition whatever the partitions
			if err := p.w.WriteMessages(ctx, msgs...); err != nil {
				return err
			}
			p.countProduced(msgs)
			return nil
		}
	}
	rounds, err := p.rounds(ctx, msgs, batchSize, batchBytes)
	if err != nil {
		return err
	}
	for r, round := range rounds {
		err := p.w.WriteMessages(ctx, round.msgs...)
		if err == nil {
			p.countProduced(round.msgs)
			continue
		}
		var werrs kafka.WriteErrors
		if !errors.As(err, &werrs) || len(werrs) != len(round.msgs) {
			return err // the round's fate is unknown: the caller retries all
		}
		out := make(kafka.WriteErrors, len(msgs))
		var written []kafka.Message
		for k, i := range round.index {
			if out[i] = werrs[k]; werrs[k] == nil {
				written = append(written, round.msgs[k])
			}
		}
		p.countProduced(written)
		for _, later := range rounds[r+1:] {
			for _, i := range later.index {
				out[i] = errNotAttempted
			}
		}
		return out
	}
	return nil
}

// round is part of a call's records: copies with their partition preset, and their indexes
// in the call.
type round struct {
	msgs  []kafka.Message
	index []int
}

// rounds splits msgs into rounds of at most one batch per partition, keeping the order of
// msgs within each round and putting no record of a partition in an earlier round than a
// record before it.
func (p *Producer) rounds(ctx context.Context, msgs []kafka.Message, batchSize int, batchBytes int64) ([]round, error) {
	counts, err := p.partitionCounts(ctx, msgs)
	if err != nil {
		return nil, err
	}
	type topicPartition struct {
		topic     string
		partition int
	}
	type fill struct {
		round, n int
		bytes    int64
	}
	fills := map[topicPartition]*fill{}
	ids := map[string][]int{}
	// First the round and partition of each record, then the records copied once into one
	// backing array, round after round (a stable counting sort by round).
	roundOf := make([]int32, len(msgs))
	partOf := make([]int32, len(msgs))
	var perRound []int
	for i := range msgs {
		m := &msgs[i]
		partitions := ids[m.Topic]
		if partitions == nil {
			partitions = make([]int, counts[m.Topic])
			for k := range partitions {
				partitions[k] = k
			}
			ids[m.Topic] = partitions
		}
		part := kafka.Murmur2Balancer{}.Balance(*m, partitions...)
		size := recordSize(m)
		key := topicPartition{m.Topic, part}
		f := fills[key]
		if f == nil {
			f = &fill{}
			fills[key] = f
		}
		if f.n > 0 && (f.n >= batchSize || f.bytes+size > batchBytes) {
			f.round, f.n, f.bytes = f.round+1, 0, 0
		}
		f.n++
		f.bytes += size
		if f.round == len(perRound) {
			perRound = append(perRound, 0)
		}
		perRound[f.round]++
		roundOf[i], partOf[i] = int32(f.round), int32(part)
	}
	backing := make([]kafka.Message, len(msgs))
	index := make([]int, len(msgs))
	rounds := make([]round, len(perRound))
	next := make([]int, len(perRound))
	for r, at := 0, 0; r < len(perRound); r++ {
		rounds[r] = round{msgs: backing[at : at+perRound[r] : at+perRound[r]], index: index[at : at+perRound[r] : at+perRound[r]]}
		next[r] = at
		at += perRound[r]
	}
	for i := range msgs {
		r := roundOf[i]
		backing[next[r]] = msgs[i]
		backing[next[r]].Partition = -(int(partOf[i]) + 1)
		index[next[r]] = i
		next[r]++
	}
	return rounds, nil
}

// partitionCounts returns the partition count of each topic of msgs, from the transport's
// cached metadata (what kafka-go's writer consults for every call too).
func (p *Producer) partitionCounts(ctx context.Context, msgs []kafka.Message) (map[string]int, error) {
	counts := map[string]int{}
	var names []string
	for i := range msgs {
		if _, ok := counts[msgs[i].Topic]; !ok {
			counts[msgs[i].Topic] = 0
			names = append(names, msgs[i].Topic)
		}
	}
	r, err := p.transport.RoundTrip(ctx, p.w.Addr, &metadata.Request{TopicNames: names})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata of %v: %w", names, err)
	}
	resp, ok := r.(*metadata.Response)
	if !ok {
		return nil, fmt.Errorf("kafka metadata of %v: unexpected response %T", names, r)
	}
	for _, t := range resp.Topics {
		if _, want := counts[t.Name]; !want {
			continue
		}
		if t.ErrorCode != 0 {
			return nil, fmt.Errorf("kafka metadata of topic %s: %w", t.Name, kafka.Error(t.ErrorCode))
		}
		counts[t.Name] = len(t.Partitions)
	}
	for _, name := range names {
		if counts[name] == 0 {
			return nil, fmt.Errorf("kafka metadata of topic %s: %w", name, kafka.UnknownTopicOrPartition)
		}
	}
	return counts, nil
}
