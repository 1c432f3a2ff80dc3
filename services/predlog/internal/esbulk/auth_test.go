package esbulk_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/esauth"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf/tlsconftest"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
)

// The bulk writer authenticates each request with the configured API key and verifies the
// cluster's certificate with the configured CA (the local stack's Elasticsearch has no
// security, so an https test server stands in for a secured cluster).
func TestBulkSendsAPIKeyOverTLS(t *testing.T) {
	t.Parallel()
	ca := tlsconftest.NewCA(t, "es")
	var mu sync.Mutex
	var auth []string
	srv := ca.HTTPSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		_, _ = io.WriteString(w, `{"took":1,"errors":false,"items":[{"delete":{"_index":"i","_id":"1","status":200}}]}`)
	}))

	c, err := esbulk.New(srv.URL, 10*time.Second, esbulk.WithAuth(esauth.Config{APIKey: flagenv.NewSecret("a2V5LWlkOmtleQ=="), TLS: tlsconf.Client{CAFile: ca.CertFile}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items, err := c.Bulk(ctx, []esbulk.Op{{Action: esbulk.ActionDelete, Index: "i", ID: "1"}})
	if err != nil || len(items) != 1 {
		t.Fatalf("Bulk over TLS with an API key = %v, %v", items, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auth) == 0 {
		t.Fatal("no request reached the server")
	}
	for _, a := range auth {
		if a != "ApiKey a2V5LWlkOmtleQ==" {
			t.Errorf("Authorization = %q, want the API key", a)
		}
	}
}
