package kafkaiotest

import (
	"context"
	"fmt"

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
