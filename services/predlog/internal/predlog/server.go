// Package predlog writes predictions and their late labels to Elasticsearch.
package predlog

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Server is the predlog service.
type Server struct {
	cfg    Config
	logger *slog.Logger
}

// New returns the predlog service.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Server {
	_ = reg
	return &Server{cfg: cfg, logger: logger}
}
