package cli_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	"github.com/streaming-mlops/mlops/services/mlopsctl/internal/cli"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf/tlsconftest"
)

// TestMLOpsCtlTLS runs mlopsctl against a drift service that requires mutual TLS: with the
// CA and a client certificate from MLOPS_TLS_* it gets its answer; without a certificate,
// with plain text, or trusting another CA it is refused.
func TestMLOpsCtlTLS(t *testing.T) {
	t.Parallel()
	ca := tlsconftest.NewCA(t, "ctl")
	other := tlsconftest.NewCA(t, "other")
	server := ca.Issue(t, "drift", "127.0.0.1")
	operator := ca.Issue(t, "operator")
	creds, err := grpcserve.Credentials(tlsconf.Server{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(creds)
	driftv1.RegisterDriftServiceServer(srv, &fakeDrift{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("serve: %v", err)
		}
	})
	tests := []struct {
		name   string
		env    map[string]string
		wantOK bool
	}{
		{name: "mutual tls", env: map[string]string{"MLOPS_TLS_CA": ca.CertFile, "MLOPS_TLS_CERT": operator.CertFile, "MLOPS_TLS_KEY": operator.KeyFile}, wantOK: true},
		{name: "no client certificate", env: map[string]string{"MLOPS_TLS_CA": ca.CertFile}},
		{name: "plain text", env: map[string]string{}},
		{name: "server not trusted", env: map[string]string{"MLOPS_TLS_CA": other.CertFile, "MLOPS_TLS_CERT": operator.CertFile, "MLOPS_TLS_KEY": operator.KeyFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"DRIFT_ADDR": ln.Addr().String(), "DRIFT_ADMIN_ADDR": "drift.example:8085"}
			for k, v := range tt.env {
				env[k] = v
			}
			var out, errOut bytes.Buffer
			err := cli.Run(context.Background(), []string{"drift", "status", "-timeout", "3s"}, func(k string) string { return env[k] }, &out, &errOut)
			if tt.wantOK != (err == nil) {
				t.Fatalf("mlopsctl drift status: err = %v, want success %v\n%s", err, tt.wantOK, out.String())
			}
			if tt.wantOK && !strings.Contains(out.String(), "champion version") {
				t.Errorf("output lacks the status:\n%s", out.String())
			}
		})
	}
}
