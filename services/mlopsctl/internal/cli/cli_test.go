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
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_cluster/health" {
			_, _ = w.Write([]byte(`{"status":"green"}`))
		}
	}))
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

// statusLines runs status with env and returns, per component, its address and state.
func statusLines(t *testing.T, args []string, env map[string]string) (addr, state map[string]string, err error) {
	t.Helper()
	var out bytes.Buffer
	err = cli.Run(context.Background(), append([]string{"status", "-timeout=2s"}, args...), func(k string) string { return env[k] }, &out, &bytes.Buffer{})
	addr, state = map[string]string{}, map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			addr[f[0]], state[f[0]] = f[1], strings.Join(f[2:], " ")
		}
	}
	return addr, state, err
}

// Elasticsearch is probed with GET /_cluster/health: the jar-based local Elasticsearch
// answers GET / with 405 Method Not Allowed while it is healthy. A red cluster is not ready.
func TestStatusElasticsearchHealth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cluster string
		want    string
	}{
		{name: "green", cluster: "green", want: "up"},
		{name: "yellow", cluster: "yellow", want: "up"},
		{name: "red", cluster: "red", want: "not ready: cluster status red"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			es := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/_cluster/health" {
					http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"cluster_name":"mlops","status":"` + tt.cluster + `","number_of_nodes":1}`))
			}))
			defer es.Close()
			_, state, _ := statusLines(t, nil, map[string]string{"ES_URL": es.URL + "/"})
			if state["elasticsearch"] != tt.want {
				t.Errorf("elasticsearch state = %q, want %q", state["elasticsearch"], tt.want)
			}
		})
	}
}

// status authenticates to a secured Elasticsearch with -es.api-key (ES_API_KEY); without it
// the cluster answers 401 and status says so.
func TestStatusElasticsearchAPIKey(t *testing.T) {
	t.Parallel()
	es := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "ApiKey c3RhdHVzOmtleQ==" {
			http.Error(w, "missing authentication credentials", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"green"}`))
	}))
	defer es.Close()
	for env, want := range map[string]string{"": "not ready: 401 Unauthorized", "c3RhdHVzOmtleQ==": "up"} {
		_, state, _ := statusLines(t, nil, map[string]string{"ES_URL": es.URL, "ES_API_KEY": env})
		if state["elasticsearch"] != want {
			t.Errorf("ES_API_KEY=%q: elasticsearch state = %q, want %q", env, state["elasticsearch"], want)
		}
	}
}
