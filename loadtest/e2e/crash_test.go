package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/sim"
)

// TestEndToEndCrashRecovery kills services with SIGKILL in the middle of the stream (no
// draining, no final commit), keeps publishing while they are down, restarts them, and
// requires that every transaction still ends as exactly one prediction document whose
// features equal the offline computation: nothing lost, nothing counted twice.
func TestEndToEndCrashRecovery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := startPipeline(t, ctx)

	const n = 600
	cfg := sim.DefaultConfig()
	cfg.Seed = 7
	cfg.Accounts = 80
	// 600 transactions of 80 accounts span about 2.5 sim days: start ten days back.
	cfg.Start = time.Now().Add(-10 * 24 * time.Hour).Truncate(time.Second)
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]kafka.Message, n)
	txs := make([]sim.Transaction, n)
	for i := range n {
		txs[i], _ = s.Next()
		b, err := json.Marshal(&txs[i])
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafkaio.NewRecord(p.tp.raw, []byte(txs[i].AccountID), b, topics.ContentTypeJSON, nil)
	}
	brokers := []string{p.brokers}
	search := p.indexPrefix + "*"
	count := func() int {
		c, _ := esCount(p.esURL, search, `{"query":{"exists":{"field":"model_version"}}}`)
		return c
	}
	atLeast := func(want int) {
		t.Helper()
		waitFor(t, ctx, 3*time.Minute, fmt.Sprintf("%d documents", want), func() (bool, string) {
			c := count()
			return c >= want, fmt.Sprintf("count=%d", c)
		})
	}

	// Wave 1; kill features and scoring while it flows (right after the publish is
	// acknowledged, so the consumers are typically between fetch and commit).
	kafkaiotest.Produce(t, brokers, msgs[:250]...)
	t.Logf("SIGKILL features and scoring with %d of 250 documents written", count())
	p.procs["features"].kill9(t)
	p.procs["scoring"].kill9(t)
	// Wave 2 while they are down: ingestion keeps accepting, nothing reaches Elasticsearch.
	kafkaiotest.Produce(t, brokers, msgs[250:450]...)
	p.procs["features"].launch(t)
	p.procs["scoring"].launch(t)
	// Wave 3; kill predlog and ingestion mid-stream too.
	atLeast(300)
	kafkaiotest.Produce(t, brokers, msgs[450:]...)
	t.Logf("SIGKILL predlog and ingestion with %d of %d documents written", count(), n)
	p.procs["predlog"].kill9(t)
	p.procs["ingestion"].kill9(t)
	p.procs["ingestion"].launch(t)
	p.procs["predlog"].launch(t)

	atLeast(n)
	docs := esDocs(t, p.esURL, search, 2*n)
	if len(docs) != n {
		t.Fatalf("Elasticsearch holds %d documents after the crashes, want exactly %d", len(docs), n)
	}
	checkServedFeatures(t, cfg, txs, docs)
}
