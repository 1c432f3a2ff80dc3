package scoring

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

// Outcomes of mlops_scoring_predictions_total.
const (
	outcomeOK      = "ok"
	outcomeInvalid = "invalid"
	outcomeError   = "error"
)

// Paths, the path label of the latency histograms.
const (
	pathStream = "stream"
	pathSync   = "sync"
)

// metrics are the scoring service's own instruments (see README, "Metrics").
type metrics struct {
	predictions      *prometheus.CounterVec   // model_version, outcome
	fraudPredictions *prometheus.CounterVec   // model_version, decision
	inference        *prometheus.HistogramVec // model_version
	inferenceCPU     *prometheus.HistogramVec // model_version
	evalMismatch     *prometheus.CounterVec   // model_version
	score            *prometheus.HistogramVec // model_version
	endToEnd         *prometheus.HistogramVec // path
	explanations     *prometheus.CounterVec   // path
	modelInfo        *prometheus.GaugeVec     // model_name, model_version, alias, spec
	reloads          *prometheus.CounterVec   // alias, outcome
	syncLogDropped   prometheus.Counter
	syncLogSpilled   prometheus.Counter
	syncLogReplayed  prometheus.Counter
	explainInline    prometheus.Counter
	specHeld         prometheus.Counter
	rejected         *prometheus.CounterVec // reason
	skipped          *prometheus.CounterVec // spec

	// Label-bound instruments of the hot paths, resolved once.
	endToEndSync, endToEndStream   prometheus.Observer
	explainedSync, explainedStream prometheus.Counter

	window *detectionWindow
}

// modelMetrics are the instruments of one model version, resolved once at load so the hot
// path does no label lookups.
type modelMetrics struct {
	ok, invalid, errored prometheus.Counter
	alert, pass          prometheus.Counter
	inference            prometheus.Observer
	inferenceCPU         prometheus.Observer
	evalMismatch         prometheus.Counter
	score                prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, window int) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		predictions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_scoring_predictions_total",
			Help: "Scoring attempts by model version and outcome (ok, invalid input, error).",
		}, []string{"model_version", "outcome"}),
		fraudPredictions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_scoring_fraud_predictions_total",
			Help: "Predictions by model version and decision (alert, pass); the founding document's fraud_predictions_total.",
		}, []string{"model_version", "decision"}),
		inference: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mlops_scoring_inference_duration_seconds",
			Help: "Time in the champion's predict, per prediction (wall clock around the call: on busy cores it includes time the thread waited for one).",
			// A single-row predict takes a few µs: buckets from 2.5µs, or every quantile
			// would be interpolated inside the first bucket.
			Buckets: []float64{.0000025, .000005, .00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, []string{"model_version"}),
		inferenceCPU: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlops_scoring_inference_cpu_seconds",
			Help:    "CPU time the predicting thread spent inside the evaluator (the compact forest or LightGBM, see -model.evaluator) for one prediction (champion or shadow challenger), sampled (about one call in -metrics.inference-cpu-every, 1024): the work of a prediction under the service's real load and cache pressure, without the time spent waiting for a core that the duration histogram includes.",
			Buckets: []float64{.000001, .0000025, .000005, .0000075, .00001, .000025, .00005, .0001, .00025, .001},
		}, []string{"model_version"}),
		evalMismatch: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_scoring_evaluator_mismatches_total",
			Help: "Sampled predictions (-model.check-every) where the compact evaluator and LightGBM disagreed; after the first, the version is scored by LightGBM. Anything above 0 is a bug to report.",
		}, []string{"model_version"}),
		score: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlops_scoring_score",
			Help:    "Distribution of the champion's scores.",
			Buckets: prometheus.LinearBuckets(0.05, 0.05, 19),
		}, []string{"model_version"}),
		endToEnd: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlops_scoring_end_to_end_duration_seconds",
			Help:    "Latency per path: stream from the transaction's ingestion to scored; sync from request receipt to answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"path"}),
		explanations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_scoring_explanations_total",
			Help: "Predictions given a SHAP explanation, by path.",
		}, []string{"path"}),
		modelInfo: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mlops_scoring_model_info",
			Help: "1 for each loaded model: name, version, alias and feature spec fingerprint.",
		}, []string{"model_name", "model_version", "alias", "spec"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_scoring_model_reloads_total",
			Help: "Model swaps and failed load attempts, by alias and outcome (swapped, failed, unloaded).",
		}, []string{"alias", "outcome"}),
		syncLogDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_scoring_sync_log_dropped_total",
			Help: "Sync predictions answered but lost for the prediction log: neither published nor spilled (no spill dir, spill file full or unwritable); each is logged at Error.",
		}),
		syncLogSpilled: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_scoring_sync_log_spilled_total",
			Help: "Sync predictions written to the spill file (Kafka failing or the log buffer full), to be replayed.",
		}),
		syncLogReplayed: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_scoring_sync_log_replayed_total",
			Help: "Spilled sync predictions published to the predictions topic.",
		}),
		specHeld: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_scoring_spec_held_total",
			Help: "Attempts to score a stream vector of a spec no loaded model serves, held back (retried) instead of dead-lettered, up to -model.spec-hold.",
		}),
		explainInline: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_scoring_explain_inline_total",
			Help: "Sync predictions whose logged explanation was computed before the answer because the explanation queue was full (back-pressure).",
		}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_scoring_rejected_total",
			Help: "Feature vectors refused, by reason (decode, spec_mismatch, validation).",
		}, []string{"reason"}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_scoring_skipped_total",
			Help: "Feature vectors of another model family (spec name) on the features topic, committed without a prediction: another scoring deployment serves them.",
		}, []string{"spec"}),
		window: newDetectionWindow(window),
	}
	m.endToEndSync, m.endToEndStream = m.endToEnd.WithLabelValues(pathSync), m.endToEnd.WithLabelValues(pathStream)
	m.explainedSync, m.explainedStream = m.explanations.WithLabelValues(pathSync), m.explanations.WithLabelValues(pathStream)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mlops_scoring_fraud_detection_rate",
		Help: "Share of alerts among the most recent predictions (-metrics.detection-window); the founding document's fraud_detection_rate.",
	}, m.window.rate)
	return m
}

func (m *metrics) forVersion(version string) *modelMetrics {
	return &modelMetrics{
		ok:           m.predictions.WithLabelValues(version, outcomeOK),
		invalid:      m.predictions.WithLabelValues(version, outcomeInvalid),
		errored:      m.predictions.WithLabelValues(version, outcomeError),
		alert:        m.fraudPredictions.WithLabelValues(version, "alert"),
		pass:         m.fraudPredictions.WithLabelValues(version, "pass"),
		inference:    m.inference.WithLabelValues(version),
		inferenceCPU: m.inferenceCPU.WithLabelValues(version),
		evalMismatch: m.evalMismatch.WithLabelValues(version),
		score:        m.score.WithLabelValues(version),
	}
}

// observe records one successful champion prediction.
func (m *metrics) observe(mm *modelMetrics, score, inferSeconds float64, d eventsv1.Decision) {
	mm.ok.Inc()
	mm.inference.Observe(inferSeconds)
	mm.score.Observe(score)
	alert := d == eventsv1.Decision_DECISION_ALERT
	if alert {
		mm.alert.Inc()
	} else {
		mm.pass.Inc()
	}
	m.window.add(alert)
}

// detectionWindow is a ring of the most recent decisions with a running count of alerts.
// It takes no lock (every prediction passes through add): each add claims the next slot and
// swaps its decision in, adjusting the count by the difference, so the count always matches
// the ring.
type detectionWindow struct {
	ring   []atomic.Bool
	added  atomic.Uint64
	alerts atomic.Int64
}

func newDetectionWindow(n int) *detectionWindow {
	return &detectionWindow{ring: make([]atomic.Bool, max(n, 1))}
}

func (w *detectionWindow) add(alert bool) {
	i := (w.added.Add(1) - 1) % uint64(len(w.ring))
	if w.ring[i].Swap(alert) != alert {
		if alert {
			w.alerts.Add(1)
		} else {
			w.alerts.Add(-1)
		}
	}
}

// rate is alerts / predictions in the window; 0 when empty.
func (w *detectionWindow) rate() float64 {
	filled := min(w.added.Load(), uint64(len(w.ring)))
	if filled == 0 {
		return 0
	}
	return float64(w.alerts.Load()) / float64(filled)
}

// registerLogGauges adds the gauges of the sync prediction log l.
func registerLogGauges(reg prometheus.Registerer, l *syncLog) {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mlops_scoring_sync_log_spill_records",
		Help: "Sync predictions in the spill file waiting to be replayed to the predictions topic.",
	}, func() float64 {
		if sp := l.currentSpill(); sp != nil {
			return float64(sp.pending())
		}
		return 0
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mlops_scoring_sync_log_spill_bytes",
		Help: "Size of the spill file of sync predictions (bounded by -sync.spill-max-bytes).",
	}, func() float64 {
		if sp := l.currentSpill(); sp != nil {
			return float64(sp.bytes())
		}
		return 0
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mlops_scoring_explain_queue_length",
		Help: "Sync predictions waiting for the explanation workers (bounded by -explain.queue).",
	}, func() float64 { return float64(len(l.explainCh)) })
}
