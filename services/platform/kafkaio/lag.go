package kafkaio

import (
	"context"
	"log/slog"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// topicPartition names one partition of a topic.
type topicPartition struct {
	topic     string
	partition int
}

// partitionLag is what a lagTracker knows of one partition: the offset of the next record to
// commit (the committed offset) and the partition's high watermark.
type partitionLag struct {
	next, hwm       int64
	hasNext, hasHWM bool
}

// lagTracker keeps mlops_kafka_consumer_lag (high watermark - committed offset) of the
// partitions assigned to one consumer. It learns
//
//   - the assignment from the reader's group subscription (see subscribed), deleting the
//     series of partitions no longer assigned;
//   - committed offsets from the subscription (the group's offsets) and from each commit;
//   - high watermarks from fetched records, from commits and from a periodic ListOffsets
//     poll (pollLoop), so the gauge keeps rising while the handler retries a batch and the
//     fetcher is blocked (Elasticsearch or Redis down), which is when the lag alert matters.
//
// It is safe for concurrent use.
type lagTracker struct {
	gauge *prometheus.GaugeVec

	mu sync.Mutex
	// assigned reports whether a subscription was seen; until then every partition the
	// consumer fetches from or commits counts as assigned.
	assigned bool
	parts    map[topicPartition]*partitionLag
}

func newLagTracker(gauge *prometheus.GaugeVec) *lagTracker {
	return &lagTracker{gauge: gauge, parts: map[topicPartition]*partitionLag{}}
}

// partition returns tp's entry, creating it unless an assignment is known that lacks tp (a
// record of a revoked partition still in flight). Callers hold mu.
func (l *lagTracker) partition(tp topicPartition) *partitionLag {
	p := l.parts[tp]
	if p == nil && !l.assigned {
		p = &partitionLag{}
		l.parts[tp] = p
	}
	return p
}

// set updates tp's series from p. Callers hold mu.
func (l *lagTracker) set(tp topicPartition, p *partitionLag) {
	if p.hasNext && p.hasHWM {
		l.gauge.WithLabelValues(tp.topic, strconv.Itoa(tp.partition)).Set(float64(max(p.hwm-p.next, 0)))
	}
}

// assign replaces the assignment with offsets (partition -> offset the group resumes at,
// negative when the group has none) and deletes the series of every other partition.
func (l *lagTracker) assign(offsets map[topicPartition]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.assigned = true
	for tp := range l.parts {
		if _, ok := offsets[tp]; !ok {
			delete(l.parts, tp)
			l.gauge.DeleteLabelValues(tp.topic, strconv.Itoa(tp.partition))
		}
	}
	for tp, off := range offsets {
		p := l.parts[tp]
		if p == nil {
			p = &partitionLag{}
			l.parts[tp] = p
		}
		if off >= 0 {
			p.next, p.hasNext = off, true
		}
		l.set(tp, p)
	}
}

// fetched records m's high watermark; the first record fetched of a partition whose
// committed offset is unknown gives it (the group starts there).
func (l *lagTracker) fetched(m *kafka.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tp := topicPartition{m.Topic, m.Partition}
	p := l.partition(tp)
	if p == nil {
		return
	}
	if !p.hasNext {
		p.next, p.hasNext = m.Offset, true
	}
	p.hwm, p.hasHWM = max(p.hwm, m.HighWaterMark), true
	l.set(tp, p)
}

// committed records that m, the last record of its partition in a commit, is committed.
func (l *lagTracker) committed(m *kafka.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tp := topicPartition{m.Topic, m.Partition}
	p := l.partition(tp)
	if p == nil {
		return
	}
	p.next, p.hasNext = max(p.next, m.Offset+1), true
	p.hwm, p.hasHWM = max(p.hwm, m.HighWaterMark), true
	l.set(tp, p)
}

// highWatermark records a high watermark read from the broker.
func (l *lagTracker) highWatermark(tp topicPartition, hwm int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.parts[tp]; p != nil {
		p.hwm, p.hasHWM = max(p.hwm, hwm), true
		l.set(tp, p)
	}
}

// partitions returns the tracked partitions by topic.
func (l *lagTracker) partitions() map[string][]kafka.OffsetRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]kafka.OffsetRequest{}
	for tp := range l.parts {
		out[tp.topic] = append(out[tp.topic], kafka.LastOffsetOf(tp.partition))
	}
	return out
}

// reset deletes every series of the tracker (the consumer stopped and owns no partition).
func (l *lagTracker) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for tp := range l.parts {
		l.gauge.DeleteLabelValues(tp.topic, strconv.Itoa(tp.partition))
	}
	clear(l.parts)
}

// subscribedFormat is the message kafka-go v0.4 (reader.go, Reader.subscribe) logs to
// ReaderConfig.Logger each time the reader joins a group generation, with the new
// assignment as its argument: a map from an unexported {topic string; partition int32}
// struct to the offset the partition resumes at. kafka-go offers no other way to learn a
// group reader's assignment; TestConsumerLagFollowsAssignment fails if an upgrade changes it.
const subscribedFormat = "subscribed to topics and partitions: %+v"

// readerLogger returns the kafka-go info logger of the consumer: it passes each new
// assignment to l and drops everything else (kafka-go's info messages are per-connection
// chatter; its errors go to the ErrorLogger).
func (l *lagTracker) readerLogger() kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		if format != subscribedFormat || len(args) != 1 {
			return
		}
		if offsets, ok := assignmentOf(args[0]); ok {
			l.assign(offsets)
		}
	})
}

// assignmentOf reads kafka-go's subscription map (see subscribedFormat). It reports false
// when v does not have that shape.
func assignmentOf(v any) (map[topicPartition]int64, bool) {
	m := reflect.ValueOf(v)
	if m.Kind() != reflect.Map || m.Type().Key().Kind() != reflect.Struct || m.Type().Elem().Kind() != reflect.Int64 {
		return nil, false
	}
	topicField, ok1 := m.Type().Key().FieldByName("topic")
	partField, ok2 := m.Type().Key().FieldByName("partition")
	if !ok1 || !ok2 || topicField.Type.Kind() != reflect.String {
		return nil, false
	}
	switch partField.Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
	default:
		return nil, false
	}
	out := make(map[topicPartition]int64, m.Len())
	iter := m.MapRange()
	for iter.Next() {
		k := iter.Key()
		// Reading (not setting) unexported fields through reflect is allowed.
		tp := topicPartition{topic: k.FieldByIndex(topicField.Index).String(), partition: int(k.FieldByIndex(partField.Index).Int())}
		out[tp] = iter.Value().Int()
	}
	return out, true
}

// pollLoop refreshes the high watermarks of the tracked partitions every interval until ctx
// is done. A failed poll is logged at Debug and skipped: the fetcher already warns when the
// brokers are unreachable.
func (l *lagTracker) pollLoop(ctx context.Context, cfg Config, interval time.Duration, logger *slog.Logger) {
	transport := cfg.mustTransport()
	// Only the input topics' metadata: by default kafka-go refreshes that of every topic of
	// the cluster every few seconds, which costs far more than the poll.
	transport.MetadataTopics = cfg.Topics
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: max(interval, 5*time.Second), Transport: transport}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		req := l.partitions()
		if len(req) == 0 {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, max(interval, 5*time.Second))
		resp, err := client.ListOffsets(pctx, &kafka.ListOffsetsRequest{Topics: req})
		cancel()
		if err != nil {
			logger.Debug("kafka lag poll failed", "err", err)
			continue
		}
		for topic, parts := range resp.Topics {
			for _, p := range parts {
				if p.Error != nil || p.LastOffset < 0 {
					logger.Debug("kafka lag poll failed", "topic", topic, "partition", p.Partition, "err", p.Error)
					continue
				}
				l.highWatermark(topicPartition{topic, p.Partition}, p.LastOffset)
			}
		}
	}
}
