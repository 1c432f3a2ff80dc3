// Command drift watches the live predictions and labels of each monitored model against its
// champion's reference profile and emits drift events.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/streaming-mlops/mlops/services/drift/internal/drift"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/run"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "drift: %v\n", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := drift.ParseConfig(args, getenv)
	if err != nil {
		return err
	}
	rt := service.NewRuntime(cfg.Base, version, stdout)
	rt.Logger.Info("configuration", "grpc_addr", cfg.GRPCAddr, "admin_addr", cfg.Telemetry.AdminAddr, "kafka_brokers", cfg.Kafka.Brokers,
		"topics", cfg.Kafka.Topics, "drift_topic", cfg.DriftTopic, "model_events_topic", cfg.ModelEventsTopic, "mlflow_url", cfg.MLflowURL,
		"models", cfg.Models, "window_count", cfg.WindowCount, "window_duration", cfg.WindowDuration, "persist", cfg.Persist, "cooldown", cfg.Cooldown)
	producer, err := kafkaio.NewProducer(cfg.Kafka, rt.Logger, rt.Registry)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, producer.Close()) }()
	// The topics drift writes (its consumer creates those it reads): drift events, and the
	// partial window states in merged mode.
	outputs := map[string]kafkaio.TopicRole{cfg.DriftTopic: kafkaio.RoleControl}
	if cfg.Merge {
		outputs[cfg.PartialsTopic] = kafkaio.RoleStream
	}
	topicsCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = cfg.Kafka.EnsureRoles(topicsCtx, outputs)
	cancel()
	if err != nil {
		return fmt.Errorf("ensure kafka topics: %w", err)
	}
	svc := drift.New(cfg, nil, rt.Logger, rt.Registry)
	rt.Admin.AddReadyCheck("kafka", service.Latch(service.DialCheck(cfg.Kafka.Brokers...)))
	rt.Admin.Handle("/drift", svc.ReportHandler())
	rt.Admin.Handle("/drift/", svc.ReportHandler())
	gs, err := rt.GRPCServer(svc.Register)
	if err != nil {
		return err
	}
	actors := []run.Actor{
		gs.Actor(),
		svc.ReferenceActor(producer),
		kafkaio.BatchConsumerActor(cfg.Kafka, svc.Handle, rt.Logger, rt.Registry),
	}
	if cfg.Merge {
		actors = append(actors, svc.MergeActor(rt.Logger, rt.Registry))
	}
	return rt.Run(ctx, actors...)
}
