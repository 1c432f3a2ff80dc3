package kafkaio_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func TestTopicSpecRoles(t *testing.T) {
	t.Parallel()
	c := kafkaio.Config{Partitions: 12, ReplicationFactor: 3}
	tests := []struct {
		role          kafkaio.TopicRole
		wantPartition int
		wantConfig    map[string]string
	}{
		{kafkaio.RoleStream, 12, nil},
		{kafkaio.RoleDeadLetter, 12, map[string]string{"retention.ms": "1209600000", "cleanup.policy": "delete"}},
		{kafkaio.RoleControl, 1, nil},
		{kafkaio.RoleAuditLog, 1, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}},
		{kafkaio.RoleRedriveLedger, 1, map[string]string{"cleanup.policy": "compact"}},
	}
	for _, tt := range tests {
		t.Run(tt.role.String(), func(t *testing.T) {
			t.Parallel()
			s := c.TopicSpec("t", tt.role)
			if s.Name != "t" || s.Partitions != tt.wantPartition || s.ReplicationFactor != 3 {
				t.Errorf("TopicSpec = %+v, want %d partitions, replication 3", s, tt.wantPartition)
			}
			if len(s.Configs) != len(tt.wantConfig) {
				t.Errorf("configs = %v, want %v", s.Configs, tt.wantConfig)
			}
			for k, v := range tt.wantConfig {
				if s.Configs[k] != v {
					t.Errorf("config %s = %q, want %q", k, s.Configs[k], v)
				}
			}
		})
	}
	if got := (kafkaio.Config{}).TopicSpec("t", kafkaio.RoleStream).Partitions; got != kafkaio.DefaultPartitions {
		t.Errorf("default partitions = %d, want %d", got, kafkaio.DefaultPartitions)
	}
	// Every topic of the event contracts is in the catalogue, once.
	seen := map[string]bool{}
	for _, e := range kafkaio.Catalogue() {
		if seen[e.Name] {
			t.Errorf("catalogue lists %s twice", e.Name)
		}
		seen[e.Name] = true
		if r, ok := kafkaio.RoleOf(e.Name); !ok || r != e.Role {
			t.Errorf("RoleOf(%s) = %v, %v; want %v", e.Name, r, ok, e.Role)
		}
	}
	for _, s := range topics.Specs() {
		if !seen[s.Name] {
			t.Errorf("catalogue lacks contract topic %s", s.Name)
		}
	}
	if err := (kafkaio.Config{Partitions: -1, ReplicationFactor: -2}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "partitions -1") || !strings.Contains(err.Error(), "replication factor -2") {
		t.Errorf("Validate() = %v, want errors for negative partitions and replication factor", err)
	}
}

// TestConsumerEnsuresTopics starts a consumer whose input and dead-letter topics do not exist
// on the real broker: it creates both, sized by -kafka.partitions, the dead-letter topic with
// its retention (this is how scoring, which creates no topic itself, gets its DLQ).
func TestConsumerEnsuresTopics(t *testing.T) {
	t.Parallel()
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	in, dlq := kafkaiotest.UniqueName("ensure-in"), kafkaiotest.UniqueName("ensure-dlq")
	cfg := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("ensure"), in)
	cfg.DLQTopic, cfg.Partitions = dlq, 4
	c, err := kafkaio.NewConsumer(cfg, kafkaio.PerMessage(func(context.Context, kafka.Message) ([]kafka.Message, error) { return nil, nil }), discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for _, topic := range []string{in, dlq} {
		kafkaiotest.WaitFor(t, 30*time.Second, topic+" created with 4 partitions", func() (bool, error) {
			ids, err := kafkaio.Partitions(context.Background(), brokers, topic)
			if err != nil {
				return false, nil // not created yet
			}
			return len(ids) == 4, nil
		})
	}
	qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer qcancel()
	got, err := kafkaiotest.TopicConfigs(qctx, brokers, dlq, "retention.ms", "cleanup.policy")
	if err != nil {
		t.Fatal(err)
	}
	if got["retention.ms"] != "1209600000" || got["cleanup.policy"] != "delete" {
		t.Errorf("dead-letter topic configs = %v, want 14 days' retention, delete", got)
	}
}
