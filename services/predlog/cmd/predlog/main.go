// Command predlog writes predictions and their late labels to Elasticsearch.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/service"
	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "predlog: %v\n", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := predlog.ParseConfig(args, getenv)
	if err != nil {
		return err
	}
	rt := service.NewRuntime(cfg.Base, version, stdout)
	rt.Admin.AddReadyCheck("kafka", service.DialCheck(cfg.Kafka.Brokers...))
	rt.Admin.AddReadyCheck("elasticsearch", service.HTTPCheck(&http.Client{Timeout: 2 * time.Second}, cfg.ESURL))
	svc := predlog.New(cfg, rt.Logger, rt.Registry)
	_ = svc
	return rt.Run(ctx)
}
