package predlog

import (
	"errors"
	"flag"
	"fmt"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// Config is the whole configuration of the predlog service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*).
	Kafka kafkaio.Config
	// ESURL is the base URL of Elasticsearch. Default: http://127.0.0.1:9200.
	ESURL string
}

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("predlog", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "predlog", "127.0.0.1:8084", "")
	c.Kafka.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.ESURL, "es.url", "ES_URL", "http://127.0.0.1:9200", "Elasticsearch base URL")
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
	if c.ESURL == "" {
		errs = append(errs, errors.New("elasticsearch URL is empty"))
	}
	return errors.Join(errs...)
}
