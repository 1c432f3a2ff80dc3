// Command ingestion validates raw transactions from tx.raw and gRPC Ingest and publishes them to tx.validated, sending bad input to tx.dlq.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/streaming-mlops/mlops/services/ingestion/internal/ingest"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "ingestion: %v\n", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := ingest.ParseConfig(args, getenv)
	if err != nil {
		return err
	}
	rt := service.NewRuntime(cfg.Base, version, stdout)
	svc, err := ingest.New(cfg, rt.Logger, rt.Registry)
	if err != nil {
		return err
	}
	rt.Admin.AddReadyCheck("kafka", service.Latch(service.DialCheck(cfg.Kafka.Brokers...)))
	rt.Admin.AddReadyCheck("topics", svc.TopicsReady)
	gs, err := rt.GRPCServer(svc.Register)
	if err != nil {
		return errors.Join(err, svc.Close())
	}
	err = rt.Run(ctx,
		gs.Actor(),
		svc.ConsumerActor())
	// The gRPC path's producer outlives the gRPC server's drain: close it last.
	return errors.Join(err, svc.Close())
}
