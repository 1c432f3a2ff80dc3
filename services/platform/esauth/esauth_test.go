package esauth_test

import (
	"encoding/base64"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/esauth"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf/tlsconftest"
)

// The local stack's Elasticsearch runs without x-pack security (docs/security.md), so the
// client side is checked against an https test server standing in for a secured cluster: it
// verifies the server with the configured CA and sends the configured credentials.
func TestElasticsearchClientAuth(t *testing.T) {
	t.Parallel()
	ca := tlsconftest.NewCA(t, "es")
	var mu sync.Mutex
	var got []string
	srv := ca.HTTPSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"status":"green"}`)
	}))

	tests := []struct {
		name       string
		env        map[string]string
		wantHeader string
		wantStatus int
	}{
		{name: "api key", env: map[string]string{"ES_API_KEY": "aWQ6c2VjcmV0", "ES_TLS_CA": ca.CertFile}, wantHeader: "ApiKey aWQ6c2VjcmV0", wantStatus: 200},
		{name: "basic auth", env: map[string]string{"ES_USERNAME": "predlog", "ES_PASSWORD": "pw", "ES_TLS_CA": ca.CertFile},
			wantHeader: "Basic " + base64.StdEncoding.EncodeToString([]byte("predlog:pw")), wantStatus: 200},
		{name: "no credentials", env: map[string]string{"ES_TLS_CA": ca.CertFile}, wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("svc", flag.ContinueOnError)
			var c esauth.Config
			c.RegisterFlags(fs, func(k string) string { return tt.env[k] })
			if err := flagenv.Parse(fs, nil); err != nil {
				t.Fatal(err)
			}
			client, err := c.Client()
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got = nil
			mu.Unlock()
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/_cluster/health", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode != tt.wantStatus || len(got) != 1 || got[0] != tt.wantHeader {
				t.Errorf("status %d, Authorization %q; want %d, %q", resp.StatusCode, got, tt.wantStatus, tt.wantHeader)
			}
			if req.Header.Get("Authorization") != "" {
				t.Error("the caller's request was modified")
			}
		})
	}

	// Without the CA the server is not trusted.
	untrusted, err := esauth.Config{APIKey: flagenv.NewSecret("k")}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := untrusted.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Error("request to a server signed by an unknown CA succeeded")
	}
}

func TestElasticsearchAuthConfigErrors(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]esauth.Config{
		"api key and basic":   {APIKey: flagenv.NewSecret("k"), Username: "u", Password: flagenv.NewSecret("hunter2")},
		"username only":       {Username: "u"},
		"password only":       {Password: flagenv.NewSecret("hunter2")},
		"client cert, no key": {TLS: tlsconf.Client{CertFile: "c.pem"}},
	} {
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}
}
