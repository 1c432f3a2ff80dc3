package tlsconf_test

import (
	"crypto/tls"
	"flag"
	"io"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf/tlsconftest"
)

func TestFlagsAndLoad(t *testing.T) {
	t.Parallel()
	ca := tlsconftest.NewCA(t, "t")
	p := ca.Issue(t, "svc", "localhost")
	env := map[string]string{
		"GRPC_TLS_CERT": p.CertFile, "GRPC_TLS_KEY": p.KeyFile, "GRPC_TLS_CLIENT_CA": ca.CertFile,
		"KAFKA_TLS_CA": ca.CertFile, "KAFKA_TLS_SERVER_NAME": "broker.internal",
	}
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var srv tlsconf.Server
	var cli, off tlsconf.Client
	srv.RegisterFlags(fs, func(k string) string { return env[k] }, "grpc.tls", "GRPC_TLS")
	cli.RegisterFlags(fs, func(k string) string { return env[k] }, "kafka.tls", "KAFKA_TLS")
	off.RegisterFlags(fs, func(k string) string { return env[k] }, "redis.tls", "REDIS_TLS")
	if err := flagenv.Parse(fs, []string{"-kafka.tls.cert", p.CertFile, "-kafka.tls.key", p.KeyFile}); err != nil {
		t.Fatal(err)
	}
	sc, err := srv.Load()
	if err != nil || sc == nil || sc.ClientAuth != tls.RequireAndVerifyClientCert || sc.MinVersion < tls.VersionTLS12 {
		t.Fatalf("server Load = %+v, %v; want mutual TLS", sc, err)
	}
	cc, err := cli.Load()
	if err != nil || cc == nil || cc.ServerName != "broker.internal" || cc.RootCAs == nil || len(cc.Certificates) != 1 {
		t.Fatalf("client Load = %+v, %v; want CA, server name and a client certificate", cc, err)
	}
	if oc, err := off.Load(); err != nil || oc != nil || off.On() {
		t.Fatalf("unset client Load = %v, %v; want plain text (nil)", oc, err)
	}
}
