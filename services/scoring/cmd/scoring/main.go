// Command scoring scores feature vectors with the champion LightGBM model, on the stream and through the synchronous gRPC Score.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/run"
	"github.com/streaming-mlops/mlops/services/platform/service"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "scoring: %v\n", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := scoring.ParseConfig(args, getenv)
	if err != nil {
		return err
	}
	rt := service.NewRuntime(cfg.Base, version, stdout)
	rt.Logger.Info("configuration", "grpc_addr", cfg.GRPCAddr, "admin_addr", cfg.Telemetry.AdminAddr, "kafka_brokers", cfg.Kafka.Brokers,
		"features_topic", cfg.Kafka.Topics, "predictions_topic", cfg.PredictionsTopic, "model_events_topic", cfg.ModelEventsTopic,
		"mlflow_url", cfg.MLflowURL, "model", cfg.ModelName, "spec", cfg.Spec.Fingerprint(), "cache_dir", cfg.CacheDir,
		"challenger", cfg.ChallengerEnabled, "explain_sample_rate", cfg.ExplainSampleRate, "features_addr", cfg.FeaturesAddr)

	libPath := cfg.LightGBMLib
	if libPath == "" {
		if libPath, err = lightgbm.FindLibrary(getenv); err != nil {
			return fmt.Errorf("find lightgbm library: %w", err)
		}
	}
	lib, err := lightgbm.Open(libPath)
	if err != nil {
		return fmt.Errorf("open lightgbm library: %w", err)
	}
	ml := mlflow.New(cfg.MLflowURL)
	defer ml.HTTP.CloseIdleConnections()
	producer, err := kafkaio.NewProducer(cfg.Kafka, rt.Logger, rt.Registry)
	if err != nil {
		return err
	}
	featuresCreds, err := grpcserve.DialCredentials(cfg.FeaturesTLS)
	if err != nil {
		return errors.Join(err, producer.Close())
	}
	features, err := grpc.NewClient(cfg.FeaturesAddr, featuresCreds)
	if err != nil {
		return errors.Join(fmt.Errorf("features client for %s: %w", cfg.FeaturesAddr, err), producer.Close())
	}
	defer func() { err = errors.Join(err, features.Close()) }()

	svc := scoring.New(cfg, scoring.Deps{
		Lib:      lib,
		Store:    &modelstore.Store{Client: ml, CacheDir: cfg.CacheDir, Logger: rt.Logger},
		Features: featuresv1.NewFeatureServiceClient(features),
		Producer: producer,
	}, rt.Logger, rt.Registry)
	defer svc.Close()
	if err := svc.LoadModels(ctx); err != nil {
		if cfg.ModelRequired {
			return errors.Join(fmt.Errorf("load champion of model %q: %w", cfg.ModelName, err), producer.Close())
		}
		rt.Logger.Warn("no champion loaded; starting unready and retrying", "model", cfg.ModelName, "err", err)
	}
	rt.Admin.AddReadyCheck("kafka", service.Latch(service.DialCheck(cfg.Kafka.Brokers...)))
	rt.Admin.AddReadyCheck("model", svc.Ready)

	gs, err := rt.GRPCServer(svc.Register)
	if err != nil {
		return errors.Join(err, producer.Close())
	}
	actors := []run.Actor{
		gs.Actor(),
		svc.ReloadActor(),
		svc.SyncLogActor(),
	}
	if cfg.ConsumeFeatures {
		actors = append(actors, kafkaio.BatchConsumerActor(cfg.Kafka, svc.HandleFeatures, rt.Logger, rt.Registry))
	}
	return rt.Run(ctx, actors...)
}
