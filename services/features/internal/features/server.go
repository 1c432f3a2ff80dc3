// Package features computes the feature vector of each validated transaction from per-account state in Redis and serves online features.
//
// The stream path (HandleBatch, a kafkaio.BatchHandler on tx.validated) and the gRPC path
// (GetOnlineFeatures) run the same computation, featurespec.Fraud() through featurespec.Step
// and featurespec.Compute, on the same state (internal/store). Both are idempotent per
// transaction id: a transaction is folded into its account's state once, and asking again
// (a Kafka redelivery, a retried gRPC call with record set) returns the vector it got the
// first time.
package features

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/store"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// Server is the features service: the tx.validated batch handler (HandleBatch) and the gRPC
// FeatureService. It is safe for concurrent use.
type Server struct {
	featuresv1.UnimplementedFeatureServiceServer
	cfg    Config
	logger *slog.Logger
	store  *store.Store
	// fraud is the spec of payments, purchase the spec of shop events (IsShopEvent).
	fraud, purchase servedSpec
	// specProto is the fraud spec, what GetFeatureSpec returns.
	specProto *featuresv1.FeatureSpec
	m         *metrics
	now       func() time.Time
	// cache remembers the states the service wrote last (nil: Config.StateCache is 0).
	cache *stateCache
	// snaps holds *[]store.Snapshot scratch whose decoded states' slices are reused from
	// call to call (apply, readOnline).
	snaps sync.Pool
}

// servedSpec is a spec with its version and fingerprint as written into vectors.
type servedSpec struct {
	spec        featurespec.Spec
	version     string
	fingerprint string
}

func newServedSpec(s featurespec.Spec) servedSpec {
	return servedSpec{spec: s, version: strconv.Itoa(s.Version), fingerprint: s.Fingerprint()}
}

// New returns the features server on the Redis client rdb (which the caller closes after the
// server's last use). It uses cfg.OutputTopic, cfg.RedisPrefix, cfg.ReplayWindow and
// cfg.StateTTL. reg receives the service's metrics.
func New(cfg Config, rdb redis.Cmdable, logger *slog.Logger, reg prometheus.Registerer) *Server {
	spec := featurespec.Fraud()
	s := &Server{
		cfg:      cfg,
		logger:   logger,
		store:    store.New(rdb, store.Options{Prefix: cfg.RedisPrefix, Window: cfg.ReplayWindow, TTL: cfg.StateTTL}, reg),
		fraud:    newServedSpec(spec),
		purchase: newServedSpec(featurespec.Purchase()),
		m:        newMetrics(reg),
		now:      time.Now,
		cache:    newStateCache(cfg.StateCache),
	}
	s.snaps.New = func() any { return new([]store.Snapshot) }
	s.specProto = &featuresv1.FeatureSpec{Name: spec.Name, Version: s.fraud.version, Fingerprint: s.fraud.fingerprint}
	for _, f := range spec.Features {
		s.specProto.Features = append(s.specProto.Features, &featuresv1.Feature{Name: f.Name, Description: f.Description})
	}
	return s
}

// ServerOptions are the gRPC server options the service runs with: a fixed pool of stream
// workers (one per P) serves the calls, instead of a new goroutine per call whose stack
// grows anew each time; on the sync path this cut the CPU per GetOnlineFeatures call and
// its p99 under concurrency (BenchmarkGetOnlineFeatures).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0)))}
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { featuresv1.RegisterFeatureServiceServer(g, s) }

// GetFeatureSpec returns the served spec (fraud, its version, its features in vector order).
func (s *Server) GetFeatureSpec(context.Context, *featuresv1.GetFeatureSpecRequest) (*featuresv1.GetFeatureSpecResponse, error) {
	return &featuresv1.GetFeatureSpecResponse{Spec: proto.CloneOf(s.specProto)}, nil
}

// GetOnlineFeatures computes the vector of the request's transaction from the account's
// current state.
//
// With record false (the default) the call is read-only: it computes with
// featurespec.Compute and leaves Redis unchanged. When the transaction was already applied
// (it came through tx.validated or an earlier record call) the vector it got then is
// returned instead, so a caller sees what the stream published.
//
// With record true the transaction is folded into the state exactly as on the stream,
// idempotently per transaction id; the vector is not published to Kafka.
//
// Codes: InvalidArgument for a missing or invalid transaction, Unavailable when Redis
// cannot be reached, Aborted when the account kept changing concurrently, Internal when the
// account's stored state is corrupt.
func (s *Server) GetOnlineFeatures(ctx context.Context, req *featuresv1.GetOnlineFeaturesRequest) (*featuresv1.GetOnlineFeaturesResponse, error) {
	tx := req.GetTransaction()
	if tx == nil {
		return nil, status.Error(codes.InvalidArgument, "transaction is required")
	}
	if IsShopEvent(tx) {
		return s.purchaseOnline(ctx, tx, req.GetIncludeNames())
	}
	in, err := InputFromTransaction(tx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	it := &item{tx: tx, in: in}
	it.traceparent, it.tracestate = traceFromMetadata(ctx)
	var fv *eventsv1.FeatureVector
	if req.GetRecord() {
		fv, err = s.recordOnline(ctx, it)
	} else {
		fv, err = s.readOnline(ctx, it)
	}
	if err != nil {
		return nil, err
	}
	if req.GetIncludeNames() {
		fv.Names = s.fraud.spec.Names()
	}
	return &featuresv1.GetOnlineFeaturesResponse{Vector: fv}, nil
}

// purchaseOnline answers GetOnlineFeatures for a shop event: its purchase vector, computed
// statelessly (record makes no difference).
func (s *Server) purchaseOnline(ctx context.Context, tx *eventsv1.Transaction, names bool) (*featuresv1.GetOnlineFeaturesResponse, error) {
	it := &item{tx: tx, shop: true}
	it.traceparent, it.tracestate = traceFromMetadata(ctx)
	out := make([]float64, featurespec.PurchaseLen)
	start := time.Now()
	err := PurchaseVector(tx, out)
	s.m.compute.Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	fv := s.vector(it, out, s.now())
	if names {
		fv.Names = s.purchase.spec.Names()
	}
	return &featuresv1.GetOnlineFeaturesResponse{Vector: fv}, nil
}

// readOnline computes it's vector without changing the state.
func (s *Server) readOnline(ctx context.Context, it *item) (*eventsv1.FeatureVector, error) {
	reqs := []store.LoadRequest{{Account: it.tx.GetAccountId(), TxIDs: []string{it.tx.GetTransactionId()}}}
	scratch := s.snaps.Get().(*[]store.Snapshot)
	defer s.snaps.Put(scratch)
	if len(*scratch) == 0 {
		*scratch = make([]store.Snapshot, 1)
	}
	snaps := (*scratch)[:1]
	if err := s.store.Load(ctx, reqs, snaps); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	snap := &snaps[0]
	if snap.Err != nil {
		s.m.badState.Inc()
		return nil, status.Error(codes.Internal, snap.Err.Error())
	}
	if v := snap.Vectors[0]; v != nil {
		s.m.replays.Inc()
		return decodeVector(v)
	}
	out := make([]float64, featurespec.FraudLen)
	start := time.Now()
	err := featurespec.Compute(&snap.State, it.in, out)
	s.m.compute.Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return s.vector(it, out, s.now()), nil
}

// recordOnline applies it like the stream does and returns its vector.
func (s *Server) recordOnline(ctx context.Context, it *item) (*eventsv1.FeatureVector, error) {
	if it.traceparent == "" {
		it.traceparent = string(kafkaio.NewTraceparent())
	}
	if err := s.apply(ctx, []*item{it}); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	switch {
	case it.err == nil:
		return decodeVector(it.value)
	case errors.Is(it.err, ErrConflict):
		return nil, status.Error(codes.Aborted, it.err.Error())
	case errors.Is(it.err, store.ErrBadState):
		return nil, status.Error(codes.Internal, it.err.Error())
	default:
		return nil, status.Error(codes.InvalidArgument, it.err.Error())
	}
}

func decodeVector(v []byte) (*eventsv1.FeatureVector, error) {
	fv := &eventsv1.FeatureVector{}
	if err := proto.Unmarshal(v, fv); err != nil {
		return nil, status.Errorf(codes.Internal, "decode stored FeatureVector: %v", err)
	}
	return fv, nil
}

// traceFromMetadata returns the W3C trace context of an incoming gRPC call, if it carries a
// valid one.
func traceFromMetadata(ctx context.Context) (traceparent, tracestate string) {
	md, _ := metadata.FromIncomingContext(ctx)
	tps := md.Get(kafkaio.HeaderTraceparent)
	if len(tps) == 0 || !kafkaio.ValidTraceparent([]byte(tps[0])) {
		return "", ""
	}
	if tss := md.Get(kafkaio.HeaderTracestate); len(tss) > 0 {
		tracestate = tss[0]
	}
	return tps[0], tracestate
}
