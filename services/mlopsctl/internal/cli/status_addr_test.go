package cli_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The services' admin addresses come from flags or environment variables (default
// 127.0.0.1:8081..8086, or -services.host with the default ports), not from a port counter.
func TestStatusServiceAddresses(t *testing.T) {
	t.Parallel()
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer ready.Close()
	addr := ready.Listener.Addr().String()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"INGESTION_ADMIN_ADDR": addr,
		"FEATURES_ADMIN_ADDR":  "http://" + addr, // a URL works too
		"SCORING_ADMIN_ADDR":   ":" + port,       // a listen address: host from -services.host
		"PREDLOG_ADMIN_ADDR":   addr,
		"DRIFT_ADMIN_ADDR":     addr, // also the drift commands' report address
		"TRAINER_ADMIN_ADDR":   addr,
		"SERVICES_HOST":        "127.0.0.1",
	}
	gotAddr, state, _ := statusLines(t, nil, env)
	for _, svc := range []string{"ingestion", "features", "scoring", "predlog", "drift", "trainer"} {
		if want := "http://" + addr + "/readyz"; gotAddr[svc] != want || state[svc] != "up" {
			t.Errorf("%s: %s %s, want %s up", svc, gotAddr[svc], state[svc], want)
		}
	}

	// A flag beats the environment.
	env["TRAINER_ADMIN_ADDR"] = "127.0.0.1:1"
	gotAddr, state, _ = statusLines(t, []string{"-trainer.admin", addr}, env)
	if want := "http://" + addr + "/readyz"; gotAddr["trainer"] != want || state["trainer"] != "up" {
		t.Errorf("trainer with -trainer.admin: %s %s, want %s up", gotAddr["trainer"], state["trainer"], want)
	}

	// Without settings: the default ports on -services.host.
	gotAddr, _, _ = statusLines(t, []string{"-timeout=200ms"}, map[string]string{"SERVICES_HOST": "127.0.0.2"})
	for svc, port := range map[string]string{"ingestion": "8081", "features": "8082", "scoring": "8083", "predlog": "8084", "drift": "8085", "trainer": "8086", "scoring-purchase": "8087"} {
		if want := "http://127.0.0.2:" + port + "/readyz"; gotAddr[svc] != want {
			t.Errorf("%s address %s, want %s", svc, gotAddr[svc], want)
		}
	}
}
