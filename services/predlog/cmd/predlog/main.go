// Command predlog writes predictions and their late labels to Elasticsearch.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/service"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// setupTimeout bounds template installation and topic creation at startup.
const setupTimeout = 60 * time.Second

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
	rt.Admin.AddReadyCheck("kafka", service.Latch(service.DialCheck(cfg.Kafka.Brokers...)))
	// GET / needs the rest-root module, which the jar-based local Elasticsearch lacks (405);
	// _cluster/health answers everywhere.
	esClient, err := cfg.ESAuth.Client()
	if err != nil {
		return err
	}
	esClient.Timeout = 2 * time.Second
	rt.Admin.AddReadyCheck("elasticsearch", service.Latch(service.HTTPCheck(esClient,
		strings.TrimSuffix(cfg.ESURL, "/")+"/_cluster/health")))
	rt.Logger.Info("configured", "kafka_brokers", cfg.Kafka.Brokers, "kafka_topics", cfg.Kafka.Topics, "kafka_group", cfg.Kafka.GroupID,
		"es_url", cfg.ESURL, "es_api_key_set", cfg.ESAuth.APIKey.IsSet(), "es_username", cfg.ESAuth.Username, "es_timeout", cfg.ESTimeout, "es_dial_timeout", cfg.ESDialTimeout, "index_prefix", cfg.Writer.IndexPrefix, "pending_index", cfg.Writer.PendingIndex,
		"label_max_delay", cfg.Writer.LabelMaxDelay, "label_pending_max_age", cfg.Writer.PendingMaxAge)
	es, err := esbulk.New(cfg.ESURL, cfg.ESTimeout, esbulk.WithDialTimeout(cfg.ESDialTimeout), esbulk.WithAuth(cfg.ESAuth))
	if err != nil {
		return err
	}
	svc := predlog.New(cfg, es, rt.Logger, rt.Registry)
	setupCtx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if err := svc.Setup(setupCtx); err != nil {
		return err
	}
	cancel()
	return rt.Run(ctx, svc.ConsumerActor(), svc.PendingExpiryActor())
}
