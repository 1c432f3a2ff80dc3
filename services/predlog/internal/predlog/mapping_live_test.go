package predlog_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

// createIndexWith creates index with mappings (and the template's alias), as an index created
// by an earlier version of predlog.
func createIndexWith(t *testing.T, te *testES, index string, mappings map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": 0},
		"mappings": mappings,
		"aliases":  map[string]any{te.cfg.IndexPrefix: map[string]any{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := te.es.Do(ctxT(t), http.MethodPut, "/"+index+"?wait_for_active_shards=1", body); err != nil {
		t.Fatalf("create %s: %v", index, err)
	}
}

// TestPredlogUpdatesLiveMappings: the month's index was created with an older mapping that
// lacks a field the documents now carry (traceparent, and a new feature name under the strict
// root); starting the writer updates the live index's mapping, and the document is indexed.
// A non-additive change (a field of another type) is a clear startup error.
func TestPredlogUpdatesLiveMappings(t *testing.T) {
	t.Parallel()
	t.Run("additive change", func(t *testing.T) {
		t.Parallel()
		te := newTestES(t)
		old := predlog.Mappings()
		props := old["properties"].(map[string]any)
		delete(props, "traceparent")
		delete(props, "latency")
		index := predlog.IndexFor(te.cfg.IndexPrefix, baseTime)
		createIndexWith(t, te, index, old)

		w, _ := te.writer(t) // what the service does at start: templates, then live mappings
		p := prediction("tx-live-mapping", 1)
		res, err := w.Handler(predTopic, labelTopic)(ctxT(t), []kafka.Message{record(t, predTopic, p.TransactionId, p, 1)})
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("write a prediction with the new fields into the old index = %v, %v", res, err)
		}
		docs := te.search(t)
		doc, ok := docs[p.TransactionId]
		if !ok {
			t.Fatalf("document missing: %v", docs)
		}
		if doc["_index"] != index || doc["traceparent"] != p.Trace.Traceparent || doc["latency"] == nil {
			t.Errorf("document %v: want it in %s with traceparent and latency", doc, index)
		}
		body, err := te.es.Do(ctxT(t), http.MethodGet, "/"+index+"/_mapping", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), `"traceparent":{"type":"keyword"}`) || !strings.Contains(string(body), `"explanation_seconds":{"type":"double"}`) {
			t.Errorf("live mapping of %s not updated: %s", index, body)
		}
	})
	t.Run("conflicting change is a startup error", func(t *testing.T) {
		t.Parallel()
		te := newTestES(t)
		old := predlog.Mappings()
		old["properties"].(map[string]any)["score"] = map[string]any{"type": "keyword"}
		index := predlog.IndexFor(te.cfg.IndexPrefix, baseTime)
		createIndexWith(t, te, index, old)
		w := predlog.NewWriter(te.es, te.cfg, te.logger, nil)
		err := w.PutTemplates(ctxT(t))
		if err == nil || !strings.Contains(err.Error(), "not an additive change") || !strings.Contains(err.Error(), "score") {
			t.Errorf("PutTemplates() over a live index with score as keyword = %v, want an error naming the conflict", err)
		}
	})
}
