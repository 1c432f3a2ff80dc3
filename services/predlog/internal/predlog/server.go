// Package predlog writes predictions and their late labels to Elasticsearch: one document per
// transaction (_id = transaction_id) in a monthly index, with the label's actual value joined
// onto it whether the label arrives before or after the prediction.
package predlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/run"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
)

// Server is the predlog service: a Kafka consumer of predictions and labels feeding a Writer.
type Server struct {
	cfg    Config
	logger *slog.Logger
	reg    prometheus.Registerer
	w      *Writer
}

// New returns the predlog service writing through es. It does no I/O.
func New(cfg Config, es *esbulk.Client, logger *slog.Logger, reg prometheus.Registerer) *Server {
	return &Server{cfg: cfg, logger: logger, reg: reg, w: NewWriter(es, cfg.Writer, logger, reg)}
}

// Setup prepares the service's dependencies, idempotently: it installs the index templates
// and creates the input topics and the dead-letter topic when missing.
func (s *Server) Setup(ctx context.Context) error {
	if err := s.w.PutTemplates(ctx); err != nil {
		return fmt.Errorf("install index templates: %w", err)
	}
	specs := []kafkaio.TopicSpec{{Name: s.cfg.Kafka.DLQTopic}}
	for _, t := range s.cfg.Kafka.Topics {
		specs = append(specs, kafkaio.TopicSpec{Name: t})
	}
	if err := kafkaio.EnsureTopics(ctx, s.cfg.Kafka.Brokers, specs); err != nil {
		return fmt.Errorf("ensure kafka topics: %w", err)
	}
	return nil
}

// ConsumerActor returns the actor consuming the prediction and label topics.
func (s *Server) ConsumerActor() run.Actor {
	return kafkaio.BatchConsumerActor(s.cfg.Kafka, s.w.Handler(s.cfg.PredictionsTopic, s.cfg.LabelsTopic), s.logger, s.reg)
}
