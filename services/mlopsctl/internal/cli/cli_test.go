package cli_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streaming-mlops/mlops/services/mlopsctl/internal/cli"
)

func TestRunUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"frobnicate"}} {
		err := cli.Run(context.Background(), args, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
		if !errors.Is(err, cli.ErrUsage) {
			t.Errorf("Run(%q) = %v, want ErrUsage", args, err)
		}
	}
}

// TestStatusReportsDownComponents points status at one live HTTP server and one closed port
// and checks that it says which is which and fails overall.
func TestStatusReportsDownComponents(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"KAFKA_BROKERS":  closed,
		"ES_URL":         up.URL,
		"REDIS_ADDR":     up.Listener.Addr().String(),
		"MLFLOW_URL":     up.URL,
		"PROMETHEUS_URL": "http://" + closed,
		"SERVICES_HOST":  "127.0.0.1",
	}
	var out bytes.Buffer
	err = cli.Run(context.Background(), []string{"status", "-timeout=500ms"}, func(k string) string { return env[k] }, &out, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "not up") {
		t.Fatalf("status = %v, want a 'not up' error", err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			lines[f[0]] = f[2]
		}
	}
	for comp, want := range map[string]string{"kafka": "down:", "elasticsearch": "up", "redis": "up", "mlflow": "up", "prometheus": "down:"} {
		if lines[comp] != want {
			t.Errorf("%s state = %q, want %q\n%s", comp, lines[comp], want, out.String())
		}
	}
}
