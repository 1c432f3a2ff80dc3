package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stackArgs returns flags that point realMain at the real stack with topics and a group of
// its own, and the model name (registered with a promoted champion when withModel).
func stackArgs(t *testing.T, withModel bool) []string {
	t.Helper()
	brokers := stacktest.KafkaBrokers(t)
	mlflowURL := stacktest.MLflowURL(t)
	libPath := stacktest.LightGBMLib(t)
	name := scoringtest.UniqueModelName("test-scoring-main")
	if withModel {
		c := mlflow.New(mlflowURL)
		t.Cleanup(c.HTTP.CloseIdleConnections)
		v := scoringtest.Publish(t, c, name, scoringtest.TrainModel(t, scoringtest.Library(t, libPath), 5), 0.8)
		scoringtest.Promote(t, c, name, modelstore.AliasChampion, v)
	}
	features, predictions, events := kafkaiotest.UniqueName("main-features"), kafkaiotest.UniqueName("main-predictions"), kafkaiotest.UniqueName("main-model-events")
	kafkaiotest.CreateTopics(t, strings.Split(brokers, ","), 1, features, predictions, events)
	return []string{
		"-grpc.addr", servicetest.FreeAddr(t), "-kafka.brokers", brokers, "-kafka.topics", features,
		"-kafka.group", kafkaiotest.UniqueName("scoring"), "-topic.predictions", predictions, "-topic.model-events", events,
		"-mlflow.url", mlflowURL, "-model.name", name, "-model.cache-dir", t.TempDir(), "-sync.spill-dir", t.TempDir(), "-lightgbm.lib", libPath,
	}
}

func TestRealMainLifecycle(t *testing.T) {
	t.Parallel()
	servicetest.CheckLifecycle(t, "scoring", realMain, stackArgs(t, true), func(string) string { return "" })
}

// TestRealMainWithoutModel checks both startup policies when the model has no champion:
// -model.required (the default) fails; -model.required=false starts, stays unready on
// "model" and stops cleanly.
func TestRealMainWithoutModel(t *testing.T) {
	t.Parallel()
	args := stackArgs(t, false)
	t.Run("required", func(t *testing.T) {
		err := realMain(t.Context(), args, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "load champion") {
			t.Errorf("realMain() without a champion = %v, want a load error", err)
		}
	})
	t.Run("not required", func(t *testing.T) {
		admin := servicetest.FreeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- realMain(ctx, append(args, "-model.required=false", "-admin.addr", admin, "-shutdown.timeout", "5s"), func(string) string { return "" }, io.Discard)
		}()
		client := &http.Client{Timeout: 2 * time.Second}
		var body string
		kafkaiotest.WaitFor(t, 30*time.Second, "/readyz answering", func() (bool, error) {
			resp, err := client.Get("http://" + admin + "/readyz")
			if err != nil {
				return false, nil
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			body = string(b)
			return err == nil && resp.StatusCode == http.StatusServiceUnavailable, err
		})
		if !strings.Contains(body, "model") {
			t.Errorf("/readyz body %q does not name the model check", body)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("realMain() after cancel = %v, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("realMain did not stop within 15s of cancel")
		}
	})
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
