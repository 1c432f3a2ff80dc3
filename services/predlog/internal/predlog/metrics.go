package predlog

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Values of the kind label of mlops_predlog_docs_written_total.
const (
	// kindPrediction: a prediction upserted into its monthly index.
	kindPrediction = "prediction"
	// kindLabel: a label's actual written onto its prediction document (directly or when a
	// pending label was merged).
	kindLabel = "label"
	// kindLabelPending: a label parked in the pending-label index because its prediction was
	// not written yet.
	kindLabelPending = "label_pending"
)

// Values of the op label of mlops_predlog_es_request_duration_seconds.
const (
	opBulk = "bulk"
	opMGet = "mget"
)

// metrics are predlog's own instruments (the mlops_kafka_* ones come from kafkaio).
type metrics struct {
	// itemsFailed counts bulk items Elasticsearch rejected, by reason: mapping | invalid |
	// rejected | conflict | server.
	itemsFailed *prometheus.CounterVec
	// docsWritten counts acknowledged writes, by kind: prediction | label | label_pending.
	docsWritten *prometheus.CounterVec
	// requestDuration observes each Elasticsearch request, by op: bulk | mget.
	requestDuration *prometheus.HistogramVec
	// bulkItems observes the items per bulk request.
	bulkItems prometheus.Histogram
	// up is 1 while the last Elasticsearch request got an answer that was not 429/5xx.
	up prometheus.Gauge
	// labelsStale counts labels not applied because the document already had a later one.
	labelsStale prometheus.Counter
	// pendingExpired counts parked labels deleted for exceeding the pending max age.
	pendingExpired prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		itemsFailed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_predlog_bulk_items_failed_total",
			Help: "Bulk items Elasticsearch did not accept, by reason (mapping, invalid, rejected, conflict, server).",
		}, []string{"reason"}),
		docsWritten: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_predlog_docs_written_total",
			Help: "Documents written and acknowledged by Elasticsearch, by kind (prediction, label, label_pending).",
		}, []string{"kind"}),
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlops_predlog_es_request_duration_seconds",
			Help:    "Duration of Elasticsearch requests, by op (bulk, mget).",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op"}),
		bulkItems: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlops_predlog_bulk_items",
			Help:    "Items per Elasticsearch bulk request.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		up: f.NewGauge(prometheus.GaugeOpts{
			Name: "mlops_predlog_elasticsearch_up",
			Help: "1 when the last Elasticsearch request was answered (not 429/5xx), 0 otherwise.",
		}),
		labelsStale: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_predlog_labels_stale_total",
			Help: "Labels not applied because the document already carried a label with a later event time.",
		}),
		pendingExpired: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_predlog_pending_labels_expired_total",
			Help: "Labels deleted from the pending-label index because their prediction did not arrive within label.pending-max-age.",
		}),
	}
	for _, r := range []string{"mapping", "invalid", "rejected", "conflict", "server"} {
		m.itemsFailed.WithLabelValues(r)
	}
	for _, k := range []string{kindPrediction, kindLabel, kindLabelPending} {
		m.docsWritten.WithLabelValues(k)
	}
	return m
}
