package scoring

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/service"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
)

// Config is the whole configuration of the scoring service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*) of the features.v1 consumer and of the
	// predictions producer. Topics default to features.v1, the group to "scoring".
	Kafka kafkaio.Config
	// PredictionsTopic receives every prediction, stream and sync (-topic.predictions).
	// Default: predictions.v1.
	PredictionsTopic string
	// ModelEventsTopic is watched for alias moves (-topic.model-events). Default: model.events.
	ModelEventsTopic string
	// ConsumeFeatures runs the features.v1 consumer (-features.consume). Default: true. A
	// replica that only serves the sync path sets it to false.
	ConsumeFeatures bool

	// MLflowURL is the MLflow tracking server (-mlflow.url). Default: http://127.0.0.1:5000.
	MLflowURL string
	// ModelName is the registered model served (-model.name). Default: fraud.
	ModelName string
	// SpecName names the feature spec served, "fraud" or "purchase" or an ID such as
	// "fraud-v1" (-model.spec). Default: fraud. Models trained on another spec are refused.
	SpecName string
	// Spec is SpecName resolved (not a flag).
	Spec featurespec.Spec
	// CacheDir keeps verified local copies of loaded models, used when MLflow is down
	// (-model.cache-dir). Default: .cache/scoring-models.
	CacheDir string
	// ModelRequired makes startup fail when no champion can be loaded (-model.required).
	// Default: true. When false the service starts unready and keeps trying.
	ModelRequired bool
	// PollInterval is how often the champion (and challenger) alias is re-resolved as a
	// safety net next to model.events (-model.poll-interval). Default: 30s.
	PollInterval time.Duration
	// LoadTimeout bounds one model load from MLflow (-model.load-timeout). Default: 60s.
	LoadTimeout time.Duration
	// DefaultThreshold is used when a model's manifest has no threshold (0)
	// (-model.default-threshold). Default: 0.8.
	DefaultThreshold float64
	// Evaluator is what scores a model (-model.evaluator): EvaluatorForest, the project's
	// compact evaluator (the same results as LightGBM, checked when a model loads; a model it
	// does not cover is scored by LightGBM), or EvaluatorLightGBM. Default: forest.
	Evaluator string
	// InferenceCPUEvery: about one prediction in this many samples its thread CPU time into
	// mlops_scoring_inference_cpu_seconds (-metrics.inference-cpu-every; 0 turns sampling off).
	// Default: lightgbm.DefaultCPUSampleEvery (1024): each sample makes two system calls,
	// which on busy cores can cost the sampled call a scheduler time slice.
	InferenceCPUEvery int
	// EvaluatorCheckEvery: about one forest prediction in this many is also scored by
	// LightGBM and compared; a mismatch is counted, logged and moves the version to LightGBM
	// (-model.check-every; 0 turns the check off). Default: 1000.
	EvaluatorCheckEvery int
	// PreviousSpecGrace is how long a champion replaced by a model of another feature spec
	// keeps scoring the vectors of its spec still in flight (-model.previous-spec-grace).
	// Default: 10m; 0 retires it at once.
	PreviousSpecGrace time.Duration
	// SpecHold is how long a stream vector of a spec no loaded model serves is held back
	// (its partition retries it) before it goes to the DLQ with reason spec_mismatch
	// (-model.spec-hold). Default: 2m.
	SpecHold time.Duration
	// ChallengerEnabled also loads the challenger alias and scores it in shadow
	// (-challenger.enabled). Default: false.
	ChallengerEnabled bool
	// LightGBMLib is the path of lib_lightgbm.so (-lightgbm.lib, LIGHTGBM_LIB). Default:
	// found in the project virtualenv (lightgbm.FindLibrary).
	LightGBMLib string

	// ExplainSampleRate is the fraction of non-alert predictions that get an explanation
	// (-explain.sample-rate); alerts always do. Default: 0.01.
	ExplainSampleRate float64
	// ExplainTopK is how many contributions an explanation keeps (-explain.top-k). Default: 3.
	ExplainTopK int

	// FeaturesAddr is the FeatureService the sync path asks for features (-features.addr).
	// Default: 127.0.0.1:50052.
	FeaturesAddr string
	// FeaturesTLS is the TLS of the connection to FeaturesAddr (-features.tls,
	// -features.tls.ca/.cert/.key/.server-name); a client certificate when features requires
	// mutual TLS. Default: plain text.
	FeaturesTLS tlsconf.Client
	// FeaturesTimeout is the deadline of one GetOnlineFeatures call (-features.timeout).
	// Default: 200ms.
	FeaturesTimeout time.Duration
	// SyncLogBuffer is how many sync predictions may wait in memory to be published
	// (-sync.log-buffer). Default: 10000. When full, a Score call writes its prediction to
	// the spill file instead of waiting.
	SyncLogBuffer int
	// SyncLogRetryInterval is how often spilled sync predictions are replayed to the
	// predictions topic (-sync.log-retry-interval). Default: 1s.
	SyncLogRetryInterval time.Duration
	// SpillDir holds the spill file of sync predictions that could not be published (Kafka
	// down, buffer full), replayed when Kafka takes writes again, also after a restart
	// (-sync.spill-dir). One process per directory (it is locked). Default:
	// .cache/scoring-spill; empty disables spilling (such predictions are counted in
	// mlops_scoring_sync_log_dropped_total and logged).
	SpillDir string
	// SpillMaxBytes bounds the spill file (-sync.spill-max-bytes). Default: 256 MiB (about
	// 300,000 predictions with explanation).
	SpillMaxBytes int
	// ExplainWorkers is how many goroutines compute the explanations the prediction log owes
	// (alerts, the sample) after a sync Score answered (-explain.workers). Default: 1.
	ExplainWorkers int
	// ExplainQueue is how many sync predictions may wait for their explanation
	// (-explain.queue). Default: 1000. When full, the Score call computes the explanation
	// itself before answering (back-pressure, mlops_scoring_explain_inline_total).
	ExplainQueue int
	// DetectionWindow is how many recent predictions mlops_scoring_fraud_detection_rate
	// covers (-metrics.detection-window). Default: 1000.
	DetectionWindow int
}

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("scoring", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "scoring", "127.0.0.1:8083", "127.0.0.1:50053")
	c.Kafka.Topics = []string{topics.Features}
	c.Kafka.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.PredictionsTopic, "topic.predictions", "TOPIC_PREDICTIONS", topics.Predictions, "topic the predictions are published to")
	flagenv.StringVar(fs, getenv, &c.ModelEventsTopic, "topic.model-events", "TOPIC_MODEL_EVENTS", topics.ModelEvents, "topic of model registry events (alias moves trigger a reload)")
	flagenv.BoolVar(fs, getenv, &c.ConsumeFeatures, "features.consume", "FEATURES_CONSUME", true, "score the features.v1 stream (false: sync path only)")
	flagenv.StringVar(fs, getenv, &c.MLflowURL, "mlflow.url", "MLFLOW_URL", "http://127.0.0.1:5000", "MLflow tracking server base URL")
	flagenv.StringVar(fs, getenv, &c.ModelName, "model.name", "MODEL_NAME", "fraud", "registered model name to serve")
	flagenv.StringVar(fs, getenv, &c.SpecName, "model.spec", "MODEL_SPEC", "fraud", "feature spec served (fraud, purchase, or an ID such as fraud-v1)")
	flagenv.StringVar(fs, getenv, &c.CacheDir, "model.cache-dir", "MODEL_CACHE_DIR", ".cache/scoring-models", "directory of verified local model copies (used while MLflow is down)")
	flagenv.BoolVar(fs, getenv, &c.ModelRequired, "model.required", "MODEL_REQUIRED", true, "fail at startup when no champion can be loaded (false: start unready and keep trying)")
	flagenv.DurationVar(fs, getenv, &c.PollInterval, "model.poll-interval", "MODEL_POLL_INTERVAL", 30*time.Second, "how often the aliases are re-resolved besides model.events")
	flagenv.DurationVar(fs, getenv, &c.LoadTimeout, "model.load-timeout", "MODEL_LOAD_TIMEOUT", time.Minute, "time limit of one model load")
	flagenv.Float64Var(fs, getenv, &c.DefaultThreshold, "model.default-threshold", "MODEL_DEFAULT_THRESHOLD", 0.8, "decision threshold when the model manifest has none")
	flagenv.StringVar(fs, getenv, &c.Evaluator, "model.evaluator", "MODEL_EVALUATOR", EvaluatorForest, "what scores the model: forest (the compact evaluator, LightGBM's results, checked against it) or lightgbm")
	flagenv.IntVar(fs, getenv, &c.InferenceCPUEvery, "metrics.inference-cpu-every", "METRICS_INFERENCE_CPU_EVERY", lightgbm.DefaultCPUSampleEvery, "sample the thread CPU of about one prediction in this many into mlops_scoring_inference_cpu_seconds (0: never)")
	flagenv.IntVar(fs, getenv, &c.EvaluatorCheckEvery, "model.check-every", "MODEL_CHECK_EVERY", 1000, "also score about one forest prediction in this many with LightGBM and compare (0: never)")
	flagenv.DurationVar(fs, getenv, &c.PreviousSpecGrace, "model.previous-spec-grace", "MODEL_PREVIOUS_SPEC_GRACE", 10*time.Minute, "how long a champion replaced by a model of another spec scores the vectors of its spec")
	flagenv.DurationVar(fs, getenv, &c.SpecHold, "model.spec-hold", "MODEL_SPEC_HOLD", 2*time.Minute, "how long a stream vector of a spec no loaded model serves is retried before the DLQ")
	flagenv.BoolVar(fs, getenv, &c.ChallengerEnabled, "challenger.enabled", "CHALLENGER_ENABLED", false, "also load the challenger alias and score it in shadow")
	flagenv.StringVar(fs, getenv, &c.LightGBMLib, "lightgbm.lib", "LIGHTGBM_LIB", "", "path of lib_lightgbm.so (default: found in the project virtualenv)")
	flagenv.Float64Var(fs, getenv, &c.ExplainSampleRate, "explain.sample-rate", "EXPLAIN_SAMPLE_RATE", 0.01, "fraction of non-alert predictions explained (alerts always are)")
	flagenv.IntVar(fs, getenv, &c.ExplainTopK, "explain.top-k", "EXPLAIN_TOP_K", 3, "contributions kept per explanation")
	flagenv.StringVar(fs, getenv, &c.FeaturesAddr, "features.addr", "FEATURES_ADDR", "127.0.0.1:50052", "FeatureService address for the sync path")
	c.FeaturesTLS.RegisterFlags(fs, getenv, "features.tls", "FEATURES_TLS")
	flagenv.DurationVar(fs, getenv, &c.FeaturesTimeout, "features.timeout", "FEATURES_TIMEOUT", 200*time.Millisecond, "deadline of one GetOnlineFeatures call")
	flagenv.IntVar(fs, getenv, &c.SyncLogBuffer, "sync.log-buffer", "SYNC_LOG_BUFFER", 10000, "sync predictions waiting to be published")
	flagenv.DurationVar(fs, getenv, &c.SyncLogRetryInterval, "sync.log-retry-interval", "SYNC_LOG_RETRY_INTERVAL", time.Second, "how often spilled sync predictions are replayed")
	flagenv.StringVar(fs, getenv, &c.SpillDir, "sync.spill-dir", "SYNC_SPILL_DIR", ".cache/scoring-spill", "directory of the spill file of unpublished sync predictions (empty: no spilling)")
	flagenv.IntVar(fs, getenv, &c.SpillMaxBytes, "sync.spill-max-bytes", "SYNC_SPILL_MAX_BYTES", 256<<20, "size limit of the spill file")
	flagenv.IntVar(fs, getenv, &c.ExplainWorkers, "explain.workers", "EXPLAIN_WORKERS", 1, "goroutines computing the sync path's logged explanations after the answer")
	flagenv.IntVar(fs, getenv, &c.ExplainQueue, "explain.queue", "EXPLAIN_QUEUE", 1000, "sync predictions waiting for their logged explanation (full: computed before the answer)")
	flagenv.IntVar(fs, getenv, &c.DetectionWindow, "metrics.detection-window", "METRICS_DETECTION_WINDOW", 1000, "predictions covered by mlops_scoring_fraud_detection_rate")

	if err := flagenv.Parse(fs, args); err != nil {
		return Config{}, fmt.Errorf("parse flags: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// Validate reports every problem of the configuration at once. It resolves SpecName into
// Spec.
func (c *Config) Validate() error {
	errs := []error{c.Base.Validate(), c.Kafka.Validate()}
	if c.ConsumeFeatures {
		errs = append(errs, c.Kafka.ValidateConsumer())
	}
	spec, err := featurespec.ByName(c.SpecName)
	if err != nil {
		errs = append(errs, err)
	}
	c.Spec = spec
	if u, err := url.Parse(c.MLflowURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("mlflow url %q: want http(s)://host:port", c.MLflowURL))
	}
	if c.ModelName == "" {
		errs = append(errs, errors.New("model name is empty"))
	}
	if c.PredictionsTopic == "" || c.ModelEventsTopic == "" {
		errs = append(errs, errors.New("predictions and model-events topics must be set"))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("model poll interval %v: must be positive", c.PollInterval))
	}
	if c.PreviousSpecGrace < 0 || c.SpecHold < 0 {
		errs = append(errs, fmt.Errorf("previous spec grace %v and spec hold %v: must not be negative", c.PreviousSpecGrace, c.SpecHold))
	}
	if c.LoadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("model load timeout %v: must be positive", c.LoadTimeout))
	}
	if !(c.DefaultThreshold >= 0 && c.DefaultThreshold <= 1) && c.Spec.Task == featurespec.TaskBinary {
		errs = append(errs, fmt.Errorf("default threshold %v: want [0, 1] for a binary model", c.DefaultThreshold))
	}
	if c.Evaluator != EvaluatorForest && c.Evaluator != EvaluatorLightGBM {
		errs = append(errs, fmt.Errorf("model evaluator %q: want %s or %s", c.Evaluator, EvaluatorForest, EvaluatorLightGBM))
	}
	if c.EvaluatorCheckEvery < 0 {
		errs = append(errs, fmt.Errorf("model check-every %d: must not be negative", c.EvaluatorCheckEvery))
	}
	if c.InferenceCPUEvery < 0 {
		errs = append(errs, fmt.Errorf("metrics inference-cpu-every %d: must not be negative", c.InferenceCPUEvery))
	}
	if !(c.ExplainSampleRate >= 0 && c.ExplainSampleRate <= 1) {
		errs = append(errs, fmt.Errorf("explain sample rate %v: want [0, 1]", c.ExplainSampleRate))
	}
	if c.ExplainTopK < 1 {
		errs = append(errs, fmt.Errorf("explain top-k %d: must be at least 1", c.ExplainTopK))
	}
	if err := c.FeaturesTLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("features client: %w", err))
	}
	if c.FeaturesAddr == "" {
		errs = append(errs, errors.New("features address is empty"))
	}
	if c.FeaturesTimeout <= 0 {
		errs = append(errs, fmt.Errorf("features timeout %v: must be positive", c.FeaturesTimeout))
	}
	if c.SyncLogBuffer < 1 {
		errs = append(errs, fmt.Errorf("sync log buffer %d: must be at least 1", c.SyncLogBuffer))
	}
	if c.SyncLogRetryInterval <= 0 {
		errs = append(errs, fmt.Errorf("sync log retry interval %v: must be positive", c.SyncLogRetryInterval))
	}
	if c.SpillDir != "" && c.SpillMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("spill max bytes %d: want at least 1 MiB", c.SpillMaxBytes))
	}
	if c.ExplainWorkers < 1 || c.ExplainQueue < 1 {
		errs = append(errs, fmt.Errorf("explain workers %d and queue %d: must be at least 1", c.ExplainWorkers, c.ExplainQueue))
	}
	if c.DetectionWindow < 1 {
		errs = append(errs, fmt.Errorf("detection window %d: must be at least 1", c.DetectionWindow))
	}
	return errors.Join(errs...)
}
