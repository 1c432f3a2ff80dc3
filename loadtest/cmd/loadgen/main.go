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
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
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

// run publishes until o.n transactions are out or ctx ends.
func run(ctx context.Context, o options, now func() time.Time, write func(context.Context, ...kafka.Message) error) (stats, error) {
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
