package trainer

import (
	"errors"
	"flag"
	"fmt"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service"
)

// Config is the whole configuration of the trainer service. Build it with ParseConfig.
type Config struct {
	service.Base
	// Kafka holds the shared Kafka settings (-kafka.*).
	Kafka kafkaio.Config
	// MLflowURL is the base URL of the MLflow tracking server. Default: http://127.0.0.1:5000.
	MLflowURL string
}

// ParseConfig builds the configuration from command-line args with environment fallback
// (flag, then environment, then default) and validates it. It does no I/O.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("trainer", flag.ContinueOnError)
	c.Base.RegisterFlags(fs, getenv, "trainer", "127.0.0.1:8086", "127.0.0.1:50056")
	c.Kafka.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &c.MLflowURL, "mlflow.url", "MLFLOW_URL", "http://127.0.0.1:5000", "MLflow tracking server base URL")
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
	if c.MLflowURL == "" {
		errs = append(errs, errors.New("mlflow URL is empty"))
	}
	return errors.Join(errs...)
}
