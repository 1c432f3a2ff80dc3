package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
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

// Once predlog has reached Kafka and Elasticsearch (templates installed, topics ensured),
// losing both leaves /readyz at 200: an Elasticsearch outage shows as lag and
// mlops_predlog_elasticsearch_up 0, not as unready pods.
func TestReadinessSurvivesDependencyOutage(t *testing.T) {
	run := kafkaiotest.UniqueName("predlog-ready-outage")
	esURL := stacktest.ElasticsearchURL(t)
	kafka := servicetest.NewProxy(t, stacktest.KafkaBrokers(t))
	es := servicetest.NewProxy(t, strings.TrimPrefix(strings.TrimSuffix(esURL, "/"), "http://"))
	prefix := "test-" + strings.ToLower(run)
	t.Cleanup(func() {
		client := &http.Client{Timeout: 30 * time.Second}
		for _, path := range []string{"/" + prefix + "*?ignore_unavailable=true", "/_index_template/" + prefix, "/_index_template/" + prefix + "-pending"} {
			req, err := http.NewRequest(http.MethodDelete, strings.TrimSuffix(esURL, "/")+path, nil)
			if err != nil {
				t.Error(err)
				continue
			}
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	env := map[string]string{
		"KAFKA_BROKERS":     kafka.Addr(),
		"ES_URL":            "http://" + es.Addr(),
		"KAFKA_GROUP":       run,
		"KAFKA_TOPICS":      run + "-predictions," + run + "-labels",
		"KAFKA_DLQ_TOPIC":   run + "-dlq",
		"PREDICTIONS_TOPIC": run + "-predictions",
		"LABELS_TOPIC":      run + "-labels",
		"ES_INDEX_PREFIX":   prefix,
		"ES_PENDING_INDEX":  prefix + "-pending",
	}
	servicetest.CheckReadyThroughOutage(t, "predlog", realMain, nil, func(k string) string { return env[k] }, kafka, es)
}
