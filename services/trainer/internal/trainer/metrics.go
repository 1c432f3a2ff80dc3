package trainer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the trainer's instruments.
type metrics struct {
	lastSuccess  prometheus.Gauge
	retrains     *prometheus.CounterVec
	duration     prometheus.Histogram
	aliasChanges *prometheus.CounterVec
	driftEvents  *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	leases       *prometheus.CounterVec
	bootstrap    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "mlops_retrain_last_success_timestamp_seconds",
			Help: "Unix time of the last training run that registered a model version.",
		}),
		retrains: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_trainer_retrains_total",
			Help: "Training runs by trigger (manual|drift) and outcome (promoted|rejected|registered|skipped|aborted|invalid|error).",
		}, []string{"trigger", "outcome"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlops_trainer_retrain_duration_seconds",
			Help:    "Wall time of training runs that registered a version.",
			Buckets: []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		aliasChanges: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_trainer_alias_changes_total",
			Help: "Alias moves by type (promoted|rolled_back) and outcome (ok|compensated|error).",
		}, []string{"type", "outcome"}),
		driftEvents: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_trainer_drift_events_total",
			Help: "Drift events consumed by action (retrained|cooldown|informational|busy|skipped|failed|invalid|rolled_back|rollback_stale|rollback_failed).",
		}, []string{"action"}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_trainer_runs_skipped_total",
			Help: "Retrains decided against before training, by reason (not_enough_data); each is recorded as a skipped MLflow run and a REJECTED model event.",
		}, []string{"reason"}),
		leases: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_trainer_retrain_leases_total",
			Help: "Retraining lease outcomes (acquired|taken_over|lost_race|lost).",
		}, []string{"outcome"}),
		bootstrap: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlops_trainer_promotion_bootstrap_seconds",
			Help:    "Wall time of the paired bootstrap of a promotion decision.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
	}
}
