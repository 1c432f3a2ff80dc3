package drift

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the drift service's instruments. Label values are bounded: model names come
// from configuration, features from the models' specs, metrics and outcomes are fixed sets.
type metrics struct {
	psi, ks, js       *prometheus.GaugeVec // model, feature
	threshold         *prometheus.GaugeVec // model, feature, statistic
	quality           *prometheus.GaugeVec // model, feature, kind (missing|non_finite|out_of_range)
	performance       *prometheus.GaugeVec // model, metric, kind (realized|estimated|reference)
	labelCoverage     *prometheus.GaugeVec // model
	alertRate         *prometheus.GaugeVec // model
	windows           *prometheus.CounterVec
	windowPredictions *prometheus.GaugeVec
	events            *prometheus.CounterVec // model, metric, severity
	records           *prometheus.CounterVec // topic, outcome
	joinEntries       prometheus.Gauge
	joinEvicted       *prometheus.CounterVec // reason
	referenceVersion  *prometheus.GaugeVec   // model
	referenceLoads    *prometheus.CounterVec // model, outcome
	stateBytes        *prometheus.GaugeVec   // model
	drifting          *prometheus.GaugeVec   // model
	lastWindowEnd     *prometheus.GaugeVec   // model
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		psi: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_psi", Help: "PSI of the last closed window against the reference, per feature (\"score\" for the model's score)."},
			[]string{"model", "feature"}),
		ks: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_ks_statistic", Help: "Two-sample KS statistic of the last closed window."},
			[]string{"model", "feature"}),
		js: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_js_distance", Help: "Jensen-Shannon distance (base 2) of the last closed window."},
			[]string{"model", "feature"}),
		threshold: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_threshold", Help: "Alarm threshold applied in the last closed window, per feature and statistic (psi, ks, js)."},
			[]string{"model", "feature", "statistic"}),
		quality: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_quality_ratio", Help: "Share of missing, non-finite or out-of-range values in the last closed window."},
			[]string{"model", "feature", "kind"}),
		performance: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_performance", Help: "Model performance in the last closed window: realized on labels, estimated from calibrated scores, or the reference's holdout value."},
			[]string{"model", "metric", "kind"}),
		labelCoverage: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_label_coverage_ratio", Help: "Labels joined over predictions in the last closed window."},
			[]string{"model"}),
		alertRate: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_alert_ratio", Help: "Share of predictions at or above the decision threshold in the last closed window."},
			[]string{"model"}),
		windows: f.NewCounterVec(prometheus.CounterOpts{Name: "mlops_drift_windows_total", Help: "Closed windows, by whether they were judged (enough predictions)."},
			[]string{"model", "judged"}),
		windowPredictions: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_window_predictions", Help: "Predictions in the last closed window."},
			[]string{"model"}),
		events: f.NewCounterVec(prometheus.CounterOpts{Name: "mlops_drift_events_total", Help: "Drift events published."},
			[]string{"model", "metric", "severity"}),
		records: f.NewCounterVec(prometheus.CounterOpts{Name: "mlops_drift_records_total", Help: "Records consumed, by topic and outcome (ok, unmonitored, no_reference, spec_mismatch, invalid, unknown_transaction)."},
			[]string{"topic", "outcome"}),
		joinEntries: f.NewGauge(prometheus.GaugeOpts{Name: "mlops_drift_join_entries", Help: "Predictions waiting for their label."}),
		joinEvicted: f.NewCounterVec(prometheus.CounterOpts{Name: "mlops_drift_join_evicted_total", Help: "Predictions dropped from the label join, by limit (size, age)."},
			[]string{"reason"}),
		referenceVersion: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_reference_version", Help: "Champion version whose reference profile is in use (0: none)."},
			[]string{"model"}),
		referenceLoads: f.NewCounterVec(prometheus.CounterOpts{Name: "mlops_drift_reference_loads_total", Help: "Reference profile loads, by outcome."},
			[]string{"model", "outcome"}),
		stateBytes: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_window_state_bytes", Help: "Upper bound of the memory one window of the model holds (bins and samples at capacity)."},
			[]string{"model"}),
		drifting: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_drifting", Help: "1 when a statistic of the model crossed its threshold in the last judged window."},
			[]string{"model"}),
		lastWindowEnd: f.NewGaugeVec(prometheus.GaugeOpts{Name: "mlops_drift_last_window_end_timestamp_seconds", Help: "Event time of the end of the last closed window."},
			[]string{"model"}),
	}
}
