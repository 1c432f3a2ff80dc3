// Command grpcload drives a gRPC scoring endpoint with pre-encoded requests and prints one JSON
// result per concurrency: throughput, latency percentiles and the server's CPU per request.
// It speaks the platform's Score (-protocol score) and the Open Inference Protocol's ModelInfer
// (-protocol v2, what MLServer serves), with the same feature vectors for both:
//
//	grpcload -addr 127.0.0.1:9090 -protocol score -concurrency 1,8,32,128 -duration 5s -pid 1234
//	grpcload -addr 127.0.0.1:8081 -protocol v2 -model fraud -vectors rows.csv -rate 2000
//
// Vectors come from -vectors (a CSV under a header of the fraud spec's names) or, without it,
// from the simulator: the first -n rows of sim.FraudDataset, computed by the serving feature
// code. -rate > 0 selects open loop (constant arrival rate, latency from each request's
// intended send time); otherwise each concurrency runs closed loop.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/streaming-mlops/mlops/loadtest/grpcload"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "grpcload: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	addr, protocol, model, vectors string
	n, conns, pid                  int
	concurrency                    []int
	rate                           float64
	duration, warmup, timeout      time.Duration
	explain                        bool
}

func parse(args []string, getenv func(string) string) (options, error) {
	var o options
	var conc string
	fs := flag.NewFlagSet("grpcload", flag.ContinueOnError)
	flagenv.StringVar(fs, getenv, &o.addr, "addr", "GRPCLOAD_ADDR", "127.0.0.1:9090", "server host:port")
	flagenv.StringVar(fs, getenv, &o.protocol, "protocol", "GRPCLOAD_PROTOCOL", "score", "score (mlops.scoring.v1 Score) or v2 (inference.GRPCInferenceService ModelInfer)")
	flagenv.StringVar(fs, getenv, &o.model, "model", "GRPCLOAD_MODEL", "fraud", "model name in V2 requests")
	flagenv.StringVar(fs, getenv, &o.vectors, "vectors", "GRPCLOAD_VECTORS", "", "CSV of feature vectors (header: the fraud spec's names); empty: simulated")
	flagenv.IntVar(fs, getenv, &o.n, "n", "GRPCLOAD_N", 4096, "simulated vectors when -vectors is empty")
	flagenv.StringVar(fs, getenv, &conc, "concurrency", "GRPCLOAD_CONCURRENCY", "1,8,32,128", "comma-separated callers per run (closed loop), or the in-flight cap (open loop)")
	flagenv.IntVar(fs, getenv, &o.conns, "conns", "GRPCLOAD_CONNS", 4, "connections")
	flagenv.Float64Var(fs, getenv, &o.rate, "rate", "GRPCLOAD_RATE", 0, "open loop: requests per second (0: closed loop)")
	flagenv.DurationVar(fs, getenv, &o.duration, "duration", "GRPCLOAD_DURATION", 5*time.Second, "measured time per run")
	flagenv.DurationVar(fs, getenv, &o.warmup, "warmup", "GRPCLOAD_WARMUP", time.Second, "unrecorded load before each run")
	flagenv.DurationVar(fs, getenv, &o.timeout, "timeout", "GRPCLOAD_TIMEOUT", 5*time.Second, "deadline of each call")
	flagenv.IntVar(fs, getenv, &o.pid, "pid", "GRPCLOAD_PID", 0, "server process id whose CPU time is read from /proc (0: none)")
	flagenv.BoolVar(fs, getenv, &o.explain, "explain", "GRPCLOAD_EXPLAIN", false, "Score requests ask for an explanation")
	if err := flagenv.Parse(fs, args); err != nil {
		return o, err
	}
	var errs []error
	for s := range strings.SplitSeq(conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			errs = append(errs, fmt.Errorf("-concurrency: %q is not a positive integer", s))
			continue
		}
		o.concurrency = append(o.concurrency, c)
	}
	if o.protocol != "score" && o.protocol != "v2" {
		errs = append(errs, fmt.Errorf("-protocol %q: want score or v2", o.protocol))
	}
	if o.duration <= 0 || o.rate < 0 || o.n < 1 || o.conns < 1 {
		errs = append(errs, errors.New("-duration must be positive, -rate >= 0, -n and -conns >= 1"))
	}
	return o, errors.Join(errs...)
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parse(args, getenv)
	if err != nil {
		return err
	}
	spec := featurespec.Fraud()
	rows, err := loadRows(o, spec)
	if err != nil {
		return err
	}
	var (
		reqs   [][]byte
		method string
	)
	if o.protocol == "v2" {
		reqs, method = grpcload.EncodeV2Requests(o.model, rows), grpcload.V2ModelInfer
	} else if reqs, err = grpcload.EncodeScoreRequests(spec, rows, o.explain); err != nil {
		return err
	}
	if method == "" {
		method = grpcload.ScoreMethod
	}
	enc := json.NewEncoder(stdout)
	for _, c := range o.concurrency {
		res, err := grpcload.Run(ctx, grpcload.Config{Addr: o.addr, Method: method, Requests: reqs, Conns: o.conns,
			Concurrency: c, Rate: o.rate, Duration: o.duration, Warmup: o.warmup, Timeout: o.timeout, ServerPID: o.pid})
		if err != nil {
			return err
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
		if res.Requests == 0 {
			return fmt.Errorf("no call succeeded at concurrency %d: %s", c, res.FirstError)
		}
	}
	return nil
}

func loadRows(o options, spec featurespec.Spec) ([][]float64, error) {
	if o.vectors != "" {
		f, err := os.Open(o.vectors)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return grpcload.ReadVectorsCSV(f, spec)
	}
	cfg := sim.DefaultConfig()
	cfg.Accounts = 2000
	ds, err := sim.FraudDataset(cfg, o.n)
	if err != nil {
		return nil, fmt.Errorf("simulate vectors: %w", err)
	}
	cols := ds.Spec.Len()
	rows := make([][]float64, 0, o.n)
	for i := 0; i+cols <= len(ds.X); i += cols {
		rows = append(rows, ds.X[i:i+cols])
	}
	return rows, nil
}
