package kafkaio

import (
	"errors"
	"flag"
	"fmt"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
)

// Defaults applied to zero-valued Config fields.
const (
	DefaultBroker            = "localhost:9092"
	DefaultClientID          = "mlops"
	DefaultDLQTopic          = topics.TxDLQ
	DefaultBatchTimeout      = 5 * time.Millisecond
	DefaultBatchSize         = 100
	DefaultMaxBatch          = 500
	DefaultMinBytes          = 1
	DefaultMaxBytes          = 10 << 20
	DefaultMaxWait           = 2 * time.Second
	DefaultRetryBackoffMin   = 100 * time.Millisecond
	DefaultRetryBackoffMax   = 10 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultRebalanceTimeout  = 10 * time.Second
	DefaultLagInterval       = 10 * time.Second
	DefaultPartitions        = 6
	DefaultCompression       = CompressionNone
	DefaultCommitInterval    = 100 * time.Millisecond
	DefaultBatchWait         = 0 * time.Millisecond
)

// Producer compression codecs (Config.Compression).
const (
	CompressionNone   = "none"
	CompressionGzip   = "gzip"
	CompressionSnappy = "snappy"
	CompressionLz4    = "lz4"
	CompressionZstd   = "zstd"
)

// compressionCodecs maps the names Config.Compression accepts to kafka-go's codecs.
var compressionCodecs = map[string]kafka.Compression{
	CompressionNone:   0,
	CompressionGzip:   kafka.Gzip,
	CompressionSnappy: kafka.Snappy,
	CompressionLz4:    kafka.Lz4,
	CompressionZstd:   kafka.Zstd,
}

// joinGroupBackoff is how long the reader waits before joining its group again after a
// failed attempt (kafka-go's default of 5s is slow when a fresh broker is still creating
// __consumer_offsets).
const joinGroupBackoff = 500 * time.Millisecond

// Config holds the Kafka settings shared by every service. The zero value of each field means
// its default (see the Default constants); Brokers, GroupID and Topics have no usable default
// for a consumer and must be set. A Config is a plain value: copy it freely.
type Config struct {
	// Brokers is the bootstrap list, host:port each. Default: localhost:9092.
	Brokers []string
	// ClientID names this service to the brokers and in the dlq-service header of
	// dead-lettered records. Default: the flag set's name when registered with RegisterFlags,
	// otherwise "mlops".
	ClientID string
	// GroupID is the consumer group. Default: the flag set's name when registered with
	// RegisterFlags. Required by a consumer.
	GroupID string
	// Topics are the topics the consumer reads. Required by a consumer.
	Topics []string
	// DLQTopic receives records whose handling failed permanently. Default: tx.dlq.
	DLQTopic string
	// BatchTimeout caps how long the producer waits for more records before it sends a
	// partially filled batch, and so caps the latency it adds. Default: 5ms.
	BatchTimeout time.Duration
	// BatchSize is the most records the producer sends to one partition in one request.
	// kafka-go sets aside room for BatchSize records (152 bytes each) for every batch it
	// starts, however few records the batch ends up with, so a large value costs allocation
	// and GC time on every produce call. Default: 100.
	BatchSize int
	// Compression is the producer's compression codec: none, gzip, snappy, lz4 or zstd
	// (consumers decompress whatever they fetch). Default: none.
	Compression string
	// MaxBatch is the most records the consumer hands to the handler, writes and commits
	// together. Default: 500.
	MaxBatch int
	// BatchWait is how long a consumer waits for more records to fill a batch after the
	// first one arrived, before it handles the batch. Default: 0.
	BatchWait time.Duration
	// MinBytes is the least data, in bytes, a fetch waits for (up to MaxWait). Default: 1.
	MinBytes int
	// MaxBytes is the most data, in bytes, one fetch returns. Default: 10 MiB.
	MaxBytes int
	// MaxWait is how long the broker may hold a fetch while waiting for MinBytes (with the
	// default MinBytes, only a fetch of an idle partition waits). kafka-go asks the broker to
	// answer within MaxWait less a margin of a quarter of it (capped at 1s) and gives up on
	// the connection at MaxWait: a later answer is an i/o timeout, after which the partition's
	// reader closes its connection, backs off, dials the leader and reads its offsets again.
	// At the former 250ms default the 62ms margin was missed every few seconds on a busy
	// machine, and each miss stalled the partition for 100ms or more. It also bounds how long
	// stopping the reader (and a rebalance) waits for the fetches in flight. Default: 2s.
	MaxWait time.Duration
	// CommitInterval is how often a consumer commits the offsets of the records it has
	// finished (handled, and their outputs acknowledged by the brokers): the loop hands each
	// finished batch's offsets to the reader, which commits the latest of them per partition
	// every CommitInterval and once more when the consumer stops or loses its partitions. A
	// record is therefore never committed before its outputs are acknowledged; a crash
	// redelivers up to CommitInterval more records (handlers are idempotent). A negative
	// value commits synchronously after every batch. Default: 100ms.
	CommitInterval time.Duration
	// RetryBackoffMin and RetryBackoffMax bound the capped exponential backoff (with full
	// jitter) between attempts at a transient failure. Defaults: 100ms and 10s.
	RetryBackoffMin time.Duration
	RetryBackoffMax time.Duration
	// ShutdownTimeout bounds draining: after the consumer's context is cancelled it has this
	// long to finish the batch in flight, commit and flush. Keep it under the pod's
	// termination grace period. Default: 10s.
	ShutdownTimeout time.Duration
	// SessionTimeout is how long the group coordinator waits for a heartbeat before it
	// evicts a silent consumer. The broker bounds it (group.min.session.timeout.ms, 6s by
	// default). Default: 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the consumer heartbeats, and so how quickly it notices a
	// rebalance. Default: 3s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to rejoin during a
	// rebalance. Default: 10s.
	RebalanceTimeout time.Duration
	// LagInterval is how often a consumer asks the brokers for the high watermarks of its
	// partitions, so mlops_kafka_consumer_lag keeps rising while the handler retries a batch
	// (fetched records and commits update it in between). Default: 10s.
	LagInterval time.Duration
	// Partitions is the partition count of the keyed topics a service creates when they are
	// missing (see TopicSpec; existing topics are left alone). It caps the replicas a consumer
	// group can use (docs/kafka.md, sizing). Default: 6.
	Partitions int
	// ReplicationFactor of the topics a service creates; 0 means the broker's
	// default.replication.factor. Default: 0.
	ReplicationFactor int

	// SASLMechanism authenticates to the brokers: "" (none), SCRAM-SHA-512, SCRAM-SHA-256 or
	// PLAIN (only over TLS). Default: none.
	SASLMechanism string
	// SASLUsername and SASLPassword are the SASL credentials; the password comes from
	// -kafka.sasl.password, KAFKA_SASL_PASSWORD or a file (-kafka.sasl.password-file,
	// KAFKA_SASL_PASSWORD_FILE) and is never logged.
	SASLUsername string
	SASLPassword flagenv.Secret
	// TLS encrypts the connections to the brokers and verifies them (-kafka.tls,
	// -kafka.tls.ca, client certificate -kafka.tls.cert/-kafka.tls.key for brokers that
	// require one). Default: plain text.
	TLS tlsconf.Client
}

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{DefaultBroker}
	}
	setIfZero(&c.ClientID, DefaultClientID)
	setIfZero(&c.DLQTopic, DefaultDLQTopic)
	setIfZero(&c.BatchTimeout, DefaultBatchTimeout)
	setIfZero(&c.BatchSize, DefaultBatchSize)
	setIfZero(&c.MaxBatch, DefaultMaxBatch)
	setIfZero(&c.Compression, DefaultCompression)
	setIfZero(&c.CommitInterval, DefaultCommitInterval)
	setIfZero(&c.BatchWait, DefaultBatchWait)
	setIfZero(&c.MinBytes, DefaultMinBytes)
	setIfZero(&c.MaxBytes, DefaultMaxBytes)
	setIfZero(&c.MaxWait, DefaultMaxWait)
	setIfZero(&c.RetryBackoffMin, DefaultRetryBackoffMin)
	setIfZero(&c.RetryBackoffMax, DefaultRetryBackoffMax)
	setIfZero(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setIfZero(&c.SessionTimeout, DefaultSessionTimeout)
	setIfZero(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	setIfZero(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	setIfZero(&c.LagInterval, DefaultLagInterval)
	setIfZero(&c.Partitions, DefaultPartitions)
	return c
}

func setIfZero[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Validate reports every problem with the settings a producer uses (and the ones common to
// producers and consumers), joined with errors.Join. Zero values are valid: they mean the
// default. Consumers call ValidateConsumer instead. It reads the TLS files the settings name,
// so a missing or malformed certificate fails at startup, not at the first dial.
func (c Config) Validate() error {
	var errs []error
	d := c.withDefaults()
	for _, b := range d.Brokers {
		if _, port, ok := strings.Cut(b, ":"); !ok || port == "" {
			errs = append(errs, fmt.Errorf("kafka broker %q: want host:port", b))
		}
	}
	positive := []struct {
		name string
		v    time.Duration
	}{
		{"batch timeout", d.BatchTimeout},
		{"batch wait", d.BatchWait},
		{"max wait", d.MaxWait},
		{"retry backoff min", d.RetryBackoffMin},
		{"retry backoff max", d.RetryBackoffMax},
		{"shutdown timeout", d.ShutdownTimeout},
		{"session timeout", d.SessionTimeout},
		{"heartbeat interval", d.HeartbeatInterval},
		{"rebalance timeout", d.RebalanceTimeout},
		{"lag interval", d.LagInterval},
	}
	for _, p := range positive {
		if p.v < 0 {
			errs = append(errs, fmt.Errorf("kafka %s %v: must not be negative", p.name, p.v))
		}
	}
	if _, ok := compressionCodecs[d.Compression]; !ok {
		errs = append(errs, fmt.Errorf("kafka compression %q: want none, gzip, snappy, lz4 or zstd", d.Compression))
	}
	if err := d.validateSecurity(); err != nil {
		errs = append(errs, err)
	}
	if d.RetryBackoffMax < d.RetryBackoffMin {
		errs = append(errs, fmt.Errorf("kafka retry backoff max %v is below min %v", d.RetryBackoffMax, d.RetryBackoffMin))
	}
	if d.MinBytes > d.MaxBytes {
		errs = append(errs, fmt.Errorf("kafka min bytes %d is above max bytes %d", d.MinBytes, d.MaxBytes))
	}
	if d.HeartbeatInterval >= d.SessionTimeout {
		errs = append(errs, fmt.Errorf("kafka heartbeat interval %v must be below session timeout %v", d.HeartbeatInterval, d.SessionTimeout))
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"batch size", d.BatchSize}, {"max batch", d.MaxBatch}, {"min bytes", d.MinBytes}, {"max bytes", d.MaxBytes},
		{"partitions", d.Partitions}, {"replication factor", d.ReplicationFactor}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("kafka %s %d: must not be negative", n.name, n.v))
		}
	}
	return errors.Join(errs...)
}

// ValidateConsumer is Validate plus the settings only a consumer needs: a group, at least one
// topic, a dead-letter topic distinct from the input topics, and a reader configuration that
// kafka-go accepts (kafka.NewReader panics on one it does not).
func (c Config) ValidateConsumer() error {
	errs := []error{c.Validate()}
	d := c.withDefaults()
	if d.GroupID == "" {
		errs = append(errs, errors.New("kafka group id is required"))
	}
	if len(d.Topics) == 0 {
		errs = append(errs, errors.New("kafka topics: at least one input topic is required"))
	}
	if slices.Contains(d.Topics, d.DLQTopic) {
		errs = append(errs, fmt.Errorf("kafka dlq topic %q is also an input topic", d.DLQTopic))
	}
	if d.GroupID != "" && len(d.Topics) > 0 {
		rc := d.readerConfig(nil)
		if err := rc.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("kafka reader config: %w", err))
		}
	}
	return errors.Join(errs...)
}

// readerConfig builds the kafka-go reader configuration of a consumer from a defaulted c.
func (c Config) readerConfig(logger kafka.Logger) kafka.ReaderConfig {
	return kafka.ReaderConfig{
		Brokers:           c.Brokers,
		GroupID:           c.GroupID,
		GroupTopics:       c.Topics,
		Dialer:            c.mustDialer(),
		QueueCapacity:     max(c.MaxBatch, 100),
		MinBytes:          c.MinBytes,
		MaxBytes:          c.MaxBytes,
		MaxWait:           c.MaxWait,
		HeartbeatInterval: c.HeartbeatInterval,
		SessionTimeout:    c.SessionTimeout,
		RebalanceTimeout:  c.RebalanceTimeout,
		JoinGroupBackoff:  joinGroupBackoff,
		CommitInterval:    max(c.CommitInterval, 0), // 0: synchronous, CommitMessages returns once the broker has them
		StartOffset:       kafka.FirstOffset,
		ReadBackoffMin:    c.RetryBackoffMin,
		ReadBackoffMax:    min(c.RetryBackoffMax, time.Second),
		ErrorLogger:       logger,
	}
}

// RegisterFlags registers the shared Kafka flags on fs, each falling back to an environment
// variable (flag, then environment, then default), so every service spells them the same:
//
//	-kafka.brokers KAFKA_BROKERS            -kafka.client-id KAFKA_CLIENT_ID
//	-kafka.group KAFKA_GROUP                -kafka.topics KAFKA_TOPICS
//	-kafka.dlq-topic KAFKA_DLQ_TOPIC        -kafka.batch-timeout KAFKA_BATCH_TIMEOUT
//	-kafka.batch-size KAFKA_BATCH_SIZE      -kafka.max-batch KAFKA_MAX_BATCH
//	-kafka.compression KAFKA_COMPRESSION    -kafka.commit-interval KAFKA_COMMIT_INTERVAL
//	-kafka.min-bytes KAFKA_MIN_BYTES        -kafka.max-bytes KAFKA_MAX_BYTES
//	-kafka.max-wait KAFKA_MAX_WAIT          -kafka.retry-backoff-min KAFKA_RETRY_BACKOFF_MIN
//	-kafka.retry-backoff-max KAFKA_RETRY_BACKOFF_MAX
//	-kafka.shutdown-timeout KAFKA_SHUTDOWN_TIMEOUT
//	-kafka.session-timeout KAFKA_SESSION_TIMEOUT
//	-kafka.heartbeat-interval KAFKA_HEARTBEAT_INTERVAL
//	-kafka.rebalance-timeout KAFKA_REBALANCE_TIMEOUT
//	-kafka.lag-interval KAFKA_LAG_INTERVAL
//	-kafka.sasl.mechanism KAFKA_SASL_MECHANISM  -kafka.sasl.username KAFKA_SASL_USERNAME
//	-kafka.sasl.password KAFKA_SASL_PASSWORD    -kafka.sasl.password-file KAFKA_SASL_PASSWORD_FILE
//	-kafka.tls KAFKA_TLS                        -kafka.tls.ca KAFKA_TLS_CA
//	-kafka.tls.cert KAFKA_TLS_CERT              -kafka.tls.key KAFKA_TLS_KEY
//	-kafka.tls.server-name KAFKA_TLS_SERVER_NAME
//	-kafka.partitions KAFKA_PARTITIONS      -kafka.replication KAFKA_REPLICATION
//
// The values already in c are the defaults (a service sets its own Topics and GroupID before
// calling RegisterFlags); zero fields get the package defaults, and ClientID and GroupID
// default to fs.Name(). Parsing fs writes straight into c, which must therefore outlive the
// parse. A malformed environment value is reported by flagenv.Parse unless the flag was given.
func (c *Config) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	if c.ClientID == "" {
		c.ClientID = fs.Name()
	}
	if c.GroupID == "" {
		c.GroupID = fs.Name()
	}
	*c = c.withDefaults()
	flagenv.StringsVar(fs, getenv, &c.Brokers, "kafka.brokers", "KAFKA_BROKERS", c.Brokers, "Kafka bootstrap brokers, comma-separated host:port")
	flagenv.StringVar(fs, getenv, &c.ClientID, "kafka.client-id", "KAFKA_CLIENT_ID", c.ClientID, "Kafka client id, also the dlq-service header")
	flagenv.StringVar(fs, getenv, &c.GroupID, "kafka.group", "KAFKA_GROUP", c.GroupID, "Kafka consumer group")
	flagenv.StringsVar(fs, getenv, &c.Topics, "kafka.topics", "KAFKA_TOPICS", c.Topics, "Kafka input topics, comma-separated")
	flagenv.StringVar(fs, getenv, &c.DLQTopic, "kafka.dlq-topic", "KAFKA_DLQ_TOPIC", c.DLQTopic, "Kafka dead-letter topic for records that fail permanently")
	flagenv.DurationVar(fs, getenv, &c.BatchTimeout, "kafka.batch-timeout", "KAFKA_BATCH_TIMEOUT", c.BatchTimeout, "longest the producer waits to fill a batch")
	flagenv.IntVar(fs, getenv, &c.BatchSize, "kafka.batch-size", "KAFKA_BATCH_SIZE", c.BatchSize, "most records per produce request and partition")
	flagenv.StringVar(fs, getenv, &c.Compression, "kafka.compression", "KAFKA_COMPRESSION", c.Compression, "producer compression: none, gzip, snappy, lz4 or zstd")
	flagenv.IntVar(fs, getenv, &c.MaxBatch, "kafka.max-batch", "KAFKA_MAX_BATCH", c.MaxBatch, "most records handled and committed together")
	flagenv.DurationVar(fs, getenv, &c.CommitInterval, "kafka.commit-interval", "KAFKA_COMMIT_INTERVAL", c.CommitInterval, "how often the consumer commits finished records (negative: after every batch, synchronously)")
	flagenv.DurationVar(fs, getenv, &c.BatchWait, "kafka.batch-wait", "KAFKA_BATCH_WAIT", c.BatchWait, "longest the consumer waits to fill a batch after its first record")
	flagenv.IntVar(fs, getenv, &c.MinBytes, "kafka.min-bytes", "KAFKA_MIN_BYTES", c.MinBytes, "least bytes a fetch waits for")
	flagenv.IntVar(fs, getenv, &c.MaxBytes, "kafka.max-bytes", "KAFKA_MAX_BYTES", c.MaxBytes, "most bytes one fetch returns")
	flagenv.DurationVar(fs, getenv, &c.MaxWait, "kafka.max-wait", "KAFKA_MAX_WAIT", c.MaxWait, "longest a fetch waits for min-bytes")
	flagenv.DurationVar(fs, getenv, &c.RetryBackoffMin, "kafka.retry-backoff-min", "KAFKA_RETRY_BACKOFF_MIN", c.RetryBackoffMin, "first backoff after a transient failure")
	flagenv.DurationVar(fs, getenv, &c.RetryBackoffMax, "kafka.retry-backoff-max", "KAFKA_RETRY_BACKOFF_MAX", c.RetryBackoffMax, "cap of the exponential retry backoff")
	flagenv.DurationVar(fs, getenv, &c.ShutdownTimeout, "kafka.shutdown-timeout", "KAFKA_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, "time to drain the batch in flight on shutdown")
	flagenv.DurationVar(fs, getenv, &c.SessionTimeout, "kafka.session-timeout", "KAFKA_SESSION_TIMEOUT", c.SessionTimeout, "consumer group session timeout")
	flagenv.DurationVar(fs, getenv, &c.HeartbeatInterval, "kafka.heartbeat-interval", "KAFKA_HEARTBEAT_INTERVAL", c.HeartbeatInterval, "consumer group heartbeat interval")
	flagenv.DurationVar(fs, getenv, &c.RebalanceTimeout, "kafka.rebalance-timeout", "KAFKA_REBALANCE_TIMEOUT", c.RebalanceTimeout, "consumer group rebalance timeout")
	flagenv.DurationVar(fs, getenv, &c.LagInterval, "kafka.lag-interval", "KAFKA_LAG_INTERVAL", c.LagInterval, "how often the consumer reads its partitions' high watermarks for the lag gauge")
	flagenv.StringVar(fs, getenv, &c.SASLMechanism, "kafka.sasl.mechanism", "KAFKA_SASL_MECHANISM", c.SASLMechanism, "Kafka SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN (TLS only) or empty for none")
	flagenv.StringVar(fs, getenv, &c.SASLUsername, "kafka.sasl.username", "KAFKA_SASL_USERNAME", c.SASLUsername, "Kafka SASL user")
	flagenv.SecretVar(fs, getenv, &c.SASLPassword, "kafka.sasl.password", "KAFKA_SASL_PASSWORD", "Kafka SASL password")
	c.TLS.RegisterFlags(fs, getenv, "kafka.tls", "KAFKA_TLS")
	flagenv.IntVar(fs, getenv, &c.Partitions, "kafka.partitions", "KAFKA_PARTITIONS", c.Partitions, "partitions of the keyed topics created when missing (caps a consumer group's replicas)")
	flagenv.IntVar(fs, getenv, &c.ReplicationFactor, "kafka.replication", "KAFKA_REPLICATION", c.ReplicationFactor, "replication factor of the topics created when missing (0: the broker's default)")
}
