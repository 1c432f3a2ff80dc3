package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicSpec describes a topic for EnsureTopics.
type TopicSpec struct {
	// Name of the topic.
	Name string
	// Partitions is the partition count. Zero means the broker's default (num.partitions).
	Partitions int
	// ReplicationFactor is the replica count. Zero means the broker's default
	// (default.replication.factor).
	ReplicationFactor int
	// Configs are topic configs such as retention.ms or cleanup.policy.
	Configs map[string]string
}

// EnsureTopics creates those of specs that do not exist yet and waits until every partition
// of every spec'd topic has a leader, so producers can write at once. It is idempotent:
// existing topics are left as they are (their partition count and configs are not changed).
// ctx bounds the whole operation; services call it at startup, tests before they produce.
// EnsureTopics speaks plain text without authentication; Config.EnsureTopics uses the
// Config's TLS and SASL settings.
func EnsureTopics(ctx context.Context, brokers []string, specs []TopicSpec) error {
	if len(brokers) == 0 {
		return errors.New("ensure topics: no brokers")
	}
	return Config{Brokers: brokers}.EnsureTopics(ctx, specs)
}

// EnsureTopics is the package-level EnsureTopics with c's brokers, TLS and SASL.
func (c Config) EnsureTopics(ctx context.Context, specs []TopicSpec) error {
	if len(specs) == 0 {
		return nil
	}
	transport := c.mustTransport()
	transport.ClientID = "mlops-admin"
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.withDefaults().Brokers...), Timeout: 30 * time.Second, Transport: transport}

	req := &kafka.CreateTopicsRequest{}
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		if s.Name == "" {
			return errors.New("ensure topics: topic with empty name")
		}
		names = append(names, s.Name)
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: -1, ReplicationFactor: -1}
		if s.Partitions > 0 {
			tc.NumPartitions = s.Partitions
		}
		if s.ReplicationFactor > 0 {
			tc.ReplicationFactor = s.ReplicationFactor
		}
		for _, k := range slices.Sorted(maps.Keys(s.Configs)) {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: s.Configs[k]})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", names, err)
	}
	var errs []error
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %q: %w", name, terr))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return waitForLeaders(ctx, client, names)
}

// waitForLeaders polls metadata until every partition of topics has a leader.
func waitForLeaders(ctx context.Context, client *kafka.Client, topics []string) error {
	delay := 20 * time.Millisecond
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		lastErr := err
		if err == nil {
			lastErr = leaderProblem(md, topics)
			if lastErr == nil {
				return nil
			}
		}
		if !sleepCtx(ctx, delay) {
			return fmt.Errorf("wait for leaders of %v: %w (last: %w)", topics, ctx.Err(), lastErr)
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func leaderProblem(md *kafka.MetadataResponse, topics []string) error {
	found := map[string]bool{}
	for _, t := range md.Topics {
		if t.Error != nil {
			return fmt.Errorf("topic %q: %w", t.Name, t.Error)
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("topic %q has no partitions yet", t.Name)
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("topic %q partition %d has no leader", t.Name, p.ID)
			}
		}
		found[t.Name] = true
	}
	for _, name := range topics {
		if !found[name] {
			return fmt.Errorf("topic %q not in metadata yet", name)
		}
	}
	return nil
}
