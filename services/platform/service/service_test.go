package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/service"
)

// Configuration warnings (deprecated names, ...) are found before a logger exists; the
// runtime logs each once at Warn.
func TestNewRuntimeLogsWarnings(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	b := service.Base{Name: "svc", Warnings: []string{"OLD is deprecated: set NEW"}}
	b.Telemetry.LogLevel = "info"
	service.NewRuntime(b, "v1", &out)
	var warns []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["level"] == "WARN" {
			warns = append(warns, rec)
		}
	}
	if len(warns) != 1 || warns[0]["warning"] != "OLD is deprecated: set NEW" || warns[0]["service"] != "svc" {
		t.Errorf("warn records %v, want one with the warning", warns)
	}
}

// /debug/pprof is served only when the base config asks for it (-admin.pprof).
func TestNewRuntimePprof(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		b := service.Base{Name: "svc"}
		b.Telemetry.LogLevel, b.Telemetry.Pprof = "info", on
		rt := service.NewRuntime(b, "v1", io.Discard)
		rec := httptest.NewRecorder()
		rt.Admin.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/cmdline", nil))
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; rec.Code != want {
			t.Errorf("Pprof=%v: GET /debug/pprof/cmdline = %d, want %d", on, rec.Code, want)
		}
	}
}

// A latched check fails until its dependency answers once and then stays ready while the
// dependency is down; the reason it gives before that names the dependency's error.
func TestLatchStaysReadyAfterDependencyLoss(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	calls := 0
	check := service.Latch(func(context.Context) error {
		calls++
		if !up.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	ctx := context.Background()
	if err := check(ctx); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("latched check before the dependency answered = %v, want its error", err)
	}
	up.Store(true)
	if err := check(ctx); err != nil {
		t.Fatalf("latched check with the dependency up: %v", err)
	}
	up.Store(false)
	for i := range 3 {
		if err := check(ctx); err != nil {
			t.Errorf("latched check %d after the dependency went down: %v, want ready", i, err)
		}
	}
	if calls != 2 {
		t.Errorf("dependency checked %d times, want 2 (not again once reached)", calls)
	}
}
