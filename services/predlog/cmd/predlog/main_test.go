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
		"ES_URL":        stacktest.ElasticsearchURL(t),
	}
	args := []string{}
	servicetest.CheckLifecycle(t, "predlog", realMain, args, func(k string) string { return env[k] })
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
