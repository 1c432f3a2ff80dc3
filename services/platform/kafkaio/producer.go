package kafkaio

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Producer writes records and waits until every in-sync replica has acknowledged them
// (acks=all). Records are partitioned by key with the murmur2 hash Java and franz-go clients
// use, so all records of one key land on one partition in order; a record without a key goes
// to a random partition. Topics are never created implicitly: writing to a missing topic
// fails (create topics with EnsureTopics).
//
// The producer's connections keep the metadata of the topics it has written to and no
// others: kafka-go refreshes its cached metadata every few seconds, and asking for every
// topic of a large cluster each time costs both sides far more CPU than the records. The
// first write to a new topic therefore starts a new kafka-go writer for the larger topic set
// (after the writes in flight, which it waits for); a service writes to a handful of topics.
//
// A Producer is safe for concurrent use. Concurrent WriteMessages calls share batches, which
// is where BatchTimeout pays off. Close it when done.
type Producer struct {
	cfg          Config
	batchTimeout time.Duration
	logger       *slog.Logger
	m            *metrics

	// mu guards the fields below: WriteMessages holds it for reading while it writes, and
	// replacing the writer holds it for writing.
	mu        sync.RWMutex
	topics    map[string]bool // the topics w's metadata covers
	w         *kafka.Writer   // nil until the first write, and after Close
	transport *kafka.Transport
	closed    bool

	closeOnce sync.Once
	closeErr  error
}

// NewProducer returns a producer for cfg.Brokers. It does no I/O. reg receives the shared
// mlops_kafka_messages_produced_total counter; it may be nil. logger receives kafka-go's
// error log at Warn; it may be nil.
func NewProducer(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka producer config: %w", err)
	}
	return newProducer(cfg.withDefaults(), cfg.BatchTimeout, logger, newMetrics(reg)), nil
}

// newProducer builds a producer from a defaulted cfg; batchTimeout overrides cfg's when
// non-zero.
func newProducer(cfg Config, batchTimeout time.Duration, logger *slog.Logger, m *metrics) *Producer {
	if batchTimeout <= 0 {
		batchTimeout = cfg.BatchTimeout
	}
	return &Producer{cfg: cfg, batchTimeout: batchTimeout, logger: logger, m: m, topics: map[string]bool{}}
}

// newWriter returns a kafka-go writer, and its transport, whose metadata covers topics.
func (p *Producer) newWriter(topics []string) (*kafka.Writer, *kafka.Transport) {
	transport := p.cfg.mustTransport() // TLS and SASL of cfg
	transport.MetadataTopics = topics
	w := &kafka.Writer{
		Addr:                   kafka.TCP(p.cfg.Brokers...),
		Balancer:               presetBalancer{},
		MaxAttempts:            3,
		WriteBackoffMin:        p.cfg.RetryBackoffMin,
		WriteBackoffMax:        min(p.cfg.RetryBackoffMax, time.Second),
		BatchSize:              p.cfg.BatchSize,
		BatchBytes:             int64(p.cfg.MaxBytes),
		BatchTimeout:           p.batchTimeout,
		RequiredAcks:           kafka.RequireAll,
		Compression:            compressionCodecs[p.cfg.Compression],
		Async:                  false,
		AllowAutoTopicCreation: false,
		Transport:              transport,
		ErrorLogger:            errorLogger(p.logger),
	}
	return w, transport
}

// WriteMessages writes msgs and returns once all of them were acknowledged by all in-sync
// replicas, or with an error (which may be a kafka.WriteErrors naming each record's error;
// some records may then have been written: retrying can duplicate, never lose). Each record
// must name its Topic. ctx bounds the wait.
//
// The records of one key land in the order of msgs even when part of the call fails: a
// record is written only after every earlier record of its partition in the call was
// acknowledged, so retrying the failed records (or all of them) never puts a later record
// of a key before an earlier one. That holds for one call; records of concurrent calls that
// share a partition may interleave.
func (p *Producer) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	for i := range msgs {
		if msgs[i].Topic == "" {
			return fmt.Errorf("kafka write: record %d has no topic", i)
		}
	}
	p.mu.RLock()
	for !p.covers(msgs) {
		p.mu.RUnlock()
		if err := p.addTopics(msgs); err != nil {
			return err
		}
		p.mu.RLock()
	}
	err := p.write(ctx, msgs)
	p.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("kafka write %d records to %s: %w", len(msgs), topicsOf(msgs), err)
	}
	return nil
}

// covers reports whether the current writer's metadata covers the topics of msgs. Callers
// hold mu.
func (p *Producer) covers(msgs []kafka.Message) bool {
	if p.w == nil {
		return false // addTopics starts the writer, or fails if closed
	}
	last := ""
	for i := range msgs {
		if t := msgs[i].Topic; t != last {
			if !p.topics[t] {
				return false
			}
			last = t
		}
	}
	return true
}

// addTopics replaces the writer with one whose metadata also covers the topics of msgs.
// Closing the old writer waits for nothing: every write through it has returned (they hold
// mu for reading).
func (p *Producer) addTopics(msgs []kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("kafka write %d records to %s: %w", len(msgs), topicsOf(msgs), io.ErrClosedPipe)
	}
	for i := range msgs {
		p.topics[msgs[i].Topic] = true
	}
	if p.w != nil {
		if err := p.w.Close(); err != nil && p.logger != nil {
			p.logger.Warn("close kafka writer replaced for a new topic", "err", err)
		}
		p.transport.CloseIdleConnections()
	}
	p.w, p.transport = p.newWriter(slices.Sorted(maps.Keys(p.topics)))
	return nil
}

// countProduced adds msgs to the produced counter, one Add per run of equal topics.
func (p *Producer) countProduced(msgs []kafka.Message) {
	start := 0
	for i := 1; i <= len(msgs); i++ {
		if i == len(msgs) || msgs[i].Topic != msgs[start].Topic {
			p.m.produced.WithLabelValues(msgs[start].Topic).Add(float64(i - start))
			start = i
		}
	}
}

// Close flushes pending records and releases connections. It is safe to call more than once;
// later calls return the first call's result. Writes after Close fail.
func (p *Producer) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.closed = true
		if p.w == nil {
			return
		}
		p.closeErr = p.w.Close()
		p.transport.CloseIdleConnections()
		if p.closeErr != nil {
			p.closeErr = fmt.Errorf("close kafka producer: %w", p.closeErr)
		}
	})
	return p.closeErr
}

// topicsOf names the topics of msgs for error messages.
func topicsOf(msgs []kafka.Message) string {
	seen := map[string]bool{}
	out := ""
	for _, m := range msgs {
		if !seen[m.Topic] {
			if seen[m.Topic] = true; out != "" {
				out += ","
			}
			out += m.Topic
		}
	}
	return out
}

// errorLogger adapts logger to kafka-go's error logger (at Warn), or returns nil.
func errorLogger(logger *slog.Logger) kafka.Logger {
	if logger == nil {
		return nil
	}
	return kafka.LoggerFunc(func(format string, args ...any) {
		logger.Warn("kafka client", "err", fmt.Errorf(format, args...))
	})
}
