// Package scoring scores feature vectors with the champion LightGBM model, on the stream and through the synchronous gRPC Score.
package scoring

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
)

// Server implements the scoring service's gRPC API. It is safe for concurrent use.
type Server struct {
	scoringv1.UnimplementedScoringServiceServer
	cfg    Config
	logger *slog.Logger
}

// New returns the scoring server.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Server {
	_ = reg
	return &Server{cfg: cfg, logger: logger}
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { scoringv1.RegisterScoringServiceServer(g, s) }
