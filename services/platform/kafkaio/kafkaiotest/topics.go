package kafkaiotest

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	t.Cleanup(func() { deleteTopics(t, brokers, "", topics) })
}

// DeleteTopicsWithPrefix deletes now every topic whose name starts with prefix, including
// those the code under test created for itself (dead-letter, drift partials). A failed
// deletion is logged, not a test failure.
func DeleteTopicsWithPrefix(t testing.TB, brokers []string, prefix string) {
	t.Helper()
	deleteTopics(t, brokers, prefix, nil)
}

// deleteTopics deletes topics, or when prefix is set every topic whose name starts with it,
// and logs what failed.
func deleteTopics(t testing.TB, brokers []string, prefix string, topics []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, done := client(brokers)
	defer done()
	what := fmt.Sprint(topics)
	if prefix != "" {
		what = prefix + "*"
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
		if err != nil {
			t.Logf("delete topics %s: metadata: %v", what, err)
			return
		}
		for _, tp := range md.Topics {
			if strings.HasPrefix(tp.Name, prefix) {
				topics = append(topics, tp.Name)
			}
		}
	}
	if len(topics) == 0 {
		return
	}
	resp, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics})
	if err == nil {
		for topic, e := range resp.Errors {
			if e != nil {
				err = errors.Join(err, fmt.Errorf("%s: %w", topic, e))
			}
		}
	}
	if err != nil {
		t.Logf("delete topics %s: %v", what, err)
	}
}
