package trainer

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/run"
	"github.com/streaming-mlops/mlops/services/platform/telemetry"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf/tlsconftest"
)

// Outside development mode the trainer refuses to start without an admin credential; named
// tokens must be well formed (and are never echoed in the error).
func TestTrainerRequiresAdminCredential(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		env           map[string]string
		wantParseErr  string
		wantRefuseErr bool
	}{
		{name: "no credential, production", wantRefuseErr: true},
		{name: "no credential, MLOPS_DEV=1", env: map[string]string{"MLOPS_DEV": "1"}},
		{name: "single token", env: map[string]string{"MLOPS_ADMIN_TOKEN": "t0k"}},
		{name: "named tokens", env: map[string]string{"MLOPS_ADMIN_TOKENS": "alice:a-tok, ci:ci-tok"}},
		{name: "malformed named tokens", env: map[string]string{"MLOPS_ADMIN_TOKENS": "alice:a-tok,secret-without-name"}, wantParseErr: "item 2 is not name:token"},
		{name: "shared token", env: map[string]string{"MLOPS_ADMIN_TOKENS": "alice:same,bob:same"}, wantParseErr: "same token"},
		{name: "client cns without mtls", env: map[string]string{"ADMIN_CLIENT_CNS": "ops"}, wantParseErr: "mutual TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig(nil, func(k string) string { return tt.env[k] })
			if tt.wantParseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantParseErr) {
					t.Fatalf("ParseConfig error = %v, want it to mention %q", err, tt.wantParseErr)
				}
				if strings.Contains(err.Error(), "secret-without-name") || strings.Contains(err.Error(), "same,") {
					t.Errorf("error echoes a token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.RequireAdminCredential(); (err != nil) != tt.wantRefuseErr {
				t.Fatalf("RequireAdminCredential() = %v, want refusal %v", err, tt.wantRefuseErr)
			}
		})
	}
}

// The audit's actor is the authenticated caller: the name of the bearer token presented or
// the common name of the verified client certificate, never the actor the request names;
// only without any configured credential (development mode) does the request's actor count.
// The server runs with mutual TLS on loopback, as a cluster would run it.
func TestTrainerAuditsAuthenticatedCaller(t *testing.T) {
	t.Parallel()
	ca := tlsconftest.NewCA(t, "trainer-test")
	srvCert := ca.Issue(t, "trainer", "127.0.0.1")
	ops := ca.Issue(t, "ops-bot")
	stranger := ca.Issue(t, "stranger")
	serverTLS := tlsconf.Server{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile, ClientCAFile: ca.CertFile}

	start := func(t *testing.T, cfg Config) string {
		t.Helper()
		logger := telemetry.NewLogger(io.Discard, "error")
		creds, err := grpcserve.Credentials(serverTLS)
		if err != nil {
			t.Fatal(err)
		}
		s := New(cfg, Deps{}, logger, prometheus.NewRegistry())
		// The interceptor answers with the caller the handler would audit, so no MLflow or
		// Kafka is needed: authorize and asCaller are what the handlers run first.
		probe := grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
			caller, err := s.authorize(ctx)
			if err != nil {
				return nil, err
			}
			r := asCaller(req.(*trainerv1.RetrainRequest), caller)
			return nil, status.Error(codes.Aborted, "actor="+r.GetActor())
		})
		gs := grpcserve.New("127.0.0.1:0", s.Register, logger, prometheus.NewRegistry(), time.Second, creds, probe)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run.Run(ctx, logger, gs.Actor()) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("grpc: %v", err)
			}
		})
		addr, err := gs.Addr(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return addr
	}
	call := func(t *testing.T, addr string, cert *tlsconftest.Pair, token string) (string, codes.Code) {
		t.Helper()
		cc := tlsconf.Client{CAFile: ca.CertFile}
		if cert != nil {
			cc.CertFile, cc.KeyFile = cert.CertFile, cert.KeyFile
		}
		creds, err := grpcserve.DialCredentials(cc)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr, creds)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		_, err = trainerv1.NewTrainerServiceClient(conn).Retrain(ctx, &trainerv1.RetrainRequest{ModelName: "fraud", Actor: "mallory", Reason: "r"})
		st := status.Convert(err)
		if st.Code() == codes.Aborted {
			return strings.TrimPrefix(st.Message(), "actor="), codes.OK
		}
		return "", st.Code()
	}

	secured := Config{AdminToken: flagenv.NewSecret("shared-tok"), AdminTokens: flagenv.NewSecret("alice:alice-tok,ci:ci-tok"), AdminClientCNs: []string{"ops-bot"}}
	secured.GRPCTLS = serverTLS
	addr := start(t, secured)
	tests := []struct {
		name      string
		cert      *tlsconftest.Pair
		token     string
		wantActor string
		wantCode  codes.Code
	}{
		{name: "named token", cert: &stranger, token: "alice-tok", wantActor: "alice"},
		{name: "another named token", cert: &stranger, token: "ci-tok", wantActor: "ci"},
		{name: "single admin token", cert: &stranger, token: "shared-tok", wantActor: "admin"},
		{name: "allowed client certificate", cert: &ops, wantActor: "ops-bot"},
		{name: "client certificate not allowed", cert: &stranger, wantCode: codes.Unauthenticated},
		{name: "wrong token", cert: &stranger, token: "alice-tok-x", wantCode: codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			actor, code := call(t, addr, tt.cert, tt.token)
			if code != tt.wantCode || actor != tt.wantActor {
				t.Errorf("Retrain as %q: audited actor %q, code %v; want %q, %v", "mallory", actor, code, tt.wantActor, tt.wantCode)
			}
		})
	}
	t.Run("development mode keeps the named actor", func(t *testing.T) {
		t.Parallel()
		dev := Config{Dev: true}
		dev.GRPCTLS = serverTLS
		if actor, code := call(t, start(t, dev), &stranger, ""); code != codes.OK || actor != "mallory" {
			t.Errorf("dev mode: audited actor %q, code %v; want the request's %q", actor, code, "mallory")
		}
	})
}

// The trainer's Elasticsearch data source sends the configured basic-auth credentials (the
// local stack's Elasticsearch has no security; a test server stands in for a secured one).
func TestESSourceSendsCredentials(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"type":"test","reason":"stop here"},"status":400}`)
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"MLOPS_DEV": "1", "ES_URL": srv.URL, "ES_USERNAME": "trainer", "ES_PASSWORD": "es-pw"}
	cfg, err := ParseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ds, err := NewDataSource(cfg, quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ds.Load(ctx, DataQuery{Spec: featurespec.Fraud()}); err == nil {
		t.Fatal("Load against a server answering 400 succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("trainer:es-pw"))
	if len(got) == 0 || got[0] != want {
		t.Errorf("Authorization headers = %q, want %q", got, want)
	}
}
