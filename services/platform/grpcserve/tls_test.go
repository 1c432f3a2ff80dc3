package grpcserve_test

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/run"
	"github.com/streaming-mlops/mlops/services/platform/telemetry"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf/tlsconftest"
)

// TestServerTLS serves over TLS and mutual TLS with throwaway certificates: a plain-text
// client and (with mTLS) a client without a certificate or with one from another CA are
// refused; a verified client is served and its certificate's common name reaches handlers.
func TestServerTLS(t *testing.T) {
	t.Parallel()
	ca := tlsconftest.NewCA(t, "test")
	other := tlsconftest.NewCA(t, "other")
	server := ca.Issue(t, "grpc-server", "localhost", "127.0.0.1")
	alice := ca.Issue(t, "alice")
	mallory := other.Issue(t, "mallory")
	tests := []struct {
		name   string
		server tlsconf.Server
		client *tlsconf.Client // nil: plain text
		wantOK bool
		wantCN string
	}{
		{name: "tls/plaintext client refused", server: tlsconf.Server{CertFile: server.CertFile, KeyFile: server.KeyFile}},
		{name: "tls/unknown ca refused", server: tlsconf.Server{CertFile: server.CertFile, KeyFile: server.KeyFile},
			client: &tlsconf.Client{CAFile: other.CertFile}},
		{name: "tls/verified", server: tlsconf.Server{CertFile: server.CertFile, KeyFile: server.KeyFile},
			client: &tlsconf.Client{CAFile: ca.CertFile}, wantOK: true},
		{name: "mtls/no client certificate refused", server: tlsconf.Server{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: ca.CertFile},
			client: &tlsconf.Client{CAFile: ca.CertFile}},
		{name: "mtls/certificate of another ca refused", server: tlsconf.Server{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: ca.CertFile},
			client: &tlsconf.Client{CAFile: ca.CertFile, CertFile: mallory.CertFile, KeyFile: mallory.KeyFile}},
		{name: "mtls/verified client", server: tlsconf.Server{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: ca.CertFile},
			client: &tlsconf.Client{CAFile: ca.CertFile, CertFile: alice.CertFile, KeyFile: alice.KeyFile}, wantOK: true, wantCN: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger := telemetry.NewLogger(io.Discard, "error")
			creds, err := grpcserve.Credentials(tt.server)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			seenCN := ""
			capture := grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				mu.Lock()
				seenCN = grpcserve.PeerCommonName(ctx)
				mu.Unlock()
				return h(ctx, req)
			})
			srv := grpcserve.New("127.0.0.1:0", func(*grpc.Server) {}, logger, prometheus.NewRegistry(), time.Second, creds, capture)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run.Run(ctx, logger, srv.Actor()) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("grpc actor: %v", err)
				}
			}()
			addr, err := srv.Addr(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var ccfg tlsconf.Client
			if tt.client != nil {
				ccfg = *tt.client
			}
			dial, err := grpcserve.DialCredentials(ccfg)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(addr, dial)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			_, err = healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
			if tt.wantOK != (err == nil) {
				t.Fatalf("health Check error = %v, want success %v", err, tt.wantOK)
			}
			mu.Lock()
			defer mu.Unlock()
			if seenCN != tt.wantCN {
				t.Errorf("PeerCommonName = %q, want %q", seenCN, tt.wantCN)
			}
		})
	}
}

func TestCredentialsBadConfig(t *testing.T) {
	t.Parallel()
	ca := tlsconftest.NewCA(t, "test")
	p := ca.Issue(t, "srv", "localhost")
	for name, cfg := range map[string]tlsconf.Server{
		"key missing":            {CertFile: p.CertFile},
		"client ca without cert": {ClientCAFile: ca.CertFile},
		"missing file":           {CertFile: p.CertFile + ".nope", KeyFile: p.KeyFile},
		"ca not pem":             {CertFile: p.CertFile, KeyFile: p.KeyFile, ClientCAFile: p.KeyFile},
	} {
		if _, err := grpcserve.Credentials(cfg); err == nil {
			t.Errorf("%s: Credentials succeeded, want an error", name)
		}
	}
}
