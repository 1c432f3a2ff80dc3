// Command trainer retrains on drift events or on request, evaluates the challenger against the champion and promotes it through the MLflow registry.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/run"
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

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := trainer.ParseConfig(args, getenv)
	if err != nil {
		return err
	}
	if err := cfg.RequireAdminCredential(); err != nil {
		return err
	}
	rt := service.NewRuntime(cfg.Base, version, stdout)
	if cfg.Dev && !cfg.AdminToken.IsSet() && !cfg.AdminTokens.IsSet() && len(cfg.AdminClientCNs) == 0 {
		rt.Logger.Warn("development mode without an admin credential: Retrain, Promote and Rollback are open and audit the actor the request names")
	}
	rt.Logger.Info("configuration", "grpc_addr", cfg.GRPCAddr, "mlflow_url", cfg.MLflowURL, "kafka_brokers", cfg.Kafka.Brokers,
		"admin_token_set", cfg.AdminToken.IsSet(), "admin_tokens_set", cfg.AdminTokens.IsSet(), "admin_client_cns", cfg.AdminClientCNs, "dev", cfg.Dev,
		"grpc_tls", cfg.GRPCTLS.Enabled(), "grpc_mtls", cfg.GRPCTLS.MutualTLS(), "kafka_sasl", cfg.Kafka.SASLMechanism, "kafka_tls", cfg.Kafka.TLS.On(), "fraud_model", cfg.FraudModel, "purchase_model", cfg.PurchaseModel,
		"consume_drift", cfg.ConsumeDrift, "data_source", cfg.DataSource, "data_files", cfg.DataFiles, "es_url", cfg.ES.URL,
		"es_index", cfg.ES.Index, "data_lookback", cfg.ES.Lookback.String(), "data_min_rows", cfg.MinLabelledRows, "data_min_positives", cfg.MinPositives,
		"promotion_margin", cfg.PromotionMargin, "promotion_resamples", cfg.PromotionResamples, "promotion_confidence", cfg.PromotionConfidence,
		"drift_cooldown", cfg.RetrainCooldown.String(), "drift_pre_change", cfg.PreChange.String(), "lease_settle", cfg.LeaseSettle.String())
	libPath := cfg.LightGBMLib
	if libPath == "" {
		if libPath, err = lightgbm.FindLibrary(getenv); err != nil {
			return fmt.Errorf("find lightgbm: %w", err)
		}
	}
	lib, err := lightgbm.Open(libPath)
	if err != nil {
		return err
	}
	producer, err := kafkaio.NewProducer(cfg.Kafka, rt.Logger, rt.Registry)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, producer.Close()) }()
	audit := trainer.NewAuditLog(cfg.Kafka, cfg.ModelEventsTopic, producer, cfg.AuditReadTimeout)
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := audit.Ensure(setupCtx); err != nil {
		return err
	}
	data, err := trainer.NewDataSource(cfg, rt.Logger, rt.Registry)
	if err != nil {
		return err
	}
	mlf := mlflow.New(cfg.MLflowURL)
	mlf.Logger = rt.Logger
	svc := trainer.New(cfg, trainer.Deps{
		Lib:    lib,
		Data:   data,
		MLflow: mlf,
		Audit:  audit,
	}, rt.Logger, rt.Registry)
	rt.Admin.AddReadyCheck("kafka", service.Latch(service.DialCheck(cfg.Kafka.Brokers...)))
	if cfg.DataSource == trainer.DataSourceES {
		esClient, err := cfg.ES.Auth.Client()
		if err != nil {
			return err
		}
		esClient.Timeout = 2 * time.Second
		rt.Admin.AddReadyCheck("elasticsearch", service.Latch(service.HTTPCheck(esClient, strings.TrimRight(cfg.ES.URL, "/")+"/_cluster/health")))
	}
	rt.Admin.AddReadyCheck("mlflow", service.Latch(service.HTTPCheck(&http.Client{Timeout: 2 * time.Second}, strings.TrimRight(cfg.MLflowURL, "/")+"/health")))
	gs, err := rt.GRPCServer(svc.Register)
	if err != nil {
		return err
	}
	actors := []run.Actor{gs.Actor()}
	if cfg.ConsumeDrift {
		if err := cfg.Kafka.EnsureRoles(setupCtx, map[string]kafkaio.TopicRole{cfg.DriftTopic: kafkaio.RoleControl}); err != nil {
			return err
		}
		actors = append(actors, kafkaio.ConsumerActor(cfg.Kafka, svc.HandleDrift, rt.Logger, rt.Registry))
	}
	return rt.Run(ctx, actors...)
}
