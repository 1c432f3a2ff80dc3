package kafkaio

import (
	"context"
	"fmt"
	"log/slog"
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
// A Producer is safe for concurrent use. Concurrent WriteMessages calls share batches, which
// is where BatchTimeout pays off. Close it when done.
type Producer struct {
	w         *kafka.Writer
	transport *kafka.Transport
	m         *metrics

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
	transport := cfg.mustTransport() // TLS and SASL of cfg
	w := &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Balancer:               kafka.Murmur2Balancer{},
		MaxAttempts:            3,
		WriteBackoffMin:        cfg.RetryBackoffMin,
		WriteBackoffMax:        min(cfg.RetryBackoffMax, time.Second),
		BatchSize:              cfg.BatchSize,
		BatchBytes:             int64(cfg.MaxBytes),
		BatchTimeout:           batchTimeout,
		RequiredAcks:           kafka.RequireAll,
		Async:                  false,
		AllowAutoTopicCreation: false,
		Transport:              transport,
		ErrorLogger:            errorLogger(logger),
	}
	return &Producer{w: w, transport: transport, m: m}
}

// WriteMessages writes msgs and returns once all of them were acknowledged by all in-sync
// replicas, or with an error (which may be a kafka.WriteErrors naming each record's error;
// some records may then have been written: retrying can duplicate, never lose). Each record
// must name its Topic. ctx bounds the wait.
func (p *Producer) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	for i := range msgs {
		if msgs[i].Topic == "" {
			return fmt.Errorf("kafka write: record %d has no topic", i)
		}
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("kafka write %d records to %s: %w", len(msgs), topicsOf(msgs), err)
	}
	p.countProduced(msgs)
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
// later calls return the first call's result.
func (p *Producer) Close() error {
	p.closeOnce.Do(func() {
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
