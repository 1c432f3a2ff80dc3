package predlog_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

// A batch of predictions is written with create, falling back to update+doc_as_upsert for
// documents that exist, in one bulk request or split over concurrent ones (-es.bulk-in-flight).
// Either way every record gets its own outcome (two mapping failures among 400 land on the
// right records), a transaction twice in one batch ends with the later prediction, and a
// prediction replayed onto a document that already has its label keeps the label.
func TestPredictionBatchOutcomes(t *testing.T) {
	t.Parallel()
	for _, inFlight := range []int{1, 4} {
		t.Run(fmt.Sprintf("in_flight_%d", inFlight), func(t *testing.T) {
			t.Parallel()
			te := newTestES(t)
			cfg := te.cfg
			cfg.BulkInFlight = inFlight
			w := predlog.NewWriter(te.es, cfg, te.logger, prometheus.NewRegistry())
			if err := w.PutTemplates(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			h := w.Handler(predTopic, labelTopic)

			// Labelled documents that exist before the batch.
			const labelled = 5
			var before []kafka.Message
			for i := range labelled {
				tx := fmt.Sprintf("tx-batch-%03d", i)
				before = append(before, record(t, predTopic, tx, prediction(tx, i), int64(i)))
			}
			handleOK(t, h, before...)
			for i := range labelled {
				tx := fmt.Sprintf("tx-batch-%03d", i)
				handleOK(t, h, record(t, labelTopic, tx, label(tx, 1, time.Hour), int64(i)))
			}

			const n = 400
			bad := map[int]bool{57: true, 311: true}
			const dupFirst, dupLater = 10, 300
			msgs := make([]kafka.Message, n)
			for i := range n {
				tx := fmt.Sprintf("tx-batch-%03d", i)
				p := prediction(tx, i)
				switch {
				case bad[i]:
					p.Features.SpecName, p.Features.SpecVersion = "custom", "7"
					p.Features.Values, p.Features.Names = []float64{1, 2}, []string{"amount", "amount.cents"}
				case i == dupLater:
					tx = fmt.Sprintf("tx-batch-%03d", dupFirst)
					p = prediction(tx, dupFirst)
					p.Score = 0.123
				case i < labelled:
					p.Score = 0.456 // a new score for a labelled document
				}
				msgs[i] = record(t, predTopic, tx, p, int64(i))
			}
			res, err := h(ctxT(t), msgs)
			if err != nil {
				t.Fatalf("handler: %v", err)
			}
			if len(res) != n {
				t.Fatalf("%d results for %d records", len(res), n)
			}
			for i, r := range res {
				switch {
				case bad[i]:
					if !kafkaio.IsPermanent(r.Err) || kafkaio.Reason(r.Err) != predlog.ReasonESMapping {
						t.Errorf("record %d: err %v, want permanent %s", i, r.Err, predlog.ReasonESMapping)
					}
				case r.Err != nil:
					t.Errorf("record %d: %v", i, r.Err)
				}
			}
			docs := te.search(t)
			if want := n - len(bad) - 1; len(docs) != want {
				t.Errorf("%d documents, want %d", len(docs), want)
			}
			if got := docs[fmt.Sprintf("tx-batch-%03d", dupFirst)]["score"]; got != 0.123 {
				t.Errorf("duplicate transaction: score %v, want the later prediction's 0.123", got)
			}
			for i := range labelled {
				d := docs[fmt.Sprintf("tx-batch-%03d", i)]
				if d["actual"] != 1.0 || d["score"] != 0.456 {
					t.Errorf("labelled document %d: actual %v score %v, want the label kept (1) and the new score 0.456", i, d["actual"], d["score"])
				}
			}
			for i := range bad {
				if _, ok := docs[fmt.Sprintf("tx-batch-%03d", i)]; ok {
					t.Errorf("rejected record %d has a document", i)
				}
			}
		})
	}
}

// -es.refresh-interval shapes new indices (the template) and the live ones (at startup); the
// empty default leaves Elasticsearch's own, search-idle behaviour (no explicit setting).
func TestRefreshIntervalReachesLiveIndices(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	refresh := func(index string) any {
		t.Helper()
		body, err := te.es.Do(ctxT(t), http.MethodGet, "/"+index+"/_settings/index.refresh_interval", nil)
		if err != nil {
			t.Fatal(err)
		}
		var res map[string]struct {
			Settings struct {
				Index map[string]any `json:"index"`
			} `json:"settings"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		return res[index].Settings.Index["refresh_interval"]
	}
	writer := func(interval string) kafkaio.BatchHandler {
		cfg := te.cfg
		cfg.RefreshInterval = interval
		w := predlog.NewWriter(te.es, cfg, te.logger, prometheus.NewRegistry())
		if err := w.PutTemplates(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		return w.Handler(predTopic, labelTopic)
	}
	handleOK(t, writer("30s"), record(t, predTopic, "tx-refresh", prediction("tx-refresh", 1), 0))
	index := predlog.IndexFor(te.cfg.IndexPrefix, baseTime.Add(time.Second))
	if got := refresh(index); got != "30s" {
		t.Errorf("refresh_interval of a new index = %v, want 30s", got)
	}
	writer("5s")
	if got := refresh(index); got != "5s" {
		t.Errorf("refresh_interval of the live index after a restart with 5s = %v, want 5s", got)
	}
	writer("")
	if got := refresh(index); got != nil {
		t.Errorf("refresh_interval of the live index after a restart with the default = %v, want unset", got)
	}
	// The pending-label index (here named within the prediction pattern) keeps its own.
	handleOK(t, writer(""), record(t, labelTopic, "tx-unknown", label("tx-unknown", 1, time.Hour), 0))
	writer("30s")
	if got := refresh(te.cfg.PendingIndex); got != "1s" {
		t.Errorf("refresh_interval of the pending-label index = %v, want its template's 1s", got)
	}
}
