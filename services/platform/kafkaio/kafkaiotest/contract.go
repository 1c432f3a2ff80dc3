package kafkaiotest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// HeaderIndex is the header RunHandlerContract adds to every input it produces: the decimal
// index i passed to Contract.Valid or Contract.Invalid. Handlers must tolerate it.
const HeaderIndex = "kafkaiotest-index"

// Contract describes a Kafka handler for RunHandlerContract.
type Contract struct {
	// Name prefixes the topics and groups of each case. Default: "contract".
	Name string
	// OutputTopics are the logical names of the topics the handler produces to. Each case
	// creates fresh topics for them and passes the mapping to NewHandler in Env.Topics.
	OutputTopics []string
	// NewHandler returns a fresh handler writing to env's topics (and, for side effects
	// outside Kafka, to stores namespaced by env.Suffix). It is called once for every
	// consumer a case starts, so a restart gets a new handler, as a restarted service would.
	NewHandler func(t testing.TB, env Env) kafkaio.BatchHandler
	// Valid returns the i-th valid input: Key, Value and Headers (the suite sets Topic and
	// adds HeaderIndex). Inputs of different i should differ (an event id, say).
	Valid func(i int) kafka.Message
	// Invalid returns the i-th input the handler must reject with a permanent error; nil when
	// every input is acceptable (the dead-letter case then only checks an injected panic).
	Invalid func(i int) kafka.Message
	// InvalidReason, when set, is the dlq-reason every invalid input must carry.
	InvalidReason string
	// Verify, when set, checks the handler's effects at the end of a case. accepted are the
	// valid inputs (as consumed: Topic, Partition, Offset set) the handler accepted at least
	// once; outputs maps each logical output topic to all its records. Delivery is
	// at-least-once and the replay case hands every input to the handler twice, so Verify must
	// accept duplicates: that is the idempotency check.
	Verify func(t testing.TB, env Env, accepted []kafka.Message, outputs map[string][]kafka.Message)
	// N is the number of valid inputs of each case. Default: 60.
	N int
	// Partitions of the input topic. Default: 3.
	Partitions int
	// Timeout bounds each wait of a case. Default: 60s.
	Timeout time.Duration
}

// Env names the resources of one contract case.
type Env struct {
	Brokers    []string
	InputTopic string
	DLQTopic   string
	// Topics maps each of Contract.OutputTopics to this case's topic.
	Topics map[string]string
	// Suffix is unique to the case; namespace other stores with it.
	Suffix string
}

// RunHandlerContract checks, against the Kafka at brokers, that the handler described by c
// composes with the kafkaio consumer loop into an at-least-once pipeline:
//
//   - commit_after_success: a consumer is killed mid-stream while a batch is in flight; every
//     offset its group committed had been handled successfully, and a new consumer resumes
//     exactly at the committed offsets and finishes the stream with nothing lost;
//   - transient_retried: a record whose handling fails transiently (before and after the
//     handler ran) is retried, not skipped: its partition's committed offset stays at or
//     before it until it succeeds;
//   - permanent_to_dlq: invalid inputs and a record whose handling panics go to the
//     dead-letter topic with the original key, value and headers plus the dlq-* headers, and
//     are committed;
//   - replay_is_safe: a second consumer group replays every input through a fresh handler
//     and Verify still passes.
//
// Cases run in parallel, each on its own topics and groups. Verify runs at the end of each.
func RunHandlerContract(t *testing.T, brokers []string, c Contract) {
	t.Helper()
	if c.NewHandler == nil || c.Valid == nil {
		t.Fatal("kafkaiotest: Contract needs NewHandler and Valid")
	}
	if c.Name == "" {
		c.Name = "contract"
	}
	if c.N <= 0 {
		c.N = 60
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	t.Run("commit_after_success", func(t *testing.T) { t.Parallel(); newCase(t, brokers, c).commitAfterSuccess() })
	t.Run("transient_retried", func(t *testing.T) { t.Parallel(); newCase(t, brokers, c).transientRetried() })
	t.Run("permanent_to_dlq", func(t *testing.T) { t.Parallel(); newCase(t, brokers, c).permanentToDLQ() })
	t.Run("replay_is_safe", func(t *testing.T) { t.Parallel(); newCase(t, brokers, c).replayIsSafe() })
}

// tpo is the partition and offset of an input.
type tpo struct {
	partition int
	offset    int64
}

// contractCase is the state of one case.
type contractCase struct {
	t   *testing.T
	c   Contract
	env Env

	mu       sync.Mutex
	accepted map[int]kafka.Message // valid index -> record, accepted at least once
	rejected map[int]string        // index -> reason of a permanent error
	seen     map[tpo]int           // every input the handler was given -> index
	phase    int
	firstOff map[int]map[int]int64 // phase -> partition -> lowest offset handed to the handler
	calls    int

	// fault injection, guarded by mu
	blockIndex     int // block the batch holding this index until its context ends; -1 none
	blockedNow     chan struct{}
	transientIndex int // fail this index transiently; -1 none
	transientLeft  int
	panicIndex     int // panic whenever the batch holds this index; -1 none
}

func newCase(t *testing.T, brokers []string, c Contract) *contractCase {
	suffix := UniqueName("")[1:]
	env := Env{
		Brokers:    brokers,
		InputTopic: fmt.Sprintf("%s-%s-in", c.Name, suffix),
		DLQTopic:   fmt.Sprintf("%s-%s-dlq", c.Name, suffix),
		Topics:     map[string]string{},
		Suffix:     suffix,
	}
	topics := []string{env.InputTopic, env.DLQTopic}
	for _, name := range c.OutputTopics {
		env.Topics[name] = fmt.Sprintf("%s-%s-%s", c.Name, suffix, name)
		topics = append(topics, env.Topics[name])
	}
	CreateTopics(t, brokers, c.Partitions, topics...)
	return &contractCase{
		t: t, c: c, env: env,
		accepted: map[int]kafka.Message{}, rejected: map[int]string{}, seen: map[tpo]int{},
		firstOff:   map[int]map[int]int64{},
		blockIndex: -1, transientIndex: -1, panicIndex: -1,
	}
}

// produce writes valid inputs [from, to) and, when invalid is set and c.Invalid exists, one
// invalid input after every fifth valid one; invalid inputs get indexes from 1_000_000.
func (cc *contractCase) produce(from, to int, invalid bool) (nInvalid int) {
	msgs := make([]kafka.Message, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, cc.input(cc.c.Valid(i), i))
		if invalid && cc.c.Invalid != nil && i%5 == 4 {
			msgs = append(msgs, cc.input(cc.c.Invalid(i), 1_000_000+i))
			nInvalid++
		}
	}
	Produce(cc.t, cc.env.Brokers, msgs...)
	return nInvalid
}

func (cc *contractCase) input(m kafka.Message, i int) kafka.Message {
	m.Topic = cc.env.InputTopic
	m.Partition, m.Offset, m.HighWaterMark = 0, 0, 0
	m.Headers = append(append([]kafka.Header(nil), m.Headers...), kafka.Header{Key: HeaderIndex, Value: []byte(strconv.Itoa(i))})
	return m
}

func indexOf(m kafka.Message) int {
	v, ok := kafkaio.HeaderValue(m.Headers, HeaderIndex)
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(string(v))
	if err != nil {
		return -1
	}
	return i
}

var errInjected = errors.New("kafkaiotest: injected transient failure")

// wrap returns the handler under test wrapped with bookkeeping and fault injection.
func (cc *contractCase) wrap(inner kafkaio.BatchHandler) kafkaio.BatchHandler {
	return func(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
		cc.mu.Lock()
		cc.calls++
		phase := cc.phase
		if cc.firstOff[phase] == nil {
			cc.firstOff[phase] = map[int]int64{}
		}
		for _, m := range msgs {
			cc.seen[tpo{m.Partition, m.Offset}] = indexOf(m)
			if off, ok := cc.firstOff[phase][m.Partition]; !ok || m.Offset < off {
				cc.firstOff[phase][m.Partition] = m.Offset
			}
		}
		block, transientAt, transientAfter, panicNow := false, -1, false, false
		for i, m := range msgs {
			switch idx := indexOf(m); {
			case idx == cc.blockIndex && idx >= 0:
				block = true
				cc.blockIndex = -1 // only the first consumer crashes
			case idx == cc.panicIndex && idx >= 0:
				panicNow = true
			case idx == cc.transientIndex && idx >= 0 && cc.transientLeft > 0 && transientAt < 0:
				transientAt = i
				// Alternate: fail before the handler ran, then after it ran (its side
				// effects happened but the loop must not commit).
				transientAfter = cc.transientLeft%2 == 0
				cc.transientLeft--
			}
		}
		blocked := cc.blockedNow
		cc.mu.Unlock()

		if block {
			close(blocked)
			<-ctx.Done()
			return nil, fmt.Errorf("kafkaiotest: crashed: %w", ctx.Err())
		}
		if panicNow {
			panic("kafkaiotest: injected panic")
		}
		if transientAt >= 0 {
			cc.checkNotCommittedPast(msgs[transientAt])
			n := transientAt
			if transientAfter {
				n++
			}
			var res []kafkaio.Result
			if n > 0 {
				var err error
				res, err = inner(ctx, msgs[:n])
				if err != nil {
					return nil, err
				}
				cc.record(msgs[:n], res)
			}
			if len(res) < transientAt {
				return res, nil
			}
			return append(res[:transientAt], kafkaio.Result{Err: errInjected}), nil
		}
		res, err := inner(ctx, msgs)
		if err == nil {
			cc.record(msgs, res)
		}
		return res, err
	}
}

// record notes the outcome the handler reported for each record.
func (cc *contractCase) record(msgs []kafka.Message, res []kafkaio.Result) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for i, r := range res {
		if i >= len(msgs) {
			break
		}
		idx := indexOf(msgs[i])
		switch {
		case r.Err == nil:
			if _, ok := cc.accepted[idx]; !ok {
				cc.accepted[idx] = msgs[i]
			}
		case kafkaio.IsPermanent(r.Err):
			cc.rejected[idx] = kafkaio.Reason(r.Err)
		}
	}
}

// checkNotCommittedPast fails the test if the group committed past m.
func (cc *contractCase) checkNotCommittedPast(m kafka.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	committed, err := CommittedOffsets(ctx, cc.env.Brokers, cc.group(), cc.env.InputTopic)
	if err != nil {
		cc.t.Errorf("committed offsets: %v", err)
		return
	}
	if committed[m.Partition] > m.Offset {
		cc.t.Errorf("partition %d committed at %d although offset %d is failing", m.Partition, committed[m.Partition], m.Offset)
	}
}

func (cc *contractCase) group() string { return "group-" + cc.env.Suffix }

// consumer runs one consumer of the case's group; stop cancels it and returns Run's error.
func (cc *contractCase) consumer(group string, reg *prometheus.Registry) (stop func() error) {
	cfg := ConsumerConfig(cc.env.Brokers, group, cc.env.InputTopic)
	cfg.DLQTopic = cc.env.DLQTopic
	cfg.ClientID = "contract-" + cc.env.Suffix
	cfg.MaxBatch = 16
	cfg.ShutdownTimeout = 200 * time.Millisecond
	logger := slog.New(slog.NewTextHandler(cc.t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	c, err := kafkaio.NewConsumer(cfg, cc.wrap(cc.c.NewHandler(cc.t, cc.env)), logger, reg)
	if err != nil {
		cc.t.Fatalf("new consumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	cc.t.Cleanup(func() { _ = stop() })
	return stop
}

// waitCommittedAll waits until group committed the end of every input partition.
func (cc *contractCase) waitCommittedAll(group string) {
	cc.t.Helper()
	WaitFor(cc.t, cc.c.Timeout, "group "+group+" to commit every input", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ends, err := EndOffsets(ctx, cc.env.Brokers, cc.env.InputTopic)
		if err != nil {
			return false, err
		}
		committed, err := CommittedOffsets(ctx, cc.env.Brokers, group, cc.env.InputTopic)
		if err != nil {
			return false, err
		}
		for p, end := range ends {
			if end > 0 && committed[p] != end {
				return false, fmt.Errorf("partition %d committed %d of %d", p, committed[p], end)
			}
		}
		return true, nil
	})
}

func (cc *contractCase) stopOK(stop func() error) {
	cc.t.Helper()
	if err := stop(); err != nil {
		cc.t.Errorf("consumer Run returned %v, want nil after cancel", err)
	}
}

// acceptedAll checks every valid input in [0, n) was accepted and calls Verify.
func (cc *contractCase) acceptedAll(n int) {
	cc.t.Helper()
	cc.mu.Lock()
	var missing []int
	accepted := make([]kafka.Message, 0, len(cc.accepted))
	for i := range n {
		m, ok := cc.accepted[i]
		if !ok && i != cc.panicIndex {
			missing = append(missing, i)
		}
		if ok {
			accepted = append(accepted, m)
		}
	}
	cc.mu.Unlock()
	if len(missing) > 0 {
		cc.t.Errorf("valid inputs never accepted by the handler: %v", missing)
	}
	if cc.c.Verify != nil {
		outputs := map[string][]kafka.Message{}
		for name, topic := range cc.env.Topics {
			outputs[name] = ReadTopic(cc.t, cc.env.Brokers, topic)
		}
		cc.c.Verify(cc.t, cc.env, accepted, outputs)
	}
}

func (cc *contractCase) commitAfterSuccess() {
	n := cc.c.N
	cc.blockIndex = n / 2
	cc.blockedNow = make(chan struct{})
	cc.produce(0, n, false)

	stop := cc.consumer(cc.group(), prometheus.NewRegistry())
	select {
	case <-cc.blockedNow:
	case <-time.After(cc.c.Timeout):
		cc.t.Fatalf("the consumer never reached input %d", n/2)
	}
	cc.stopOK(stop) // the blocked batch is abandoned: a crash before commit

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	committed, err := CommittedOffsets(ctx, cc.env.Brokers, cc.group(), cc.env.InputTopic)
	if err != nil {
		cc.t.Fatal(err)
	}
	cc.mu.Lock()
	handled := map[tpo]bool{}
	for k, idx := range cc.seen {
		_, ok := cc.accepted[idx]
		handled[k] = ok || cc.rejected[idx] != ""
	}
	for p, c := range committed {
		for off := int64(0); off < c; off++ {
			if !handled[tpo{p, off}] {
				cc.t.Errorf("partition %d: offset %d committed (committed=%d) but never handled successfully", p, off, c)
			}
		}
	}
	cc.phase = 1
	cc.mu.Unlock()

	stop = cc.consumer(cc.group(), prometheus.NewRegistry())
	cc.waitCommittedAll(cc.group())
	cc.stopOK(stop)

	cc.mu.Lock()
	for p, c := range committed {
		if first, ok := cc.firstOff[1][p]; ok && c >= 0 && first != c {
			cc.t.Errorf("partition %d: restarted consumer began at offset %d, want the committed %d", p, first, c)
		}
	}
	cc.mu.Unlock()
	cc.acceptedAll(n)
}

func (cc *contractCase) transientRetried() {
	n := cc.c.N
	cc.transientIndex = n / 3
	cc.transientLeft = 4
	cc.produce(0, n, false)
	reg := prometheus.NewRegistry()
	stop := cc.consumer(cc.group(), reg)
	cc.waitCommittedAll(cc.group())
	cc.stopOK(stop)
	cc.mu.Lock()
	left := cc.transientLeft
	cc.mu.Unlock()
	if left != 0 {
		cc.t.Errorf("%d injected transient failures were never hit", left)
	}
	if got := MetricValue(reg, "mlops_kafka_handler_errors_total", map[string]string{"topic": cc.env.InputTopic, "kind": "transient"}); got < 4 {
		cc.t.Errorf("mlops_kafka_handler_errors_total{kind=transient} = %v, want >= 4", got)
	}
	cc.acceptedAll(n)
}

func (cc *contractCase) permanentToDLQ() {
	n := cc.c.N
	cc.panicIndex = n / 4
	nInvalid := cc.produce(0, n, true)
	reg := prometheus.NewRegistry()
	stop := cc.consumer(cc.group(), reg)
	cc.waitCommittedAll(cc.group())
	cc.stopOK(stop)

	inputs := map[int]kafka.Message{}
	for _, m := range ReadTopic(cc.t, cc.env.Brokers, cc.env.InputTopic) {
		inputs[indexOf(m)] = m
	}
	dlq := map[int]kafka.Message{}
	for _, m := range ReadTopic(cc.t, cc.env.Brokers, cc.env.DLQTopic) {
		dlq[indexOf(m)] = m
	}
	want := map[int]string{cc.panicIndex: kafkaio.ReasonPanic}
	for i := range n {
		if cc.c.Invalid != nil && i%5 == 4 {
			want[1_000_000+i] = cc.c.InvalidReason
		}
	}
	if len(want) != nInvalid+1 {
		cc.t.Fatalf("internal: %d expected dlq records, %d invalid", len(want), nInvalid)
	}
	for idx, reason := range want {
		in, got := inputs[idx], dlq[idx]
		if got.Value == nil && got.Key == nil && got.Headers == nil {
			cc.t.Errorf("input %d (partition %d offset %d) not in the dlq", idx, in.Partition, in.Offset)
			continue
		}
		checkDLQRecord(cc.t, in, got, reason, cc.env.InputTopic, "contract-"+cc.env.Suffix)
	}
	for idx := range dlq {
		if _, ok := want[idx]; !ok {
			cc.t.Errorf("input %d is in the dlq but is valid", idx)
		}
	}
	if got := MetricValue(reg, "mlops_kafka_dlq_messages_total", map[string]string{"topic": cc.env.InputTopic, "reason": kafkaio.ReasonPanic}); got < 1 {
		cc.t.Errorf("mlops_kafka_dlq_messages_total{reason=panic} = %v, want >= 1", got)
	}
	cc.acceptedAll(n)
}

// checkDLQRecord compares a dead-letter record with its input.
func checkDLQRecord(t testing.TB, in, got kafka.Message, reason, topic, service string) {
	t.Helper()
	if string(got.Key) != string(in.Key) || string(got.Value) != string(in.Value) {
		t.Errorf("dlq record of offset %d: key/value %q/%q, want the original %q/%q", in.Offset, got.Key, got.Value, in.Key, in.Value)
	}
	for _, h := range in.Headers {
		if v, ok := kafkaio.HeaderValue(got.Headers, h.Key); !ok || string(v) != string(h.Value) {
			t.Errorf("dlq record of offset %d: original header %q = %q, want %q", in.Offset, h.Key, v, h.Value)
		}
	}
	header := func(k string) string { v, _ := kafkaio.HeaderValue(got.Headers, k); return string(v) }
	if r := header(kafkaio.HeaderDLQReason); r == "" || (reason != "" && r != reason) {
		t.Errorf("dlq record of offset %d: %s = %q, want %q", in.Offset, kafkaio.HeaderDLQReason, r, reason)
	}
	if header(kafkaio.HeaderDLQError) == "" {
		t.Errorf("dlq record of offset %d: empty %s", in.Offset, kafkaio.HeaderDLQError)
	}
	checks := map[string]string{
		kafkaio.HeaderDLQSourceTopic:     topic,
		kafkaio.HeaderDLQSourcePartition: strconv.Itoa(in.Partition),
		kafkaio.HeaderDLQSourceOffset:    strconv.FormatInt(in.Offset, 10),
		kafkaio.HeaderDLQService:         service,
	}
	for k, want := range checks {
		if got := header(k); got != want {
			t.Errorf("dlq record of offset %d: %s = %q, want %q", in.Offset, k, got, want)
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, header(kafkaio.HeaderDLQTime)); err != nil || time.Since(ts) > time.Hour || time.Until(ts) > time.Minute {
		t.Errorf("dlq record of offset %d: %s = %q is not a recent RFC 3339 time", in.Offset, kafkaio.HeaderDLQTime, header(kafkaio.HeaderDLQTime))
	}
}

func (cc *contractCase) replayIsSafe() {
	n := cc.c.N
	cc.produce(0, n, false)
	stop := cc.consumer(cc.group(), prometheus.NewRegistry())
	cc.waitCommittedAll(cc.group())
	cc.stopOK(stop)
	cc.mu.Lock()
	cc.accepted = map[int]kafka.Message{}
	cc.mu.Unlock()

	replay := cc.group() + "-replay"
	stop = cc.consumer(replay, prometheus.NewRegistry())
	cc.waitCommittedAll(replay)
	cc.stopOK(stop)
	cc.acceptedAll(n)
}

// MetricValue returns the value of the counter or gauge name with exactly labels in reg, or
// 0 when there is none.
func MetricValue(reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
