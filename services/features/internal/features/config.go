package features

import (
	"errors"
	"flag"
	"fmt"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// Config is the whole configuration of the features service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*).
	Kafka kafkaio.Config
	// RedisAddr is host:port of the Redis holding online state. Default: 127.0.0.1:6379.
	RedisAddr string
}

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("features", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "features", "127.0.0.1:8082", "127.0.0.1:50052")
	c.Kafka.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.RedisAddr, "redis.addr", "REDIS_ADDR", "127.0.0.1:6379", "Redis address for online feature state")
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
	errs := []error{c.Base.Validate(), c.Kafka.Validate()}
	if c.RedisAddr == "" {
		errs = append(errs, errors.New("redis address is empty"))
	}
	return errors.Join(errs...)
}
