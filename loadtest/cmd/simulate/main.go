// Command simulate prints simulated transactions (or shopping sessions) as
// JSON lines, optionally keyed for kcat, and writes their delayed labels to
// a separate file.
//
//	go run ./loadtest/cmd/simulate -n 1000 -seed 1 -key | kcat -P -b 127.0.0.1:9092 -t tx.raw -K$'\t'
//	go run ./loadtest/cmd/simulate -n 1000 -labels labels.jsonl > tx.jsonl
//
// With -key every line is "<key>\t<json>" (account id for transactions,
// transaction id for labels), so kcat -K'\t' keys records as the platform
// expects.
//
// With -dataset it writes a labelled training set instead (the features the feature
// service computes, with the observed labels and their times; see
// services/platform/datasetfile), which the trainer reads with -data.source=file:
//
//	go run ./loadtest/cmd/simulate -dataset fraud.csv.gz -n 200000 -accounts 5000 -warmup 24h
//	go run ./loadtest/cmd/simulate -dataset purchase.csv.gz -scenario purchase -n 200000
//
// -drift <scenario> -drift-after <d> switches a named drift scenario on d of sim time after
// -start (covariate, new-pattern or season; see sim.Scenarios).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/datasetfile"
	"github.com/streaming-mlops/mlops/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "simulate: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	n          int
	scenario   string
	key        bool
	labelsPath string
	rate       float64
	noDrain    bool
	dataset    string
	cfg        sim.Config
	sessions   sim.SessionConfig
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 1000, "number of transactions (or sessions) to print")
	seed := fs.Uint64("seed", 1, "random seed; same seed, same stream")
	streamSeed := fs.Uint64("stream-seed", 0, "seed of the transactions apart from the world (same -seed: same bank, other transactions); 0: -seed")
	fs.StringVar(&o.scenario, "scenario", "fraud", "fraud (transactions) or purchase (sessions)")
	fs.BoolVar(&o.key, "key", false, `prefix every line with "<key>\t" for kcat -K'\t'`)
	fs.StringVar(&o.labelsPath, "labels", "", `write labels as JSON lines to this file ("-" for stdout, interleaved in event-time order; empty: no labels)`)
	fs.Float64Var(&o.rate, "rate", 0, "pace output at this many transactions per wall-clock second (0: as fast as possible)")
	fs.BoolVar(&o.noDrain, "no-drain", false, "do not emit the labels still pending after the last transaction")
	fs.StringVar(&o.dataset, "dataset", "", "write a labelled training set of -n rows to this file (gzip if it ends in .gz) instead of printing events")
	scenario := fs.String("drift", "", "drift scenario started -drift-after the start: "+strings.Join(sim.Scenarios(), ", "))
	startStr := fs.String("start", "", "sim start time, RFC 3339 (default 2026-01-01T00:00:00Z; \"now\" for the current time)")
	accounts := fs.Int("accounts", 0, "accounts or customers (default 10000 / 5000)")
	fraudRate := fs.Float64("fraud-rate", 0, "expected fraud fraction (default 0.015)")
	warmup := fs.Duration("warmup", 0, "simulate this long before -start (warm-up transactions are printed too)")
	delayMin := fs.Duration("label-delay-min", 0, "minimum fraud label delay (default 24h); legit labels come at the maximum")
	delayMax := fs.Duration("label-delay-max", 0, "maximum fraud label delay (default 168h)")
	driftAfter := fs.Duration("drift-after", 0, "start the drift this long (sim time) after -start (0 with -drift: at -start; 0 otherwise: no drift)")
	driftAmount := fs.Float64("drift-amount-scale", 0, "drift: multiply legit amounts (purchase: cart values)")
	driftShift := fs.Float64("drift-location-km", 0, "drift: move legit transactions this many km east")
	driftDevice := fs.Float64("drift-new-device-prob", 0, "drift: probability of a new device per legit transaction")
	driftFraud := fs.Float64("drift-fraud-rate-scale", 0, "drift: multiply the fraud rate")
	driftPattern := fs.String("drift-pattern", "", "drift: switch fraud to this pattern only (e.g. bust_out)")
	driftConv := fs.Float64("drift-conversion-shift", 0, "purchase drift: add to the purchase log-odds")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var start time.Time
	switch *startStr {
	case "":
	case "now":
		start = time.Now().UTC()
	default:
		t, err := time.Parse(time.RFC3339Nano, *startStr)
		if err != nil {
			return o, fmt.Errorf("parse -start: %w", err)
		}
		start = t
	}
	if start.IsZero() {
		start = sim.DefaultConfig().Start
	}
	if o.n < 0 || o.rate < 0 {
		return o, errors.New("-n and -rate must not be negative")
	}
	o.cfg = sim.Config{Seed: *seed, StreamSeed: *streamSeed, Start: start, Accounts: *accounts, FraudRate: *fraudRate, Warmup: *warmup,
		LabelDelayMin: *delayMin, LabelDelayMax: *delayMax}
	o.sessions = sim.SessionConfig{Seed: *seed, Start: start, Customers: *accounts}
	if *scenario != "" {
		o.cfg.Scenario, o.cfg.ScenarioAt = *scenario, start.Add(*driftAfter)
		o.sessions.Scenario, o.sessions.ScenarioAt = *scenario, start.Add(*driftAfter)
		if _, err := sim.ScenarioDrift(*scenario, start); err != nil {
			return o, err
		}
	} else if *driftAfter > 0 {
		d := sim.Drift{At: start.Add(*driftAfter), AmountScale: *driftAmount, LocationShiftKm: *driftShift,
			NewDeviceProb: *driftDevice, FraudRateScale: *driftFraud}
		if *driftPattern != "" {
			p, err := sim.ParsePattern(*driftPattern)
			if err != nil {
				return o, err
			}
			d.PatternWeights[p] = 1
		}
		o.cfg.Drifts = []sim.Drift{d}
		o.sessions.Drifts = []sim.SessionDrift{{At: d.At, CartValueScale: *driftAmount, ConversionShift: *driftConv}}
	}
	switch o.scenario {
	case "fraud", "purchase":
	default:
		return o, fmt.Errorf("unknown -scenario %q (fraud or purchase)", o.scenario)
	}
	return o, nil
}

// lineWriter writes optionally keyed JSON lines.
type lineWriter struct {
	w   *bufio.Writer
	key bool
}

func (lw lineWriter) write(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	// A bufio.Writer's error is sticky: the last call reports any earlier one.
	if lw.key {
		_, _ = lw.w.WriteString(key)
		_ = lw.w.WriteByte('\t')
	}
	_, _ = lw.w.Write(b)
	return lw.w.WriteByte('\n')
}

func realMain(ctx context.Context, args []string, stdout io.Writer) (err error) {
	o, err := parse(args)
	if err != nil {
		return err
	}
	out := lineWriter{w: bufio.NewWriterSize(stdout, 64<<10), key: o.key}
	defer func() { err = errors.Join(err, out.w.Flush()) }()
	labels := lineWriter{key: o.key}
	switch o.labelsPath {
	case "":
	case "-":
		labels = out
	default:
		f, err := os.Create(o.labelsPath)
		if err != nil {
			return fmt.Errorf("create labels file: %w", err)
		}
		labels.w = bufio.NewWriterSize(f, 64<<10)
		defer func() { err = errors.Join(err, labels.w.Flush(), f.Close()) }()
	}
	var tick *time.Ticker
	if o.rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer tick.Stop()
	}
	pace := func() error {
		if tick == nil {
			return ctx.Err()
		}
		if err := out.w.Flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			return nil
		}
	}
	if o.dataset != "" {
		return writeDataset(o)
	}
	if o.scenario == "purchase" {
		return runSessions(o, out, labels, pace)
	}
	s, err := sim.New(o.cfg)
	if err != nil {
		return err
	}
	for range o.n {
		if err := pace(); err != nil {
			return err
		}
		tx, ls := s.Next()
		if labels.w != nil {
			for _, l := range ls {
				if err := labels.write(l.TransactionID, l); err != nil {
					return err
				}
			}
		}
		if err := out.write(tx.AccountID, tx); err != nil {
			return err
		}
	}
	if labels.w != nil && !o.noDrain {
		for _, l := range s.Drain() {
			if err := labels.write(l.TransactionID, l); err != nil {
				return err
			}
		}
	}
	return nil
}

func runSessions(o options, out, labels lineWriter, pace func() error) error {
	s, err := sim.NewSessions(o.sessions)
	if err != nil {
		return err
	}
	for range o.n {
		if err := pace(); err != nil {
			return err
		}
		ss, ls := s.Next()
		if labels.w != nil {
			for _, l := range ls {
				if err := labels.write(l.SessionID, l); err != nil {
					return err
				}
			}
		}
		if err := out.write(ss.CustomerID, ss); err != nil {
			return err
		}
	}
	if labels.w != nil && !o.noDrain {
		for _, l := range s.Drain() {
			if err := labels.write(l.SessionID, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeDataset writes o.n rows of the scenario's training set to o.dataset.
func writeDataset(o options) error {
	var d *sim.Dataset
	var err error
	if o.scenario == "purchase" {
		d, err = sim.PurchaseDataset(o.sessions, o.n)
	} else {
		d, err = sim.FraudDataset(o.cfg, o.n)
	}
	if err != nil {
		return err
	}
	return datasetfile.WriteFile(o.dataset, d.Labelled())
}
