package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// TestScoringCreatesItsDLQ starts scoring on the real stack with a dead-letter topic that
// does not exist: its consumer creates it at start, with -kafka.partitions partitions, so a
// spec mismatch or an undecodable vector can be dead-lettered instead of stalling the
// partition.
func TestScoringCreatesItsDLQ(t *testing.T) {
	t.Parallel()
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	dlq := kafkaiotest.UniqueName("scoring-dlq")
	args := append(stackArgs(t, false), "-model.required=false", "-admin.addr", servicetest.FreeAddr(t),
		"-shutdown.timeout", "5s", "-kafka.dlq-topic", dlq, "-kafka.partitions", "3")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- realMain(ctx, args, func(string) string { return "" }, io.Discard) }()
	kafkaiotest.WaitFor(t, 60*time.Second, "scoring's dead-letter topic created with 3 partitions", func() (bool, error) {
		select {
		case err := <-done:
			t.Fatalf("realMain returned early: %v", err)
		default:
		}
		ids, err := kafkaio.Partitions(context.Background(), brokers, dlq)
		return err == nil && len(ids) == 3, nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("realMain() after cancel = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("realMain did not stop within 15s of cancel")
	}
}
