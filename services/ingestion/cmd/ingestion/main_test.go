package main

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRealMainLifecycle(t *testing.T) {
	env := map[string]string{
		"KAFKA_BROKERS": stacktest.KafkaBrokers(t),
	}
	// Topics and group of its own, so the test neither consumes the stack's tx.raw nor
	// writes to its tx.validated.
	name := kafkaiotest.UniqueName("lifecycle")
	args := []string{
		"-grpc.addr", servicetest.FreeAddr(t),
		"-kafka.topics", name + "-raw", "-kafka.group", name, "-kafka.dlq-topic", name + "-dlq",
		"-ingest.validated-topic", name + "-validated", "-kafka.partitions", "1",
	}
	servicetest.CheckLifecycle(t, "ingestion", realMain, args, func(k string) string { return env[k] })
}

func TestRealMainRejectsBadConfig(t *testing.T) {
	t.Parallel()
	getenv := func(k string) string {
		return map[string]string{"SHUTDOWN_TIMEOUT": "-1s", "LOG_LEVEL": "loud", "INGEST_UNKNOWN_FIELDS": "keep"}[k]
	}
	err := realMain(context.Background(), nil, getenv, nil)
	if err == nil {
		t.Fatal("realMain with a negative shutdown timeout and a bad log level = nil, want an error")
	}
	for _, want := range []string{"shutdown timeout", "log level", "unknown fields policy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
