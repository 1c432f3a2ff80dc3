package telemetry_test

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/telemetry"
)

// /debug/pprof exposes command lines, heap contents and CPU time to whoever reaches the admin
// port, so it is off unless the service opts in.
func TestAdminPprofIsOptIn(t *testing.T) {
	t.Parallel()
	serve := func(t *testing.T, a *telemetry.Admin) *httptest.Server {
		srv := httptest.NewServer(a.Handler())
		t.Cleanup(srv.Close)
		return srv
	}
	logger := telemetry.NewLogger(io.Discard, "info")
	reg := telemetry.NewRegistry("test", "v0")

	off := serve(t, telemetry.NewAdmin("127.0.0.1:0", reg, logger))
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/symbol"} {
		if code, _ := get(t, off.URL+p); code != http.StatusNotFound {
			t.Errorf("default admin: GET %s = %d, want 404", p, code)
		}
	}
	if code, _ := get(t, off.URL+"/metrics"); code != http.StatusOK {
		t.Errorf("default admin: /metrics = %d, want 200", code)
	}

	on := telemetry.NewAdmin("127.0.0.1:0", reg, logger)
	on.EnablePprof()
	srv := serve(t, on)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if code, _ := get(t, srv.URL+p); code != http.StatusOK {
			t.Errorf("admin with pprof: GET %s = %d, want 200", p, code)
		}
	}
}

func TestConfigPprofFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{name: "default off", want: false},
		{name: "env", env: map[string]string{"ADMIN_PPROF": "true"}, want: true},
		{name: "flag", args: []string{"-admin.pprof"}, want: true},
		{name: "flag beats env", args: []string{"-admin.pprof=false"}, env: map[string]string{"ADMIN_PPROF": "true"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c telemetry.Config
			fs := flag.NewFlagSet("svc", flag.ContinueOnError)
			c.RegisterFlags(fs, func(k string) string { return tt.env[k] }, "127.0.0.1:8081")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if c.Pprof != tt.want {
				t.Errorf("Pprof = %v, want %v", c.Pprof, tt.want)
			}
		})
	}
}
