package trainer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
)

// Sentinel errors the gRPC layer maps to status codes.
var (
	// ErrRetrainRunning means a training run for the model is already in progress (ABORTED).
	ErrRetrainRunning = errors.New("a retrain is already running for this model")
	// ErrInvalidRequest means the request is malformed (INVALID_ARGUMENT).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrPrecondition means the registry is not in a state the operation needs
	// (FAILED_PRECONDITION), e.g. nothing to roll back to.
	ErrPrecondition = errors.New("failed precondition")
	// ErrNotFound means a model or version does not exist (NOT_FOUND).
	ErrNotFound = errors.New("not found")
)

// Run tags and params the trainer writes on MLflow runs.
const (
	tagModel       = "mlops.model_name"
	tagTask        = "mlops.task"
	tagSpecName    = "mlops.feature_spec_name"
	tagSpecVersion = "mlops.feature_spec_version"
	tagActor       = "mlops.actor"
	tagReason      = "mlops.reason"
	tagDriftEvent  = "mlops.drift_event_id"
	championPrefix = "champion_"
)

// Deps are the trainer's collaborators.
type Deps struct {
	// Lib is the loaded LightGBM library.
	Lib *lightgbm.Library
	// Data yields training rows.
	Data DataSource
	// MLflow is the tracking server and registry client.
	MLflow *mlflow.Client
	// Audit publishes model events and reads the audit history back.
	Audit *AuditLog
}

// Server trains models, moves registry aliases and answers audit questions. It implements
// the TrainerService gRPC API and the drift.events handler. It is safe for concurrent use.
type Server struct {
	trainerv1.UnimplementedTrainerServiceServer
	cfg    Config
	deps   Deps
	store  *modelstore.Store
	logger *slog.Logger
	m      *metrics
	now    func() time.Time

	mu        sync.Mutex
	training  map[string]bool        // models with a run in progress
	aliasMu   map[string]*sync.Mutex // serialises alias changes per model
	known     map[string]bool        // models trained by this process (for ListModels)
	lastDrift map[string]time.Time   // last drift-triggered retrain per model
}

// New returns the trainer server.
func New(cfg Config, deps Deps, logger *slog.Logger, reg prometheus.Registerer) *Server {
	return &Server{
		cfg: cfg, deps: deps, logger: logger, m: newMetrics(reg), now: time.Now,
		store:    &modelstore.Store{Client: deps.MLflow, Logger: logger},
		training: map[string]bool{}, aliasMu: map[string]*sync.Mutex{}, known: map[string]bool{}, lastDrift: map[string]time.Time{},
	}
}

// specFor returns the feature spec of model's use case.
func (s *Server) specFor(model string, task eventsv1.Task) featurespec.Spec {
	switch {
	case task == eventsv1.Task_TASK_REGRESSION:
		return featurespec.Purchase()
	case task == eventsv1.Task_TASK_BINARY_CLASSIFICATION:
		return featurespec.Fraud()
	case model == s.cfg.PurchaseModel:
		return featurespec.Purchase()
	default:
		return featurespec.Fraud()
	}
}

func taskProto(t featurespec.Task) eventsv1.Task {
	if t == featurespec.TaskRegression {
		return eventsv1.Task_TASK_REGRESSION
	}
	return eventsv1.Task_TASK_BINARY_CLASSIFICATION
}

func checkModelName(model string) error {
	if model == "" || len(model) > 200 || strings.ContainsAny(model, "'\"/\\ \t\r\n\x00") {
		return fmt.Errorf("%w: model name %q: want a non-empty name without quotes, slashes or spaces", ErrInvalidRequest, model)
	}
	return nil
}

func (s *Server) modelName(name string) string { return cmp.Or(name, s.cfg.FraudModel) }

// lockAlias serialises alias changes of model.
func (s *Server) lockAlias(model string) func() {
	s.mu.Lock()
	mu := s.aliasMu[model]
	if mu == nil {
		mu = &sync.Mutex{}
		s.aliasMu[model] = mu
	}
	s.mu.Unlock()
	mu.Lock()
	return mu.Unlock
}

// RetrainOutcome is a finished run.
type RetrainOutcome = trainerv1.RetrainResponse

// Train runs one training run for req and reports progress (progress may be nil). It
// fails with ErrRetrainRunning when a run for the model is in progress.
func (s *Server) Train(ctx context.Context, req *trainerv1.RetrainRequest, trigger string, progress func(Progress)) (_ *RetrainOutcome, err error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	model := s.modelName(req.GetModelName())
	outcome := "error"
	defer func() {
		switch {
		case errors.Is(err, ErrRetrainRunning):
			outcome = "aborted"
		case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrInvalidParams):
			outcome = "invalid"
		}
		s.m.retrains.WithLabelValues(trigger, outcome).Inc()
	}()
	if err := checkModelName(model); err != nil {
		return nil, err
	}
	if req.GetActor() == "" {
		return nil, fmt.Errorf("%w: actor is required", ErrInvalidRequest)
	}
	spec := s.specFor(model, req.GetTask())
	tp, err := BuildParams(spec.Task, s.cfg.NumIterations, s.cfg.EarlyStoppingRounds, req.GetParams())
	if err != nil {
		return nil, err
	}
	q := DataQuery{Spec: spec, MaxRows: int(req.GetMaxRows())}
	if req.GetDataFrom() != nil {
		q.From = req.GetDataFrom().AsTime()
	}
	if req.GetDataTo() != nil {
		q.To = req.GetDataTo().AsTime()
	}
	if req.GetMaxRows() < 0 || (!q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To)) {
		return nil, fmt.Errorf("%w: max_rows must be >= 0 and data_from before data_to", ErrInvalidRequest)
	}

	s.mu.Lock()
	if s.training[model] {
		s.mu.Unlock()
		return nil, fmt.Errorf("model %q: %w", model, ErrRetrainRunning)
	}
	s.training[model] = true
	s.known[model] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.training, model)
		s.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(ctx, s.cfg.RetrainTimeout)
	defer cancel()
	start := s.now()
	logger := s.logger.With("model", model, "actor", req.GetActor(), "trigger", trigger)
	logger.Info("retrain started", "reason", req.GetReason())

	progress(Progress{Stage: "data", Message: "loading training data"})
	ds, err := s.deps.Data.Load(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("load training data: %w", err)
	}
	if ds.Rows() < minRows {
		return nil, fmt.Errorf("%w: %d rows selected, need at least %d", ErrNoData, ds.Rows(), minRows)
	}
	split, err := SplitByTime(ds, TrainFraction, ValidFraction)
	if err != nil {
		return nil, err
	}
	progress(Progress{Stage: "data", Message: fmt.Sprintf("%d rows: %d train, %d validation, %d holdout", ds.Rows(), split.Train.Rows(), split.Valid.Rows(), split.Holdout.Rows())})
	ev := Evaluator{Threshold: s.cfg.Threshold, ReviewCost: s.cfg.ReviewCost}
	trained, err := Fit(ctx, s.deps.Lib, split, tp, ev, progress)
	if err != nil {
		return nil, err
	}

	// The champion, scored on the same holdout.
	champVersion, champMetrics, champNote, err := s.evaluateChampion(ctx, model, spec, split.Holdout, ev)
	if err != nil {
		return nil, err
	}
	decision := Decide(spec.Task, trained.Metrics, champMetrics, champVersion != "", s.cfg.PromotionMargin)
	if champNote != "" {
		decision.Reason = champNote + "; " + decision.Reason
	}
	if req.GetSkipPromotion() {
		decision = Decision{Reason: "skip_promotion requested; " + decision.Reason}
	}

	progress(Progress{Stage: "log", Message: "logging the run to mlflow"})
	run, mv, source, err := s.logRun(ctx, model, req, trained, ds.Source, champVersion, champMetrics, decision, start)
	if err != nil {
		return nil, err
	}
	resp := &trainerv1.RetrainResponse{
		ModelName: model, RunId: run.ID, ModelVersion: mv.Version, Metrics: trained.Metrics, ChampionMetrics: champMetrics,
		Decision: decision.Reason, TrainingRows: int64(split.Train.Rows()), BestIteration: int32(trained.BestIteration), SourceUri: source,
	}
	s.publishBestEffort(ctx, logger, &eventsv1.ModelEvent{
		Type: eventsv1.ModelEventType_MODEL_EVENT_TYPE_REGISTERED, ModelName: model, ToVersion: mv.Version,
		Actor: req.GetActor(), Reason: req.GetReason(), Sha256: modelstore.SHA256Hex(trained.ModelText),
		FeatureSpecName: spec.Name, FeatureSpecVersion: strconv.Itoa(spec.Version), SourceUri: source, RunId: run.ID,
		Task: taskProto(spec.Task), Metrics: trained.Metrics,
	})
	outcome = "rejected"
	if decision.Promote {
		progress(Progress{Stage: "promote", Message: decision.Reason})
		reason := cmp.Or(req.GetReason(), "retrain") + "; " + decision.Reason
		if _, err := s.MoveAlias(ctx, model, modelstore.AliasChampion, mv.Version, "trainer", reason, eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED); err != nil {
			return nil, fmt.Errorf("promote version %s: %w", mv.Version, err)
		}
		resp.Promoted = true
		outcome = "promoted"
	} else {
		if req.GetSkipPromotion() {
			outcome = "registered"
		}
		s.publishBestEffort(ctx, logger, &eventsv1.ModelEvent{
			Type: eventsv1.ModelEventType_MODEL_EVENT_TYPE_REJECTED, ModelName: model, FromVersion: champVersion, ToVersion: mv.Version,
			Actor: req.GetActor(), Reason: decision.Reason, Sha256: modelstore.SHA256Hex(trained.ModelText),
			FeatureSpecName: spec.Name, FeatureSpecVersion: strconv.Itoa(spec.Version), SourceUri: source, RunId: run.ID,
			Task: taskProto(spec.Task), Metrics: trained.Metrics,
		})
	}
	elapsed := s.now().Sub(start)
	resp.DurationSeconds = elapsed.Seconds()
	s.m.lastSuccess.Set(float64(s.now().UnixNano()) / 1e9)
	s.m.duration.Observe(elapsed.Seconds())
	logger.Info("retrain finished", "model_version", mv.Version, "promoted", resp.Promoted, "decision", decision.Reason, "duration", elapsed)
	progress(Progress{Stage: "done", Message: decision.Reason})
	return resp, nil
}

// evaluateChampion scores the current champion on holdout. It returns "" as version when
// there is none or it cannot serve this spec (note says why).
func (s *Server) evaluateChampion(ctx context.Context, model string, spec featurespec.Spec, holdout *Dataset, ev Evaluator) (version string, metrics map[string]float64, note string, err error) {
	rm, err := s.deps.MLflow.GetRegisteredModel(ctx, model)
	if errors.Is(err, mlflow.ErrNotFound) {
		return "", nil, "", nil
	}
	if err != nil {
		return "", nil, "", fmt.Errorf("look up champion of %q: %w", model, err)
	}
	if _, ok := rm.Aliases[modelstore.AliasChampion]; !ok {
		return "", nil, "", nil
	}
	l, err := s.store.Champion(ctx, model, spec.Fingerprint())
	if errors.Is(err, modelstore.ErrSpecMismatch) {
		return "", nil, "champion was trained on another feature spec", nil
	}
	if err != nil {
		return "", nil, "", fmt.Errorf("load champion of %q: %w", model, err)
	}
	scores, err := ScoreModel(s.deps.Lib, l.ModelText, holdout)
	if err != nil {
		return "", nil, "", fmt.Errorf("score champion v%s on the holdout: %w", l.Version, err)
	}
	m, _, _, err := ev.Evaluate(spec.Task, holdout, scores)
	if err != nil {
		return "", nil, "", fmt.Errorf("evaluate champion v%s: %w", l.Version, err)
	}
	return l.Version, m, "", nil
}

// logRun records the run in MLflow (params, metrics, tags, artifacts) and registers the
// model version.
func (s *Server) logRun(ctx context.Context, model string, req *trainerv1.RetrainRequest, t *Trained, source, champVersion string,
	champMetrics map[string]float64, d Decision, start time.Time) (_ mlflow.Run, _ mlflow.ModelVersion, _ string, err error) {
	mlf := s.deps.MLflow
	expID, err := mlf.EnsureExperiment(ctx, s.cfg.ExperimentPrefix+model)
	if err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", fmt.Errorf("log run: %w", err)
	}
	tags := map[string]string{
		tagModel: model, tagTask: string(t.Spec.Task), tagSpecName: t.Spec.Name, tagSpecVersion: strconv.Itoa(t.Spec.Version),
		tagActor: req.GetActor(), tagReason: req.GetReason(),
	}
	if req.GetDriftEventId() != "" {
		tags[tagDriftEvent] = req.GetDriftEventId()
	}
	run, err := mlf.CreateRun(ctx, expID, fmt.Sprintf("%s-%s", model, start.UTC().Format("20060102T150405Z")), tags)
	if err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", fmt.Errorf("log run: %w", err)
	}
	finished := false
	defer func() {
		if !finished {
			// Best effort: the run failed; mark it so in MLflow.
			ferr := mlf.FinishRun(context.WithoutCancel(ctx), run.ID, mlflow.RunFailed)
			err = errors.Join(err, ferr)
		}
	}()
	params := map[string]string{
		"num_iterations": strconv.Itoa(t.Params.NumRounds), "early_stopping_round": strconv.Itoa(t.Params.EarlyStopping),
		"best_iteration": strconv.Itoa(t.BestIteration), "threshold": strconv.FormatFloat(s.cfg.Threshold, 'g', -1, 64),
		"review_cost": strconv.FormatFloat(s.cfg.ReviewCost, 'g', -1, 64), "promotion_margin": strconv.FormatFloat(s.cfg.PromotionMargin, 'g', -1, 64),
		"rows_train": strconv.Itoa(t.Split.Train.Rows()), "rows_valid": strconv.Itoa(t.Split.Valid.Rows()), "rows_holdout": strconv.Itoa(t.Split.Holdout.Rows()),
		"data_source": source, "data_from": time.Unix(0, t.Split.Train.EventTimes[0]).UTC().Format(time.RFC3339),
		"data_to":      time.Unix(0, t.Split.Holdout.EventTimes[t.Split.Holdout.Rows()-1]).UTC().Format(time.RFC3339),
		"feature_spec": t.Spec.ID(), "champion_version": champVersion, "promote": strconv.FormatBool(d.Promote),
	}
	for k, v := range t.Params.Booster {
		params["lgbm_"+k] = v
	}
	now := s.now()
	var ms []mlflow.Metric
	for _, k := range slices.Sorted(maps.Keys(t.Metrics)) {
		ms = append(ms, mlflow.Metric{Key: k, Value: t.Metrics[k], Timestamp: now})
	}
	for _, k := range slices.Sorted(maps.Keys(champMetrics)) {
		ms = append(ms, mlflow.Metric{Key: championPrefix + k, Value: champMetrics[k], Timestamp: now})
	}
	ms = append(ms, mlflow.Metric{Key: "train_seconds", Value: t.Duration.Seconds(), Timestamp: now})
	if err := mlf.LogBatch(ctx, run.ID, params, ms, nil); err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", fmt.Errorf("log run: %w", err)
	}

	prof, err := referenceProfile(t, s.cfg.Threshold, s.cfg.AlarmWindow)
	if err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", fmt.Errorf("reference profile: %w", err)
	}
	profJSON, err := prof.Marshal()
	if err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", fmt.Errorf("reference profile: %w", err)
	}
	plots, err := Plots(t)
	if err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", err
	}
	card := ModelCard(CardInfo{
		Model: model, RunID: run.ID, Actor: req.GetActor(), Reason: req.GetReason(), Trained: t, DataSource: source,
		Threshold: s.cfg.Threshold, ReviewCost: s.cfg.ReviewCost, LightGBMVersion: s.deps.Lib.Version(),
		ChampionVersion: champVersion, ChampionMetrics: champMetrics, Decision: d, CreatedAt: start,
	})
	man, src, err := modelstore.Publish(ctx, mlf, run, modelstore.Bundle{
		ModelName: model, ModelText: t.ModelText, Spec: t.Spec, Threshold: s.cfg.Threshold, LightGBMVersion: s.deps.Lib.Version(),
		CreatedAt: start, ReferenceProfile: profJSON, ModelCard: card, Plots: plots,
	})
	if err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", fmt.Errorf("log run artifacts: %w", err)
	}
	mv, err := modelstore.Register(ctx, mlf, man, src, run.ID)
	if err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", err
	}
	finished = true
	if err := mlf.FinishRun(ctx, run.ID, mlflow.RunFinished); err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", err
	}
	return run, mv, src, nil
}

// publishBestEffort publishes an informational event (registered, rejected); a failure is
// logged, not returned: the registry state it describes is already durable in MLflow.
func (s *Server) publishBestEffort(ctx context.Context, logger *slog.Logger, ev *eventsv1.ModelEvent) {
	ev.EventId, ev.EventTime = eventid.New(), ts(s.now())
	if err := s.deps.Audit.Publish(ctx, ev); err != nil {
		logger.Warn("model event not published; registry unchanged", "type", ev.GetType().String(), "model_version", ev.GetToVersion(), "err", err)
	}
}

// MoveAlias points alias of model at version and publishes the change, keeping the two
// consistent: the version is verified (files, SHA-256, spec) first, then the alias moves in
// MLflow, then the event is published with acks=all. If publishing fails the alias is moved
// back (compensation) and the error returned, so a change is either both in MLflow and in the
// audit log or in neither. Only a crash between the two steps can leave an unaudited move
// (see docs/trainer.md).
func (s *Server) MoveAlias(ctx context.Context, model, alias, version, actor, reason string, typ eventsv1.ModelEventType) (*eventsv1.ModelEvent, error) {
	label := "promoted"
	if typ == eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK {
		label = "rolled_back"
	}
	unlock := s.lockAlias(model)
	defer unlock()
	mv, err := s.deps.MLflow.GetModelVersion(ctx, model, version)
	if errors.Is(err, mlflow.ErrNotFound) {
		return nil, fmt.Errorf("model %q version %s: %w", model, version, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	l, err := s.store.Load(ctx, model, version, mv.Tags[modelstore.TagSpecFingerprint])
	if err != nil {
		return nil, fmt.Errorf("verify model %q version %s: %w", model, version, err)
	}
	previous := ""
	cur, err := s.deps.MLflow.GetVersionByAlias(ctx, model, alias)
	switch {
	case err == nil:
		previous = cur.Version
	case errors.Is(err, mlflow.ErrNotFound):
	default:
		return nil, err
	}
	if previous == version {
		return nil, fmt.Errorf("%w: version %s already holds %q", ErrPrecondition, version, alias)
	}
	ev := &eventsv1.ModelEvent{
		EventId: eventid.New(), Type: typ, ModelName: model, FromVersion: previous, ToVersion: version, Alias: alias,
		Actor: actor, Reason: reason, Sha256: l.Manifest.SHA256, FeatureSpecName: l.Spec.Name,
		FeatureSpecVersion: strconv.Itoa(l.Spec.Version), SourceUri: l.Source, RunId: l.RunID, Task: taskProto(l.Spec.Task),
	}
	if run, err := s.deps.MLflow.GetRun(ctx, l.RunID); err == nil {
		ev.Metrics = map[string]float64{}
		for k, m := range run.Metrics {
			if !strings.HasPrefix(k, championPrefix) && !math.IsNaN(m.Value) {
				ev.Metrics[k] = m.Value
			}
		}
	}
	if err := s.deps.MLflow.SetAlias(ctx, model, alias, version); err != nil {
		s.m.aliasChanges.WithLabelValues(label, "error").Inc()
		return nil, err
	}
	ev.EventTime = ts(s.now())
	if perr := s.deps.Audit.Publish(ctx, ev); perr != nil {
		cctx := context.WithoutCancel(ctx)
		var cerr error
		if previous != "" {
			cerr = s.deps.MLflow.SetAlias(cctx, model, alias, previous)
		} else {
			cerr = s.deps.MLflow.DeleteAlias(cctx, model, alias)
		}
		if cerr != nil {
			s.m.aliasChanges.WithLabelValues(label, "error").Inc()
			s.logger.Error("alias moved but neither audited nor moved back; fix the alias by hand", "model", model, "alias", alias,
				"model_version", version, "previous", previous, "err", errors.Join(perr, cerr))
			return nil, fmt.Errorf("publish model event: %w; moving the alias back failed too: %w", perr, cerr)
		}
		s.m.aliasChanges.WithLabelValues(label, "compensated").Inc()
		return nil, fmt.Errorf("publish model event (alias moved back to %q): %w", previous, perr)
	}
	s.m.aliasChanges.WithLabelValues(label, "ok").Inc()
	s.logger.Info("alias moved", "model", model, "alias", alias, "model_version", version, "previous", previous, "actor", actor, "type", typ.String())
	return ev, nil
}

// RollbackTarget picks the version a rollback of model's champion goes to: to when given,
// otherwise the version champion held before its latest move, from the audit history.
func RollbackTarget(events []*eventsv1.ModelEvent, model, current, to string) (string, error) {
	if to != "" {
		if to == current {
			return "", fmt.Errorf("%w: version %s is already champion", ErrPrecondition, to)
		}
		return to, nil
	}
	for i := len(events) - 1; i >= 0; i-- {
		ev := events[i]
		if ev.GetModelName() != model || ev.GetAlias() != modelstore.AliasChampion || !movesAlias(ev) {
			continue
		}
		if ev.GetToVersion() != current {
			return "", fmt.Errorf("%w: the audit log says champion is %q but the registry says %q; give the version explicitly", ErrPrecondition, ev.GetToVersion(), current)
		}
		if ev.GetFromVersion() == "" {
			return "", fmt.Errorf("%w: version %s was the first champion; nothing to roll back to", ErrPrecondition, current)
		}
		return ev.GetFromVersion(), nil
	}
	return "", fmt.Errorf("%w: no champion change of %q in the audit log; give the version explicitly", ErrPrecondition, model)
}
