package features

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/features/internal/store"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
)

// Config is the whole configuration of the features service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*). Topics defaults to tx.validated.
	Kafka kafkaio.Config
	// OutputTopic receives the feature vectors (-features.topic). Default: features.v1.
	OutputTopic string
	// RedisAddr is host:port of the Redis holding online state. Default: 127.0.0.1:6379.
	RedisAddr string
	// RedisUsername is the Redis ACL user (-redis.username); empty authenticates as the
	// default user with RedisPassword alone (requirepass). Default: "".
	RedisUsername string
	// RedisPassword authenticates to Redis (AUTH) when set: -redis.password, REDIS_PASSWORD
	// or a file (-redis.password-file, REDIS_PASSWORD_FILE). Never logged. Default: none.
	RedisPassword flagenv.Secret
	// RedisTLS is the TLS of the Redis connection (-redis.tls, -redis.tls.ca,
	// -redis.tls.cert/.key for a Redis that verifies clients). Default: plain text.
	RedisTLS tlsconf.Client
	// RedisPrefix starts every Redis key of the service (-redis.prefix). It names the spec so
	// a new spec version starts from fresh state. Default: "mlops:features:fraud-v1:".
	RedisPrefix string
	// RedisTimeout bounds dialing and each read and write on a Redis connection
	// (-redis.timeout). Default: 2s.
	RedisTimeout time.Duration
	// ReplayWindow is how many recent transactions per account keep their vector in Redis,
	// so that a replay of one of them is recognised and re-published unchanged
	// (-features.replay-window). It must be at least Kafka.MaxBatch, the most records that
	// can be applied and still be redelivered. Default: 1000 (store.DefaultWindow).
	ReplayWindow int
	// StateTTL, when positive, lets an account's state expire after that long without a
	// transaction (-features.state-ttl). Default: 0, never.
	StateTTL time.Duration
	// StateCache is how many accounts' states the service remembers after writing them, so
	// that the account's next transactions skip loading it from Redis (one round trip per
	// batch instead of two); Redis refuses a write computed on a state that is no longer
	// the stored one, and the account is then reloaded (-features.state-cache). Each entry
	// holds one encoded state (a few hundred bytes). 0 turns it off. Default: 50000.
	StateCache int
}

// DefaultStateCache is the default of Config.StateCache.
const DefaultStateCache = 50000

// DefaultRedisPrefix is the default of Config.RedisPrefix: "mlops:features:<spec id>:".
func DefaultRedisPrefix() string { return "mlops:features:" + featurespec.Fraud().ID() + ":" }

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("features", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "features", "127.0.0.1:8082", "127.0.0.1:50052")
	c.Kafka.Topics = []string{topics.TxValidated}
	c.Kafka.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.OutputTopic, "features.topic", "FEATURES_TOPIC", topics.Features, "Kafka topic the feature vectors are written to")
	flagenv.StringVar(fs, getenv, &c.RedisAddr, "redis.addr", "REDIS_ADDR", "127.0.0.1:6379", "Redis address for online feature state")
	flagenv.StringVar(fs, getenv, &c.RedisUsername, "redis.username", "REDIS_USERNAME", "", "Redis ACL user (empty: the default user)")
	flagenv.SecretVar(fs, getenv, &c.RedisPassword, "redis.password", "REDIS_PASSWORD", "Redis password (AUTH)")
	c.RedisTLS.RegisterFlags(fs, getenv, "redis.tls", "REDIS_TLS")
	flagenv.StringVar(fs, getenv, &c.RedisPrefix, "redis.prefix", "REDIS_PREFIX", DefaultRedisPrefix(), "prefix of every Redis key of the service")
	flagenv.DurationVar(fs, getenv, &c.RedisTimeout, "redis.timeout", "REDIS_TIMEOUT", 2*time.Second, "Redis dial, read and write timeout")
	flagenv.IntVar(fs, getenv, &c.ReplayWindow, "features.replay-window", "FEATURES_REPLAY_WINDOW", store.DefaultWindow, "recent transactions per account whose vectors are kept to answer replays (at least -kafka.max-batch)")
	flagenv.IntVar(fs, getenv, &c.StateCache, "features.state-cache", "FEATURES_STATE_CACHE", DefaultStateCache, "accounts whose state is remembered after writing it, to skip reloading it (0: off)")
	flagenv.DurationVar(fs, getenv, &c.StateTTL, "features.state-ttl", "FEATURES_STATE_TTL", 0, "expire an account's state after this long without a transaction (0: never)")
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
	errs := []error{c.Base.Validate(), c.Kafka.ValidateConsumer()}
	if c.RedisAddr == "" {
		errs = append(errs, errors.New("redis address is empty"))
	}
	if c.RedisUsername != "" && !c.RedisPassword.IsSet() {
		errs = append(errs, fmt.Errorf("redis username %q given without a password", c.RedisUsername))
	}
	if err := c.RedisTLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("redis %w", err))
	}
	if c.OutputTopic == "" {
		errs = append(errs, errors.New("output topic is empty"))
	}
	for _, in := range c.Kafka.Topics {
		if in == c.OutputTopic {
			errs = append(errs, fmt.Errorf("output topic %q is also an input topic", in))
		}
	}
	if strings.ContainsAny(c.RedisPrefix, "{}") {
		errs = append(errs, fmt.Errorf("redis prefix %q contains a brace (it would become the Redis Cluster hash tag)", c.RedisPrefix))
	}
	if c.RedisTimeout <= 0 {
		errs = append(errs, fmt.Errorf("redis timeout %v: must be positive", c.RedisTimeout))
	}
	if c.ReplayWindow < 1 || c.ReplayWindow > 10000 {
		errs = append(errs, fmt.Errorf("replay window %d outside [1, 10000]", c.ReplayWindow))
	}
	if maxBatch := c.Kafka.MaxBatch; maxBatch > 0 && c.ReplayWindow < maxBatch {
		// A redelivered batch may hold up to MaxBatch records of one account; with a smaller
		// window the oldest of them are forgotten before the batch is committed.
		errs = append(errs, fmt.Errorf("replay window %d is below kafka max batch %d: a redelivered batch could be counted twice", c.ReplayWindow, maxBatch))
	}
	if c.StateCache < 0 {
		errs = append(errs, fmt.Errorf("state cache %d: must not be negative (0 turns it off)", c.StateCache))
	}
	if c.StateTTL < 0 {
		errs = append(errs, fmt.Errorf("state ttl %v: must not be negative", c.StateTTL))
	}
	return errors.Join(errs...)
}

// RedisOptions returns the go-redis options of the service's Redis: address, timeouts, ACL
// user, password and TLS (whose files it reads).
func (c Config) RedisOptions() (*redis.Options, error) {
	tc, err := c.RedisTLS.Load()
	if err != nil {
		return nil, fmt.Errorf("redis %w", err)
	}
	return &redis.Options{
		Addr:         c.RedisAddr,
		Username:     c.RedisUsername,
		Password:     c.RedisPassword.Reveal(),
		TLSConfig:    tc,
		DialTimeout:  c.RedisTimeout,
		ReadTimeout:  c.RedisTimeout,
		WriteTimeout: c.RedisTimeout,
		// The consumer loop retries with its own backoff; one quick client retry absorbs a
		// dropped pooled connection.
		MaxRetries: 1,
	}, nil
}
