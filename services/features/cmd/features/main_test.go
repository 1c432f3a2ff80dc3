package main

import (
	"context"
	"strings"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func TestRealMainLifecycle(t *testing.T) {
	// Own topics, group and key prefix, so the test neither consumes the stack's tx.validated
	// nor touches the state of a running features service.
	run := kafkaiotest.UniqueName("lifecycle")
	env := map[string]string{
		"KAFKA_BROKERS":   stacktest.KafkaBrokers(t),
		"REDIS_ADDR":      stacktest.RedisAddr(t),
		"KAFKA_GROUP":     run,
		"KAFKA_TOPICS":    run + "-tx.validated",
		"KAFKA_DLQ_TOPIC": run + "-tx.dlq",
		"FEATURES_TOPIC":  run + "-features.v1",
		"REDIS_PREFIX":    "test:" + run + ":",
	}
	args := []string{"-grpc.addr", servicetest.FreeAddr(t)}
	servicetest.CheckLifecycle(t, "features", realMain, args, func(k string) string { return env[k] })
}

func TestRealMainRejectsBadConfig(t *testing.T) {
	t.Parallel()
	getenv := func(k string) string {
		return map[string]string{"SHUTDOWN_TIMEOUT": "-1s", "LOG_LEVEL": "loud", "FEATURES_REPLAY_WINDOW": "0"}[k]
	}
	err := realMain(context.Background(), nil, getenv, nil)
	if err == nil {
		t.Fatal("realMain with a negative shutdown timeout and a bad log level = nil, want an error")
	}
	for _, want := range []string{"shutdown timeout", "log level", "replay window"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// Readiness means "started and able to work", not "every dependency answers right now": once
// features has reached Kafka and Redis, losing both (the proxies it was configured with
// close) leaves /readyz at 200, so a dependency blip shows as lag, not as every replica
// leaving its Service at once. Before the dependency checks were latched this failed with
// "kafka: none of [...] reachable; redis: ...".
func TestReadinessSurvivesDependencyOutage(t *testing.T) {
	run := kafkaiotest.UniqueName("ready-outage")
	kafka := servicetest.NewProxy(t, stacktest.KafkaBrokers(t))
	redis := servicetest.NewProxy(t, stacktest.RedisAddr(t))
	env := map[string]string{
		"KAFKA_BROKERS":   kafka.Addr(),
		"REDIS_ADDR":      redis.Addr(),
		"KAFKA_GROUP":     run,
		"KAFKA_TOPICS":    run + "-tx.validated",
		"KAFKA_DLQ_TOPIC": run + "-tx.dlq",
		"FEATURES_TOPIC":  run + "-features.v1",
		"REDIS_PREFIX":    "test:" + run + ":",
	}
	args := []string{"-grpc.addr", servicetest.FreeAddr(t)}
	servicetest.CheckReadyThroughOutage(t, "features", realMain, args, func(k string) string { return env[k] }, kafka, redis)
}
