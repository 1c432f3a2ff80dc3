// Package e2e_test runs the whole real-time path as separate processes against the real local
// stack: the same binaries SREs deploy, talking only through Kafka, Redis, Elasticsearch and
// MLflow.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/sim"
)

// e2eTopics are this run's private topic names, so runs never see each other's records.
type e2eTopics struct{ raw, validated, dlq, features, predictions, labels, modelEvents string }

func newTopics(id string) e2eTopics {
	p := "e2e-" + id + "."
	return e2eTopics{raw: p + topics.TxRaw, validated: p + topics.TxValidated, dlq: p + topics.TxDLQ,
		features: p + topics.Features, predictions: p + topics.Predictions, labels: p + topics.Labels,
		modelEvents: p + topics.ModelEvents}
}

// TestEndToEndPipeline: the simulator publishes N transactions to tx.raw (part through kcat, a
// client we did not write, part as protobuf) plus their labels and a few malformed records.
// Every valid transaction must end as exactly one prediction document in Elasticsearch with
// the champion's version, its features and, once its label arrives, `actual`; the malformed
// records must land in tx.dlq with reasons and nowhere else; and sync Score must answer for a
// known account with an explanation.
func TestEndToEndPipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	p := startPipeline(t, ctx)
	brokers, esURL, tp, version, scoring, features := p.brokers, p.esURL, p.tp, p.version, p.procs["scoring"], p.procs["features"]
	id, indexPrefix := p.id, p.indexPrefix

	// Traffic: N simulated transactions and their labels.
	const n = 300
	cfg := sim.DefaultConfig()
	cfg.Seed = 42
	cfg.Accounts = 60
	// 300 transactions of 60 accounts span about two sim days: start a week back so no
	// event is in the future (ingestion rejects those) or older than its 30-day limit.
	cfg.Start = time.Now().Add(-7 * 24 * time.Hour).Truncate(time.Second)
	cfg.LabelDelayMin, cfg.LabelDelayMax = time.Minute, 5*time.Minute
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var txs []sim.Transaction
	var labels []sim.Label
	for range n {
		tx, due := s.Next()
		txs = append(txs, tx)
		labels = append(labels, due...)
	}
	sent := map[string]bool{}
	for _, tx := range txs {
		sent[tx.TransactionID] = true
	}
	for _, l := range s.Drain() {
		if sent[l.TransactionID] {
			labels = append(labels, l)
		}
	}

	// The accounts of about a third of the transactions publish through kcat as JSON, the
	// others through kafka-go (every 4th record as protobuf). Split by account, not by record:
	// an account's transactions must reach Kafka in event-time order, which two independent
	// clients publishing one after the other would not keep.
	var viaKcat bytes.Buffer
	var viaGo []kafka.Message
	for i := range txs {
		tx := &txs[i]
		b, err := json.Marshal(tx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case crc32.ChecksumIEEE([]byte(tx.AccountID))%3 == 0:
			fmt.Fprintf(&viaKcat, "%s\t%s\n", tx.AccountID, b)
		case i%4 == 1:
			pb, err := proto.Marshal(tx.Proto())
			if err != nil {
				t.Fatal(err)
			}
			viaGo = append(viaGo, kafkaio.NewRecord(tp.raw, []byte(tx.AccountID), pb, topics.ContentTypeProtobuf, nil))
		default:
			viaGo = append(viaGo, kafkaio.NewRecord(tp.raw, []byte(tx.AccountID), b, topics.ContentTypeJSON, nil))
		}
	}
	// Malformed records, through kcat: not JSON, a negative amount, an unknown currency.
	bad := []string{
		`{"transaction_id": "bad-1", "account_id": `,
		fmt.Sprintf(`{"transaction_id":"bad-2","account_id":"acct-x","amount":-5,"currency":"EUR","event_time":%q}`, time.Now().UTC().Format(time.RFC3339)),
		fmt.Sprintf(`{"transaction_id":"bad-3","account_id":"acct-x","amount":12,"currency":"XYZ","event_time":%q}`, time.Now().UTC().Format(time.RFC3339)),
	}
	for _, b := range bad {
		fmt.Fprintf(&viaKcat, "acct-x\t%s\n", b)
	}
	kcatFile := filepath.Join(t.TempDir(), "kcat.jsonl")
	if err := os.WriteFile(kcatFile, viaKcat.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// murmur2_random is the Java client's (and kafka-go's) key hash: the same account lands on
	// the same partition whichever client published it. librdkafka's default differs.
	kc := exec.CommandContext(ctx, "kcat", "-P", "-b", brokers, "-t", tp.raw, "-K", "\t",
		"-H", "content-type=application/json", "-X", "acks=all", "-X", "topic.partitioner=murmur2_random", "-l", kcatFile)
	if out, err := kc.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
	var labelMsgs []kafka.Message
	for i := range labels {
		l := &labels[i]
		b, err := proto.Marshal(l.Proto())
		if err != nil {
			t.Fatal(err)
		}
		labelMsgs = append(labelMsgs, kafkaio.NewRecord(tp.labels, []byte(l.TransactionID), b, topics.ContentTypeProtobuf, nil))
	}
	kafkaiotest.Produce(t, []string{brokers}, viaGo...)
	// Half of the labels before their predictions can exist, half after.
	kafkaiotest.Produce(t, []string{brokers}, labelMsgs[:len(labelMsgs)/2]...)

	// Exactly N prediction documents, each with the champion's version and its features.
	search := indexPrefix + "*"
	waitFor(t, ctx, 4*time.Minute, fmt.Sprintf("%d prediction documents", n), func() (bool, string) {
		c, err := esCount(esURL, search, `{"query":{"exists":{"field":"model_version"}}}`)
		return err == nil && c >= n, fmt.Sprintf("count=%d err=%v\n%s\n%s", c, err, scoring.tail(), features.tail())
	})
	kafkaiotest.Produce(t, []string{brokers}, labelMsgs[len(labelMsgs)/2:]...)
	waitFor(t, ctx, 2*time.Minute, fmt.Sprintf("%d labelled documents", len(labels)), func() (bool, string) {
		c, err := esCount(esURL, search, `{"query":{"bool":{"filter":[{"exists":{"field":"actual"}},{"exists":{"field":"model_version"}}]}}}`)
		return err == nil && c >= len(labels), fmt.Sprintf("count=%d err=%v", c, err)
	})
	docs := esDocs(t, esURL, search, 2*n)
	if len(docs) != n {
		t.Fatalf("Elasticsearch holds %d documents, want exactly %d", len(docs), n)
	}
	labelled := 0
	for _, d := range docs {
		txID, _ := d["transaction_id"].(string)
		if v, _ := d["model_version"].(string); v != version {
			t.Errorf("%s: model_version %q, want champion %q", txID, v, version)
		}
		if _, ok := d["actual"]; ok {
			labelled++
		}
	}
	checkServedFeatures(t, cfg, txs, docs)
	if labelled != len(labels) {
		t.Errorf("%d documents carry actual, want %d (one per label)", labelled, len(labels))
	}

	// The malformed records are in tx.dlq with reasons, and nowhere else.
	dlq := kafkaiotest.ReadTopic(t, []string{brokers}, tp.dlq)
	if len(dlq) != len(bad) {
		t.Errorf("tx.dlq holds %d records, want %d", len(dlq), len(bad))
	}
	for _, m := range dlq {
		reason, _ := kafkaio.HeaderValue(m.Headers, topics.HeaderDLQReason)
		src, _ := kafkaio.HeaderValue(m.Headers, topics.HeaderDLQSourceTopic)
		if len(reason) == 0 || string(src) != tp.raw {
			t.Errorf("dlq record %q: reason %q source %q", m.Value, reason, src)
		}
	}
	if c, err := esCount(esURL, search, `{"query":{"prefix":{"transaction_id":"bad-"}}}`); err != nil || c != 0 {
		t.Errorf("malformed records reached Elasticsearch: count %d, %v", c, err)
	}

	// Sync Score for a known account, with an explanation.
	known := txs[len(txs)-1]
	probe := known.Proto()
	probe.TransactionId, probe.EventId = "sync-"+id, "sync-"+id
	probe.EventTime = timestamppb.New(known.EventTime.Add(time.Minute))
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	resp, err := scoringv1.NewScoringServiceClient(dial(t, scoring.grpc)).Score(sctx, &scoringv1.ScoreRequest{Transaction: probe, Explain: true})
	if err != nil {
		t.Fatalf("sync Score: %v\n%s", err, scoring.tail())
	}
	if resp.GetModelVersion() != version || resp.GetDecision() == eventsv1.Decision_DECISION_UNSPECIFIED ||
		resp.GetScore() < 0 || resp.GetScore() > 1 || len(resp.GetExplanation().GetContributions()) == 0 {
		t.Errorf("sync Score = %v; want version %s, a decision, a probability and an explanation", resp, version)
	}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func esCount(base, index, query string) (int, error) {
	resp, err := http.Post(base+"/"+index+"/_count", "application/json", strings.NewReader(query))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Count int `json:"count"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("count %s: %s %s", index, resp.Status, b)
	}
	return r.Count, json.Unmarshal(b, &r)
}

func esDocs(t *testing.T, base, index string, size int) []map[string]any {
	t.Helper()
	body := fmt.Sprintf(`{"size":%d,"query":{"match_all":{}}}`, size)
	resp, err := http.Post(base+"/"+index+"/_search", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Hits struct {
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, 0, len(r.Hits.Hits))
	for _, h := range r.Hits.Hits {
		out = append(out, h.Source)
	}
	return out
}

func deleteIndices(base, pattern string) {
	req, err := http.NewRequest(http.MethodDelete, base+"/"+pattern, nil)
	if err == nil {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// checkServedFeatures requires every document's features to equal, bit for bit, the row the
// offline training-set builder computes for the same transaction: serving and training share
// one feature computation, and no replay or restart counted a transaction twice.
func checkServedFeatures(t *testing.T, cfg sim.Config, txs []sim.Transaction, docs []map[string]any) {
	t.Helper()
	ds, err := sim.FraudDataset(cfg, len(txs))
	if err != nil {
		t.Fatal(err)
	}
	row := map[string]int{}
	for i, tx := range txs {
		row[tx.TransactionID] = i
	}
	names := featurespec.Fraud().Names()
	seen := map[string]bool{}
	bad := 0
	for _, d := range docs {
		txID, _ := d["transaction_id"].(string)
		i, ok := row[txID]
		if !ok {
			t.Errorf("document for unknown transaction %q", txID)
			continue
		}
		if seen[txID] {
			t.Errorf("transaction %s has two documents", txID)
		}
		seen[txID] = true
		feats, _ := d["features"].(map[string]any)
		for j, name := range names {
			got, ok := feats[name].(float64)
			if want := ds.Row(i)[j]; !ok || got != want {
				if bad++; bad <= 5 {
					t.Errorf("%s: feature %s served %v (present %v), offline %v", txID, name, feats[name], ok, want)
				}
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d feature values differ in all", bad)
	}
}
