package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/proto/topics"
)

// Values of the source label.
const (
	sourceKafka = "kafka"
	sourceGRPC  = "grpc"
)

// Values of the outcome label.
const (
	outcomeOK      = "ok"
	outcomeInvalid = "invalid"
	outcomeError   = "error"
)

// ReasonDuplicate is the dlq-reason (and reject reason) of a transaction whose id was
// already seen, within the dedup window, on a different record.
const ReasonDuplicate = "duplicate"

// metrics are the ingestion service's instruments. Label sets are bounded: topic (the
// configured input topics), source (kafka, grpc), outcome (ok, invalid, error), reason
// (decode, validation, duplicate), field (proto field paths) and code (the Code* constants).
type metrics struct {
	received   *prometheus.CounterVec
	events     [2][3]prometheus.Counter // [source][outcome]
	rejects    map[string]prometheus.Counter
	fieldErrs  *prometheus.CounterVec
	validation prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_ingestion_events_received_total",
			Help: "Records read from the input topics, before decoding, by topic.",
		}, []string{"topic"}),
		fieldErrs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_ingestion_field_errors_total",
			Help: "Invalid fields of rejected transactions, by proto field path and code.",
		}, []string{"field", "code"}),
		validation: f.NewHistogram(prometheus.HistogramOpts{
			Name: "mlops_ingestion_validation_duration_seconds",
			Help: "Time to decode and validate one transaction.",
			// The budget is microseconds: 1µs to 10ms.
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2},
		}),
		rejects: map[string]prometheus.Counter{},
	}
	events := f.NewCounterVec(prometheus.CounterOpts{
		Name: "mlops_ingestion_events_total",
		Help: "Transactions handled, by source (kafka, grpc) and outcome (ok: published; invalid: rejected; error: not published because of a failure).",
	}, []string{"source", "outcome"})
	for i, src := range []string{sourceKafka, sourceGRPC} {
		for j, out := range []string{outcomeOK, outcomeInvalid, outcomeError} {
			m.events[i][j] = events.WithLabelValues(src, out)
		}
	}
	rejects := f.NewCounterVec(prometheus.CounterOpts{
		Name: "mlops_ingestion_rejects_total",
		Help: "Rejected transactions by reason (decode, validation, duplicate).",
	}, []string{"reason"})
	for _, r := range []string{topics.ReasonDecode, topics.ReasonValidation, ReasonDuplicate} {
		m.rejects[r] = rejects.WithLabelValues(r)
	}
	return m
}

func (m *metrics) event(source, outcome string) prometheus.Counter {
	i := 0
	if source == sourceGRPC {
		i = 1
	}
	switch outcome {
	case outcomeOK:
		return m.events[i][0]
	case outcomeInvalid:
		return m.events[i][1]
	}
	return m.events[i][2]
}

// reject counts one rejected transaction and its field errors.
func (m *metrics) reject(source, reason string, fields []FieldError) {
	m.event(source, outcomeInvalid).Inc()
	if c, ok := m.rejects[reason]; ok {
		c.Inc()
	}
	for _, f := range fields {
		m.fieldErrs.WithLabelValues(f.Field, f.Code).Inc()
	}
}

// countReceived adds msgs to the received counter, one Add per run of equal topics.
func (m *metrics) countReceived(msgs []kafka.Message) {
	start := 0
	for i := 1; i <= len(msgs); i++ {
		if i == len(msgs) || msgs[i].Topic != msgs[start].Topic {
			m.received.WithLabelValues(msgs[start].Topic).Add(float64(i - start))
			start = i
		}
	}
}
