package predlog

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/esauth"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
)

// Config is the whole configuration of the predlog service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*). Topics defaults to predictions.v1 and
	// labels.v1.
	Kafka kafkaio.Config
	// PredictionsTopic is the topic of Prediction records among Kafka.Topics.
	// Default: predictions.v1.
	PredictionsTopic string
	// LabelsTopic is the topic of Label records among Kafka.Topics. Default: labels.v1.
	LabelsTopic string
	// ESURL is the base URL of Elasticsearch. Default: http://127.0.0.1:9200.
	ESURL string
	// ESTimeout bounds each Elasticsearch request. Default: 30s.
	ESTimeout time.Duration
	// ESDialTimeout bounds connecting to Elasticsearch (TCP connect, TLS handshake)
	// (-es.dial-timeout). Default: 5s.
	ESDialTimeout time.Duration
	// ESAuth authenticates to Elasticsearch (API key or basic auth) and verifies it (TLS):
	// -es.api-key, -es.username, -es.password, -es.tls.* (docs/security.md).
	ESAuth esauth.Config
	// Writer says where documents go: index prefix (default predictions), pending-label
	// index (default predlog-pending-labels), label max delay (default 4320h), pending-label
	// max age (default 168h).
	Writer WriterConfig
}

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("predlog", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "predlog", "127.0.0.1:8084", "")
	c.Kafka.Topics = []string{topics.Predictions, topics.Labels}
	c.Kafka.BatchWait = DefaultBatchWait
	c.Kafka.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.PredictionsTopic, "predictions.topic", "PREDICTIONS_TOPIC", topics.Predictions, "topic of Prediction records")
	flagenv.StringVar(fs, getenv, &c.LabelsTopic, "labels.topic", "LABELS_TOPIC", topics.Labels, "topic of Label records")
	flagenv.StringVar(fs, getenv, &c.ESURL, "es.url", "ES_URL", "http://127.0.0.1:9200", "Elasticsearch base URL")
	flagenv.DurationVar(fs, getenv, &c.ESTimeout, "es.timeout", "ES_TIMEOUT", 30*time.Second, "time limit of one Elasticsearch request")
	c.ESAuth.RegisterFlags(fs, getenv)
	flagenv.DurationVar(fs, getenv, &c.ESDialTimeout, "es.dial-timeout", "ES_DIAL_TIMEOUT", esbulk.DefaultDialTimeout, "time limit of connecting to Elasticsearch (TCP connect, TLS handshake)")
	flagenv.StringVar(fs, getenv, &c.Writer.IndexPrefix, "es.index-prefix", "ES_INDEX_PREFIX", "predictions", "prefix of the monthly prediction indices and name of their alias")
	flagenv.StringVar(fs, getenv, &c.Writer.PendingIndex, "es.pending-index", "ES_PENDING_INDEX", "predlog-pending-labels", "index of labels waiting for their prediction")
	flagenv.DurationVar(fs, getenv, &c.Writer.LabelMaxDelay, "label.max-delay", "LABEL_MAX_DELAY", 180*24*time.Hour, "latest a label may arrive after its transaction and still find its prediction")
	flagenv.DurationVar(fs, getenv, &c.Writer.PendingMaxAge, "label.pending-max-age", "LABEL_PENDING_MAX_AGE", DefaultPendingMaxAge, "age (from its event time) after which a label still waiting for its prediction is deleted")
	flagenv.StringVar(fs, getenv, &c.Writer.RefreshInterval, "es.refresh-interval", "ES_REFRESH_INTERVAL", DefaultRefreshInterval, "refresh_interval of the prediction indices (e.g. 1s, 10s): longest an acknowledged prediction stays invisible to searches; empty: Elasticsearch's default (1s while searched, none while search-idle)")
	flagenv.IntVar(fs, getenv, &c.Writer.BulkInFlight, "es.bulk-in-flight", "ES_BULK_IN_FLIGHT", DefaultBulkInFlight, "concurrent bulk requests one batch is split into (by document)")
	if err := flagenv.Parse(fs, args); err != nil {
		return Config{}, fmt.Errorf("parse flags: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// validInterval matches the Elasticsearch time values accepted as a refresh interval (a
// positive number and a unit; -1, no refresh at all, is not: searches would never see the
// predictions).
var validInterval = regexp.MustCompile(`^[1-9][0-9]*(ms|s|m|h)$`)

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	errs := []error{c.Base.Validate(), c.Kafka.ValidateConsumer()}
	if u, err := url.Parse(c.ESURL); c.ESURL == "" || err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("elasticsearch URL %q: want scheme://host:port", c.ESURL))
	}
	if err := c.ESAuth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ESTimeout <= 0 {
		errs = append(errs, fmt.Errorf("elasticsearch timeout %v: must be positive", c.ESTimeout))
	}
	if c.ESDialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("elasticsearch dial timeout %v: must be positive", c.ESDialTimeout))
	}
	if c.Writer.IndexPrefix == "" {
		errs = append(errs, errors.New("index prefix is empty"))
	}
	if c.Writer.PendingIndex == "" {
		errs = append(errs, errors.New("pending-label index is empty"))
	}
	if c.Writer.LabelMaxDelay <= 0 {
		errs = append(errs, fmt.Errorf("label max delay %v: must be positive", c.Writer.LabelMaxDelay))
	}
	if c.Writer.PendingMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("label pending max age %v: must be positive", c.Writer.PendingMaxAge))
	}
	if c.Writer.RefreshInterval != "" && !validInterval.MatchString(c.Writer.RefreshInterval) {
		errs = append(errs, fmt.Errorf("refresh interval %q: want an Elasticsearch time value such as 500ms, 1s, 30s or 1m", c.Writer.RefreshInterval))
	}
	if c.Writer.BulkInFlight < 1 || c.Writer.BulkInFlight > 16 {
		errs = append(errs, fmt.Errorf("bulk requests in flight %d: want 1 to 16", c.Writer.BulkInFlight))
	}
	if c.PredictionsTopic == c.LabelsTopic {
		errs = append(errs, fmt.Errorf("predictions and labels topic are both %q", c.PredictionsTopic))
	}
	for _, t := range c.Kafka.Topics {
		if t != c.PredictionsTopic && t != c.LabelsTopic {
			errs = append(errs, fmt.Errorf("kafka topic %q is neither the predictions nor the labels topic", t))
		}
	}
	if !slices.Contains(c.Kafka.Topics, c.PredictionsTopic) && !slices.Contains(c.Kafka.Topics, c.LabelsTopic) {
		errs = append(errs, errors.New("kafka topics include neither the predictions nor the labels topic"))
	}
	return errors.Join(errs...)
}
