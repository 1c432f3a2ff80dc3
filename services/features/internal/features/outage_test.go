package features_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// startRedisServer starts a private, non-persistent redis-server on addr and stops it when
// the test ends. A missing redis-server skips the test, or fails it under make test.
func startRedisServer(t *testing.T, addr string) {
	t.Helper()
	bin := stacktest.Binary(t, "redis-server")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "no")
	logPath := filepath.Join(t.TempDir(), "redis.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	kafkaiotest.WaitFor(t, 10*time.Second, "redis-server to answer PING", func() (bool, error) {
		err := rdb.Ping(context.Background()).Err()
		if err == nil {
			return true, nil
		}
		log, _ := os.ReadFile(logPath)
		return false, fmt.Errorf("%w; log: %s", err, log)
	})
}

// TestRedisOutageBackPressure runs the consumer loop while Redis is unreachable: the
// handler fails transiently, nothing is committed or published, and once Redis is up the
// loop resumes and every transaction ends up applied once.
func TestRedisOutageBackPressure(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	in, out, dlq := kafkaiotest.UniqueName("in"), kafkaiotest.UniqueName("out"), kafkaiotest.UniqueName("dlq")
	kafkaiotest.CreateTopics(t, brokers, 3, in, out, dlq)
	const n = 30
	var txs []*eventsv1.Transaction
	var msgs []kafka.Message
	for i := range n {
		txs = append(txs, testTx(i))
		m := testRecord(t, i, txs[i])
		m.Topic, m.Offset = in, 0
		msgs = append(msgs, m)
	}
	kafkaiotest.Produce(t, brokers, msgs...)

	addr := servicetest.FreeAddr(t) // nothing listens here yet: Redis is down
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	s := features.New(testConfig(out, "outage:"), rdb, testLogger(t), prometheus.NewRegistry())

	cfg := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("group"), in)
	cfg.DLQTopic = dlq
	reg := prometheus.NewRegistry()
	c, err := kafkaio.NewConsumer(cfg, s.HandleBatch, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("consumer Run: %v", err)
		}
	})
	defer wg.Wait()
	defer cancel()

	transient := func() float64 {
		return kafkaiotest.MetricValue(reg, "mlops_kafka_handler_errors_total", map[string]string{"topic": in, "kind": "transient"})
	}
	kafkaiotest.WaitFor(t, 30*time.Second, "transient handler errors while Redis is down", func() (bool, error) {
		return transient() >= 3, fmt.Errorf("%v transient errors", transient())
	})
	committed, err := kafkaiotest.CommittedOffsets(context.Background(), brokers, cfg.GroupID, in)
	if err != nil {
		t.Fatal(err)
	}
	for p, off := range committed {
		if off > 0 {
			t.Errorf("partition %d committed at %d while Redis was down", p, off)
		}
	}
	if got := kafkaiotest.ReadTopic(t, brokers, out); len(got) != 0 {
		t.Errorf("%d vectors published while Redis was down", len(got))
	}
	if got := kafkaiotest.ReadTopic(t, brokers, dlq); len(got) != 0 {
		t.Errorf("%d records dead-lettered while Redis was down", len(got))
	}

	startRedisServer(t, addr) // Redis comes back
	kafkaiotest.WaitFor(t, 60*time.Second, "every input committed after Redis returned", func() (bool, error) {
		ends, err := kafkaiotest.EndOffsets(context.Background(), brokers, in)
		if err != nil {
			return false, err
		}
		committed, err := kafkaiotest.CommittedOffsets(context.Background(), brokers, cfg.GroupID, in)
		if err != nil {
			return false, err
		}
		for p, end := range ends {
			if committed[p] != end {
				return false, fmt.Errorf("partition %d committed %d of %d", p, committed[p], end)
			}
		}
		return true, nil
	})
	cancel()
	wg.Wait()

	want := reference(t, txs)
	got := kafkaiotest.ReadTopic(t, brokers, out)
	seen := map[string]bool{}
	for _, m := range got {
		fv := decodeFV(t, m)
		seen[fv.GetTransactionId()] = true
		if diff := cmp.Diff(want[fv.GetTransactionId()], fv.GetValues()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", fv.GetTransactionId(), diff)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct transactions published, want %d", len(seen), n)
	}
	for a := range 5 {
		if got := txCount(t, rdb, "outage:", fmt.Sprintf("acct-%d", a)); got != n/5 {
			t.Errorf("acct-%d TxCount = %d, want %d", a, got, n/5)
		}
	}
}
