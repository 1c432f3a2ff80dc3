// Package ingest validates raw transactions from tx.raw and gRPC Ingest and publishes them to tx.validated, sending bad input to tx.dlq.
package ingest

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	ingestv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/ingest/v1"
)

// Server implements the ingestion service's gRPC API. It is safe for concurrent use.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	cfg    Config
	logger *slog.Logger
}

// New returns the ingestion server.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Server {
	_ = reg
	return &Server{cfg: cfg, logger: logger}
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { ingestv1.RegisterIngestServiceServer(g, s) }
