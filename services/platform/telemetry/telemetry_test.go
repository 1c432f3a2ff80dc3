package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streaming-mlops/mlops/services/platform/run"
	"github.com/streaming-mlops/mlops/services/platform/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	logger := telemetry.NewLogger(io.Discard, "info")
	reg := telemetry.NewRegistry("test", "v0")
	admin := telemetry.NewAdmin("127.0.0.1:0", reg, logger)
	dep := errors.New("model not loaded")
	ready := make(chan error, 1)
	ready <- dep
	admin.AddReadyCheck("model", func(context.Context) error {
		err := <-ready
		ready <- err
		return err
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx, logger, admin.Actor(time.Second)) }()
	addr, err := admin.Addr(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr

	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "model not loaded") {
		t.Errorf("/readyz = %d %q, want 503 naming the failing check", code, body)
	}
	<-ready
	ready <- nil
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the check passes = %d, want 200", code)
	}
	if code, body := get(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, `mlops_build_info{service="test",version="v0"} 1`) || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, missing build info or Go collector", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("admin actor: %v", err)
	}
}

func TestLoggerJSON(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := telemetry.NewLogger(&buf, "warn")
	l.Info("hidden")
	l.Warn("shown", "topic", "tx.raw")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line is not one JSON object: %q: %v", buf.String(), err)
	}
	if rec["msg"] != "shown" || rec["topic"] != "tx.raw" {
		t.Errorf("record = %v", rec)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  telemetry.Config
		ok   bool
	}{
		{"ok", telemetry.Config{LogLevel: "debug", AdminAddr: ":8081"}, true},
		{"bad level", telemetry.Config{LogLevel: "loud", AdminAddr: ":8081"}, false},
		{"no addr", telemetry.Config{LogLevel: "info"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
