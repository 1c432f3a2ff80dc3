package features

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the service's instruments. The store adds mlops_features_redis_duration_seconds
// {op} and mlops_features_state_size_bytes; kafkaio and grpcserve add theirs.
type metrics struct {
	compute   prometheus.Histogram
	replays   prometheus.Counter
	conflicts prometheus.Counter
	invalid   prometheus.Counter
	badState  prometheus.Counter
	// cacheHits and cacheStale count the state cache's use (see stateCache).
	cacheHits  prometheus.Counter
	cacheStale prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		compute: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlops_features_compute_duration_seconds",
			Help:    "Time to compute one transaction's fraud feature vector (and fold it into the state, on the stream).",
			Buckets: prometheus.ExponentialBuckets(250e-9, 2, 14), // 250ns .. ~2ms
		}),
		replays: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_features_replays_total",
			Help: "Transactions found already applied (redeliveries, repeated calls): answered with their stored vector, not counted again.",
		}),
		conflicts: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_features_cas_conflicts_total",
			Help: "Account writes that lost a compare-and-set race against another writer and were recomputed.",
		}),
		invalid: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_features_invalid_transactions_total",
			Help: "tx.validated records that could not be decoded or failed validation (sent to the dead-letter topic).",
		}),
		badState: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_features_bad_state_total",
			Help: "Loads of an account whose stored state could not be decoded (an operator must repair or delete the key).",
		}),
		cacheHits: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_features_state_cache_hits_total",
			Help: "Account updates computed on the state the service wrote last instead of a state loaded from Redis.",
		}),
		cacheStale: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_features_state_cache_stale_total",
			Help: "Account updates computed on a remembered state that Redis refused (another writer, an expired or repaired key, or a redelivered transaction): reloaded and recomputed.",
		}),
	}
}
