package drift

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// Config is the whole configuration of the drift service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*). The consumer reads
	// predictions.v1 and labels.v1 in group Kafka.GroupID (default "drift").
	Kafka kafkaio.Config
	// DriftTopic receives DriftEvents (-topic.drift). Default: drift.events.
	DriftTopic string
	// ModelEventsTopic is tailed for champion changes (-topic.model-events). Default:
	// model.events.
	ModelEventsTopic string
	// MLflowURL is the registry the reference profiles come from. Default: http://127.0.0.1:5000.
	MLflowURL string
	// Models are the registered models monitored. Default: fraud,purchase.
	Models []string
	// RefreshInterval re-resolves every champion besides model.events, and retries a
	// missing reference. Default: 30s.
	RefreshInterval time.Duration

	// WindowCount closes a window after this many predictions. Default: 5000.
	WindowCount int
	// WindowDuration closes a window once its predictions span this much event time.
	// Default: 5m.
	WindowDuration time.Duration
	// MinCount is the smallest window that is judged (smaller ones are reported, never
	// alarmed). Default: 500.
	MinCount int
	// MinLabels is the smallest number of labelled predictions in a window for realized
	// performance to be judged. Default: 200.
	MinLabels int
	// LabelledSample caps the labelled predictions kept per window (a bottom-k sample).
	// Default: 20000.
	LabelledSample int
	// History is the number of closed windows kept per model for the API and the report.
	// Default: 100.
	History int

	// Persist is how many consecutive windows a crossing must last before an event is
	// raised (hysteresis). Default: 2.
	Persist int
	// Cooldown is the event time after an event with retrain=true during which no other
	// retraining is recommended for the model. Default: 1h.
	Cooldown time.Duration
	// AUCDrop raises a performance event when realized (or estimated) AUC falls this far
	// below the reference's holdout AUC. Default: 0.05.
	AUCDrop float64
	// EstimationGap raises a concept-drift event when estimated AUC exceeds realized AUC
	// on the same labelled predictions by more than this. Default: 0.05.
	EstimationGap float64
	// MSEThreshold raises a performance event for regression models. Default: 0.1.
	MSEThreshold float64
	// AlertRateDelta raises a score event when the alert share moves this far (absolute)
	// from the reference's. Default: 0.05.
	AlertRateDelta float64
	// QualityThreshold raises a data-quality event when the missing, non-finite or
	// out-of-range rate of a column exceeds the reference's by this much. Default: 0.05.
	QualityThreshold float64
	// RollbackWatch is how many judged windows a newly promoted champion is watched for
	// against the champion it replaced; 0 disables automatic rollback. Default: 20.
	RollbackWatch int
	// RollbackMargin is how much worse (AUC lower, or MSE higher) the new champion must be
	// for Persist windows to be rolled back. Default: 0.02.
	RollbackMargin float64
	// ReviewCost is the cost of one false alert, for false_positive_cost. Default: 5.
	ReviewCost float64

	// Merge turns on merged windows for several replicas (-window.merge): windows are
	// aligned on event time (WindowDuration), each replica publishes the partial state of
	// every batch to PartialsTopic, and the consumer of that topic that owns a model merges
	// the partials and judges the window once every source partition has passed its end.
	// Default: false (each replica judges its own count or time windows).
	Merge bool
	// PartialsTopic carries partial window states between replicas. Default: drift.partials.
	PartialsTopic string
	// Lateness is how much event time a window waits past its end for late records.
	// Default: 10s.
	Lateness time.Duration
	// Idle is the processing time after which a source partition that sent nothing no
	// longer holds windows back. Default: 30s.
	Idle time.Duration

	// JoinMaxEntries bounds the predictions waiting for their label. Default: 500000.
	JoinMaxEntries int
	// JoinMaxAge drops a waiting prediction once the newest prediction is this much newer
	// in event time (labels later than that are counted as unknown). Default: 1080h (45d).
	JoinMaxAge time.Duration
}

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("drift", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "drift", "127.0.0.1:8085", "127.0.0.1:50055")
	c.Kafka.Topics = []string{topics.Predictions, topics.Labels}
	c.Kafka.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.DriftTopic, "topic.drift", "TOPIC_DRIFT", topics.DriftEvents, "topic drift events are published to")
	flagenv.StringVar(fs, getenv, &c.ModelEventsTopic, "topic.model-events", "TOPIC_MODEL_EVENTS", topics.ModelEvents, "topic of model registry events (champion changes swap the reference)")
	flagenv.StringVar(fs, getenv, &c.MLflowURL, "mlflow.url", "MLFLOW_URL", "http://127.0.0.1:5000", "MLflow tracking server base URL")
	flagenv.StringsVar(fs, getenv, &c.Models, "models", "DRIFT_MODELS", []string{"fraud", "purchase"}, "registered models to monitor (comma-separated)")
	flagenv.DurationVar(fs, getenv, &c.RefreshInterval, "reference.refresh", "REFERENCE_REFRESH", 30*time.Second, "how often champions are re-resolved besides model.events")
	flagenv.IntVar(fs, getenv, &c.WindowCount, "window.count", "WINDOW_COUNT", 5000, "predictions per window")
	flagenv.DurationVar(fs, getenv, &c.WindowDuration, "window.duration", "WINDOW_DURATION", 5*time.Minute, "event time a window spans at most")
	flagenv.IntVar(fs, getenv, &c.MinCount, "window.min-count", "WINDOW_MIN_COUNT", 500, "smallest window judged for drift")
	flagenv.IntVar(fs, getenv, &c.MinLabels, "window.min-labels", "WINDOW_MIN_LABELS", 200, "smallest labelled count for realized performance to be judged")
	flagenv.IntVar(fs, getenv, &c.LabelledSample, "window.labelled-sample", "WINDOW_LABELLED_SAMPLE", 20000, "labelled predictions kept per window")
	flagenv.IntVar(fs, getenv, &c.History, "window.history", "WINDOW_HISTORY", 100, "closed windows kept per model")
	flagenv.IntVar(fs, getenv, &c.Persist, "alarm.persist", "ALARM_PERSIST", 2, "consecutive windows a crossing must last before an event")
	flagenv.DurationVar(fs, getenv, &c.Cooldown, "alarm.cooldown", "ALARM_COOLDOWN", time.Hour, "event time between two retraining recommendations for a model")
	flagenv.Float64Var(fs, getenv, &c.AUCDrop, "alarm.auc-drop", "ALARM_AUC_DROP", 0.05, "AUC drop below the reference that raises a performance event")
	flagenv.Float64Var(fs, getenv, &c.EstimationGap, "alarm.estimation-gap", "ALARM_ESTIMATION_GAP", 0.05, "estimated minus realized AUC that signals concept drift")
	flagenv.Float64Var(fs, getenv, &c.MSEThreshold, "alarm.mse", "ALARM_MSE", 0.1, "MSE on labelled traffic that raises a performance event (regression)")
	flagenv.Float64Var(fs, getenv, &c.AlertRateDelta, "alarm.alert-rate", "ALARM_ALERT_RATE", 0.05, "absolute change of the alert share that raises a score event")
	flagenv.Float64Var(fs, getenv, &c.QualityThreshold, "alarm.quality", "ALARM_QUALITY", 0.05, "missing, non-finite or out-of-range rate above the reference's that raises a quality event")
	flagenv.IntVar(fs, getenv, &c.RollbackWatch, "rollback.watch", "ROLLBACK_WATCH", 20, "judged windows a new champion is watched for automatic rollback (0: off)")
	flagenv.Float64Var(fs, getenv, &c.RollbackMargin, "rollback.margin", "ROLLBACK_MARGIN", 0.02, "how much worse than the previous champion (AUC or MSE) triggers a rollback")
	flagenv.Float64Var(fs, getenv, &c.ReviewCost, "cost.review", "COST_REVIEW", 5, "cost of one false alert")
	flagenv.BoolVar(fs, getenv, &c.Merge, "window.merge", "WINDOW_MERGE", false, "merge the windows of several replicas (event-time windows, partial states on -topic.partials)")
	flagenv.StringVar(fs, getenv, &c.PartialsTopic, "topic.partials", "TOPIC_PARTIALS", "drift.partials", "topic of partial window states (merged mode)")
	flagenv.DurationVar(fs, getenv, &c.Lateness, "window.lateness", "WINDOW_LATENESS", 10*time.Second, "event time a merged window waits past its end")
	flagenv.DurationVar(fs, getenv, &c.Idle, "window.idle", "WINDOW_IDLE", 30*time.Second, "processing time after which a silent partition stops holding merged windows back")
	flagenv.IntVar(fs, getenv, &c.JoinMaxEntries, "join.max-entries", "JOIN_MAX_ENTRIES", 500000, "predictions kept waiting for their label")
	flagenv.DurationVar(fs, getenv, &c.JoinMaxAge, "join.max-age", "JOIN_MAX_AGE", 45*24*time.Hour, "event-time age after which a waiting prediction is dropped")

	if err := flagenv.Parse(fs, args); err != nil {
		return Config{}, fmt.Errorf("parse flags: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	errs := []error{c.Base.Validate(), c.Kafka.Validate(), c.Kafka.ValidateConsumer()}
	if u, err := url.Parse(c.MLflowURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("mlflow url %q: want http(s)://host:port", c.MLflowURL))
	}
	if len(c.Models) == 0 {
		errs = append(errs, errors.New("models: at least one model to monitor"))
	}
	positive := map[string]int{"window.count": c.WindowCount, "window.min-count": c.MinCount, "window.labelled-sample": c.LabelledSample,
		"window.history": c.History, "alarm.persist": c.Persist, "join.max-entries": c.JoinMaxEntries}
	for name, v := range positive {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s = %d: want > 0", name, v))
		}
	}
	if c.MinCount > c.WindowCount {
		errs = append(errs, fmt.Errorf("window.min-count %d exceeds window.count %d", c.MinCount, c.WindowCount))
	}
	for name, d := range map[string]time.Duration{"window.duration": c.WindowDuration, "reference.refresh": c.RefreshInterval, "join.max-age": c.JoinMaxAge} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s = %s: want > 0", name, d))
		}
	}
	if c.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("alarm.cooldown = %s: want >= 0", c.Cooldown))
	}
	return errors.Join(errs...)
}
