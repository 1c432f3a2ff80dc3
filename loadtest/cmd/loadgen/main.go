// Command loadgen publishes simulated transactions to tx.raw and their delayed labels to
// labels.v1 on a real Kafka, at a bounded rate, for a bounded count or time, then stops.
//
//	go run ./loadtest/cmd/loadgen -brokers 127.0.0.1:9092 -rate 20 -duration 10m
//
// -drift <scenario> -drift-after <d> switches a named drift scenario (covariate, new-pattern
// or season; see sim.Scenarios) on mid-run, d of wall-clock time after the start (0: from the
// start), at the sim time of the last published transaction:
//
//	go run ./loadtest/cmd/loadgen -rate 50 -duration 30m -drift new-pattern -drift-after 10m
//
// -shop-rate r adds shop traffic next to the payments: r simulated shopping sessions a second
// (sim.NewSessions) as shop events (transactions with the commerce block, sim.Session.Proto)
// on the same topic, and their purchase outcomes as LABEL_KIND_PURCHASE labels once they are
// due, -label-delay of sim time after each session ends. It is 0 (no shop events) by
// default; make demo runs with -shop-rate 5. -drift applies to the sessions too
// (sim.SessionScenarioDrift), switched on at the same wall-clock moment:
//
//	go run ./loadtest/cmd/loadgen -rate 20 -shop-rate 5 -duration 30m -drift season -drift-after 10m
//
// Records go to Kafka in batches (up to -max-batch per producer call, -kafka.batch-timeout of
// linger), so -rate 0 publishes as fast as the broker acknowledges. A count-bounded run (-n)
// publishes exactly n transactions or exits non-zero saying how many it got out and why
// (-duration ended it, or sim time reached the wall clock). -lag 0 (the default) starts sim
// time early enough for the run's transactions; a count that needs more than ingestion's
// 30 days of sim time is refused up front (raise -accounts).
//
// Transactions are published as JSON (content-type application/json, as transaction systems
// send them) or, for -proto-fraction of them, as protobuf; labels as protobuf Label. Sim time
// starts -lag before now and is never allowed to run ahead of the wall clock, so event times
// stay plausible for ingestion's timestamp checks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

// options configure one run.
type options struct {
	brokers       []string
	rate          float64
	n             int
	duration      time.Duration
	seed          uint64
	accounts      int
	protoFraction float64
	labels        bool
	lag           time.Duration
	labelDelay    time.Duration
	txTopic       string
	labelTopic    string
	drift         string
	driftAfter    time.Duration
	shopRate      float64
	shopN         int
	customers     int
	maxBatch      int
	linger        time.Duration
	retryFor      time.Duration
	ramp          []rampStep
	rampPause     time.Duration
	stepOut       io.Writer // receives one JSON line per finished -ramp step
}

func parse(args []string, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	flagenv.StringsVar(fs, getenv, &o.brokers, "kafka.brokers", "KAFKA_BROKERS", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers")
	flagenv.Float64Var(fs, getenv, &o.rate, "rate", "LOADGEN_RATE", 20, "transactions per second (0: as fast as possible)")
	flagenv.IntVar(fs, getenv, &o.n, "n", "LOADGEN_N", 1000, "stop after this many transactions (0: no count limit)")
	flagenv.DurationVar(fs, getenv, &o.duration, "duration", "LOADGEN_DURATION", 10*time.Minute, "stop after this long (0: no time limit; -n or -duration must bound the run)")
	seed := flagenv.Int(fs, getenv, "seed", "LOADGEN_SEED", 1, "simulator seed")
	flagenv.IntVar(fs, getenv, &o.accounts, "accounts", "LOADGEN_ACCOUNTS", 2000, "simulated accounts")
	flagenv.Float64Var(fs, getenv, &o.protoFraction, "proto-fraction", "LOADGEN_PROTO_FRACTION", 0.2, "share of transactions sent as protobuf instead of JSON")
	flagenv.BoolVar(fs, getenv, &o.labels, "labels", "LOADGEN_LABELS", true, "publish labels to labels.v1 as they come due")
	flagenv.DurationVar(fs, getenv, &o.lag, "lag", "LOADGEN_LAG", 0, "sim time starts this long before now (0: long enough for the run's transactions, at least 48h)")
	flagenv.IntVar(fs, getenv, &o.maxBatch, "max-batch", "LOADGEN_MAX_BATCH", 2000, "most records handed to the producer in one call, and per partition in one produce request")
	flagenv.DurationVar(fs, getenv, &o.linger, "kafka.batch-timeout", "KAFKA_BATCH_TIMEOUT", 5*time.Millisecond, "longest the producer waits to fill a batch")
	flagenv.DurationVar(fs, getenv, &o.retryFor, "retry-for", "LOADGEN_RETRY_FOR", 30*time.Second, "keep retrying a failed write this long (a new topic's leader not ready yet, a broker restarting) before giving up")
	flagenv.DurationVar(fs, getenv, &o.labelDelay, "label-delay", "LOADGEN_LABEL_DELAY", 10*time.Minute, "longest sim-time delay of a label")
	flagenv.StringVar(fs, getenv, &o.txTopic, "tx-topic", "LOADGEN_TX_TOPIC", topics.TxRaw, "topic for transactions")
	flagenv.StringVar(fs, getenv, &o.labelTopic, "label-topic", "LOADGEN_LABEL_TOPIC", topics.Labels, "topic for labels")
	flagenv.StringVar(fs, getenv, &o.drift, "drift", "LOADGEN_DRIFT", "", "drift scenario to switch on mid-run: "+strings.Join(sim.Scenarios(), ", ")+" (empty: none)")
	flagenv.DurationVar(fs, getenv, &o.driftAfter, "drift-after", "LOADGEN_DRIFT_AFTER", 5*time.Minute, "wall-clock time after the start at which -drift switches on")
	flagenv.Float64Var(fs, getenv, &o.shopRate, "shop-rate", "LOADGEN_SHOP_RATE", 0, "shop events (simulated shopping sessions) per second, with their purchase labels (0: none)")
	flagenv.IntVar(fs, getenv, &o.shopN, "shop-n", "LOADGEN_SHOP_N", 0, "stop the shop traffic after this many shop events (0: it stops with the payments)")
	flagenv.IntVar(fs, getenv, &o.customers, "shop-customers", "LOADGEN_SHOP_CUSTOMERS", 2000, "simulated shop customers")
	ramp := flagenv.String(fs, getenv, "ramp", "LOADGEN_RAMP", "", "rate steps rate/duration,... (e.g. 500/15s,1000/15s): replaces -rate and sets -n to their total; one JSON line per finished step")
	flagenv.DurationVar(fs, getenv, &o.rampPause, "ramp-pause", "LOADGEN_RAMP_PAUSE", 0, "pause between -ramp steps")
	if err := flagenv.Parse(fs, args); err != nil {
		return o, err
	}
	o.seed = uint64(*seed)
	var errs []error
	var err error
	if o.ramp, err = parseRamp(*ramp); err != nil {
		errs = append(errs, err)
	}
	if len(o.ramp) > 0 {
		o.n, o.rate = 0, 0
		for _, st := range o.ramp {
			o.n += st.count()
		}
	}
	if o.n <= 0 && o.duration <= 0 {
		errs = append(errs, errors.New("unbounded run: set -n or -duration"))
	}
	if o.rate < 0 || o.protoFraction < 0 || o.protoFraction > 1 {
		errs = append(errs, errors.New("-rate must be >= 0 and -proto-fraction within [0, 1]"))
	}
	if o.shopRate < 0 || o.shopN < 0 || o.customers < 1 {
		errs = append(errs, errors.New("-shop-rate and -shop-n must be >= 0 and -shop-customers >= 1"))
	}
	if o.labelDelay <= 0 {
		errs = append(errs, errors.New("-label-delay must be positive"))
	}
	if o.maxBatch < 1 {
		errs = append(errs, errors.New("-max-batch must be >= 1"))
	}
	if o.accounts >= 1 && o.lag == 0 {
		if need := simSpan(o); need > maxSimSpan {
			errs = append(errs, fmt.Errorf("%d transactions of %d accounts need about %.0f days of sim time, more than the %.0f days ingestion accepts (events older than 30 days are rejected): raise -accounts to at least %d",
				runTransactions(o), o.accounts, need.Hours()/24, maxSimSpan.Hours()/24, int(float64(o.accounts)*float64(need)/float64(maxSimSpan))+1))
		}
	}
	if o.drift != "" {
		if _, err := sim.ScenarioDrift(o.drift, time.Now()); err != nil {
			errs = append(errs, err)
		}
		if o.driftAfter < 0 {
			errs = append(errs, errors.New("-drift-after must not be negative"))
		}
	}
	return o, errors.Join(errs...)
}

// stats counts what one run published.
type stats struct {
	Transactions int `json:"transactions"`
	JSON         int `json:"json"`
	Proto        int `json:"protobuf"`
	Labels       int `json:"labels"`
	Fraud        int `json:"fraud"`
	// DriftAt is the sim time at which -drift switched on (empty: it did not).
	DriftAt string `json:"drift_at,omitempty"`
	// Shop counts the shop traffic (-shop-rate); nil without it.
	Shop *shopStats `json:"shop,omitempty"`
}

// shopStats counts the shop traffic of one run.
type shopStats struct {
	Events    int `json:"events"`
	JSON      int `json:"json"`
	Proto     int `json:"protobuf"`
	Labels    int `json:"labels"`
	Purchases int `json:"purchases"` // labels with outcome 1
	// DriftAt is the sim time at which -drift switched on for the sessions.
	DriftAt string `json:"drift_at,omitempty"`
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parse(args, getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil)).With("service", "loadgen")
	o.stepOut = stderr
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	prod, err := kafkaio.NewProducer(kafkaio.Config{Brokers: o.brokers, ClientID: "loadgen", BatchTimeout: o.linger,
		BatchSize: o.maxBatch}, logger, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	st, err := run(ctx, o, time.Now, prod.WriteMessages)
	err = errors.Join(err, prod.Close())
	b, _ := json.Marshal(st)
	fmt.Fprintf(stderr, "%s\n", b)
	if errors.Is(err, context.DeadlineExceeded) && o.n > 0 && st.Transactions < o.n {
		return fmt.Errorf("-duration %v ended the run after %d of %d transactions (%.0f/s): raise -duration or -rate", o.duration, st.Transactions, o.n, float64(st.Transactions)/o.duration.Seconds())
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nil // the time bound or a signal ended the run
	}
	return err
}

// run publishes payments until o.n transactions are out or ctx ends and, with o.shopRate,
// shop traffic next to them (runShop) until o.shopN shop events are out, or with the payments
// when o.shopN is 0. It returns when both are done.
// write must be safe for concurrent use (kafka.Writer is): both call it.
func run(ctx context.Context, o options, now func() time.Time, write func(context.Context, ...kafka.Message) error) (stats, error) {
	if o.shopRate <= 0 {
		return runPayments(ctx, o, now, write)
	}
	shopCtx, stopShop := context.WithCancel(ctx)
	defer stopShop()
	var (
		wg      sync.WaitGroup
		shop    shopStats
		shopErr error
	)
	wg.Go(func() { shop, shopErr = runShop(shopCtx, o, now, write) })
	st, err := runPayments(shopCtx, o, now, write)
	if o.shopN <= 0 || err != nil {
		stopShop() // an unbounded shop stops with the payments
	}
	wg.Wait()
	st.Shop = &shop
	if errors.Is(shopErr, context.Canceled) && ctx.Err() == nil {
		shopErr = nil // stopped with the payments
	}
	if errors.Is(err, context.Canceled) && ctx.Err() == nil && shopErr != nil {
		err = nil // the shop failure stopped the payments; report it alone
	}
	return st, errors.Join(err, shopErr)
}

// runPayments publishes payment transactions until o.n are out or ctx ends. The simulation
// and encoding run here; a publisher goroutine hands the records to write in batches of up to
// o.maxBatch, one call in flight at a time, so the producer fills whole batches (acks=all
// costs one round trip per batch, not per record) and records keep their order. Transactions
// are paced against a schedule (the k-th is due k/o.rate after the start), not a ticker, so
// high rates hold. Stats count what write acknowledged.
func runPayments(ctx context.Context, o options, now func() time.Time, write func(context.Context, ...kafka.Message) error) (stats, error) {
	cfg := sim.DefaultConfig()
	cfg.Seed = o.seed
	cfg.Accounts = o.accounts
	lag := effectiveLag(o)
	cfg.Start = now().Add(-lag).Truncate(time.Second)
	// Chargeback delays compressed: the default ratio of the longest to the shortest (six
	// weeks to two days) within -label-delay.
	ratio := float64(cfg.LabelDelayMin) / float64(cfg.LabelDelayMax)
	cfg.LabelDelayMax = o.labelDelay
	cfg.LabelDelayMin = max(time.Duration(float64(o.labelDelay)*ratio), time.Millisecond)
	s, err := sim.New(cfg)
	if err != nil {
		return stats{}, err
	}
	maxBatch := max(o.maxBatch, 1)
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	pub := newPublisher(pubCtx, write, maxBatch, o.retryFor)

	var gen stats // what was generated; st is what was acknowledged
	pace := newPacer(o, now())
	protoEvery := 0
	if o.protoFraction > 0 {
		protoEvery = int(1 / o.protoFraction)
	}
	begin := now()
	var last time.Time
	genErr := func() error {
		for o.n <= 0 || gen.Transactions < o.n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if o.drift != "" && gen.DriftAt == "" && now().Sub(begin) >= o.driftAfter {
				at := last
				if at.Before(cfg.Start) {
					at = cfg.Start
				}
				d, err := sim.ScenarioDrift(o.drift, at)
				if err == nil {
					err = s.AddDrift(d)
				}
				if err != nil {
					return err
				}
				gen.DriftAt = at.Format(time.RFC3339Nano)
			}
			tx, labels := s.Next()
			last = tx.EventTime
			// Never publish an event from the future. With a count the sim time was sized for
			// it, so reaching the wall clock means the lag was too short: say so and stop
			// rather than crawl at the sim's real pace. Without a count (a run bounded by
			// time), wait for the wall clock.
			if wait := tx.EventTime.Sub(now()); wait > 0 {
				if o.n > 0 {
					return fmt.Errorf("sim time reached the wall clock after %d of %d transactions: -lag %v covers too few transactions of %d accounts; raise -lag or -accounts (or leave -lag 0 to size it)",
						gen.Transactions, o.n, lag, o.accounts)
				}
				if err := sleep(ctx, wait); err != nil {
					return err
				}
			}
			if due, ok := pace.due(now()); ok {
				// Sleep only when more than a millisecond ahead of the schedule: timers are
				// coarser than the interval at high rates.
				if ahead := due.Sub(now()); ahead > time.Millisecond {
					if err := sleep(ctx, ahead); err != nil {
						return err
					}
				}
			}
			msgs := make([]kafka.Message, 0, 1+len(labels))
			asProto := protoEvery > 0 && gen.Transactions%protoEvery == 0
			m, err := txMessage(o.txTopic, &tx, asProto)
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
			if o.labels {
				for i := range labels {
					lm, err := labelMessage(o.labelTopic, &labels[i])
					if err != nil {
						return err
					}
					msgs = append(msgs, lm)
				}
			}
			one := stats{Transactions: 1}
			if asProto {
				one.Proto = 1
			} else {
				one.JSON = 1
			}
			if tx.IsFraud {
				one.Fraud = 1
			}
			if o.labels {
				one.Labels = len(labels)
			}
			if err := pub.send(ctx, msgs, one); err != nil {
				return err
			}
			gen.Transactions++
		}
		return nil
	}()
	if genErr == nil {
		pace.close()
	}
	st, pubErr := pub.close()
	st.DriftAt = gen.DriftAt
	if pubErr != nil {
		return st, pubErr
	}
	if genErr != nil {
		return st, genErr
	}
	return st, nil
}

// pacer schedules transactions: the k-th is due k/rate after the start, or, with -ramp, the
// k-th of step i is due k/rate_i after the step's start, steps following one another with
// -ramp-pause between them. Each finished step is reported as one JSON line on o.stepOut.
type pacer struct {
	rate  float64
	steps []rampStep
	pause time.Duration
	out   io.Writer
	start time.Time // of the current step (of the run without -ramp)
	i, k  int       // current step, transactions due so far in it
}

// close reports the last step once the run's count is out.
func (p *pacer) close() {
	if p.i < len(p.steps) && p.k >= p.steps[p.i].count() {
		p.due(p.start)
	}
}

func newPacer(o options, now time.Time) *pacer {
	return &pacer{rate: o.rate, steps: o.ramp, pause: o.rampPause, out: o.stepOut, start: now}
}

// due returns when the next transaction is due; false when it is due at once (-rate 0).
func (p *pacer) due(now time.Time) (time.Time, bool) {
	if len(p.steps) == 0 {
		if p.rate <= 0 {
			return time.Time{}, false
		}
		at := p.start.Add(time.Duration(float64(p.k) / p.rate * float64(time.Second)))
		p.k++
		return at, true
	}
	for p.i < len(p.steps) && p.k >= p.steps[p.i].count() {
		st := p.steps[p.i]
		end := p.start.Add(st.dur)
		if p.out != nil {
			fmt.Fprintf(p.out, "{\"step\":%d,\"rate\":%g,\"transactions\":%d,\"start_unix_ms\":%d,\"end_unix_ms\":%d}\n",
				p.i, st.rate, p.k, p.start.UnixMilli(), end.UnixMilli())
		}
		p.i, p.k, p.start = p.i+1, 0, end.Add(p.pause)
	}
	if p.i >= len(p.steps) {
		return now, false // the count (the ramp's total) ends the run before this
	}
	at := p.start.Add(time.Duration(float64(p.k) / p.steps[p.i].rate * float64(time.Second)))
	p.k++
	return at, true
}

// rampStep is one step of -ramp: rate transactions a second for dur.
type rampStep struct {
	rate float64
	dur  time.Duration
}

func (r rampStep) count() int { return int(r.rate * r.dur.Seconds()) }

// parseRamp parses "rate/duration,rate/duration,...".
func parseRamp(s string) ([]rampStep, error) {
	if s == "" {
		return nil, nil
	}
	var steps []rampStep
	for part := range strings.SplitSeq(s, ",") {
		r, d, ok := strings.Cut(strings.TrimSpace(part), "/")
		rate, err1 := strconv.ParseFloat(r, 64)
		dur, err2 := time.ParseDuration(d)
		if !ok || err1 != nil || err2 != nil || rate <= 0 || dur <= 0 || int(rate*dur.Seconds()) < 1 {
			return nil, fmt.Errorf("-ramp step %q: want rate/duration, both positive, e.g. 1000/15s", part)
		}
		steps = append(steps, rampStep{rate: rate, dur: dur})
	}
	return steps, nil
}

// defaultLag is the least sim time a run starts before now.
const defaultLag = 48 * time.Hour

// maxSimSpan is the most sim time a run may span: ingestion rejects events older than 30
// days by default; a day is left for the run itself.
const maxSimSpan = 29 * 24 * time.Hour

// effectiveLag is -lag or, when it is 0, enough sim time for the run's payments and shop
// sessions, at least defaultLag.
func effectiveLag(o options) time.Duration {
	if o.lag > 0 {
		return o.lag
	}
	shop := 0.0 // one session a sim second
	switch {
	case o.shopN > 0:
		shop = float64(o.shopN)
	case o.shopRate > 0 && o.duration > 0:
		shop = o.shopRate * o.duration.Seconds()
	}
	return max(simSpan(o), time.Duration(1.25*shop*float64(time.Second))+o.labelDelay, defaultLag)
}

// runTransactions is how many transactions the run publishes at most: -n, or -rate times
// -duration without a count (0 when neither bounds it).
func runTransactions(o options) int {
	if o.n > 0 {
		return o.n
	}
	if o.rate > 0 && o.duration > 0 {
		return int(o.rate * o.duration.Seconds())
	}
	return 0
}

// writeRetrying writes msgs, retrying what failed with a growing pause (50ms to 1s) until it
// is written, retryFor has passed since the first failure, or ctx ends; it returns the last
// error then.
func writeRetrying(ctx context.Context, write func(context.Context, ...kafka.Message) error, msgs []kafka.Message, retryFor time.Duration) error {
	var giveUp time.Time
	pause := 50 * time.Millisecond
	for {
		err := write(ctx, msgs...)
		if err == nil {
			return nil
		}
		if giveUp.IsZero() {
			giveUp = time.Now().Add(retryFor)
		}
		if ctx.Err() != nil || time.Now().Add(pause).After(giveUp) {
			return err
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(msgs) {
			again := make([]kafka.Message, 0, werrs.Count())
			for i, e := range werrs {
				if e != nil {
					again = append(again, msgs[i])
				}
			}
			msgs = again
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// simSpan is the sim time runTransactions(o) transactions of o.accounts accounts cover, with a
// quarter of margin for the simulator's randomness (fraud bursts add transactions, quiet
// accounts fewer). 7 days when the run has no count and no rate.
func simSpan(o options) time.Duration {
	n := runTransactions(o)
	if n == 0 {
		return 7 * 24 * time.Hour
	}
	perDay := float64(o.accounts) * sim.DefaultConfig().TxPerAccountPerDay
	return time.Duration(1.25*float64(n)/perDay*24*float64(time.Hour)) + time.Hour
}

// publisher hands records to write in batches from one goroutine, in the order they were
// sent, and adds up the stats of what write acknowledged. A failed write is retried for up to
// retryFor: the records write reports failed (all of them when it does not say), in order, so
// a key's records keep their order (kafkaio's producer reports the records after a failed one
// of the same call as not attempted).
type publisher struct {
	in     chan pubItem
	done   chan struct{}
	failed chan struct{} // closed when a write failed
	acked  stats
	err    error
}

type pubItem struct {
	msgs []kafka.Message
	st   stats
}

func newPublisher(ctx context.Context, write func(context.Context, ...kafka.Message) error, maxBatch int, retryFor time.Duration) *publisher {
	p := &publisher{in: make(chan pubItem, 4*maxBatch), done: make(chan struct{}), failed: make(chan struct{})}
	go func() {
		defer close(p.done)
		batch := make([]kafka.Message, 0, maxBatch+8)
		var pending stats
		flush := func() bool {
			if len(batch) == 0 {
				return true
			}
			if err := writeRetrying(ctx, write, batch, retryFor); err != nil {
				p.err = fmt.Errorf("publish %d records after %d transactions: %w", len(batch), p.acked.Transactions, err)
				close(p.failed)
				return false
			}
			p.acked.add(pending)
			batch, pending = batch[:0], stats{}
			return true
		}
		for it := range p.in {
			batch = append(batch, it.msgs...)
			pending.add(it.st)
			// Take whatever else is already queued, up to a full batch, then write.
		more:
			for len(batch) < maxBatch {
				select {
				case it, ok := <-p.in:
					if !ok {
						break more
					}
					batch = append(batch, it.msgs...)
					pending.add(it.st)
				default:
					break more
				}
			}
			if !flush() {
				for range p.in { // drain so send never blocks
				}
				return
			}
		}
	}()
	return p
}

// send queues msgs; it blocks while the queue is full and fails once the publisher failed.
func (p *publisher) send(ctx context.Context, msgs []kafka.Message, st stats) error {
	select {
	case <-p.failed:
		return errors.New("publisher stopped")
	default:
	}
	select {
	case p.in <- pubItem{msgs: msgs, st: st}:
		return nil
	case <-p.failed:
		return errors.New("publisher stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close flushes what is queued and returns the acknowledged stats and the first write error.
func (p *publisher) close() (stats, error) {
	close(p.in)
	<-p.done
	return p.acked, p.err
}

func (s *stats) add(o stats) {
	s.Transactions += o.Transactions
	s.JSON += o.JSON
	s.Proto += o.Proto
	s.Labels += o.Labels
	s.Fraud += o.Fraud
}

// runShop publishes shop events at o.shopRate a second until o.shopN are out or ctx ends,
// with each session's purchase label once it is due. Sim time starts o.lag before now at one
// session per sim second and, like the payments', never runs ahead of the wall clock.
func runShop(ctx context.Context, o options, now func() time.Time, write func(context.Context, ...kafka.Message) error) (shopStats, error) {
	cfg := sim.SessionConfig{Seed: o.seed, Customers: o.customers, LabelDelay: o.labelDelay,
		Start: now().Add(-effectiveLag(o)).Truncate(time.Second)}
	ss, err := sim.NewSessions(cfg)
	if err != nil {
		return shopStats{}, err
	}
	var st shopStats
	t := time.NewTicker(time.Duration(float64(time.Second) / o.shopRate))
	defer t.Stop()
	protoEvery := 0
	if o.protoFraction > 0 {
		protoEvery = int(1 / o.protoFraction)
	}
	// The event time of every session whose label is not out yet: a label carries it.
	pending := map[string]time.Time{}
	begin := now()
	last := cfg.Start
	for o.shopN <= 0 || st.Events < o.shopN {
		if o.drift != "" && st.DriftAt == "" && now().Sub(begin) >= o.driftAfter {
			d, err := sim.SessionScenarioDrift(o.drift, last)
			if err == nil {
				err = ss.AddDrift(d)
			}
			if err != nil {
				return st, err
			}
			st.DriftAt = last.Format(time.RFC3339Nano)
		}
		s, labels := ss.Next()
		last = s.EventTime
		pending[s.SessionID] = s.EventTime
		if wait := s.EventTime.Sub(now()); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return st, err
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return st, ctx.Err()
		}
		asProto := protoEvery > 0 && st.Events%protoEvery == 0
		m, err := shopMessage(o.txTopic, &s, asProto)
		if err != nil {
			return st, err
		}
		msgs := []kafka.Message{m}
		if o.labels {
			for i := range labels {
				l := &labels[i]
				lm, err := purchaseLabelMessage(o.labelTopic, l, pending[l.SessionID])
				if err != nil {
					return st, err
				}
				msgs = append(msgs, lm)
			}
		}
		for i := range labels {
			delete(pending, labels[i].SessionID)
		}
		if err := write(ctx, msgs...); err != nil {
			return st, fmt.Errorf("publish shop event %s: %w", s.SessionID, err)
		}
		st.Events++
		if asProto {
			st.Proto++
		} else {
			st.JSON++
		}
		if o.labels {
			st.Labels += len(labels)
			for i := range labels {
				if labels[i].Label == 1 {
					st.Purchases++
				}
			}
		}
	}
	return st, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func txMessage(topic string, tx *sim.Transaction, asProto bool) (kafka.Message, error) {
	if asProto {
		b, err := proto.Marshal(tx.Proto())
		if err != nil {
			return kafka.Message{}, fmt.Errorf("encode transaction: %w", err)
		}
		return kafkaio.NewRecord(topic, []byte(tx.AccountID), b, topics.ContentTypeProtobuf, nil), nil
	}
	b, err := json.Marshal(tx)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode transaction: %w", err)
	}
	return kafkaio.NewRecord(topic, []byte(tx.AccountID), b, topics.ContentTypeJSON, nil), nil
}

func labelMessage(topic string, l *sim.Label) (kafka.Message, error) {
	b, err := proto.Marshal(l.Proto())
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode label: %w", err)
	}
	return kafkaio.NewRecord(topic, []byte(l.TransactionID), b, topics.ContentTypeProtobuf, nil), nil
}

// shopMessage encodes a session as the shop event of the contract: protobuf, or protojson
// (what a shop sends as application/json), keyed by the customer (the account).
func shopMessage(topic string, s *sim.Session, asProto bool) (kafka.Message, error) {
	tx := s.Proto()
	ct := topics.ContentTypeJSON
	marshal := protojson.Marshal
	if asProto {
		ct, marshal = topics.ContentTypeProtobuf, proto.Marshal
	}
	b, err := marshal(tx)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode shop event: %w", err)
	}
	return kafkaio.NewRecord(topic, []byte(tx.GetAccountId()), b, ct, nil), nil
}

// purchaseLabelMessage encodes a purchase outcome as a labels.v1 record keyed by the session
// (the shop event's transaction id); txTime is the session's event time.
func purchaseLabelMessage(topic string, l *sim.PurchaseLabel, txTime time.Time) (kafka.Message, error) {
	b, err := proto.Marshal(l.Proto(txTime))
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode purchase label: %w", err)
	}
	return kafkaio.NewRecord(topic, []byte(l.SessionID), b, topics.ContentTypeProtobuf, nil), nil
}
