package trainer

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/profile"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// Config is the whole configuration of the trainer service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*). The consumer reads DriftTopic in
	// group Kafka.GroupID (default "trainer").
	Kafka kafkaio.Config
	// MLflowURL is the base URL of the MLflow tracking server. Default: http://127.0.0.1:5000.
	MLflowURL string
	// LightGBMLib is the path of lib_lightgbm.so; empty means lightgbm.FindLibrary.
	LightGBMLib string
	// AdminToken, when set, is a bearer token Retrain, Promote and Rollback accept
	// ("authorization: Bearer <token>" metadata); its holder is audited as "admin". Never
	// logged. -admin.token, env MLOPS_ADMIN_TOKEN (mlopsctl's name) or a file
	// (-admin.token-file, MLOPS_ADMIN_TOKEN_FILE); the old ADMIN_TOKEN is still read when
	// MLOPS_ADMIN_TOKEN is unset, with a deprecation warning.
	AdminToken flagenv.Secret
	// AdminTokens maps named callers to their bearer tokens, "name:token,name:token"
	// (-admin.tokens, MLOPS_ADMIN_TOKENS, or -admin.tokens-file): the audit records the name
	// of the token's holder. Never logged.
	AdminTokens flagenv.Secret
	// AdminClientCNs are the common names of client certificates (verified by the gRPC
	// server's mutual TLS, -grpc.tls.client-ca) that may call the admin RPCs; the audit
	// records the common name (-admin.client-cns, ADMIN_CLIENT_CNS).
	AdminClientCNs []string
	// Dev is development mode (-dev, MLOPS_DEV=1): without any admin credential the admin RPCs
	// are open and the audit records the actor the request names. Outside development mode
	// the trainer refuses to start without one (RequireAdminCredential).
	Dev bool

	// FraudModel and PurchaseModel name the registered models of the two use cases;
	// FraudModel is the default of an empty model_name. Defaults: "fraud", "purchase".
	FraudModel    string
	PurchaseModel string
	// ExperimentPrefix prefixes the MLflow experiment of each model ("<prefix><model>").
	// Default: "mlops-".
	ExperimentPrefix string

	// Threshold is the decision threshold of binary models (flag when score >= it). Default: 0.8.
	Threshold float64
	// DriftLabelWait is how long a drift-triggered retrain waits, re-reading every DataPoll,
	// for enough labelled rows after the change (labels arrive late) before it is recorded
	// as skipped. Default: 6h.
	DriftLabelWait time.Duration
	// DataPoll is how often a waiting retrain re-reads its data. Default: 1m.
	DataPoll time.Duration
	// AlarmWindow is the drift service's window size (predictions) at which the reference
	// profile's alarm thresholds are calibrated; keep it equal to drift's -window.count.
	// Default: 5000.
	AlarmWindow int
	// ReviewCost is the cost of one false alarm (a manual review), in the amount's currency;
	// a missed fraud costs its amount. Default: 5.
	ReviewCost float64
	// PromotionMargin is how much the challenger must beat the champion by on the primary
	// metric (AUC up for binary, MSE down for regression). Default: 0.001.
	PromotionMargin float64
	// PromotionResamples is the number of paired bootstrap resamples of the promotion
	// decision. Default: 1000.
	PromotionResamples int
	// PromotionConfidence is the confidence of the bootstrap interval whose lower bound must
	// clear PromotionMargin. Default: 0.95.
	PromotionConfidence float64
	// MinLabelledRows is the fewest labelled rows a training run accepts (-data.min-rows, every
	// data source); fewer records a skipped run and fails with FAILED_PRECONDITION. Default: 1000.
	MinLabelledRows int
	// MinPositives is the fewest positive labels (binary tasks) a training run accepts, like
	// MinLabelledRows. Default: 30.
	MinPositives int
	// PreChange widens the training window of a drift-triggered retrain before the event's
	// change_start: rows from change_start − PreChange on are read. Default: 0.
	PreChange time.Duration
	// LeaseOwner names this replica in the retraining lease tag on the registered model.
	// Default: "<hostname>-<pid>-<random>", chosen in New.
	LeaseOwner string
	// LeaseSettle is how long the trainer waits after writing the lease tag before reading it
	// back to detect a concurrent taker (MLflow has no compare-and-set). Default: 300ms.
	LeaseSettle time.Duration
	// EarlyStoppingRounds stops boosting when the validation metric has not improved for
	// this many rounds. Default: 30.
	EarlyStoppingRounds int
	// NumIterations is the default maximum of boosting rounds. Default: 500.
	NumIterations int

	// DataSource selects where training rows come from: DataSourceES (log-and-wait: logged
	// feature vectors and joined labels from Elasticsearch) or DataSourceFile (dataset
	// files, e.g. simulated by loadtest/cmd/simulate -dataset). Default: "es".
	DataSource string
	// ES configures the Elasticsearch data source (-es.*, -data.lookback, -data.min-rows,
	// -data.max-rows); validated only when DataSource is "es".
	ES ESConfig
	// DataFiles are the dataset files of the file data source (-data.file, comma-separated:
	// one per use case); required when DataSource is "file".
	DataFiles []string

	// DriftTopic is consumed for drift events; ModelEventsTopic receives model events and is
	// the audit log. Defaults: drift.events, model.events.
	DriftTopic       string
	ModelEventsTopic string
	// ConsumeDrift enables retraining on drift events with retrain=true. Default: true.
	ConsumeDrift bool
	// RetrainCooldown is the least time between two drift-triggered retrains of one model.
	// Default: 1h.
	RetrainCooldown time.Duration
	// RetrainTimeout bounds one training run. Default: 30m.
	RetrainTimeout time.Duration
	// AuditReadTimeout bounds reading the audit log back from Kafka. Default: 20s.
	AuditReadTimeout time.Duration
	// Shadow configures the shadow period before a promotion (-shadow.*); off by default.
	Shadow ShadowConfig
}

// deprecatedAdminTokenEnv is the trainer's old name of MLOPS_ADMIN_TOKEN.
const deprecatedAdminTokenEnv = "ADMIN_TOKEN"

// adminTokenEnv is getenv with MLOPS_ADMIN_TOKEN falling back to the deprecated ADMIN_TOKEN.
func adminTokenEnv(getenv func(string) string) func(string) string {
	return func(k string) string {
		v := getenv(k)
		if v == "" && k == "MLOPS_ADMIN_TOKEN" {
			v = getenv(deprecatedAdminTokenEnv)
		}
		return v
	}
}

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("trainer", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "trainer", "127.0.0.1:8086", "127.0.0.1:50056")
	c.Kafka.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.MLflowURL, "mlflow.url", "MLFLOW_URL", "http://127.0.0.1:5000", "MLflow tracking server base URL")
	flagenv.StringVar(fs, getenv, &c.LightGBMLib, "lightgbm.lib", "LIGHTGBM_LIB", "", "path of lib_lightgbm.so (default: found in the project virtualenv)")
	flagenv.SecretVar(fs, adminTokenEnv(getenv), &c.AdminToken, "admin.token", "MLOPS_ADMIN_TOKEN", "bearer token accepted by Retrain, Promote and Rollback, audited as \"admin\" (env ADMIN_TOKEN is deprecated)")
	flagenv.SecretVar(fs, getenv, &c.AdminTokens, "admin.tokens", "MLOPS_ADMIN_TOKENS", "named bearer tokens of the admin RPCs, name:token,... (the audit records the name)")
	flagenv.StringsVar(fs, getenv, &c.AdminClientCNs, "admin.client-cns", "ADMIN_CLIENT_CNS", nil, "common names of mTLS client certificates allowed to call the admin RPCs (needs -grpc.tls.client-ca)")
	flagenv.BoolVar(fs, getenv, &c.Dev, "dev", "MLOPS_DEV", false, "development mode: start without an admin credential (admin RPCs open, actors self-declared)")
	if getenv(deprecatedAdminTokenEnv) != "" {
		w := deprecatedAdminTokenEnv + " is deprecated: set MLOPS_ADMIN_TOKEN (the name mlopsctl uses)"
		if getenv("MLOPS_ADMIN_TOKEN") != "" {
			w += "; ignored because MLOPS_ADMIN_TOKEN is set"
		}
		c.Warnings = append(c.Warnings, w)
	}
	flagenv.StringVar(fs, getenv, &c.FraudModel, "model.fraud", "MODEL_FRAUD", "fraud", "registered model name of the fraud (binary) model; the default model")
	flagenv.StringVar(fs, getenv, &c.PurchaseModel, "model.purchase", "MODEL_PURCHASE", "purchase", "registered model name of the purchase (regression) model")
	flagenv.StringVar(fs, getenv, &c.ExperimentPrefix, "mlflow.experiment-prefix", "MLFLOW_EXPERIMENT_PREFIX", "mlops-", "prefix of each model's MLflow experiment name")
	flagenv.Float64Var(fs, getenv, &c.Threshold, "threshold", "THRESHOLD", 0.8, "decision threshold of binary models")
	flagenv.IntVar(fs, getenv, &c.AlarmWindow, "drift.window", "DRIFT_WINDOW", profile.DefaultAlarmWindow, "drift window size (predictions) the reference profile's alarm thresholds are calibrated at")
	flagenv.Float64Var(fs, getenv, &c.ReviewCost, "cost.review", "COST_REVIEW", 5, "cost of one false alarm (manual review)")
	flagenv.Float64Var(fs, getenv, &c.PromotionMargin, "promotion.margin", "PROMOTION_MARGIN", 0.001, "margin by which a challenger must beat the champion on the primary metric")
	flagenv.IntVar(fs, getenv, &c.PromotionResamples, "promotion.resamples", "PROMOTION_RESAMPLES", 1000, "paired bootstrap resamples of the promotion decision")
	flagenv.Float64Var(fs, getenv, &c.PromotionConfidence, "promotion.confidence", "PROMOTION_CONFIDENCE", 0.95, "confidence of the bootstrap interval of the challenger's improvement; its lower bound must exceed -promotion.margin")
	flagenv.IntVar(fs, getenv, &c.MinPositives, "data.min-positives", "DATA_MIN_POSITIVES", 30, "fewest positive labels (binary) a retrain accepts; fewer record a skipped run and fail it with FAILED_PRECONDITION")
	flagenv.DurationVar(fs, getenv, &c.PreChange, "drift.pre-change", "DRIFT_PRE_CHANGE", 0, "drift-triggered retrains read rows from the event's change_start minus this span")
	flagenv.StringVar(fs, getenv, &c.LeaseOwner, "lease.owner", "LEASE_OWNER", "", "name of this replica in the retraining lease (default: hostname-pid-random)")
	flagenv.DurationVar(fs, getenv, &c.LeaseSettle, "lease.settle", "LEASE_SETTLE", 300*time.Millisecond, "wait between writing the retraining lease tag and reading it back")
	flagenv.IntVar(fs, getenv, &c.EarlyStoppingRounds, "train.early-stopping", "TRAIN_EARLY_STOPPING", 30, "early stopping rounds on the validation set")
	flagenv.IntVar(fs, getenv, &c.NumIterations, "train.num-iterations", "TRAIN_NUM_ITERATIONS", 500, "default maximum boosting rounds")
	flagenv.StringVar(fs, getenv, &c.DataSource, "data.source", "DATA_SOURCE", DataSourceES, "training data source: es (logged predictions with joined labels in Elasticsearch) or file (dataset files, -data.file)")
	flagenv.StringsVar(fs, getenv, &c.DataFiles, "data.file", "DATA_FILE", nil, "dataset files (comma-separated, one per use case), e.g. written by loadtest/cmd/simulate -dataset (data.source=file)")
	flagenv.StringVar(fs, getenv, &c.ES.URL, "es.url", "ES_URL", "http://127.0.0.1:9200", "Elasticsearch base URL (data.source=es)")
	c.ES.Auth.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.ES.Index, "es.index", "ES_INDEX", "predictions", "index or alias of the prediction documents (data.source=es)")
	flagenv.DurationVar(fs, getenv, &c.ES.Timeout, "es.timeout", "ES_TIMEOUT", 30*time.Second, "time limit of one Elasticsearch request")
	flagenv.IntVar(fs, getenv, &c.ES.PageSize, "es.page-size", "ES_PAGE_SIZE", 5000, "documents per Elasticsearch search page")
	flagenv.DurationVar(fs, getenv, &c.ES.Lookback, "data.lookback", "DATA_LOOKBACK", 30*24*time.Hour, "event-time window read when a retrain gives no data_from (data.source=es)")
	flagenv.IntVar(fs, getenv, &c.ES.MinRows, "data.min-rows", "DATA_MIN_ROWS", 1000, "fewest labelled rows a retrain accepts (every data source); fewer record a skipped run and fail it with FAILED_PRECONDITION")
	flagenv.IntVar(fs, getenv, &c.ES.MaxRows, "data.max-rows", "DATA_MAX_ROWS", 2000000, "most rows read, newest kept, when the request's max_rows is 0 or larger (data.source=es)")
	flagenv.StringVar(fs, getenv, &c.DriftTopic, "topic.drift", "TOPIC_DRIFT", topics.DriftEvents, "topic of drift events")
	flagenv.StringVar(fs, getenv, &c.ModelEventsTopic, "topic.model-events", "TOPIC_MODEL_EVENTS", topics.ModelEvents, "topic of model events (also the audit log)")
	flagenv.BoolVar(fs, getenv, &c.ConsumeDrift, "drift.consume", "DRIFT_CONSUME", true, "retrain on drift events with retrain=true")
	flagenv.DurationVar(fs, getenv, &c.DriftLabelWait, "drift.label-wait", "DRIFT_LABEL_WAIT", 6*time.Hour, "how long a drift-triggered retrain waits for enough labelled rows after the change before it is skipped")
	flagenv.DurationVar(fs, getenv, &c.DataPoll, "data.poll", "DATA_POLL", time.Minute, "how often a waiting retrain re-reads its data")
	flagenv.DurationVar(fs, getenv, &c.RetrainCooldown, "drift.cooldown", "DRIFT_COOLDOWN", time.Hour, "least time between drift-triggered retrains of a model")
	flagenv.DurationVar(fs, getenv, &c.RetrainTimeout, "train.timeout", "TRAIN_TIMEOUT", 30*time.Minute, "time limit of one training run")
	flagenv.DurationVar(fs, getenv, &c.AuditReadTimeout, "audit.read-timeout", "AUDIT_READ_TIMEOUT", 20*time.Second, "time limit for reading the audit log from Kafka")
	flagenv.IntVar(fs, getenv, &c.Shadow.Predictions, "shadow.predictions", "SHADOW_PREDICTIONS", 0, "live predictions a challenger that passed the offline comparison is shadow-scored on before the champion alias moves (scoring needs -challenger.enabled); 0 promotes at once")
	flagenv.DurationVar(fs, getenv, &c.Shadow.Timeout, "shadow.timeout", "SHADOW_TIMEOUT", time.Hour, "time limit of the shadow period; a challenger with too few shadow predictions by then is not promoted")
	flagenv.DurationVar(fs, getenv, &c.Shadow.LabelWait, "shadow.label-wait", "SHADOW_LABEL_WAIT", 2*time.Minute, "how long to keep collecting labels of the shadow rows after the last needed prediction")
	flagenv.IntVar(fs, getenv, &c.Shadow.MinLabelled, "shadow.min-labelled", "SHADOW_MIN_LABELLED", 300, "fewest labelled shadow rows for a realized comparison; fewer use confidence-based estimates")
	flagenv.Float64Var(fs, getenv, &c.Shadow.Tolerance, "shadow.tolerance", "SHADOW_TOLERANCE", 0.01, "how much worse than the champion's (AUC lower, MSE higher) the challenger's live metric may be")
	flagenv.StringVar(fs, getenv, &c.Shadow.PredictionsTopic, "topic.predictions", "TOPIC_PREDICTIONS", topics.Predictions, "topic of predictions, tailed during a shadow period")
	flagenv.StringVar(fs, getenv, &c.Shadow.LabelsTopic, "topic.labels", "TOPIC_LABELS", topics.Labels, "topic of labels, tailed during a shadow period")
	if err := flagenv.Parse(fs, args); err != nil {
		return Config{}, fmt.Errorf("parse flags: %w", err)
	}
	c.MinLabelledRows = c.ES.MinRows
	if len(c.Kafka.Topics) == 0 {
		c.Kafka.Topics = []string{c.DriftTopic}
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	errs := []error{c.Base.Validate(), c.Kafka.Validate()}
	if c.MLflowURL == "" {
		errs = append(errs, errors.New("mlflow URL is empty"))
	}
	if c.FraudModel == "" || c.PurchaseModel == "" || c.FraudModel == c.PurchaseModel {
		errs = append(errs, fmt.Errorf("model names %q and %q must be non-empty and differ", c.FraudModel, c.PurchaseModel))
	}
	if c.Threshold <= 0 || c.Threshold >= 1 {
		errs = append(errs, fmt.Errorf("threshold %v must be in (0, 1)", c.Threshold))
	}
	if c.ReviewCost < 0 {
		errs = append(errs, fmt.Errorf("review cost %v must be >= 0", c.ReviewCost))
	}
	if c.PromotionMargin < 0 {
		errs = append(errs, fmt.Errorf("promotion margin %v must be >= 0", c.PromotionMargin))
	}
	if c.PromotionResamples < 100 {
		errs = append(errs, fmt.Errorf("promotion resamples %d must be >= 100", c.PromotionResamples))
	}
	if c.PromotionConfidence <= 0.5 || c.PromotionConfidence >= 1 {
		errs = append(errs, fmt.Errorf("promotion confidence %v must be in (0.5, 1)", c.PromotionConfidence))
	}
	if c.MinLabelledRows < minRows && c.DataSource != DataSourceES { // ES.Validate says it for es
		errs = append(errs, fmt.Errorf("data min rows %d must be >= %d", c.MinLabelledRows, minRows))
	}
	if c.MinPositives < 1 {
		errs = append(errs, fmt.Errorf("data min positives %d must be >= 1", c.MinPositives))
	}
	if c.PreChange < 0 {
		errs = append(errs, fmt.Errorf("drift pre-change span %v must be >= 0", c.PreChange))
	}
	if c.LeaseSettle < 0 || c.LeaseSettle > time.Minute {
		errs = append(errs, fmt.Errorf("lease settle %v must be in [0, 1m]", c.LeaseSettle))
	}
	if c.EarlyStoppingRounds < 0 {
		errs = append(errs, fmt.Errorf("early stopping rounds %d must be >= 0", c.EarlyStoppingRounds))
	}
	if c.NumIterations <= 0 {
		errs = append(errs, fmt.Errorf("num iterations %d must be > 0", c.NumIterations))
	}
	switch c.DataSource {
	case DataSourceES:
		errs = append(errs, c.ES.Validate())
	case DataSourceFile:
		if len(c.DataFiles) == 0 {
			errs = append(errs, errors.New("data source file needs -data.file"))
		}
	case dataSourceSim:
		errs = append(errs, errors.New(`data source "sim" was removed: write a dataset file with loadtest/cmd/simulate -dataset and use -data.source=file -data.file=<file>`))
	default:
		errs = append(errs, fmt.Errorf("data source %q must be %q or %q", c.DataSource, DataSourceES, DataSourceFile))
	}
	if _, err := c.adminTokens(); err != nil {
		errs = append(errs, err)
	}
	if len(c.AdminClientCNs) > 0 && !c.GRPCTLS.MutualTLS() {
		errs = append(errs, errors.New("admin client cns need mutual TLS on the gRPC server (-grpc.tls.client-ca)"))
	}
	if c.DriftTopic == "" || c.ModelEventsTopic == "" {
		errs = append(errs, errors.New("drift and model-events topics must be set"))
	}
	for name, d := range map[string]time.Duration{"drift cooldown": c.RetrainCooldown, "train timeout": c.RetrainTimeout, "audit read timeout": c.AuditReadTimeout, "data poll": c.DataPoll} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %v must be positive", name, d))
		}
	}
	if c.DriftLabelWait < 0 {
		errs = append(errs, fmt.Errorf("drift label wait %v must be >= 0", c.DriftLabelWait))
	}
	if sh := c.Shadow; sh.Predictions < 0 {
		errs = append(errs, fmt.Errorf("shadow predictions %d must be >= 0", sh.Predictions))
	} else if sh.Predictions > 0 {
		if sh.Timeout <= 0 || sh.LabelWait < 0 || sh.MinLabelled < 0 || sh.Tolerance < 0 || math.IsNaN(sh.Tolerance) {
			errs = append(errs, fmt.Errorf("shadow timeout %v must be positive, label wait %v, min labelled %d and tolerance %v >= 0",
				sh.Timeout, sh.LabelWait, sh.MinLabelled, sh.Tolerance))
		}
		if sh.PredictionsTopic == "" || sh.LabelsTopic == "" {
			errs = append(errs, errors.New("predictions and labels topics must be set for the shadow period"))
		}
	}
	return errors.Join(errs...)
}

// adminPrincipalToken is the audited name of the holder of AdminToken.
const adminPrincipalToken = "admin"

// adminTokens returns the accepted bearer tokens with the name each authenticates as.
func (c Config) adminTokens() (map[string]string, error) {
	out := map[string]string{}
	if c.AdminToken.IsSet() {
		out[c.AdminToken.Reveal()] = adminPrincipalToken
	}
	if !c.AdminTokens.IsSet() {
		return out, nil
	}
	for i, item := range strings.Split(c.AdminTokens.Reveal(), ",") {
		name, tok, ok := strings.Cut(strings.TrimSpace(item), ":")
		name, tok = strings.TrimSpace(name), strings.TrimSpace(tok)
		if !ok || name == "" || tok == "" {
			// The item is not echoed: it may hold a token.
			return nil, fmt.Errorf("admin tokens: item %d is not name:token", i+1)
		}
		if other, dup := out[tok]; dup {
			return nil, fmt.Errorf("admin tokens: %q and %q have the same token", other, name)
		}
		out[tok] = name
	}
	return out, nil
}

// RequireAdminCredential reports an error when the admin RPCs would be open: no admin token
// and no allowed client certificate, outside development mode. The trainer refuses to start
// then; local scripts and tests set -dev (MLOPS_DEV=1) or a token.
func (c Config) RequireAdminCredential() error {
	if c.Dev || c.AdminToken.IsSet() || c.AdminTokens.IsSet() || len(c.AdminClientCNs) > 0 {
		return nil
	}
	return errors.New("no admin credential: set -admin.token (MLOPS_ADMIN_TOKEN), -admin.tokens (MLOPS_ADMIN_TOKENS) or -admin.client-cns with mutual TLS; -dev (MLOPS_DEV=1) runs without one for local development")
}
