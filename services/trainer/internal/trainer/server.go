// Package trainer retrains on drift events or on request, evaluates the challenger against the champion and promotes it through the MLflow registry.
package trainer

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
)

// Server implements the trainer service's gRPC API. It is safe for concurrent use.
type Server struct {
	trainerv1.UnimplementedTrainerServiceServer
	cfg    Config
	logger *slog.Logger
}

// New returns the trainer server.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Server {
	_ = reg
	return &Server{cfg: cfg, logger: logger}
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { trainerv1.RegisterTrainerServiceServer(g, s) }
