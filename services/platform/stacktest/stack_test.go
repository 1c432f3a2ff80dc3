package stacktest_test

// The TestStack* tests prove that every component of the real local stack works as the
// platform uses it. Under `make test` (MLOPS_TEST_REQUIRE_STACK=1) a missing component fails
// them; a bare `go test` skips them with a reason.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestStackKafka: topics are created, records are produced and consumed through the shared
// helper, a consumer stopped half-way resumes from its committed offsets with nothing lost,
// and kcat (a client we did not write) reads back exactly what the Go producer wrote.
func TestStackKafka(t *testing.T) {
	brokers := []string{stacktest.KafkaBrokers(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, out := kafkaiotest.UniqueName("stack-in"), kafkaiotest.UniqueName("stack-out")
	if err := kafkaio.EnsureTopics(ctx, brokers, []kafkaio.TopicSpec{
		{Name: in, Partitions: 3, ReplicationFactor: 1},
		{Name: out, Partitions: 3, ReplicationFactor: 1},
		{Name: in + ".dlq", Partitions: 1, ReplicationFactor: 1},
	}); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	// Idempotent: a second call succeeds.
	if err := kafkaio.EnsureTopics(ctx, brokers, []kafkaio.TopicSpec{{Name: in, Partitions: 3, ReplicationFactor: 1}}); err != nil {
		t.Fatalf("EnsureTopics again: %v", err)
	}

	const n = 400
	prod, err := kafkaio.NewProducer(kafkaio.Config{Brokers: brokers, ClientID: "stacktest"}, quietLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	var recs []kafka.Message
	for i := range n {
		k, v := fmt.Sprintf("acct-%03d", i%37), fmt.Sprintf("tx-%04d", i)
		want[v] = k
		recs = append(recs, kafkaio.NewRecord(in, []byte(k), []byte(v), "text/plain", nil))
	}
	if err := prod.WriteMessages(ctx, recs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := prod.Close(); err != nil {
		t.Fatalf("close producer: %v", err)
	}

	// kcat reads back what the Go producer wrote: same keys, values and count.
	kc := exec.CommandContext(ctx, stacktest.Binary(t, "kcat"), "-C", "-b", brokers[0], "-t", in, "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n")
	kout, err := kc.Output()
	if err != nil {
		t.Fatalf("kcat: %v (is kcat installed? scripts/stack.sh fetch installs it)", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(kout)), "\n") {
		k, v, _ := strings.Cut(line, "\t")
		got[v] = k
	}
	if len(got) != n {
		t.Fatalf("kcat read %d distinct records, want %d", len(got), n)
	}
	for v, k := range want {
		if got[v] != k {
			t.Fatalf("kcat: record %s has key %q, want %q", v, got[v], k)
		}
	}

	// Consume through the shared loop, forwarding each record to out. The first consumer
	// stops after it has handled about half; the second must pick up exactly the rest.
	group := kafkaiotest.UniqueName("stack-group")
	var mu sync.Mutex
	handled := map[string]int{}
	runConsumer := func(stopAfter int) {
		t.Helper()
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		cfg := kafkaiotest.ConsumerConfig(brokers, group, in)
		cfg.DLQTopic = in + ".dlq"
		cfg.MaxBatch = 50
		c, err := kafkaio.NewConsumer(cfg, kafkaio.PerMessage(func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
			mu.Lock()
			handled[string(m.Value)]++
			total := len(handled)
			mu.Unlock()
			if stopAfter > 0 && total >= stopAfter {
				ccancel()
			}
			return []kafka.Message{kafkaio.NewRecord(out, m.Key, m.Value, "text/plain", m.Headers)}, nil
		}), quietLogger(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(cctx) }()
		if stopAfter == 0 {
			kafkaiotest.WaitFor(t, time.Minute, "all records handled", func() (bool, error) {
				committed, err := kafkaiotest.CommittedOffsets(ctx, brokers, group, in)
				if err != nil {
					return false, err
				}
				end, err := kafkaiotest.EndOffsets(ctx, brokers, in)
				if err != nil {
					return false, err
				}
				for p, e := range end {
					if committed[p] != e {
						return false, nil
					}
				}
				return true, nil
			})
			ccancel()
		}
		if err := <-done; err != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	runConsumer(n / 2)
	mu.Lock()
	first := len(handled)
	mu.Unlock()
	if first >= n {
		t.Fatalf("first consumer handled %d records, want it stopped before %d", first, n)
	}
	runConsumer(0)
	if len(handled) != n {
		t.Fatalf("handled %d distinct records after restart, want %d: records were lost", len(handled), n)
	}
	// Every input record reached the output topic (duplicates are allowed by at-least-once).
	outVals := map[string]bool{}
	for _, m := range kafkaiotest.ReadTopic(t, brokers, out) {
		outVals[string(m.Value)] = true
	}
	if len(outVals) != n {
		t.Fatalf("output topic holds %d distinct records, want %d", len(outVals), n)
	}
}

// TestStackElasticsearch bulk-indexes documents through go-elasticsearch's BulkIndexer and
// finds them again with a search.
func TestStackElasticsearch(t *testing.T) {
	url := stacktest.ElasticsearchURL(t)
	es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	index := strings.ToLower(kafkaiotest.UniqueName("stacktest-predictions"))
	defer es.Indices.Delete([]string{index})

	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: es, Index: index, FlushBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const n = 250
	var failed, ok int
	var mu sync.Mutex
	for i := range n {
		doc := map[string]any{"transaction_id": fmt.Sprintf("tx-%d", i), "score": float64(i) / n, "flagged": i%10 == 0}
		body, _ := json.Marshal(doc)
		err := bi.Add(ctx, esutil.BulkIndexerItem{
			Action:     "index",
			DocumentID: fmt.Sprintf("tx-%d", i),
			Body:       bytes.NewReader(body),
			OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) {
				mu.Lock()
				ok++
				mu.Unlock()
			},
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, r esutil.BulkIndexerResponseItem, err error) {
				mu.Lock()
				failed++
				mu.Unlock()
				t.Errorf("bulk item failed: %v %s", err, r.Error.Reason)
			},
		})
		if err != nil {
			t.Fatalf("bulk add: %v", err)
		}
	}
	if err := bi.Close(ctx); err != nil {
		t.Fatalf("bulk close: %v", err)
	}
	if ok != n || failed != 0 {
		t.Fatalf("bulk: %d ok, %d failed; want %d ok", ok, failed, n)
	}
	if _, err := es.Indices.Refresh(es.Indices.Refresh.WithIndex(index)); err != nil {
		t.Fatal(err)
	}
	res, err := es.Search(es.Search.WithContext(ctx), es.Search.WithIndex(index),
		es.Search.WithBody(strings.NewReader(`{"query":{"term":{"flagged":true}},"track_total_hits":true}`)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.IsError() {
		t.Fatalf("search: %s", res.String())
	}
	var sr struct {
		Hits struct {
			Total struct{ Value int } `json:"total"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(res.Body).Decode(&sr); err != nil {
		t.Fatal(err)
	}
	if sr.Hits.Total.Value != n/10 {
		t.Fatalf("search flagged=true found %d, want %d", sr.Hits.Total.Value, n/10)
	}
}

// TestStackRedis makes a pipelined round trip to the real Redis.
func TestStackRedis(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: stacktest.RedisAddr(t)})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := kafkaiotest.UniqueName("stacktest:acct")
	defer rdb.Del(context.Background(), key)
	pipe := rdb.TxPipeline()
	pipe.HSet(ctx, key, "count", 1, "sum", 12.5)
	incr := pipe.HIncrBy(ctx, key, "count", 2)
	all := pipe.HGetAll(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	if incr.Val() != 3 {
		t.Errorf("HINCRBY = %d, want 3", incr.Val())
	}
	if m := all.Val(); m["count"] != "3" || m["sum"] != "12.5" {
		t.Errorf("HGETALL = %v", m)
	}
}

// TestStackMLflow creates an experiment and a run through MLflow's REST API, logs a metric
// and reads it back.
func TestStackMLflow(t *testing.T) {
	base := strings.TrimRight(stacktest.MLflowURL(t), "/")
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(path string, in, out any) {
		t.Helper()
		body, _ := json.Marshal(in)
		resp, err := client.Post(base+"/api/2.0/mlflow/"+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s %s", path, resp.Status, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
		}
	}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	call("experiments/create", map[string]any{"name": kafkaiotest.UniqueName("stacktest")}, &exp)
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	call("runs/create", map[string]any{"experiment_id": exp.ExperimentID, "start_time": time.Now().UnixMilli(), "run_name": "stacktest"}, &run)
	id := run.Run.Info.RunID
	call("runs/log-metric", map[string]any{"run_id": id, "key": "auc", "value": 0.93, "timestamp": time.Now().UnixMilli(), "step": 0}, nil)
	resp, err := client.Get(base + "/api/2.0/mlflow/runs/get?run_id=" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Run struct {
			Data struct {
				Metrics []struct {
					Key   string  `json:"key"`
					Value float64 `json:"value"`
				} `json:"metrics"`
			} `json:"data"`
		} `json:"run"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if m := got.Run.Data.Metrics; len(m) != 1 || m[0].Key != "auc" || m[0].Value != 0.93 {
		t.Fatalf("run metrics = %+v, want auc=0.93", m)
	}
}

// TestStackLightGBM loads LightGBM's shared library from the project virtualenv and reads its
// version, which must match the Python package's.
func TestStackLightGBM(t *testing.T) {
	lib, err := lightgbm.Open(stacktest.LightGBMLib(t))
	if err != nil {
		t.Fatalf("open LightGBM: %v", err)
	}
	py := stacktest.Python(t)
	out, err := exec.Command(py, "-c", "import lightgbm; print(lightgbm.__version__)").Output()
	if err != nil {
		t.Fatalf("python lightgbm version: %v", err)
	}
	if want := strings.TrimSpace(string(out)); lib.Version() != want {
		t.Fatalf("library version %q, Python package says %q", lib.Version(), want)
	}
	parts := strings.Split(lib.Version(), ".")
	if len(parts) < 2 {
		t.Fatalf("version %q is not major.minor[.patch]", lib.Version())
	}
}
