package service_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
