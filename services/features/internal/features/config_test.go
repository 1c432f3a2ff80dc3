package features_test

import (
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/features/internal/features"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c features.Config)
		wantErr []string
	}{
		{name: "defaults", check: func(t *testing.T, c features.Config) {
			if c.Kafka.Topics[0] != "tx.validated" || len(c.Kafka.Topics) != 1 || c.OutputTopic != "features.v1" {
				t.Errorf("topics %v -> %q", c.Kafka.Topics, c.OutputTopic)
			}
			if c.Kafka.GroupID != "features" || c.RedisAddr != "127.0.0.1:6379" || c.RedisPrefix != "mlops:features:fraud-v1:" {
				t.Errorf("group %q redis %q prefix %q", c.Kafka.GroupID, c.RedisAddr, c.RedisPrefix)
			}
			if c.ReplayWindow != 1000 || c.Kafka.MaxBatch != 500 || c.StateTTL != 0 || c.RedisTimeout != 2*time.Second || c.GRPCAddr != "127.0.0.1:50052" {
				t.Errorf("window %d ttl %v timeout %v grpc %q", c.ReplayWindow, c.StateTTL, c.RedisTimeout, c.GRPCAddr)
			}
			if c.StateCache != features.DefaultStateCache {
				t.Errorf("state cache %d, want %d", c.StateCache, features.DefaultStateCache)
			}
		}},
		{name: "state cache off", env: map[string]string{"FEATURES_STATE_CACHE": "0"},
			check: func(t *testing.T, c features.Config) {
				if c.StateCache != 0 {
					t.Errorf("state cache %d, want 0", c.StateCache)
				}
			}},
		{name: "env", env: map[string]string{"REDIS_PREFIX": "p:", "FEATURES_REPLAY_WINDOW": "8", "KAFKA_MAX_BATCH": "8", "FEATURES_STATE_TTL": "720h", "FEATURES_TOPIC": "f2"},
			check: func(t *testing.T, c features.Config) {
				if c.RedisPrefix != "p:" || c.ReplayWindow != 8 || c.StateTTL != 720*time.Hour || c.OutputTopic != "f2" {
					t.Errorf("got %+v", c)
				}
			}},
		{name: "flag beats env", args: []string{"-features.replay-window", "4", "-kafka.max-batch", "4"}, env: map[string]string{"FEATURES_REPLAY_WINDOW": "8"},
			check: func(t *testing.T, c features.Config) {
				if c.ReplayWindow != 4 {
					t.Errorf("window %d, want the flag's 4", c.ReplayWindow)
				}
			}},
		{name: "invalid", args: []string{"-features.replay-window", "0", "-redis.prefix", "a{b}:", "-redis.addr", "", "-features.topic", "tx.validated", "-features.state-ttl", "-1s", "-features.state-cache", "-1"},
			wantErr: []string{"replay window", "brace", "redis address", "also an input topic", "state ttl", "state cache -1"}},
		{name: "replay window below max batch", args: []string{"-features.replay-window", "499"},
			wantErr: []string{"replay window 499 is below kafka max batch 500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := features.ParseConfig(tt.args, func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("ParseConfig() = nil error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
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
