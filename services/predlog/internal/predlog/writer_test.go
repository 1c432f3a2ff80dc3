package predlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"google.golang.org/protobuf/types/known/timestamppb"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

// handle calls h with msgs and fails the test unless every record succeeded.
func handleOK(t testing.TB, h kafkaio.BatchHandler, msgs ...kafka.Message) {
	t.Helper()
	res, err := h(ctxT(t), msgs)
	if err != nil {
		t.Fatalf("handler: %v", err)
	}
	if len(res) != len(msgs) {
		t.Fatalf("handler returned %d results for %d records", len(res), len(msgs))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("record %d: %v", i, r.Err)
		}
	}
}

// wantDoc is the document prediction(txID, i) joined with label(txID, actual, after).
func wantDoc(index, txID string, i int, actual float64, after time.Duration) map[string]any {
	p := prediction(txID, i)
	at := p.GetEventTime().AsTime()
	features := map[string]any{}
	for k, name := range []string{"amount", "location_score", "device_risk_score", "time_since_last_transaction",
		"tx_count_1h", "tx_count_24h", "amount_sum_1h", "amount_sum_24h", "amount_zscore", "distinct_merchants_24h",
		"distinct_devices_24h", "geo_velocity_kmh", "hour_of_day", "is_new_device", "is_new_merchant", "is_new_country"} {
		if k != 3 {
			features[name] = fraudValues(i)[k]
		}
	}
	return map[string]any{
		"_index":               index,
		"@timestamp":           at.Format(time.RFC3339Nano),
		"event_id":             p.GetEventId(),
		"transaction_id":       txID,
		"account_id":           p.GetAccountId(),
		"model_name":           "fraud",
		"model_version":        p.GetModelVersion(),
		"task":                 "binary_classification",
		"score":                p.GetScore(),
		"decision":             map[bool]string{true: "alert", false: "pass"}[p.GetScore() >= 0.8],
		"threshold":            0.8,
		"amount":               10 + float64(i),
		"currency":             "EUR",
		"feature_spec":         "fraud-v1",
		"features":             features,
		"features_computed_at": at.Add(2 * time.Millisecond).Format(time.RFC3339Nano),
		"explanation": map[string]any{"base_value": -2.5, "method": "tree_shap", "contributions": []any{
			map[string]any{"feature": "amount", "value": 10 + float64(i), "contribution": 0.75},
			map[string]any{"feature": "device_risk_score", "contribution": -0.25},
		}},
		"shadow": map[string]any{"model_name": "fraud", "model_version": "3", "score": 0.5, "decision": "pass",
			"threshold": 0.8, "inference_seconds": 0.0002},
		"latency": map[string]any{"inference_seconds": 0.0001, "features_seconds": 0.001,
			"explanation_seconds": 0.0003, "end_to_end_seconds": 0.02},
		"scored_at":      at.Add(5 * time.Millisecond).Format(time.RFC3339Nano),
		"path":           "stream",
		"traceparent":    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"actual":         actual,
		"labelled_at":    baseTime.Add(after).Format(time.RFC3339Nano),
		"label_kind":     "fraud",
		"label_source":   "chargeback",
		"label_event_id": "label-" + txID + "-" + after.String(),
	}
}

func TestLabelJoinsPredictionInEitherOrder(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	w, reg := te.writer(t)
	h := w.Handler(predTopic, labelTopic)
	index := predlog.IndexFor(te.cfg.IndexPrefix, baseTime)

	tests := []struct {
		name       string
		labelFirst bool
		actual     float64
		after      time.Duration
		withTxTime bool
	}{
		{name: "label_after_prediction", labelFirst: false, actual: 1, after: 72 * time.Hour},
		{name: "label_before_prediction", labelFirst: true, actual: 0, after: 72 * time.Hour},
		{name: "label_two_months_later", labelFirst: false, actual: 1, after: 60 * 24 * time.Hour},
		// Past LabelMaxDelay only the label's transaction_time can find the prediction.
		{name: "label_a_year_later_with_transaction_time", labelFirst: false, actual: 1, after: 365 * 24 * time.Hour, withTxTime: true},
	}
	for n, tt := range tests {
		tx := "tx-order-" + tt.name
		pred := record(t, predTopic, tx, prediction(tx, 80+n), int64(n))
		l := label(tx, tt.actual, tt.after)
		if tt.withTxTime {
			l.TransactionTime = timestamppb.New(baseTime)
		}
		lab := record(t, labelTopic, tx, l, int64(n))
		if tt.labelFirst {
			handleOK(t, h, lab)
			handleOK(t, h, pred)
		} else {
			handleOK(t, h, pred)
			handleOK(t, h, lab)
		}
	}
	docs := te.search(t)
	for n, tt := range tests {
		tx := "tx-order-" + tt.name
		if diff := cmp.Diff(wantDoc(index, tx, 80+n, tt.actual, tt.after), docs[tx]); diff != "" {
			t.Errorf("%s: document (-want +got):\n%s", tt.name, diff)
		}
	}
	if len(docs) != len(tests) {
		t.Errorf("%d documents, want %d", len(docs), len(tests))
	}
	if n := te.countPending(t); n != 0 {
		t.Errorf("%d labels left in the pending index, want 0", n)
	}
	if got := kafkaiotest.MetricValue(reg, "mlops_predlog_docs_written_total", map[string]string{"kind": "label_pending"}); got != 1 {
		t.Errorf("label_pending writes = %v, want 1", got)
	}
	if got := kafkaiotest.MetricValue(reg, "mlops_predlog_docs_written_total", map[string]string{"kind": "label"}); got != 4 {
		t.Errorf("label writes = %v, want 4", got)
	}
}

func TestReplayKeepsOneIdenticalDocument(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	w, _ := te.writer(t)
	h := w.Handler(predTopic, labelTopic)
	var preds, labels []kafka.Message
	for i := range 40 {
		tx := fmt.Sprintf("tx-replay-%03d", i)
		preds = append(preds, record(t, predTopic, tx, prediction(tx, i), int64(i)))
		if i%2 == 0 {
			labels = append(labels, record(t, labelTopic, tx, label(tx, float64(i%4/2), time.Duration(i)*time.Hour), int64(i)))
		}
	}
	// Half the labels before their predictions, half after.
	handleOK(t, h, labels[:10]...)
	handleOK(t, h, preds...)
	handleOK(t, h, labels[10:]...)
	first := te.search(t)
	if len(first) != 40 {
		t.Fatalf("%d documents after the first pass, want 40", len(first))
	}
	// Replay everything, in another order, through a fresh writer (a restarted service).
	w2, _ := te.writer(t)
	h2 := w2.Handler(predTopic, labelTopic)
	handleOK(t, h2, labels...)
	handleOK(t, h2, preds...)
	handleOK(t, h2, labels...)
	second := te.search(t)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("documents changed on replay (-first +second):\n%s", diff)
	}
	for i := 0; i < 40; i += 2 {
		tx := fmt.Sprintf("tx-replay-%03d", i)
		if _, ok := second[tx]["actual"]; !ok {
			t.Errorf("%s has no actual", tx)
		}
	}
	if n := te.countPending(t); n != 0 {
		t.Errorf("%d labels left pending", n)
	}
}

func TestOlderLabelDoesNotReplaceNewer(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	w, reg := te.writer(t)
	h := w.Handler(predTopic, labelTopic)
	tests := []struct {
		name       string
		labelFirst bool
	}{
		{name: "on_document", labelFirst: false},
		{name: "while_pending", labelFirst: true},
	}
	for n, tt := range tests {
		tx := "tx-stale-" + tt.name
		pred := record(t, predTopic, tx, prediction(tx, n), 0)
		newerL := record(t, labelTopic, tx, label(tx, 1, 48*time.Hour), 1)
		older := record(t, labelTopic, tx, label(tx, 0, 24*time.Hour), 2)
		if tt.labelFirst {
			handleOK(t, h, newerL)
			handleOK(t, h, older)
			handleOK(t, h, pred)
		} else {
			handleOK(t, h, pred)
			handleOK(t, h, newerL)
			handleOK(t, h, older)
		}
	}
	docs := te.search(t)
	for n, tt := range tests {
		tx := "tx-stale-" + tt.name
		if diff := cmp.Diff(wantDoc(predlog.IndexFor(te.cfg.IndexPrefix, baseTime), tx, n, 1, 48*time.Hour), docs[tx]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	if got := kafkaiotest.MetricValue(reg, "mlops_predlog_labels_stale_total", nil); got != 2 {
		t.Errorf("mlops_predlog_labels_stale_total = %v, want 2", got)
	}
}

func TestInvalidInputIsPermanent(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	w, reg := te.writer(t)
	h := w.Handler(predTopic, labelTopic)

	noTx := prediction("x", 1)
	noTx.TransactionId = ""
	noTime := label("tx-no-time", 1, 0)
	noTime.EventTime = nil
	// A feature named "amount.cents" needs features.amount to be an object, but it is a
	// double: Elasticsearch rejects the document (400, document_parsing_exception).
	clash := prediction("tx-clash", 2)
	clash.Features.SpecName, clash.Features.SpecVersion = "custom", "7"
	clash.Features.Values = []float64{1, 2}
	clash.Features.Names = []string{"amount", "amount.cents"}
	jsonCT := record(t, predTopic, "tx-json", prediction("tx-json", 3), 0)
	jsonCT.Headers[0].Value = []byte("application/json")

	tests := []struct {
		name       string
		msg        kafka.Message
		wantReason string
	}{
		{name: "garbage_prediction", msg: kafka.Message{Topic: predTopic, Value: []byte{0xff, 0xff, 0xff}}, wantReason: kafkaio.ReasonDecode},
		{name: "garbage_label", msg: kafka.Message{Topic: labelTopic, Value: []byte{0xff, 0xff, 0xff}}, wantReason: kafkaio.ReasonDecode},
		{name: "json_content_type", msg: jsonCT, wantReason: kafkaio.ReasonDecode},
		{name: "prediction_without_transaction", msg: record(t, predTopic, "", noTx, 0), wantReason: kafkaio.ReasonValidation},
		{name: "label_without_time", msg: record(t, labelTopic, "tx-no-time", noTime, 0), wantReason: kafkaio.ReasonValidation},
		{name: "mapping_conflict", msg: record(t, predTopic, "tx-clash", clash, 0), wantReason: predlog.ReasonESMapping},
	}
	// Create the monthly index first: the parallel cases below would otherwise race its
	// creation, and an mget can then find the new index's shard not yet started (a transient
	// error the consumer loop retries, but these cases call the handler once).
	handleOK(t, h, record(t, predTopic, "tx-first", prediction("tx-first", 4), 0))
	// The same for the pending-label index (a label of an unknown transaction parks there),
	// and wait until every shard of both is started.
	handleOK(t, h, record(t, labelTopic, "tx-parked", label("tx-parked", 1, 0), 0))
	hctx, hcancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer hcancel()
	if _, err := te.es.Do(hctx, http.MethodGet, "/_cluster/health/"+te.cfg.IndexPrefix+"*?wait_for_status=yellow&timeout=30s", nil); err != nil {
		t.Fatalf("wait for the test indices: %v", err)
	}
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				// A valid record around the bad one must still be written.
				good := record(t, tt.msg.Topic, "tx-good-"+tt.name, prediction("tx-good-"+tt.name, 5), 1)
				if tt.msg.Topic == labelTopic {
					good = record(t, labelTopic, "tx-good-"+tt.name, label("tx-good-"+tt.name, 1, time.Hour), 1)
				}
				res, err := h(ctxT(t), []kafka.Message{tt.msg, good})
				if err != nil {
					t.Fatalf("handler: %v", err)
				}
				if len(res) != 2 {
					t.Fatalf("%d results, want 2", len(res))
				}
				if !kafkaio.IsPermanent(res[0].Err) || kafkaio.Reason(res[0].Err) != tt.wantReason {
					t.Errorf("bad record: err %v (reason %q), want permanent with reason %q", res[0].Err, kafkaio.Reason(res[0].Err), tt.wantReason)
				}
				if res[1].Err != nil {
					t.Errorf("good record: %v", res[1].Err)
				}
			})
		}
	})
	if got := kafkaiotest.MetricValue(reg, "mlops_predlog_bulk_items_failed_total", map[string]string{"reason": "mapping"}); got != 1 {
		t.Errorf("mlops_predlog_bulk_items_failed_total{reason=mapping} = %v, want 1", got)
	}
}

// closedAddr returns a loopback URL nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestElasticsearchDownIsTransient(t *testing.T) {
	t.Parallel()
	live := newTestES(t)
	down := newTestESAt(t, closedAddr(t), live.cfg.IndexPrefix)
	reg := prometheus.NewRegistry()
	wDown := predlog.NewWriter(down.es, down.cfg, down.logger, reg)
	if err := wDown.PutTemplates(ctxT(t)); !errors.Is(err, esbulk.ErrUnavailable) {
		t.Errorf("PutTemplates against a closed port: %v, want ErrUnavailable", err)
	}
	msgs := []kafka.Message{
		record(t, predTopic, "tx-down-1", prediction("tx-down-1", 1), 0),
		record(t, labelTopic, "tx-down-2", label("tx-down-2", 1, time.Hour), 0),
	}
	h := wDown.Handler(predTopic, labelTopic)
	for _, m := range msgs {
		res, err := h(ctxT(t), []kafka.Message{m})
		if err == nil || kafkaio.IsPermanent(err) {
			t.Errorf("%s with Elasticsearch down: results %v, err %v; want a transient batch error", m.Topic, res, err)
		}
	}
	if got := kafkaiotest.MetricValue(reg, "mlops_predlog_elasticsearch_up", nil); got != 0 {
		t.Errorf("mlops_predlog_elasticsearch_up = %v while down, want 0", got)
	}

	// The same records succeed once Elasticsearch answers (the consumer loop's retry).
	wLive, regLive := live.writer(t)
	handleOK(t, wLive.Handler(predTopic, labelTopic), msgs...)
	if docs := live.search(t); len(docs) != 1 || docs["tx-down-1"] == nil {
		t.Errorf("documents after recovery: %v, want tx-down-1", docs)
	}
	if got := kafkaiotest.MetricValue(regLive, "mlops_predlog_elasticsearch_up", nil); got != 1 {
		t.Errorf("mlops_predlog_elasticsearch_up = %v after success, want 1", got)
	}
}

// TestMappingsMatchDocuments indexes a complete document and checks that Elasticsearch's
// mapping of the index is exactly the template's: no field was added dynamically and every
// field has the declared type.
func TestMappingsMatchDocuments(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	w, _ := te.writer(t)
	h := w.Handler(predTopic, labelTopic)
	p := prediction("tx-mapping", 1)
	p.Features.Values = fraudValues(1)
	p.Features.Values[3] = 0.5 // every feature present
	handleOK(t, h, record(t, predTopic, "tx-mapping", p, 0))
	handleOK(t, h, record(t, labelTopic, "tx-mapping", label("tx-mapping", 1, time.Hour), 0))

	index := predlog.IndexFor(te.cfg.IndexPrefix, baseTime)
	body, err := te.es.Do(ctxT(t), http.MethodGet, "/"+index+"/_mapping", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]struct {
		Mappings map[string]any `json:"mappings"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	gotTypes := fieldTypes(got[index].Mappings)
	wantTypes := fieldTypes(predlog.Mappings())
	if diff := cmp.Diff(wantTypes, gotTypes); diff != "" {
		t.Errorf("mapping of %s differs from the template (-template +index):\n%s", index, diff)
	}
	if got[index].Mappings["dynamic"] != "strict" {
		t.Errorf("dynamic = %v, want strict", got[index].Mappings["dynamic"])
	}
	// The document uses every field of the template.
	doc := te.search(t)["tx-mapping"]
	var used []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(prefix+k+".", c)
			}
		case []any:
			for _, c := range x {
				walk(prefix, c)
			}
		default:
			used = append(used, prefix[:len(prefix)-1])
		}
	}
	delete(doc, "_index")
	walk("", doc)
	usedSet := map[string]bool{}
	for _, u := range used {
		usedSet[u] = true
	}
	fraud := map[string]bool{}
	for _, n := range featurespec.Fraud().Names() {
		fraud["features."+n] = true
	}
	for _, f := range predlog.FieldPaths(predlog.Mappings()) {
		if strings.HasPrefix(f, "features.") && !fraud[f] {
			continue // a purchase feature
		}
		if !usedSet[f] && f != "feature_values" {
			t.Errorf("template field %s not in the complete document", f)
		}
	}
}

// fieldTypes maps every leaf field path of a mappings object to its type.
func fieldTypes(m map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, props map[string]any)
	walk = func(prefix string, props map[string]any) {
		for name, v := range props {
			def, _ := v.(map[string]any)
			if sub, ok := def["properties"].(map[string]any); ok {
				walk(prefix+name+".", sub)
				continue
			}
			out[prefix+name], _ = def["type"].(string)
		}
	}
	props, _ := m["properties"].(map[string]any)
	walk("", props)
	return out
}

func TestPutTemplatesIsIdempotent(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	w, _ := te.writer(t)
	for range 2 {
		if err := w.PutTemplates(context.Background()); err != nil {
			t.Fatalf("PutTemplates again: %v", err)
		}
	}
	body, err := te.es.Do(ctxT(t), http.MethodGet, "/_index_template/"+te.cfg.IndexPrefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		IndexTemplates []struct {
			Name          string `json:"name"`
			IndexTemplate struct {
				IndexPatterns []string `json:"index_patterns"`
			} `json:"index_template"`
		} `json:"index_templates"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.IndexTemplates) != 1 || res.IndexTemplates[0].IndexTemplate.IndexPatterns[0] != te.cfg.IndexPrefix+"-*" {
		t.Errorf("templates: %+v", res.IndexTemplates)
	}
}
