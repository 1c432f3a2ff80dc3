package kafkaio_test

import (
	"errors"
	"flag"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

func TestRegisterFlagsPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		preset  kafkaio.Config
		check   func(t *testing.T, c kafkaio.Config)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c kafkaio.Config) {
				if diff := cmp.Diff([]string{"localhost:9092"}, c.Brokers); diff != "" {
					t.Errorf("Brokers (-want +got):\n%s", diff)
				}
				if c.GroupID != "svc" || c.ClientID != "svc" || c.DLQTopic != "tx.dlq" {
					t.Errorf("GroupID, ClientID, DLQTopic = %q, %q, %q; want svc, svc, tx.dlq", c.GroupID, c.ClientID, c.DLQTopic)
				}
				if c.BatchTimeout != 5*time.Millisecond || c.RetryBackoffMin != 100*time.Millisecond || c.RetryBackoffMax != 10*time.Second {
					t.Errorf("BatchTimeout, RetryBackoff = %v, %v..%v", c.BatchTimeout, c.RetryBackoffMin, c.RetryBackoffMax)
				}
			},
		},
		{
			name:   "service preset is the default",
			preset: kafkaio.Config{Topics: []string{"features.v1"}, GroupID: "scoring"},
			check: func(t *testing.T, c kafkaio.Config) {
				if diff := cmp.Diff([]string{"features.v1"}, c.Topics); diff != "" || c.GroupID != "scoring" {
					t.Errorf("Topics %v GroupID %q, want preset", c.Topics, c.GroupID)
				}
			},
		},
		{
			name: "env over default",
			env:  map[string]string{"KAFKA_BROKERS": "a:1, b:2", "KAFKA_BATCH_TIMEOUT": "2ms", "KAFKA_MAX_BATCH": "64"},
			check: func(t *testing.T, c kafkaio.Config) {
				if diff := cmp.Diff([]string{"a:1", "b:2"}, c.Brokers); diff != "" {
					t.Errorf("Brokers (-want +got):\n%s", diff)
				}
				if c.BatchTimeout != 2*time.Millisecond || c.MaxBatch != 64 {
					t.Errorf("BatchTimeout %v MaxBatch %d, want 2ms 64", c.BatchTimeout, c.MaxBatch)
				}
			},
		},
		{
			name: "flag over env",
			args: []string{"-kafka.brokers=c:3", "-kafka.group=g2", "-kafka.topics=x,y"},
			env:  map[string]string{"KAFKA_BROKERS": "a:1", "KAFKA_GROUP": "g1"},
			check: func(t *testing.T, c kafkaio.Config) {
				if diff := cmp.Diff([]string{"c:3"}, c.Brokers); diff != "" || c.GroupID != "g2" || len(c.Topics) != 2 {
					t.Errorf("Brokers %v GroupID %q Topics %v, want [c:3] g2 [x y]", c.Brokers, c.GroupID, c.Topics)
				}
			},
		},
		{
			name:    "malformed env is reported",
			env:     map[string]string{"KAFKA_BATCH_TIMEOUT": "fast"},
			wantErr: `KAFKA_BATCH_TIMEOUT="fast"`,
		},
		{
			name: "explicit flag overrides malformed env",
			args: []string{"-kafka.batch-timeout=1ms"},
			env:  map[string]string{"KAFKA_BATCH_TIMEOUT": "fast"},
			check: func(t *testing.T, c kafkaio.Config) {
				if c.BatchTimeout != time.Millisecond {
					t.Errorf("BatchTimeout = %v, want 1ms", c.BatchTimeout)
				}
			},
		},
		{
			name:    "invalid values are all reported",
			args:    []string{"-kafka.brokers=nohost", "-kafka.retry-backoff-min=2s", "-kafka.retry-backoff-max=1s", "-kafka.heartbeat-interval=20s"},
			wantErr: "nohost",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("svc", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg := tt.preset
			cfg.RegisterFlags(fs, func(k string) string { return tt.env[k] })
			err := errors.Join(flagenv.Parse(fs, tt.args), cfg.Validate())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse+Validate = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestValidateJoinsAllProblems(t *testing.T) {
	t.Parallel()
	cfg := kafkaio.Config{
		Brokers:         []string{"nohost"},
		RetryBackoffMin: 2 * time.Second,
		RetryBackoffMax: time.Second,
		MinBytes:        100,
		MaxBytes:        10,
		Topics:          []string{"in", "tx.dlq"},
	}
	err := cfg.ValidateConsumer()
	if err == nil {
		t.Fatal("ValidateConsumer() = nil, want errors")
	}
	for _, want := range []string{"nohost", "retry backoff max", "group id is required", "dlq topic", "min bytes 100 is above max bytes 10"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateConsumer() = %q, want it to mention %q", err, want)
		}
	}
	ok := kafkaio.Config{GroupID: "g", Topics: []string{"in"}}
	if err := ok.ValidateConsumer(); err != nil {
		t.Errorf("ValidateConsumer() of a minimal consumer config = %v", err)
	}
}
