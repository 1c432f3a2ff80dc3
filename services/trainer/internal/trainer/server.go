// Package trainer retrains on drift events or on request, evaluates the challenger against the
// champion on the same time-ordered holdout, registers it in MLflow and promotes it when it
// wins; it moves the registry aliases on request (promote, rollback) and answers audit
// questions from the model.events topic.
package trainer

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
)

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { trainerv1.RegisterTrainerServiceServer(g, s) }

// authorize authenticates the caller of an admin RPC and returns its name, which the audit
// records: the common name of a client certificate listed in AdminClientCNs (verified by the
// server's mutual TLS), or the name of the bearer token presented (AdminToken: "admin";
// AdminTokens: its name). With no admin credential configured (development mode) every call
// passes with an empty name, and the request's self-declared actor is used.
func (s *Server) authorize(ctx context.Context) (string, error) {
	tokens, err := s.cfg.adminTokens()
	if err != nil {
		return "", status.Error(codes.Internal, err.Error()) // Validate rejects this at startup
	}
	if len(tokens) == 0 && len(s.cfg.AdminClientCNs) == 0 {
		return "", nil
	}
	if cn := grpcserve.PeerCommonName(ctx); cn != "" && slices.Contains(s.cfg.AdminClientCNs, cn) {
		return cn, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if !ok {
			continue
		}
		name := ""
		for known, n := range tokens { // every token compared, in constant time each
			if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(known)) == 1 {
				name = n
			}
		}
		if name != "" {
			return name, nil
		}
	}
	return "", status.Error(codes.Unauthenticated, "admin operation: missing or wrong bearer token (authorization metadata) and no allowed client certificate")
}

// asCaller returns req with the authenticated caller as its actor, so the audit records who
// called rather than whom the request names; req itself is not changed.
func asCaller(req *trainerv1.RetrainRequest, caller string) *trainerv1.RetrainRequest {
	if caller == "" || req == nil {
		return req
	}
	req = proto.Clone(req).(*trainerv1.RetrainRequest)
	req.Actor = caller
	return req
}

// toStatus maps an error to a gRPC status at the handler boundary.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrRetrainRunning):
		code = codes.Aborted
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrInvalidParams), errors.Is(err, mlflow.ErrInvalidParameter):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNoData), errors.Is(err, ErrPrecondition), errors.Is(err, modelstore.ErrSpecMismatch), errors.Is(err, modelstore.ErrIntegrity):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrNotFound), errors.Is(err, mlflow.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, mlflow.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

// Retrain implements TrainerService.Retrain.
func (s *Server) Retrain(ctx context.Context, req *trainerv1.RetrainRequest) (*trainerv1.RetrainResponse, error) {
	caller, err := s.authorize(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := s.retrain(ctx, asCaller(req, caller), "manual", nil)
	return resp, toStatus(err)
}

// RetrainStream implements TrainerService.RetrainStream.
func (s *Server) RetrainStream(req *trainerv1.RetrainStreamRequest, stream grpc.ServerStreamingServer[trainerv1.RetrainStreamResponse]) error {
	caller, err := s.authorize(stream.Context())
	if err != nil {
		return err
	}
	var sendErr error
	send := func(p Progress) {
		if sendErr != nil {
			return
		}
		sendErr = stream.Send(&trainerv1.RetrainStreamResponse{
			Stage: p.Stage, Message: p.Message, Iteration: int32(p.Iteration), MaxIterations: int32(p.MaxIterations),
			ValidMetric: p.ValidMetric, ValidMetricName: p.ValidMetricName,
		})
	}
	resp, err := s.retrain(stream.Context(), asCaller(req.GetRequest(), caller), "manual", send)
	if err != nil {
		return toStatus(err)
	}
	if err := stream.Send(&trainerv1.RetrainStreamResponse{Stage: "done", Message: resp.GetDecision(), Result: resp}); err != nil {
		return fmt.Errorf("send result: %w", err)
	}
	return nil
}

func (s *Server) retrain(ctx context.Context, req *trainerv1.RetrainRequest, trigger string, progress func(Progress)) (*trainerv1.RetrainResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: empty request", ErrInvalidRequest)
	}
	return s.Train(ctx, req, trigger, progress)
}

// Promote implements TrainerService.Promote.
func (s *Server) Promote(ctx context.Context, req *trainerv1.PromoteRequest) (*trainerv1.PromoteResponse, error) {
	caller, err := s.authorize(ctx)
	if err != nil {
		return nil, err
	}
	actor := cmp.Or(caller, req.GetActor())
	model := s.modelName(req.GetModelName())
	alias := cmp.Or(req.GetAlias(), modelstore.AliasChampion)
	if err := checkModelName(model); err != nil {
		return nil, toStatus(err)
	}
	if req.GetVersion() == "" || actor == "" || req.GetReason() == "" {
		return nil, status.Error(codes.InvalidArgument, "version, actor and reason are required")
	}
	ev, err := s.MoveAlias(ctx, model, alias, req.GetVersion(), actor, req.GetReason(), eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED)
	if err != nil {
		return nil, toStatus(err)
	}
	return &trainerv1.PromoteResponse{Event: ev}, nil
}

// Rollback implements TrainerService.Rollback.
func (s *Server) Rollback(ctx context.Context, req *trainerv1.RollbackRequest) (*trainerv1.RollbackResponse, error) {
	caller, err := s.authorize(ctx)
	if err != nil {
		return nil, err
	}
	actor := cmp.Or(caller, req.GetActor())
	model := s.modelName(req.GetModelName())
	if err := checkModelName(model); err != nil {
		return nil, toStatus(err)
	}
	if actor == "" || req.GetReason() == "" {
		return nil, status.Error(codes.InvalidArgument, "actor and reason are required")
	}
	current := ""
	mv, err := s.deps.MLflow.GetVersionByAlias(ctx, model, modelstore.AliasChampion)
	switch {
	case err == nil:
		current = mv.Version
	case errors.Is(err, mlflow.ErrNotFound):
		if req.GetToVersion() == "" {
			return nil, status.Errorf(codes.FailedPrecondition, "model %q has no champion to roll back", model)
		}
	default:
		return nil, toStatus(err)
	}
	target := req.GetToVersion()
	if target == "" || target == current {
		events, err := s.deps.Audit.Events(ctx, model)
		if err != nil {
			return nil, toStatus(err)
		}
		if target, err = RollbackTarget(events, model, current, req.GetToVersion()); err != nil {
			return nil, toStatus(err)
		}
	}
	ev, err := s.MoveAlias(ctx, model, modelstore.AliasChampion, target, actor, req.GetReason(), eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK)
	if err != nil {
		return nil, toStatus(err)
	}
	return &trainerv1.RollbackResponse{Event: ev}, nil
}

// ListModels implements TrainerService.ListModels.
func (s *Server) ListModels(ctx context.Context, req *trainerv1.ListModelsRequest) (*trainerv1.ListModelsResponse, error) {
	names := []string{req.GetModelName()}
	if req.GetModelName() == "" {
		s.mu.Lock()
		names = []string{s.cfg.FraudModel, s.cfg.PurchaseModel}
		for n := range s.known {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		s.mu.Unlock()
	}
	resp := &trainerv1.ListModelsResponse{}
	for _, name := range names {
		if err := checkModelName(name); err != nil {
			return nil, toStatus(err)
		}
		vs, err := s.versions(ctx, name)
		if errors.Is(err, mlflow.ErrNotFound) && req.GetModelName() == "" {
			continue
		}
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Versions = append(resp.Versions, vs...)
	}
	return resp, nil
}

// versions lists the versions of one model, newest first, with aliases and run metrics.
func (s *Server) versions(ctx context.Context, model string) ([]*trainerv1.ModelVersion, error) {
	rm, err := s.deps.MLflow.GetRegisteredModel(ctx, model)
	if err != nil {
		return nil, err
	}
	mvs, err := s.deps.MLflow.SearchModelVersions(ctx, model)
	if err != nil {
		return nil, err
	}
	var out []*trainerv1.ModelVersion
	for _, mv := range mvs {
		v := &trainerv1.ModelVersion{
			ModelName: model, Version: mv.Version, RunId: mv.RunID, CreatedAt: timestamppb.New(mv.CreatedAt),
			Sha256: mv.Tags[modelstore.TagModelSHA256], SourceUri: mv.Source, Metrics: map[string]float64{},
		}
		for alias, ver := range rm.Aliases {
			if ver == mv.Version {
				v.Aliases = append(v.Aliases, alias)
			}
		}
		slices.Sort(v.Aliases)
		if mv.RunID != "" {
			if run, err := s.deps.MLflow.GetRun(ctx, mv.RunID); err == nil {
				for k, m := range run.Metrics {
					if !strings.HasPrefix(k, championPrefix) {
						v.Metrics[k] = m.Value
					}
				}
				v.FeatureSpecName, v.FeatureSpecVersion = run.Tags[tagSpecName], run.Tags[tagSpecVersion]
				switch run.Tags[tagTask] {
				case "binary":
					v.Task = eventsv1.Task_TASK_BINARY_CLASSIFICATION
				case "regression":
					v.Task = eventsv1.Task_TASK_REGRESSION
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// defaultHistoryLimit caps GetHistory when the request gives no limit.
const defaultHistoryLimit = 100

// GetHistory implements TrainerService.GetHistory.
func (s *Server) GetHistory(ctx context.Context, req *trainerv1.GetHistoryRequest) (*trainerv1.GetHistoryResponse, error) {
	if req.GetLimit() < 0 {
		return nil, status.Error(codes.InvalidArgument, "limit must be >= 0")
	}
	events, err := s.deps.Audit.Events(ctx, req.GetModelName())
	if err != nil {
		return nil, toStatus(err)
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultHistoryLimit
	}
	resp := &trainerv1.GetHistoryResponse{}
	for i := len(events) - 1; i >= 0 && len(resp.Events) < limit; i-- {
		ev := events[i]
		if req.GetAlias() != "" && ev.GetAlias() != req.GetAlias() {
			continue
		}
		if req.GetSince() != nil && ev.GetEventTime().AsTime().Before(req.GetSince().AsTime()) {
			continue
		}
		resp.Events = append(resp.Events, ev)
	}
	return resp, nil
}

// AsOf implements TrainerService.AsOf.
func (s *Server) AsOf(ctx context.Context, req *trainerv1.AsOfRequest) (*trainerv1.AsOfResponse, error) {
	model := s.modelName(req.GetModelName())
	if req.GetTime() == nil {
		return nil, status.Error(codes.InvalidArgument, "time is required")
	}
	events, err := s.deps.Audit.Events(ctx, model)
	if err != nil {
		return nil, toStatus(err)
	}
	r := AsOf(events, model, cmp.Or(req.GetAlias(), modelstore.AliasChampion), req.GetTime().AsTime())
	return &trainerv1.AsOfResponse{Found: r.Found, Version: r.Version, SinceEvent: r.Since, UntilEvent: r.Until}, nil
}
