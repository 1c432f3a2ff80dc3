// Command trainer retrains on drift events or on request, evaluates the challenger against the champion and promotes it through the MLflow registry.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/service"
	"github.com/streaming-mlops/mlops/services/trainer/internal/trainer"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "trainer: %v\n", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := trainer.ParseConfig(args, getenv)
	if err != nil {
		return err
	}
	rt := service.NewRuntime(cfg.Base, version, stdout)
	rt.Admin.AddReadyCheck("kafka", service.DialCheck(cfg.Kafka.Brokers...))
	rt.Admin.AddReadyCheck("mlflow", service.HTTPCheck(&http.Client{Timeout: 2 * time.Second}, strings.TrimRight(cfg.MLflowURL, "/")+"/health"))
	svc := trainer.New(cfg, rt.Logger, rt.Registry)
	return rt.Run(ctx, grpcserve.New(cfg.GRPCAddr, svc.Register, rt.Logger, rt.Registry, cfg.ShutdownTimeout).Actor())
}
