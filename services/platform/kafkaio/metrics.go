package kafkaio

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the shared Kafka instruments. Several producers and consumers of one process
// share one registry: registering the same instrument twice reuses the first.
type metrics struct {
	consumed       *prometheus.CounterVec   // topic
	produced       *prometheus.CounterVec   // topic
	dlq            *prometheus.CounterVec   // topic, reason
	handlerErrors  *prometheus.CounterVec   // topic, kind
	lag            *prometheus.GaugeVec     // topic, partition
	handleDuration *prometheus.HistogramVec // topic
	commitDuration prometheus.Histogram
	batchSize      prometheus.Histogram
}

// Values of the kind label of mlops_kafka_handler_errors_total.
const (
	kindTransient = "transient"
	kindPermanent = "permanent"
	kindPanic     = "panic"
)

// newMetrics registers (or reuses) the shared instruments on reg. A nil reg registers nothing.
func newMetrics(reg prometheus.Registerer) *metrics {
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	return &metrics{
		consumed: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_kafka_messages_consumed_total",
			Help: "Records fetched and handled by the consumer loop (each attempt at a batch counts once per record once it is committed).",
		}, []string{"topic"})),
		produced: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_kafka_messages_produced_total",
			Help: "Records acknowledged by all in-sync replicas.",
		}, []string{"topic"})),
		dlq: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_kafka_dlq_messages_total",
			Help: "Records sent to the dead-letter topic, by source topic and reason.",
		}, []string{"topic", "reason"})),
		handlerErrors: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_kafka_handler_errors_total",
			Help: "Handler failures by source topic and kind (transient, permanent, panic).",
		}, []string{"topic", "kind"})),
		lag: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mlops_kafka_consumer_lag",
			Help: "Records between the committed offset and the high watermark of each partition assigned to the consumer, updated on fetch, on commit and every -kafka.lag-interval (also while the handler retries).",
		}, []string{"topic", "partition"})),
		handleDuration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlops_kafka_handle_duration_seconds",
			Help:    "Duration of one handler call (a batch of records of one topic).",
			Buckets: latency,
		}, []string{"topic"})),
		commitDuration: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlops_kafka_commit_duration_seconds",
			Help:    "Duration of one synchronous offset commit.",
			Buckets: latency,
		})),
		batchSize: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlops_kafka_consumer_batch_records",
			Help:    "Records per consumer batch (handled, written and committed together).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 6),
		})),
	}
}

// register registers c on reg and returns it, or returns the collector already registered
// under the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting definition is a programming error that tests catch; keep the
		// unregistered instrument working rather than crash the service.
		return c
	}
	return c
}
