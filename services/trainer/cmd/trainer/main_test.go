package main

import (
	"context"
	"strings"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func TestRealMainLifecycle(t *testing.T) {
	env := map[string]string{
		"KAFKA_BROKERS": stacktest.KafkaBrokers(t),
		"MLFLOW_URL":    stacktest.MLflowURL(t),
		"MLOPS_DEV":     "1",
	}
	args := []string{"-grpc.addr", servicetest.FreeAddr(t)}
	servicetest.CheckLifecycle(t, "trainer", realMain, args, func(k string) string { return env[k] })
}

// Outside development mode the trainer does not start with its admin RPCs open.
func TestRealMainRefusesWithoutAdminCredential(t *testing.T) {
	t.Parallel()
	err := realMain(context.Background(), []string{"-grpc.addr", "127.0.0.1:0"}, func(string) string { return "" }, nil)
	if err == nil || !strings.Contains(err.Error(), "no admin credential") || !strings.Contains(err.Error(), "MLOPS_DEV=1") {
		t.Fatalf("realMain without an admin credential = %v, want a refusal naming MLOPS_DEV=1", err)
	}
}

func TestRealMainRejectsBadConfig(t *testing.T) {
	t.Parallel()
	getenv := func(k string) string { return map[string]string{"SHUTDOWN_TIMEOUT": "-1s", "LOG_LEVEL": "loud"}[k] }
	err := realMain(context.Background(), nil, getenv, nil)
	if err == nil {
		t.Fatal("realMain with a negative shutdown timeout and a bad log level = nil, want an error")
	}
	for _, want := range []string{"shutdown timeout", "log level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
