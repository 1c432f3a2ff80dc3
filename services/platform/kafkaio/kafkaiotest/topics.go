package kafkaiotest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicConfigs returns the values of the named configs of topic as the broker reports them
// (its defaults included).
func TopicConfigs(ctx context.Context, brokers []string, topic string, names ...string) (map[string]string, error) {
	c, done := client(brokers)
	defer done()
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: names,
	}}})
	if err != nil {
		return nil, fmt.Errorf("describe configs of %q: %w", topic, err)
	}
	out := map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("describe configs of %q: %w", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			out[e.ConfigName] = e.ConfigValue
		}
	}
	return out, nil
}

// DeleteTopicsOnCleanup deletes topics when the test or benchmark ends, so tests that create
// many unique topics on the shared broker do not pile them up (the broker's heap grows with
// every partition). A failed deletion is logged, not a test failure.
func DeleteTopicsOnCleanup(t testing.TB, brokers []string, topics ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, done := client(brokers)
		defer done()
		resp, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics})
		if err == nil {
			for topic, e := range resp.Errors {
				if e != nil {
					err = errors.Join(err, fmt.Errorf("%s: %w", topic, e))
				}
			}
		}
		if err != nil {
			t.Logf("delete topics %v: %v", topics, err)
		}
	})
}
