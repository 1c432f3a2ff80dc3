package kafkaiotest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// DeleteTopicsWithPrefix deletes the topics with the prefix and no other; DeleteTopicsOnCleanup
// deletes its topics when the (sub)test ends.
func TestDeleteTopics(t *testing.T) {
	t.Parallel()
	brokers := StartBroker(t)
	CreateTopics(t, brokers, 1, "run-1.a", "run-1.b", "run-10.c", "other")
	t.Run("cleanup", func(t *testing.T) {
		DeleteTopicsOnCleanup(t, brokers, "other")
	})
	DeleteTopicsWithPrefix(t, brokers, "run-1.")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, done := client(brokers)
	defer done()
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, tp := range md.Topics {
		left = append(left, tp.Name)
	}
	slices.Sort(left)
	if !slices.Equal(left, []string{"run-10.c"}) {
		t.Errorf("topics left = %v, want [run-10.c]", left)
	}
}
