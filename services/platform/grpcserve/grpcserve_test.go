package grpcserve_test

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/run"
	"github.com/streaming-mlops/mlops/services/platform/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// panicHealth is a health server whose Check panics, to exercise recovery.
type panicHealth struct {
	healthpb.UnimplementedHealthServer
}

func (panicHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	panic("handler bug")
}

func TestServerHealthRecoveryMetrics(t *testing.T) {
	t.Parallel()
	logger := telemetry.NewLogger(io.Discard, "error")
	reg := prometheus.NewRegistry()
	srv := grpcserve.New("127.0.0.1:0", func(*grpc.Server) {}, logger, reg, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx, logger, srv.Actor()) }()
	addr, err := srv.Addr(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health Check = %v, %v; want SERVING", resp, err)
	}
	if n := testutil.CollectAndCount(reg, "mlops_grpc_server_handling_seconds"); n != 1 {
		t.Errorf("handling histogram series = %d, want 1", n)
	}
	// Reflection lists the services, as grpcurl would ask.
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rresp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	var names []string
	for _, s := range rresp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, "grpc.health.v1.Health") || !slices.Contains(names, "grpc.reflection.v1.ServerReflection") {
		t.Errorf("reflection lists %v, want health and reflection", names)
	}
	_ = stream.CloseSend()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("grpc actor: %v", err)
	}
}

func TestServerRecoversPanics(t *testing.T) {
	t.Parallel()
	logger := telemetry.NewLogger(io.Discard, "error")
	reg := prometheus.NewRegistry()
	// Register a panicking service under a different name via a custom ServiceDesc copy.
	desc := healthpb.Health_ServiceDesc
	desc.ServiceName = "test.Panicky"
	srv := grpcserve.New("127.0.0.1:0", func(s *grpc.Server) { s.RegisterService(&desc, panicHealth{}) }, logger, reg, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx, logger, srv.Actor()) }()
	addr, _ := srv.Addr(context.Background())
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	err = conn.Invoke(cctx, "/test.Panicky/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Internal {
		t.Fatalf("panicking call = %v, want INTERNAL", err)
	}
	// The server survived: the real health service still answers.
	if _, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health after panic: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("grpc actor: %v", err)
	}
}
