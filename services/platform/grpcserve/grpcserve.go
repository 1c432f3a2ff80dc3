// Package grpcserve runs a service's gRPC server as a run.Actor with the same behaviour in
// every service: the standard health service, server reflection (so grpcurl works), panic
// recovery, request metrics and graceful draining.
package grpcserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/streaming-mlops/mlops/services/platform/run"
)

// Server is a gRPC server with health, reflection, recovery and metrics installed.
type Server struct {
	addr    string
	logger  *slog.Logger
	grpc    *grpc.Server
	health  *health.Server
	bound   chan struct{}
	lnAddr  net.Addr
	drain   time.Duration
	metrics *metrics
}

type metrics struct {
	handling *prometheus.HistogramVec
	panics   prometheus.Counter
}

// New builds a server for addr. register adds the service implementations; every service it
// registers is reported SERVING by the health service once the server listens and
// NOT_SERVING as soon as draining begins. drain bounds GracefulStop.
func New(addr string, register func(*grpc.Server), logger *slog.Logger, reg prometheus.Registerer, drain time.Duration, opts ...grpc.ServerOption) *Server {
	m := &metrics{
		handling: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlops_grpc_server_handling_seconds",
			Help:    "Time to handle a gRPC call, by method and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"method", "code"}),
		panics: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "mlops_grpc_server_panics_total",
			Help: "Panics recovered in gRPC handlers (answered with INTERNAL).",
		}),
	}
	s := &Server{addr: addr, logger: logger, bound: make(chan struct{}), drain: drain, metrics: m}
	opts = append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.stream),
	}, opts...)
	s.grpc = grpc.NewServer(opts...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	register(s.grpc)
	return s
}

// Addr blocks until the server listens (or ctx is done) and returns the bound address.
func (s *Server) Addr(ctx context.Context) (string, error) {
	select {
	case <-s.bound:
		return s.lnAddr.String(), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (s *Server) setServing(st healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
}

// Actor serves until ctx is done, then marks every service NOT_SERVING and stops gracefully,
// forcing the stop when in-flight calls outlast the drain timeout.
func (s *Server) Actor() run.Actor {
	return run.Actor{Name: "grpc", Run: func(ctx context.Context) error {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("listen grpc %s: %w", s.addr, err)
		}
		s.lnAddr = ln.Addr()
		close(s.bound)
		s.setServing(healthpb.HealthCheckResponse_SERVING)
		errc := make(chan error, 1)
		go func() { errc <- s.grpc.Serve(ln) }()
		s.logger.Info("grpc server listening", "addr", ln.Addr().String())
		select {
		case err := <-errc:
			return fmt.Errorf("serve grpc: %w", err)
		case <-ctx.Done():
		}
		s.health.Shutdown() // every service NOT_SERVING, ignores later updates
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		timer := time.NewTimer(s.drain)
		defer timer.Stop()
		select {
		case <-stopped:
		case <-timer.C:
			s.logger.Warn("grpc drain timed out, closing remaining calls", "timeout", s.drain)
			s.grpc.Stop()
			<-stopped
		}
		if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve grpc: %w", err)
		}
		return nil
	}}
}

func (s *Server) observe(method string, start time.Time, err error) {
	s.metrics.handling.WithLabelValues(method, status.Code(err).String()).Observe(time.Since(start).Seconds())
}

func (s *Server) recovered(method string, r any) error {
	s.metrics.panics.Inc()
	s.logger.Error("panic in grpc handler", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, s.recovered(info.FullMethod, r)
		}
		s.observe(info.FullMethod, start, err)
	}()
	return handler(ctx, req)
}

func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered(info.FullMethod, r)
		}
		s.observe(info.FullMethod, start, err)
	}()
	return handler(srv, ss)
}
