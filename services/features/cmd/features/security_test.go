package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf/tlsconftest"
)

// TestFeaturesSecuredRedis runs the features service against a private Redis of the local
// stack that requires a password, has an ACL user and speaks only TLS, with its own gRPC
// server requiring client certificates: a call with a client certificate records a
// transaction in Redis through the ACL user over TLS; Redis refuses clients without the
// password, with a wrong one, and in plain text; gRPC refuses a client without a certificate.
func TestFeaturesSecuredRedis(t *testing.T) {
	ca := tlsconftest.NewCA(t, "features-test")
	redisCert := ca.Issue(t, "redis", "127.0.0.1", "localhost")
	grpcCert := ca.Issue(t, "features", "127.0.0.1", "localhost")
	scoring := ca.Issue(t, "scoring")
	dir := t.TempDir()
	for name, src := range map[string]string{"server.pem": redisCert.CertFile, "server-key.pem": redisCert.KeyFile, "ca.pem": ca.CertFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const adminPassword, userPassword = "redis-default-password", "redis-acl-password"
	pwFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pwFile, []byte(userPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := stacktest.StartInstance(t, kafkaiotest.UniqueName("redis-auth"), []string{
		"REDIS_PASSWORD=" + adminPassword, "REDIS_ACL_USER=features", "REDIS_ACL_PASSWORD=" + userPassword, "REDIS_TLS_DIR=" + dir,
	}, "redis")
	redisAddr := in.Addr("redis")
	redisTLS, err := tlsconf.Client{CAFile: ca.CertFile}.Load()
	if err != nil {
		t.Fatal(err)
	}

	// Redis itself refuses what it must.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for name, opts := range map[string]*redis.Options{
		"no password":    {Addr: redisAddr, TLSConfig: redisTLS},
		"wrong password": {Addr: redisAddr, TLSConfig: redisTLS, Username: "features", Password: "nope"},
		"plain text":     {Addr: redisAddr, Username: "features", Password: userPassword, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second},
	} {
		opts.MaxRetries = -1
		c := redis.NewClient(opts)
		err := c.Set(ctx, "probe", "x", time.Minute).Err()
		_ = c.Close()
		if err == nil {
			t.Errorf("redis %s: SET succeeded, want it refused", name)
		}
	}

	run := kafkaiotest.UniqueName("secured")
	grpcAddr, admin := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	env := map[string]string{
		"KAFKA_BROKERS": stacktest.KafkaBrokers(t), "KAFKA_GROUP": run, "KAFKA_TOPICS": run + "-tx.validated",
		"KAFKA_DLQ_TOPIC": run + "-tx.dlq", "FEATURES_TOPIC": run + "-features.v1", "REDIS_PREFIX": "test:" + run + ":",
		"REDIS_ADDR": redisAddr, "REDIS_USERNAME": "features", "REDIS_PASSWORD_FILE": pwFile, "REDIS_TLS_CA": ca.CertFile,
		"GRPC_TLS_CERT": grpcCert.CertFile, "GRPC_TLS_KEY": grpcCert.KeyFile, "GRPC_TLS_CLIENT_CA": ca.CertFile,
	}
	var logs lockedBuffer
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- realMain(sctx, []string{"-grpc.addr", grpcAddr, "-admin.addr", admin, "-shutdown.timeout", "5s"}, func(k string) string { return env[k] }, &logs)
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("features: %v", err)
		}
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	kafkaiotest.WaitFor(t, 60*time.Second, "features ready", func() (bool, error) {
		select {
		case err := <-done:
			t.Fatalf("features exited before it was ready: %v", err)
		default:
		}
		resp, err := client.Get("http://" + admin + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})

	call := func(cfg tlsconf.Client, tx *eventsv1.Transaction) error {
		creds, err := grpcserve.DialCredentials(cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(grpcAddr, creds)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_, err = featuresv1.NewFeatureServiceClient(conn).GetOnlineFeatures(cctx, &featuresv1.GetOnlineFeaturesRequest{Transaction: tx, Record: true})
		return err
	}
	tx := &eventsv1.Transaction{EventId: "ev-" + run, EventTime: timestamppb.Now(), TransactionId: "tx-" + run, AccountId: "acct-" + run,
		Amount: 42, Currency: "EUR", MerchantId: "m-1", DeviceId: "d-1", Country: "DE", IngestedAt: timestamppb.Now()}
	if err := call(tlsconf.Client{CAFile: ca.CertFile}, tx); err == nil {
		t.Error("GetOnlineFeatures without a client certificate succeeded, want it refused")
	}
	if err := call(tlsconf.Client{CAFile: ca.CertFile, CertFile: scoring.CertFile, KeyFile: scoring.KeyFile}, tx); err != nil {
		t.Fatalf("GetOnlineFeatures over mTLS with Redis over TLS and ACL auth: %v\n%s", err, logs.String())
	}
	// The state is in the secured Redis, written by the ACL user.
	admin2 := redis.NewClient(&redis.Options{Addr: redisAddr, TLSConfig: redisTLS, Password: adminPassword})
	defer admin2.Close()
	keys, err := admin2.Keys(ctx, "test:"+run+":*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys of the run in the secured Redis = %v, %v; want the account's state", keys, err)
	}
	for _, secret := range []string{adminPassword, userPassword} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a Redis password appears in the service's logs")
		}
	}
	if !strings.Contains(logs.String(), `"redis_password_set":true`) {
		t.Errorf("configured log line lacks redis_password_set=true:\n%s", logs.String())
	}
}

// lockedBuffer is a log sink safe for the logger's goroutines and the test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
