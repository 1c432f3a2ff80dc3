package ingest

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// Config is the whole configuration of the ingestion service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*). Topics defaults to tx.raw and
	// DLQTopic to tx.dlq.
	Kafka kafkaio.Config
	// ValidatedTopic receives valid transactions (-ingest.validated-topic). Default: tx.validated.
	ValidatedTopic string
	// Limits bounds what the validator accepts (-ingest.max-*).
	Limits Limits
	// UnknownFields is the policy for fields the schema does not have
	// (-ingest.unknown-fields reject|ignore). Default: reject.
	UnknownFields UnknownFields
	// DedupWindow is how long a transaction id is remembered (-ingest.dedup-window).
	// 0 disables deduplication. Default: 10m.
	DedupWindow time.Duration
	// DedupSize is the most transaction ids remembered, about 60 bytes each
	// (-ingest.dedup-size). 0 disables deduplication. Default: 1,000,000.
	DedupSize int
}

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("ingestion", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "ingestion", "127.0.0.1:8081", "127.0.0.1:50051")
	c.Kafka.Topics = []string{topics.TxRaw}
	c.Kafka.DLQTopic = topics.TxDLQ
	c.Kafka.RegisterFlags(fs, getenv)

	d := DefaultLimits()
	flagenv.StringVar(fs, getenv, &c.ValidatedTopic, "ingest.validated-topic", "INGEST_VALIDATED_TOPIC", topics.TxValidated, "topic receiving valid transactions")
	flagenv.IntVar(fs, getenv, &c.Limits.MaxRecordBytes, "ingest.max-record-bytes", "INGEST_MAX_RECORD_BYTES", d.MaxRecordBytes, "largest encoded transaction accepted, in bytes")
	flagenv.Float64Var(fs, getenv, &c.Limits.MaxAmount, "ingest.max-amount", "INGEST_MAX_AMOUNT", d.MaxAmount, "largest amount accepted, in major currency units")
	flagenv.DurationVar(fs, getenv, &c.Limits.MaxFutureSkew, "ingest.max-future-skew", "INGEST_MAX_FUTURE_SKEW", d.MaxFutureSkew, "how far event_time may lie in the future")
	flagenv.DurationVar(fs, getenv, &c.Limits.MaxAge, "ingest.max-age", "INGEST_MAX_AGE", d.MaxAge, "how far event_time may lie in the past")
	flagenv.IntVar(fs, getenv, &c.Limits.MaxIDLength, "ingest.max-id-length", "INGEST_MAX_ID_LENGTH", d.MaxIDLength, "longest event_id, transaction_id and account_id, in bytes")
	flagenv.IntVar(fs, getenv, &c.Limits.MaxStringLength, "ingest.max-string-length", "INGEST_MAX_STRING_LENGTH", d.MaxStringLength, "longest other string field or attribute value, in bytes")
	flagenv.IntVar(fs, getenv, &c.Limits.MaxAttributes, "ingest.max-attributes", "INGEST_MAX_ATTRIBUTES", d.MaxAttributes, "most attributes entries")
	flagenv.IntVar(fs, getenv, &c.Limits.MaxAttributeKeyLength, "ingest.max-attribute-key-length", "INGEST_MAX_ATTRIBUTE_KEY_LENGTH", d.MaxAttributeKeyLength, "longest attribute key, in bytes")
	unknown := flagenv.String(fs, getenv, "ingest.unknown-fields", "INGEST_UNKNOWN_FIELDS", "reject", "unknown fields policy: reject or ignore")
	flagenv.DurationVar(fs, getenv, &c.DedupWindow, "ingest.dedup-window", "INGEST_DEDUP_WINDOW", 10*time.Minute, "how long transaction ids are remembered to catch duplicates (0: off)")
	flagenv.IntVar(fs, getenv, &c.DedupSize, "ingest.dedup-size", "INGEST_DEDUP_SIZE", 1_000_000, "most transaction ids remembered (0: off)")

	if err := flagenv.Parse(fs, args); err != nil {
		return Config{}, fmt.Errorf("parse flags: %w", err)
	}
	u, uerr := ParseUnknownFields(*unknown)
	c.UnknownFields = u
	if err := errors.Join(uerr, c.Validate()); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	errs := []error{c.Base.Validate(), c.Kafka.ValidateConsumer()}
	errs = append(errs, c.Limits.Validate()...)
	if c.ValidatedTopic == "" {
		errs = append(errs, errors.New("ingest validated topic is required"))
	}
	if slices.Contains(c.Kafka.Topics, c.ValidatedTopic) || c.ValidatedTopic == c.Kafka.DLQTopic {
		errs = append(errs, fmt.Errorf("ingest validated topic %q is also an input or the dead-letter topic", c.ValidatedTopic))
	}
	if c.DedupWindow < 0 || c.DedupSize < 0 {
		errs = append(errs, errors.New("ingest dedup window and size must not be negative"))
	}
	if c.DedupSize > 1<<30 {
		errs = append(errs, fmt.Errorf("ingest dedup size %d: at most %d", c.DedupSize, 1<<30))
	}
	return errors.Join(errs...)
}
