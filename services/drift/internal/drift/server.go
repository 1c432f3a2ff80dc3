// Package drift watches feature, score and label distributions against the champion's reference profile and emits drift events.
package drift

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
)

// Server implements the drift service's gRPC API. It is safe for concurrent use.
type Server struct {
	driftv1.UnimplementedDriftServiceServer
	cfg    Config
	logger *slog.Logger
}

// New returns the drift server.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Server {
	_ = reg
	return &Server{cfg: cfg, logger: logger}
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { driftv1.RegisterDriftServiceServer(g, s) }
