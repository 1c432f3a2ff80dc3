package kafkaio_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/platform/telemetry"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf/tlsconftest"
)

func TestSecurityConfig(t *testing.T) {
	t.Parallel()
	ca := tlsconftest.NewCA(t, "kafka")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c kafkaio.Config)
	}{
		{name: "plain text by default", check: func(t *testing.T, c kafkaio.Config) {
			if c.SASLMechanism != "" || c.TLS.On() {
				t.Errorf("security on by default: %+v", c)
			}
		}},
		{name: "scram over tls from env, password from a file", env: map[string]string{
			"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD_FILE": pwFile, "KAFKA_TLS_CA": ca.CertFile,
		}, check: func(t *testing.T, c kafkaio.Config) {
			if c.SASLPassword.Reveal() != "s3cret" || c.SASLUsername != "svc" || !c.TLS.On() {
				t.Errorf("config = %+v, want SCRAM user svc with the file's password over TLS", c)
			}
			if _, err := c.Transport(); err != nil {
				t.Errorf("Transport: %v", err)
			}
		}},
		{name: "unknown mechanism", env: map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, wantErr: `sasl mechanism "GSSAPI"`},
		{name: "scram without password", env: map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "u"}, wantErr: "needs a username and a password"},
		{name: "credentials without mechanism", env: map[string]string{"KAFKA_SASL_USERNAME": "u"}, wantErr: "without -kafka.sasl.mechanism"},
		{name: "plain without tls", env: map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, wantErr: "clear text"},
		{name: "missing ca file", env: map[string]string{"KAFKA_TLS_CA": ca.CertFile + ".nope"}, wantErr: "read ca bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("svc", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var c kafkaio.Config
			c.RegisterFlags(fs, func(k string) string { return tt.env[k] })
			err := flagenv.Parse(fs, nil)
			if err == nil {
				err = c.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestKafkaSASLSSL runs a private broker of the local stack whose only client listener speaks
// SASL_SSL with SCRAM-SHA-512 (a throwaway CA, PEM keystore), and checks that the platform's
// producer, consumer group, topic creation and reads work through it with the right
// credentials, and that a wrong password, plain text and an untrusted certificate are refused.
func TestKafkaSASLSSL(t *testing.T) {
	ca := tlsconftest.NewCA(t, "kafka-test")
	broker := ca.Issue(t, "broker", "127.0.0.1", "localhost")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broker.pem"), append(append([]byte{}, broker.KeyPEM...), broker.CertPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	const user, password = "mlops-svc", "scram-test-password"
	in := stacktest.StartInstance(t, kafkaiotest.UniqueName("kafka-sasl"), []string{
		"KAFKA_SECURITY=sasl_ssl", "KAFKA_TLS_DIR=" + dir, "KAFKA_SASL_USER=" + user, "KAFKA_SASL_PASSWORD=" + password, "KAFKA_HEAP=256m",
	}, "kafka")
	brokers := []string{in.Addr("kafka")}
	secure := func(pw string) kafkaio.Config {
		return kafkaio.Config{Brokers: brokers, ClientID: "sasl-test", SASLMechanism: kafkaio.SASLScramSHA512,
			SASLUsername: user, SASLPassword: flagenv.NewSecret(pw), TLS: tlsconf.Client{CAFile: ca.CertFile}}
	}

	// Refusals: each asks for metadata once.
	other := tlsconftest.NewCA(t, "other")
	refused := map[string]kafkaio.Config{
		"wrong password": secure("not-the-password"),
		"plain text":     {Brokers: brokers, ClientID: "sasl-test"},
		"untrusted ca": {Brokers: brokers, ClientID: "sasl-test", SASLMechanism: kafkaio.SASLScramSHA512, SASLUsername: user,
			SASLPassword: flagenv.NewSecret(password), TLS: tlsconf.Client{CAFile: other.CertFile}},
		"tls without sasl": {Brokers: brokers, ClientID: "sasl-test", TLS: tlsconf.Client{CAFile: ca.CertFile}},
	}
	for name, cfg := range refused {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cfg.PartitionIDs(ctx, "__consumer_offsets")
		cancel()
		if err == nil {
			t.Errorf("%s: metadata request succeeded, want it refused", name)
		}
		if name == "wrong password" && !errors.Is(err, kafka.SASLAuthenticationFailed) {
			t.Errorf("wrong password: err = %v, want SASL authentication failed", err)
		}
	}

	// The platform's paths with the right credentials.
	cfg := secure(password)
	topic := kafkaiotest.UniqueName("sasl-in")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := cfg.EnsureTopics(ctx, []kafkaio.TopicSpec{{Name: topic, Partitions: 2}}); err != nil {
		t.Fatalf("EnsureTopics over SASL_SSL: %v", err)
	}
	logger := telemetry.NewLogger(io.Discard, "error")
	p, err := kafkaio.NewProducer(cfg, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte{byte('a' + i%5)}, Value: []byte{byte(i)}})
	}
	if err := p.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce over SASL_SSL: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	cc := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("sasl-group"), topic)
	cc.DLQTopic = topic + ".dlq"
	cc.SASLMechanism, cc.SASLUsername, cc.SASLPassword, cc.TLS = cfg.SASLMechanism, cfg.SASLUsername, cfg.SASLPassword, cfg.TLS
	var mu sync.Mutex
	seen := map[byte]bool{}
	c, err := kafkaio.NewConsumer(cc, kafkaio.PerMessage(func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		seen[m.Value[0]] = true
		return nil, nil
	}), logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	kafkaiotest.WaitFor(t, 60*time.Second, "the consumer group to read every record over SASL_SSL", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n, nil
	})
	ccancel()
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v", err)
	}
	got := 0
	if err := cfg.ReadTopic(ctx, topic, func(kafka.Message) error { got++; return nil }); err != nil || got != n {
		t.Fatalf("ReadTopic over SASL_SSL = %d records, %v; want %d", got, err, n)
	}
}
