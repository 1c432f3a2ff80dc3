// Package scoring scores feature vectors with the champion LightGBM model, on the stream and through the synchronous gRPC Score.
//
// The champion (and, when enabled, the challenger) is held in a slot: an atomic pointer to a
// reference-counted Model. Every request takes a reference for its whole duration, so a hot
// reload (model.events or the periodic alias poll) swaps the pointer without waiting and the
// old model's predictors are freed only after its last request finished.
package scoring

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
)

// Deps are the scoring server's collaborators.
type Deps struct {
	// Lib is the LightGBM library models are loaded into. Required to load from Store.
	Lib *lightgbm.Library
	// Store loads verified model versions (MLflow plus the local cache). Required for
	// LoadModels and the reload actor.
	Store *modelstore.Store
	// Features computes vectors for Score requests that carry a transaction only; nil means
	// such requests fail with FAILED_PRECONDITION.
	Features featuresv1.FeatureServiceClient
	// Producer publishes sync-path predictions; nil disables their logging. The SyncLogActor
	// closes it.
	Producer *kafkaio.Producer
}

// Server implements the scoring service's gRPC API and its features.v1 handler. It is safe
// for concurrent use.
type Server struct {
	scoringv1.UnimplementedScoringServiceServer
	cfg    Config
	deps   Deps
	logger *slog.Logger
	m      *metrics
	sc     *scorer

	champion, challenger slot
	previous             previousModel // the champion of the previous spec, during a rollout
	held                 holdBack      // stream records waiting for a model of their spec

	reload  chan struct{} // wakes the reload loop (model.events)
	log     *syncLog      // the sync prediction log (explanations, buffer, spill)
	watchOK chan struct{} // closed once the model.events watcher reads from the end
}

// New returns the scoring server. It does no I/O: load models with LoadModels (or Install)
// and run the actors.
func New(cfg Config, deps Deps, logger *slog.Logger, reg prometheus.Registerer) *Server {
	m := newMetrics(reg, cfg.DetectionWindow)
	log := newSyncLog(cfg)
	registerLogGauges(reg, log)
	return &Server{
		cfg: cfg, deps: deps, logger: logger, m: m,
		sc:      &scorer{sampleRate: cfg.ExplainSampleRate, topK: cfg.ExplainTopK, m: m, now: time.Now},
		reload:  make(chan struct{}, 1),
		log:     log,
		watchOK: make(chan struct{}),
	}
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { scoringv1.RegisterScoringServiceServer(g, s) }

// Ready is the readiness check: ready once a champion is loaded.
func (s *Server) Ready(context.Context) error {
	if s.champion.peek() == nil {
		return ErrNoModel
	}
	return nil
}

// Close retires the loaded models; their predictors are freed after the last request. Call
// it after every actor stopped.
func (s *Server) Close() {
	s.champion.swap(nil)
	s.challenger.swap(nil)
	s.previous.keep(nil, 0)
}

// Score scores one transaction; see ScoringService.Score. Errors: INVALID_ARGUMENT without
// features and transaction or for a vector of the wrong length, FAILED_PRECONDITION for a
// vector of another spec, UNAVAILABLE while no model is loaded or when FeatureService is
// unreachable.
func (s *Server) Score(ctx context.Context, req *scoringv1.ScoreRequest) (*scoringv1.ScoreResponse, error) {
	champ := s.champion.acquire()
	if champ == nil {
		return nil, status.Error(codes.Unavailable, "no model loaded yet")
	}
	defer champ.release()
	chall := s.acquireChallenger()
	if chall != nil {
		defer chall.release()
	}
	if prev := s.previous.slot.acquire(); prev != nil {
		defer prev.release()
		return s.scoreOne(ctx, champ, prev, chall, req)
	}
	return s.scoreOne(ctx, champ, nil, chall, req)
}

// ScoreBatch scores each request in turn with the same model; the first failing request
// fails the whole call.
func (s *Server) ScoreBatch(ctx context.Context, req *scoringv1.ScoreBatchRequest) (*scoringv1.ScoreBatchResponse, error) {
	champ := s.champion.acquire()
	if champ == nil {
		return nil, status.Error(codes.Unavailable, "no model loaded yet")
	}
	defer champ.release()
	chall := s.acquireChallenger()
	if chall != nil {
		defer chall.release()
	}
	prev := s.previous.slot.acquire()
	if prev != nil {
		defer prev.release()
	}
	out := &scoringv1.ScoreBatchResponse{Responses: make([]*scoringv1.ScoreResponse, 0, len(req.GetRequests()))}
	for i, r := range req.GetRequests() {
		resp, err := s.scoreOne(ctx, champ, prev, chall, r)
		if err != nil {
			st := status.Convert(err)
			return nil, status.Errorf(st.Code(), "request %d: %s", i, st.Message())
		}
		out.Responses = append(out.Responses, resp)
	}
	return out, nil
}

// GetServingModel describes the loaded champion and challenger.
func (s *Server) GetServingModel(context.Context, *scoringv1.GetServingModelRequest) (*scoringv1.GetServingModelResponse, error) {
	resp := &scoringv1.GetServingModelResponse{Champion: describe(s.champion.peek())}
	if s.cfg.ChallengerEnabled {
		resp.Challenger = describe(s.challenger.peek())
	}
	if resp.Champion == nil {
		return nil, status.Error(codes.Unavailable, "no model loaded yet")
	}
	return resp, nil
}

func describe(m *Model) *scoringv1.ServingModel {
	if m == nil {
		return nil
	}
	return &scoringv1.ServingModel{
		ModelName: m.Name, ModelVersion: m.Version, Alias: m.Alias, Task: m.Task, Threshold: m.Threshold,
		FeatureSpecName: m.Spec.Name, FeatureSpecVersion: m.specVersion, Sha256: m.SHA256, LoadedAt: timestamppb.New(m.LoadedAt),
	}
}

func (s *Server) acquireChallenger() *Model {
	if !s.cfg.ChallengerEnabled {
		return nil
	}
	return s.challenger.acquire()
}

// scoreOne scores req with champ, or with prev (may be nil) when the vector is of the
// previous champion's spec during a rollout.
func (s *Server) scoreOne(ctx context.Context, champ, prev, chall *Model, req *scoringv1.ScoreRequest) (*scoringv1.ScoreResponse, error) {
	start := s.sc.now()
	fv := req.GetFeatures()
	var featSec float64
	switch {
	case fv != nil:
	case req.GetTransaction() != nil:
		tx := req.GetTransaction()
		if tx.GetTransactionId() == "" || tx.GetAccountId() == "" {
			champ.obs.invalid.Inc()
			return nil, status.Error(codes.InvalidArgument, "transaction needs transaction_id and account_id")
		}
		var err error
		if fv, err = s.fetchFeatures(ctx, tx); err != nil {
			champ.obs.errored.Inc()
			return nil, err
		}
		featSec = s.sc.now().Sub(start).Seconds()
	default:
		champ.obs.invalid.Inc()
		return nil, status.Error(codes.InvalidArgument, "set transaction or features")
	}
	if fv.GetTransactionId() == "" && req.GetTransaction() != nil {
		fv.TransactionId = req.GetTransaction().GetTransactionId()
	}
	m := pick(champ, prev, fv)
	p, err := s.sc.score(m, chall, request{fv: fv, path: eventsv1.ScoringPath_SCORING_PATH_SYNC, explain: req.GetExplain(), deferExplain: true, featuresSec: featSec})
	switch {
	case errors.Is(err, ErrSpecMismatch):
		s.Reload() // the alias may have moved to a model of this spec already
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrInvalidFeatures):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	e2e := s.sc.now().Sub(start).Seconds()
	s.m.endToEndSync.Observe(e2e)
	if p.Latency.EndToEndSeconds == 0 {
		p.Latency.EndToEndSeconds = e2e
	}
	if p.Explanation != nil {
		s.m.explainedSync.Inc()
	}
	// The response gets its own Latency: an explanation worker may still write p's.
	l := p.Latency
	lat := &eventsv1.Latency{InferenceSeconds: l.InferenceSeconds, FeaturesSeconds: l.FeaturesSeconds,
		ExplanationSeconds: l.ExplanationSeconds, EndToEndSeconds: l.EndToEndSeconds}
	resp := &scoringv1.ScoreResponse{
		TransactionId: p.TransactionId, Score: p.Score, Decision: p.Decision, Threshold: p.Threshold,
		ModelName: p.ModelName, ModelVersion: p.ModelVersion, Task: p.Task, Latency: lat, Shadow: p.Shadow,
	}
	if req.GetExplain() {
		resp.Explanation = p.Explanation
	}
	if p.Explanation == nil && s.sc.owesExplanation(p) {
		s.explainLater(m, p) // off the request path; logs p once explained
	} else {
		s.logSync(p)
	}
	return resp, nil
}

// fetchFeatures asks FeatureService for tx's vector (read-only) within the features timeout.
func (s *Server) fetchFeatures(ctx context.Context, tx *eventsv1.Transaction) (*eventsv1.FeatureVector, error) {
	if s.deps.Features == nil {
		return nil, status.Error(codes.FailedPrecondition, "no feature service configured: send features in the request")
	}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.FeaturesTimeout)
	defer cancel()
	resp, err := s.deps.Features.GetOnlineFeatures(fctx, &featuresv1.GetOnlineFeaturesRequest{Transaction: tx})
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.InvalidArgument:
			return nil, status.Errorf(codes.InvalidArgument, "features: %s", st.Message())
		case codes.Canceled:
			return nil, status.Error(codes.Canceled, "features: canceled")
		default:
			return nil, status.Errorf(codes.Unavailable, "features: %s: %s", st.Code(), st.Message())
		}
	}
	if resp.GetVector() == nil {
		return nil, status.Error(codes.Unavailable, "features: empty response")
	}
	return resp.GetVector(), nil
}
