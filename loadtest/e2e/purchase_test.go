package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/sim"
)

// TestPurchaseEndToEnd: the purchase use case next to fraud, as separate processes on the
// real stack. The trainer trains and promotes a fraud and a purchase model from simulated
// dataset files; two scoring deployments (one per model family, own consumer groups) share
// features.v1. Simulated shop events (commerce set) and a few payments go to tx.raw, purchase
// labels to labels.v1. Every shop event must end as exactly one purchase document
// (_id "<tx>:purchase", regression, with an explanation, joined with its purchase label) and
// no fraud document; every payment as one fraud document; each scoring deployment skips the
// other family's vectors without dead-lettering any.
func TestPurchaseEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	brokers, esURL := stacktest.KafkaBrokers(t), strings.TrimRight(stacktest.ElasticsearchURL(t), "/")
	redisAddr, mlflowURL, lib := stacktest.RedisAddr(t), stacktest.MLflowURL(t), stacktest.LightGBMLib(t)
	id := strings.ToLower(strings.TrimPrefix(kafkaiotest.UniqueName(""), "-"))
	tp := newTopics(id)
	fraudModel, purchaseModel := "e2e-fraud-"+id, "e2e-purchase-"+id
	indexPrefix := "e2e-" + id + "-predictions"
	t.Cleanup(func() { deleteIndices(esURL, indexPrefix+"*") })

	bins := buildAll(t, "trainer", "ingestion", "features", "scoring", "predlog")
	env := []string{"KAFKA_BROKERS=" + brokers, "ES_URL=" + esURL, "REDIS_ADDR=" + redisAddr,
		"MLFLOW_URL=" + mlflowURL, "LIGHTGBM_LIB=" + lib, "LOG_LEVEL=info"}

	// Version 1 of both models, from simulated dataset files (one per use case).
	fraudData := datasetfiletest.Simulate(t, "-n", "20000", "-accounts", "500", "-warmup", "24h")
	purchaseData := datasetfiletest.Simulate(t, "-scenario", "purchase", "-n", "20000", "-accounts", "500")
	trainer := start(t, "trainer", bins["trainer"], true, env,
		"-model.fraud", fraudModel, "-model.purchase", purchaseModel, "-topic.model-events", tp.modelEvents,
		"-drift.consume=false", "-data.source", "file", "-data.file", fraudData+","+purchaseData,
		"-kafka.group", "e2e-trainer-"+id)
	tc := trainerv1.NewTrainerServiceClient(dial(t, trainer.grpc))
	versions := map[string]string{}
	for _, m := range []string{fraudModel, purchaseModel} {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
		r, err := tc.Retrain(rctx, &trainerv1.RetrainRequest{ModelName: m, Reason: "e2e: first version", Actor: "e2e"})
		rcancel()
		if err != nil {
			t.Fatalf("Retrain %s: %v\n%s", m, err, trainer.tail())
		}
		if !r.GetPromoted() {
			t.Fatalf("first version %s of %s was not promoted: %s", r.GetModelVersion(), m, r.GetDecision())
		}
		versions[m] = r.GetModelVersion()
	}

	common := func(group string) []string {
		return []string{"-kafka.group", "e2e-" + group + "-" + id, "-kafka.dlq-topic", tp.dlq}
	}
	start(t, "ingestion", bins["ingestion"], true, env, append(common("ingestion"),
		"-kafka.topics", tp.raw, "-ingest.validated-topic", tp.validated)...)
	features := start(t, "features", bins["features"], true, env, append(common("features"),
		"-kafka.topics", tp.validated, "-features.topic", tp.features, "-redis.prefix", "e2e:"+id+":")...)
	scoring := map[string]*proc{}
	for family, model := range map[string]string{"fraud": fraudModel, "purchase": purchaseModel} {
		scoring[family] = start(t, "scoring-"+family, bins["scoring"], true, env, append(common("scoring-"+family),
			"-kafka.topics", tp.features, "-topic.predictions", tp.predictions, "-topic.model-events", tp.modelEvents,
			"-model.name", model, "-model.spec", family, "-model.cache-dir", t.TempDir(),
			"-features.addr", features.grpc, "-explain.sample-rate", "1")...)
	}
	start(t, "predlog", bins["predlog"], false, env, append(common("predlog"),
		"-kafka.topics", tp.predictions+","+tp.labels, "-predictions.topic", tp.predictions,
		"-labels.topic", tp.labels, "-es.index-prefix", indexPrefix, "-es.pending-index", indexPrefix+"-pending")...)

	// Traffic: shop sessions (an hour back, so none is in the future) and a few payments.
	const nShop, nPay = 200, 30
	ss, err := sim.NewSessions(sim.SessionConfig{Seed: 7, Start: time.Now().Add(-time.Hour).Truncate(time.Second),
		Customers: 80, SessionsPerHour: 1200, LabelDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var raw, labelMsgs []kafka.Message
	shopTime := map[string]time.Time{}
	addLabels := func(ls []sim.PurchaseLabel) {
		for i := range ls {
			b, err := proto.Marshal(ls[i].Proto(shopTime[ls[i].SessionID]))
			if err != nil {
				t.Fatal(err)
			}
			labelMsgs = append(labelMsgs, kafkaio.NewRecord(tp.labels, []byte(ls[i].SessionID), b, topics.ContentTypeProtobuf, nil))
		}
	}
	for i := range nShop {
		s, due := ss.Next()
		shopTime[s.SessionID] = s.EventTime
		addLabels(due)
		tx := s.Proto()
		var b []byte
		ct := topics.ContentTypeProtobuf
		if i%3 == 0 { // a third as JSON, as shops mostly send it
			ct = topics.ContentTypeJSON
			b, err = protojson.Marshal(tx)
		} else {
			b, err = proto.Marshal(tx)
		}
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, kafkaio.NewRecord(tp.raw, []byte(tx.GetAccountId()), b, ct, nil))
	}
	addLabels(ss.Drain())
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Accounts = 43, 10
	cfg.Start = time.Now().Add(-7 * 24 * time.Hour).Truncate(time.Second)
	ps, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	payments := map[string]bool{}
	for range nPay {
		tx, _ := ps.Next()
		payments[tx.TransactionID] = true
		b, err := proto.Marshal(tx.Proto())
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, kafkaio.NewRecord(tp.raw, []byte(tx.AccountID), b, topics.ContentTypeProtobuf, nil))
	}
	kafkaiotest.Produce(t, []string{brokers}, raw...)
	// Half of the labels before their predictions exist (parked), half after.
	kafkaiotest.Produce(t, []string{brokers}, labelMsgs[:len(labelMsgs)/2]...)

	search := indexPrefix + "*"
	byModel := func(m string) string {
		return fmt.Sprintf(`{"query":{"term":{"model_name":%q}}}`, m)
	}
	waitFor(t, ctx, 2*time.Minute, fmt.Sprintf("%d purchase and %d fraud documents", nShop, nPay), func() (bool, string) {
		cp, err1 := esCount(esURL, search, byModel(purchaseModel))
		cf, err2 := esCount(esURL, search, byModel(fraudModel))
		return err1 == nil && err2 == nil && cp >= nShop && cf >= nPay,
			fmt.Sprintf("purchase=%d fraud=%d %v %v\n%s\n%s", cp, cf, err1, err2, scoring["purchase"].tail(), scoring["fraud"].tail())
	})
	kafkaiotest.Produce(t, []string{brokers}, labelMsgs[len(labelMsgs)/2:]...)
	labelled := fmt.Sprintf(`{"query":{"bool":{"filter":[{"term":{"model_name":%q}},{"exists":{"field":"actual"}}]}}}`, purchaseModel)
	waitFor(t, ctx, time.Minute, fmt.Sprintf("%d labelled purchase documents", len(labelMsgs)), func() (bool, string) {
		c, err := esCount(esURL, search, labelled)
		return err == nil && c >= len(labelMsgs), fmt.Sprintf("count=%d err=%v", c, err)
	})

	docs := esDocsByID(t, esURL, search, 2*(nShop+nPay))
	if len(docs) != nShop+nPay {
		t.Errorf("Elasticsearch holds %d documents, want exactly %d (%d purchase, %d fraud)", len(docs), nShop+nPay, nShop, nPay)
	}
	for tx := range shopTime {
		d, ok := docs[tx+":purchase"]
		if !ok {
			t.Errorf("shop event %s has no purchase document", tx)
			continue
		}
		if _, dup := docs[tx]; dup {
			t.Errorf("shop event %s was also fraud-scored", tx)
		}
		ex, _ := d["explanation"].(map[string]any)
		contrib, _ := ex["contributions"].([]any)
		if d["model_name"] != purchaseModel || d["model_version"] != versions[purchaseModel] || d["task"] != "regression" ||
			d["feature_spec"] != "purchase-v1" || d["transaction_id"] != tx || len(contrib) == 0 {
			t.Errorf("purchase document of %s: model %v/%v task %v spec %v explanation %v", tx, d["model_name"], d["model_version"],
				d["task"], d["feature_spec"], d["explanation"])
		}
		if _, ok := d["actual"]; !ok || d["label_kind"] != "purchase" {
			t.Errorf("purchase document of %s: actual %v label_kind %v, want its purchase label", tx, d["actual"], d["label_kind"])
		}
	}
	for tx := range payments {
		if d, ok := docs[tx]; !ok || d["model_name"] != fraudModel || d["feature_spec"] != "fraud-v1" {
			t.Errorf("payment %s: fraud document %v", tx, d)
		}
	}
	// Each deployment skipped every one of the other family's vectors (the documents above show
	// it scored none of them) and refused none. Delivery is at least once: a record fetched
	// again after a rebalance, before its offset was committed, is skipped (counted) again.
	for family, other := range map[string]string{"fraud": "purchase", "purchase": "fraud"} {
		want := map[string]int{"fraud": nShop, "purchase": nPay}[family]
		m := scrape(t, scoring[family].admin)
		if got := metricSum(m, `mlops_scoring_skipped_total{spec="`+other+`"}`); got < float64(want) {
			t.Errorf("scoring-%s skipped %v %s vectors, want %d", family, got, other, want)
		} else if got > float64(want) {
			t.Logf("scoring-%s skipped %v %s vectors for %d distinct: %v redelivered", family, got, other, want, got-float64(want))
		}
		if got := metricSum(m, "mlops_scoring_rejected_total"); got != 0 {
			t.Errorf("scoring-%s rejected %v vectors, want 0", family, got)
		}
	}
}

// esDocsByID returns the _source of up to size documents of index by _id.
func esDocsByID(t *testing.T, base, index string, size int) map[string]map[string]any {
	t.Helper()
	resp, err := http.Post(base+"/"+index+"/_search", "application/json", strings.NewReader(fmt.Sprintf(`{"size":%d,"query":{"match_all":{}}}`, size)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Hits struct {
			Hits []struct {
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, h := range r.Hits.Hits {
		if _, dup := out[h.ID]; dup {
			t.Errorf("_id %s is in more than one index", h.ID)
		}
		out[h.ID] = h.Source
	}
	return out
}

// scrape returns the Prometheus text exposition of a service's admin port.
func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricSum adds the values of the samples whose name (with labels) starts with prefix.
func metricSum(text, prefix string) float64 {
	var sum float64
	re := regexp.MustCompile(`\s+(\S+)$`)
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			sum += v
		}
	}
	return sum
}
