// Command features computes the feature vector of each validated transaction from per-account state in Redis and serves online features.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// ensureTopicsTimeout bounds topic creation at startup.
const ensureTopicsTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "features: %v\n", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := features.ParseConfig(args, getenv)
	if err != nil {
		return err
	}
	rt := service.NewRuntime(cfg.Base, version, stdout)
	rt.Admin.AddReadyCheck("kafka", service.Latch(service.DialCheck(cfg.Kafka.Brokers...)))
	rt.Admin.AddReadyCheck("redis", service.Latch(service.DialCheck(cfg.RedisAddr)))
	rt.Logger.Info("configured", "kafka_brokers", cfg.Kafka.Brokers, "kafka_topics", cfg.Kafka.Topics, "kafka_group", cfg.Kafka.GroupID,
		"output_topic", cfg.OutputTopic, "redis_addr", cfg.RedisAddr, "redis_prefix", cfg.RedisPrefix,
		"redis_username", cfg.RedisUsername, "redis_password_set", cfg.RedisPassword.IsSet(), "redis_tls", cfg.RedisTLS.On(),
		"kafka_sasl", cfg.Kafka.SASLMechanism, "kafka_tls", cfg.Kafka.TLS.On(), "grpc_tls", cfg.GRPCTLS.Enabled(), "grpc_mtls", cfg.GRPCTLS.MutualTLS(),
		"replay_window", cfg.ReplayWindow, "state_ttl", cfg.StateTTL, "state_cache", cfg.StateCache)

	// go-redis logs through a process-wide logger (stderr by default); route it to ours.
	redis.SetLogger(redisLogger{rt.Logger})
	redisOpts, err := cfg.RedisOptions()
	if err != nil {
		return err
	}
	rdb := redis.NewClient(redisOpts)
	defer func() {
		if cerr := rdb.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close redis client: %w", cerr))
		}
	}()

	topicsCtx, cancel := context.WithTimeout(ctx, ensureTopicsTimeout)
	defer cancel()
	// The dead-letter topic too: the consumer cannot dead-letter into a missing topic.
	roles := map[string]kafkaio.TopicRole{cfg.OutputTopic: kafkaio.RoleStream, cfg.Kafka.DLQTopic: kafkaio.RoleDeadLetter}
	for _, t := range cfg.Kafka.Topics {
		roles[t] = kafkaio.RoleStream
	}
	if err := cfg.Kafka.EnsureRoles(topicsCtx, roles); err != nil {
		return fmt.Errorf("ensure kafka topics: %w", err)
	}
	cancel()

	svc := features.New(cfg, rdb, rt.Logger, rt.Registry)
	gs, err := rt.GRPCServer(svc.Register, features.ServerOptions()...)
	if err != nil {
		return err
	}
	return rt.Run(ctx,
		gs.Actor(),
		kafkaio.BatchConsumerActor(cfg.Kafka, svc.HandleBatch, rt.Logger, rt.Registry))
}

// redisLogger adapts go-redis's logging (connection pool events such as failed dials) to
// slog at Warn.
type redisLogger struct{ logger *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.logger.WarnContext(ctx, "redis client", "err", fmt.Sprintf(format, v...))
}
