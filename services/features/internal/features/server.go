// Package features computes the feature vector of each validated transaction from per-account state in Redis and serves online features.
package features

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
)

// Server implements the features service's gRPC API. It is safe for concurrent use.
type Server struct {
	featuresv1.UnimplementedFeatureServiceServer
	cfg    Config
	logger *slog.Logger
}

// New returns the features server.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Server {
	_ = reg
	return &Server{cfg: cfg, logger: logger}
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { featuresv1.RegisterFeatureServiceServer(g, s) }
