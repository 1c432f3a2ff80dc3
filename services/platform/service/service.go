// Package service holds what every service binary shares at startup: the base configuration
// (log level, admin and gRPC addresses, drain timeout) and the process runtime (logger,
// metrics registry, admin server) that realMain wires the service's actors into.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/run"
	"github.com/streaming-mlops/mlops/services/platform/telemetry"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
)

// Base is the part of every service's Config that the platform owns.
type Base struct {
	// Name is the service name used in logs and metrics (not a flag).
	Name string
	// Telemetry holds -log.level and -admin.addr.
	Telemetry telemetry.Config
	// GRPCAddr is the gRPC listen address; empty for services without gRPC (-grpc.addr, GRPC_ADDR).
	GRPCAddr string
	// GRPCTLS is the gRPC listener's TLS: -grpc.tls.cert/-grpc.tls.key turn it on,
	// -grpc.tls.client-ca requires client certificates (mutual TLS). Default: plain text.
	GRPCTLS tlsconf.Server
	// ShutdownTimeout bounds draining after SIGTERM; keep it under the pod's termination
	// grace period. Default: 20s.
	ShutdownTimeout time.Duration
	// Warnings are problems of the configuration that do not stop the service, such as a
	// deprecated environment variable; ParseConfig appends them (it has no logger yet) and
	// NewRuntime logs each once at Warn. Not a flag.
	Warnings []string
}

// RegisterFlags registers the base flags with the service's default addresses. Pass an empty
// grpcAddr for a service that serves no gRPC; then no -grpc.addr flag exists.
func (b *Base) RegisterFlags(fs *flag.FlagSet, getenv func(string) string, name, adminAddr, grpcAddr string) {
	b.Name = name
	b.Telemetry.RegisterFlags(fs, getenv, adminAddr)
	if grpcAddr != "" {
		flagenv.StringVar(fs, getenv, &b.GRPCAddr, "grpc.addr", "GRPC_ADDR", grpcAddr, "gRPC listen address")
		b.GRPCTLS.RegisterFlags(fs, getenv, "grpc.tls", "GRPC_TLS")
	}
	flagenv.DurationVar(fs, getenv, &b.ShutdownTimeout, "shutdown.timeout", "SHUTDOWN_TIMEOUT", 20*time.Second, "drain time limit after SIGTERM")
}

// Validate reports every problem of the base configuration.
func (b Base) Validate() error {
	var errs []error
	if err := b.Telemetry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := b.GRPCTLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("grpc: %w", err))
	}
	if b.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v: must be positive", b.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// Runtime is the process-wide observability of one service: its logger, its one metrics
// registry and its admin server.
type Runtime struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Admin    *telemetry.Admin
	base     Base
}

// NewRuntime builds the logger (JSON to stdout), the registry and the admin server for b
// (with /debug/pprof when b.Telemetry.Pprof), and logs b.Warnings.
func NewRuntime(b Base, version string, stdout io.Writer) *Runtime {
	logger := telemetry.NewLogger(stdout, b.Telemetry.LogLevel).With("service", b.Name, "version", version)
	for _, w := range b.Warnings {
		logger.Warn("configuration warning", "warning", w)
	}
	reg := telemetry.NewRegistry(b.Name, version)
	admin := telemetry.NewAdmin(b.Telemetry.AdminAddr, reg, logger)
	if b.Telemetry.Pprof {
		admin.EnablePprof()
	}
	return &Runtime{Logger: logger, Registry: reg, Admin: admin, base: b}
}

// Run runs the service's actors together with the admin server until ctx is done or one of
// them fails, and logs the lifecycle ("started", "draining", "stopped").
func (r *Runtime) Run(ctx context.Context, actors ...run.Actor) error {
	r.Logger.Info("started")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		<-ctx.Done()
		r.Logger.Info("draining", "timeout", r.base.ShutdownTimeout)
	}()
	err := run.Run(ctx, r.Logger, append(actors, r.Admin.Actor(r.base.ShutdownTimeout))...)
	cancel()
	<-watched
	if err != nil {
		r.Logger.Error("stopped with error", "err", err)
		return err
	}
	r.Logger.Info("stopped")
	return nil
}

// GRPCServer builds the service's gRPC server on its -grpc.addr with its -grpc.tls.* settings
// (reading the certificate files now, so a bad one fails at startup), draining within the
// shutdown timeout.
func (r *Runtime) GRPCServer(register func(*grpc.Server), opts ...grpc.ServerOption) (*grpcserve.Server, error) {
	creds, err := grpcserve.Credentials(r.base.GRPCTLS)
	if err != nil {
		return nil, err
	}
	return grpcserve.New(r.base.GRPCAddr, register, r.Logger, r.Registry, r.base.ShutdownTimeout, append([]grpc.ServerOption{creds}, opts...)...), nil
}
