// Package predlog writes predictions and their late labels to Elasticsearch: one document per
// transaction (_id = transaction_id) in a monthly index, with the label's actual value joined
// onto it whether the label arrives before or after the prediction.
package predlog

import (
	"context"
	"fmt"
	"log/slog"
	"time"

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
	roles := map[string]kafkaio.TopicRole{s.cfg.Kafka.DLQTopic: kafkaio.RoleDeadLetter}
	for _, t := range s.cfg.Kafka.Topics {
		roles[t] = kafkaio.RoleStream
	}
	if err := s.cfg.Kafka.EnsureRoles(ctx, roles); err != nil {
		return fmt.Errorf("ensure kafka topics: %w", err)
	}
	return nil
}

// PendingExpiryActor returns the actor that deletes expired pending labels
// (Writer.ExpirePending) every pendingSweepInterval. A failed sweep is logged and tried
// again at the next tick; it never stops the service.
func (s *Server) PendingExpiryActor() run.Actor {
	interval := pendingSweepInterval(s.w.cfg.PendingMaxAge)
	return run.Actor{Name: "pending-label-expiry", Run: func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			n, err := s.w.ExpirePending(ctx, time.Now())
			switch {
			case err != nil && ctx.Err() == nil:
				s.logger.Warn("pending label expiry failed, retrying at the next sweep", "interval", interval, "err", err)
			case n > 0:
				s.logger.Warn("pending labels expired without their prediction", "count", n, "max_age", s.w.cfg.PendingMaxAge)
			}
		}
	}}
}

// pendingSweepInterval is a tenth of the max age, between 1s and 10min: expired labels
// linger at most that much longer than the max age.
func pendingSweepInterval(maxAge time.Duration) time.Duration {
	return min(max(maxAge/10, time.Second), 10*time.Minute)
}

// ConsumerActor returns the actor consuming the prediction and label topics.
func (s *Server) ConsumerActor() run.Actor {
	return kafkaio.BatchConsumerActor(s.cfg.Kafka, s.w.Handler(s.cfg.PredictionsTopic, s.cfg.LabelsTopic), s.logger, s.reg)
}
