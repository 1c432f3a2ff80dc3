package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/run"
)

// Handler handles one record and returns the records to produce for it (each naming its
// Topic; NewRecord builds them), or nil when its effect is not a Kafka record. Before
// returning nil error a handler with another side effect (an Elasticsearch write, a Redis
// update) must have made that effect durable, because the loop commits right after.
//
// Return an error marked with Permanent or PermanentReason for input that can never succeed
// (the record goes to the dead-letter topic); any other error is transient and the record is
// handled again after a backoff, so handlers must be idempotent. A Handler is called from one
// goroutine at a time, records of a partition in offset order.
type Handler func(ctx context.Context, m kafka.Message) ([]kafka.Message, error)

// Result is the outcome of one record of a batch: the records to produce for it, or its
// error (nil, permanent or transient, as for Handler).
type Result struct {
	Output []kafka.Message
	Err    error
}

// BatchHandler handles records of one topic together (an Elasticsearch bulk request, a Redis
// pipeline). It returns one Result per record, in order. It may return fewer results than
// records, a prefix (possibly empty), typically ending with the first transient failure: the
// records without a result are handed to it again later, after a backoff, with the failed one
// first. A non-nil error applies to
// the whole batch: a transient one retries the batch; a permanent one, like a panic, makes
// the loop call the handler once per record to find the culprit. The rules of Handler apply.
type BatchHandler func(ctx context.Context, msgs []kafka.Message) ([]Result, error)

// PerMessage adapts h to a BatchHandler that calls h for each record in turn, stops at the
// first transient failure, and turns a panic in h into a permanent error with reason
// ReasonPanic for that record alone.
func PerMessage(h Handler) BatchHandler {
	return func(ctx context.Context, msgs []kafka.Message) ([]Result, error) {
		results := make([]Result, 0, len(msgs))
		for _, m := range msgs {
			out, err := callRecover(ctx, h, m)
			results = append(results, Result{Output: out, Err: err})
			if err != nil && !IsPermanent(err) {
				break
			}
		}
		return results, nil
	}
}

func callRecover(ctx context.Context, h Handler, m kafka.Message) (out []kafka.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, PermanentReason(ReasonPanic, fmt.Errorf("handler panic at %s/%d/%d: %v", m.Topic, m.Partition, m.Offset, r))
		}
	}()
	return h(ctx, m)
}

// Consumer is the at-least-once consumer loop of one consumer group: fetch a batch, handle
// it, write every output and dead-letter record with acks=all, then commit (hand the offsets
// to the reader, which commits them every Config.CommitInterval and when the consumer stops). Create it with
// NewConsumer and run it with Run (or use ConsumerActor).
type Consumer struct {
	cfg     Config
	h       BatchHandler
	logger  *slog.Logger
	m       *metrics
	lag     *lagTracker
	started atomic.Bool
	now     func() time.Time
}

// NewConsumer validates cfg (ValidateConsumer) and returns a consumer that calls h. It does
// no I/O; Run connects. logger must not be nil; reg receives the shared mlops_kafka_*
// instruments and may be nil.
func NewConsumer(cfg Config, h BatchHandler, logger *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.ValidateConsumer(); err != nil {
		return nil, fmt.Errorf("kafka consumer config: %w", err)
	}
	if h == nil {
		return nil, errors.New("kafka consumer: nil handler")
	}
	cfg = cfg.withDefaults()
	m := newMetrics(reg)
	return &Consumer{
		cfg:    cfg,
		h:      h,
		logger: logger.With("group", cfg.GroupID),
		m:      m,
		lag:    newLagTracker(m.lag),
		now:    time.Now,
	}, nil
}

// ConsumerActor returns a run.Actor that consumes cfg.Topics with h (see Consumer). An
// invalid cfg makes the actor's Run fail at once.
func ConsumerActor(cfg Config, h Handler, logger *slog.Logger, reg prometheus.Registerer) run.Actor {
	return BatchConsumerActor(cfg, PerMessage(h), logger, reg)
}

// BatchConsumerActor is ConsumerActor for a BatchHandler.
func BatchConsumerActor(cfg Config, h BatchHandler, logger *slog.Logger, reg prometheus.Registerer) run.Actor {
	c, err := NewConsumer(cfg, h, logger, reg)
	return run.Actor{
		Name: "kafka-consumer " + strings.Join(cfg.Topics, ","),
		Run: func(ctx context.Context) error {
			if err != nil {
				return err
			}
			return c.Run(ctx)
		},
	}
}

// ensureTopics creates the consumer's input topics and its dead-letter topic when missing
// (sized by their roles, see Config.TopicSpec: an input topic the catalogue does not know is
// a stream), retrying with capped backoff until Kafka answers. It returns an error only when
// ctx ends first. A consumer cannot dead-letter into a missing topic, so every service gets
// its dead-letter topic this way.
func (c *Consumer) ensureTopics(ctx context.Context) error {
	roles := map[string]TopicRole{c.cfg.DLQTopic: RoleDeadLetter}
	for _, t := range c.cfg.Topics {
		if r, ok := RoleOf(t); ok {
			roles[t] = r
		} else {
			roles[t] = RoleStream
		}
	}
	delay := c.cfg.RetryBackoffMin
	for warned := false; ; {
		attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.cfg.EnsureRoles(attempt, roles)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !warned {
			c.logger.Warn("kafka topics not ensured yet; retrying", "topics", c.cfg.Topics, "dlq_topic", c.cfg.DLQTopic, "err", err)
			warned = true
		}
		if !sleepCtx(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, c.cfg.RetryBackoffMax)
	}
}

// errAbandoned reports that shutdown interrupted a batch before it was committed; the records
// are delivered again to whichever consumer owns their partitions next.
var errAbandoned = errors.New("batch abandoned at shutdown")

// Run consumes until ctx is cancelled, then stops fetching, finishes the batch in flight
// within cfg.ShutdownTimeout, commits it, closes the producer (flushing it) and the reader,
// and returns nil. It returns an error only when the reader fails for good. Run may be called
// once.
func (c *Consumer) Run(ctx context.Context) (err error) {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("kafka consumer: Run called twice")
	}
	if err := c.ensureTopics(ctx); err != nil {
		return nil // ctx ended before Kafka answered: nothing was consumed
	}
	rc := c.cfg.readerConfig(errorLogger(c.logger))
	rc.Logger = c.lag.readerLogger() // learns the partition assignment
	reader := kafka.NewReader(rc)
	// The loop writes a whole batch in one call, so waiting to fill a partial produce batch
	// only adds latency: flush as soon as the call has queued its records.
	producer := newProducer(c.cfg, time.Microsecond, c.logger, c.m)
	c.logger.Info("kafka consumer started", "topics", c.cfg.Topics, "brokers", c.cfg.Brokers)

	// Draining outlives ctx by at most ShutdownTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	fetchCtx, stopFetch := context.WithCancel(ctx)
	fetched := make(chan kafka.Message, c.cfg.MaxBatch)
	fetchErr := make(chan error, 1)
	loopDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { fetchErr <- c.fetchLoop(fetchCtx, reader, fetched) })
	wg.Go(func() { c.lag.pollLoop(fetchCtx, c.cfg, c.cfg.LagInterval, c.logger) })
	wg.Go(func() {
		select {
		case <-loopDone:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(c.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-loopDone:
		case <-t.C:
			cancelWork()
		}
	})
	defer func() {
		close(loopDone)
		stopFetch()
		wg.Wait()
		cancelWork()
		// Reverse order of use: the producer first (flushes), then the reader.
		err = errors.Join(err, producer.Close())
		if cerr := reader.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close kafka reader: %w", cerr))
		}
		c.lag.reset() // a stopped consumer owns no partition
		c.logger.Info("kafka consumer stopped", "topics", c.cfg.Topics)
	}()

	batch := make([]kafka.Message, 0, c.cfg.MaxBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case err := <-fetchErr:
			return err
		case m := <-fetched:
			batch = append(batch, m)
		}
	fill:
		for len(batch) < c.cfg.MaxBatch {
			select {
			case m := <-fetched:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if c.cfg.BatchWait > 0 && len(batch) < c.cfg.MaxBatch {
			linger.Reset(c.cfg.BatchWait)
		wait:
			for len(batch) < c.cfg.MaxBatch {
				select {
				case m := <-fetched:
					batch = append(batch, m)
				case <-linger.C:
					break wait
				case <-ctx.Done():
					break wait
				}
			}
			linger.Stop()
		}
		if err := c.process(ctx, workCtx, reader, producer, batch); err != nil {
			if errors.Is(err, errAbandoned) {
				c.logger.Warn("kafka batch abandoned at shutdown, it will be redelivered", "records", len(batch))
				return nil
			}
			return err
		}
	}
}

// fetchLoop feeds out with fetched records until ctx is cancelled or the reader fails.
func (c *Consumer) fetchLoop(ctx context.Context, r *kafka.Reader, out chan<- kafka.Message) error {
	bo := c.backoff()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return fmt.Errorf("kafka fetch: %w", err)
			}
			d := bo.next()
			c.logger.Warn("kafka fetch failed, retrying", "err", err, "backoff", d)
			if !sleepCtx(ctx, d) {
				return nil
			}
			continue
		}
		bo.reset()
		c.lag.fetched(&m)
		select {
		case out <- m:
		case <-ctx.Done():
			return nil
		}
	}
}

// outcome is what became of one record of a batch.
type outcome struct {
	out []kafka.Message
	err error // nil, permanent, or transient
}

// process handles, writes and commits batch, retrying transient failures of its records in
// order. It returns nil when every record was committed, errAbandoned when shutdown came
// first.
func (c *Consumer) process(ctx, workCtx context.Context, r *kafka.Reader, p *Producer, batch []kafka.Message) error {
	c.m.batchSize.Observe(float64(len(batch)))
	pending := batch
	bo := c.backoff()
	for len(pending) > 0 {
		var (
			done, rest []kafka.Message
			writes     []kafka.Message
			failed     *kafka.Message
			failErr    error
		)
		for _, group := range splitByTopic(pending) {
			outs := c.handleGroup(workCtx, group)
			for i, o := range outs {
				m := group[i]
				switch {
				case o.err == nil:
					writes = append(writes, o.out...)
					done = append(done, m)
				case IsPermanent(o.err):
					reason := Reason(o.err)
					kind := kindPermanent
					if reason == ReasonPanic {
						kind = kindPanic
					}
					c.m.handlerErrors.WithLabelValues(m.Topic, kind).Inc()
					c.m.dlq.WithLabelValues(m.Topic, reason).Inc()
					c.logger.Warn("kafka record sent to dlq", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", reason, "err", o.err)
					writes = append(writes, dlqRecord(m, c.cfg.DLQTopic, c.cfg.ClientID, reason, o.err, c.now()))
					done = append(done, m)
				default:
					c.m.handlerErrors.WithLabelValues(m.Topic, kindTransient).Inc()
					if failed == nil {
						failed, failErr = &group[i], o.err
					}
				}
			}
			rest = append(rest, group[len(done0(outs)):]...)
		}
		if len(done) > 0 {
			if err := c.writeAndCommit(ctx, workCtx, r, p, writes, done); err != nil {
				return err
			}
			bo.reset()
		}
		if len(rest) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return errAbandoned
		}
		if failed == nil { // a handler returned a short prefix without an error
			failed, failErr = &rest[0], errors.New("handler returned no result")
		}
		d := bo.next()
		c.logger.Warn("kafka handler failed, retrying", "topic", failed.Topic, "partition", failed.Partition,
			"offset", failed.Offset, "attempt", bo.attempt, "backoff", d, "err", failErr)
		if !sleepCtx(ctx, d) {
			return errAbandoned
		}
		pending = rest
	}
	return nil
}

// done0 returns the prefix of outs that completed (succeeded or failed permanently).
func done0(outs []outcome) []outcome {
	for i, o := range outs {
		if o.err != nil && !IsPermanent(o.err) {
			return outs[:i]
		}
	}
	return outs
}

// handleGroup calls the handler on msgs (all of one topic) and returns the outcomes of a
// prefix of msgs, possibly empty: an empty prefix, like a short one, hands the remaining
// records back to be handled again after a backoff. A panic or a permanent batch error on
// several records is narrowed down by handling them one at a time.
func (c *Consumer) handleGroup(ctx context.Context, msgs []kafka.Message) []outcome {
	start := time.Now()
	results, err := c.safeCall(ctx, msgs)
	c.m.handleDuration.WithLabelValues(msgs[0].Topic).Observe(time.Since(start).Seconds())
	// More results than records is a broken contract; fewer, including none, is a prefix.
	if err == nil && len(results) > len(msgs) {
		err = PermanentReason(ReasonHandler, fmt.Errorf("handler returned %d results for %d records", len(results), len(msgs)))
	}
	if err != nil {
		if !IsPermanent(err) {
			return []outcome{{err: err}}
		}
		if len(msgs) == 1 {
			return []outcome{{err: err}}
		}
		outs := make([]outcome, 0, len(msgs))
		for i := range msgs {
			o := c.handleGroup(ctx, msgs[i:i+1])
			outs = append(outs, o...)
			// Stop at the first record that is not done (a transient failure, or no result
			// at all): the records after it must not get ahead of it.
			if len(o) == 0 || len(done0(o)) < len(o) {
				break
			}
		}
		return outs
	}
	outs := make([]outcome, 0, len(results))
	for i, res := range results {
		o := outcome{out: res.Output, err: res.Err}
		if o.err == nil {
			for _, out := range o.out {
				if out.Topic == "" {
					o = outcome{err: PermanentReason(ReasonHandler, fmt.Errorf("handler output for offset %d has no topic", msgs[i].Offset))}
					break
				}
			}
		}
		outs = append(outs, o)
		if o.err != nil && !IsPermanent(o.err) {
			break
		}
	}
	return outs
}

// safeCall calls the batch handler, turning a panic into a permanent error.
func (c *Consumer) safeCall(ctx context.Context, msgs []kafka.Message) (results []Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			results = nil
			err = PermanentReason(ReasonPanic, fmt.Errorf("handler panic: %v", r))
		}
	}()
	return c.h(ctx, msgs)
}

// writeAndCommit writes records with acks=all, then commits done, retrying transient
// failures of either until they succeed or shutdown.
func (c *Consumer) writeAndCommit(ctx, workCtx context.Context, r *kafka.Reader, p *Producer, records, done []kafka.Message) error {
	bo := c.backoff()
	for len(records) > 0 {
		err := p.WriteMessages(workCtx, records...)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return errAbandoned
		}
		d := bo.next()
		c.logger.Warn("kafka write failed, retrying", "records", len(records), "attempt", bo.attempt, "backoff", d, "err", err)
		if !sleepCtx(ctx, d) {
			return errAbandoned
		}
	}
	last := lastPerPartition(done)
	bo.reset()
	for {
		start := time.Now()
		err := r.CommitMessages(workCtx, last...)
		if err == nil {
			c.m.commitDuration.Observe(time.Since(start).Seconds())
			break
		}
		if ctx.Err() != nil {
			return errAbandoned
		}
		d := bo.next()
		c.logger.Warn("kafka commit failed, retrying", "attempt", bo.attempt, "backoff", d, "err", err)
		if !sleepCtx(ctx, d) {
			return errAbandoned
		}
	}
	countByTopic(done, func(topic string, n int) { c.m.consumed.WithLabelValues(topic).Add(float64(n)) })
	for i := range last {
		c.lag.committed(&last[i])
	}
	return nil
}

// splitByTopic splits msgs into per-topic groups, keeping each topic's records in order (and
// so each partition's). The common single-topic case does not allocate.
func splitByTopic(msgs []kafka.Message) [][]kafka.Message {
	first := msgs[0].Topic
	single := true
	for i := range msgs {
		if msgs[i].Topic != first {
			single = false
			break
		}
	}
	if single {
		return [][]kafka.Message{msgs}
	}
	var groups [][]kafka.Message
	index := map[string]int{}
	for _, m := range msgs {
		i, ok := index[m.Topic]
		if !ok {
			i = len(groups)
			index[m.Topic] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], m)
	}
	return groups
}

// lastPerPartition returns the record with the highest offset of each topic partition.
func lastPerPartition(msgs []kafka.Message) []kafka.Message {
	type tp struct {
		topic     string
		partition int
	}
	idx := make(map[tp]int, 8)
	var out []kafka.Message
	for _, m := range msgs {
		k := tp{m.Topic, m.Partition}
		if i, ok := idx[k]; ok {
			if m.Offset > out[i].Offset {
				out[i] = m
			}
			continue
		}
		idx[k] = len(out)
		out = append(out, m)
	}
	return out
}

// countByTopic calls add once per run of records of equal topic.
func countByTopic(msgs []kafka.Message, add func(topic string, n int)) {
	start := 0
	for i := 1; i <= len(msgs); i++ {
		if i == len(msgs) || msgs[i].Topic != msgs[start].Topic {
			add(msgs[start].Topic, i-start)
			start = i
		}
	}
}

// backoff is capped exponential backoff with jitter: attempt n waits a random duration in
// [d/2, d] where d = min(max, min*2^n).
type backoff struct {
	min, max time.Duration
	attempt  int
}

func (c *Consumer) backoff() *backoff {
	return &backoff{min: c.cfg.RetryBackoffMin, max: c.cfg.RetryBackoffMax}
}

func (b *backoff) next() time.Duration {
	d := b.max
	if b.attempt < 62 {
		if s := b.min << b.attempt; s > 0 && s < b.max {
			d = s
		}
	}
	b.attempt++
	half := d / 2
	return half + rand.N(d-half+1)
}

func (b *backoff) reset() { b.attempt = 0 }

// sleepCtx waits for d or until ctx is done, and reports whether the full wait elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
