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
	flagenv.DurationVar(fs, getenv, &o.lag, "lag", "LOADGEN_LAG", 48*time.Hour, "sim time starts this long before now")
	flagenv.DurationVar(fs, getenv, &o.labelDelay, "label-delay", "LOADGEN_LABEL_DELAY", 10*time.Minute, "longest sim-time delay of a label")
	flagenv.StringVar(fs, getenv, &o.txTopic, "tx-topic", "LOADGEN_TX_TOPIC", topics.TxRaw, "topic for transactions")
	flagenv.StringVar(fs, getenv, &o.labelTopic, "label-topic", "LOADGEN_LABEL_TOPIC", topics.Labels, "topic for labels")
	flagenv.StringVar(fs, getenv, &o.drift, "drift", "LOADGEN_DRIFT", "", "drift scenario to switch on mid-run: "+strings.Join(sim.Scenarios(), ", ")+" (empty: none)")
	flagenv.DurationVar(fs, getenv, &o.driftAfter, "drift-after", "LOADGEN_DRIFT_AFTER", 5*time.Minute, "wall-clock time after the start at which -drift switches on")
	flagenv.Float64Var(fs, getenv, &o.shopRate, "shop-rate", "LOADGEN_SHOP_RATE", 0, "shop events (simulated shopping sessions) per second, with their purchase labels (0: none)")
	flagenv.IntVar(fs, getenv, &o.shopN, "shop-n", "LOADGEN_SHOP_N", 0, "stop the shop traffic after this many shop events (0: it stops with the payments)")
	flagenv.IntVar(fs, getenv, &o.customers, "shop-customers", "LOADGEN_SHOP_CUSTOMERS", 2000, "simulated shop customers")
	if err := flagenv.Parse(fs, args); err != nil {
		return o, err
	}
	o.seed = uint64(*seed)
	var errs []error
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
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	prod, err := kafkaio.NewProducer(kafkaio.Config{Brokers: o.brokers, ClientID: "loadgen"}, logger, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	st, err := run(ctx, o, time.Now, prod.WriteMessages)
	err = errors.Join(err, prod.Close())
	b, _ := json.Marshal(st)
	fmt.Fprintf(stderr, "%s\n", b)
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

// runPayments publishes payment transactions until o.n are out or ctx ends.
func runPayments(ctx context.Context, o options, now func() time.Time, write func(context.Context, ...kafka.Message) error) (stats, error) {
	cfg := sim.DefaultConfig()
	cfg.Seed = o.seed
	cfg.Accounts = o.accounts
	cfg.Start = now().Add(-o.lag).Truncate(time.Second)
	// Chargeback delays compressed: the default ratio of the longest to the shortest (six
	// weeks to two days) within -label-delay.
	ratio := float64(cfg.LabelDelayMin) / float64(cfg.LabelDelayMax)
	cfg.LabelDelayMax = o.labelDelay
	cfg.LabelDelayMin = max(time.Duration(float64(o.labelDelay)*ratio), time.Millisecond)
	s, err := sim.New(cfg)
	if err != nil {
		return stats{}, err
	}
	var st stats
	var tick <-chan time.Time
	if o.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer t.Stop()
		tick = t.C
	}
	protoEvery := 0
	if o.protoFraction > 0 {
		protoEvery = int(1 / o.protoFraction)
	}
	begin := now()
	var last time.Time
	for o.n <= 0 || st.Transactions < o.n {
		if o.drift != "" && st.DriftAt == "" && now().Sub(begin) >= o.driftAfter {
			at := last
			if at.Before(cfg.Start) {
				at = cfg.Start
			}
			d, err := sim.ScenarioDrift(o.drift, at)
			if err == nil {
				err = s.AddDrift(d)
			}
			if err != nil {
				return st, err
			}
			st.DriftAt = at.Format(time.RFC3339Nano)
		}
		tx, labels := s.Next()
		last = tx.EventTime
		// Never publish an event from the future: wait for the wall clock instead.
		if wait := tx.EventTime.Sub(now()); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return st, err
			}
		}
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return st, ctx.Err()
			}
		}
		msgs := make([]kafka.Message, 0, 1+len(labels))
		asProto := protoEvery > 0 && st.Transactions%protoEvery == 0
		m, err := txMessage(o.txTopic, &tx, asProto)
		if err != nil {
			return st, err
		}
		msgs = append(msgs, m)
		if o.labels {
			for i := range labels {
				lm, err := labelMessage(o.labelTopic, &labels[i])
				if err != nil {
					return st, err
				}
				msgs = append(msgs, lm)
			}
		}
		if err := write(ctx, msgs...); err != nil {
			return st, fmt.Errorf("publish transaction %s: %w", tx.TransactionID, err)
		}
		st.Transactions++
		if asProto {
			st.Proto++
		} else {
			st.JSON++
		}
		if tx.IsFraud {
			st.Fraud++
		}
		if o.labels {
			st.Labels += len(labels)
		}
	}
	return st, nil
}

// runShop publishes shop events at o.shopRate a second until o.shopN are out or ctx ends,
// with each session's purchase label once it is due. Sim time starts o.lag before now at one
// session per sim second and, like the payments', never runs ahead of the wall clock.
func runShop(ctx context.Context, o options, now func() time.Time, write func(context.Context, ...kafka.Message) error) (shopStats, error) {
	cfg := sim.SessionConfig{Seed: o.seed, Customers: o.customers, LabelDelay: o.labelDelay,
		Start: now().Add(-o.lag).Truncate(time.Second)}
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
