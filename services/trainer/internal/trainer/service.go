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
	// tagDecision is promoted, rejected, registered (skip_promotion) or skipped (no run for
	// lack of data); tagDecisionReason the policy's reason with its numbers.
	tagDecision       = "mlops.decision"
	tagDecisionReason = "mlops.decision_reason"
	tagSkipped        = "mlops.skipped"
	tagSkipReason     = "mlops.skip_reason"
	championPrefix    = "champion_"
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
	// owner names this server in the retraining lease (Config.LeaseOwner).
	owner string

	mu       sync.Mutex
	training map[string]bool        // models with a run in progress
	aliasMu  map[string]*sync.Mutex // serialises alias changes per model
	known    map[string]bool        // models trained by this process (for ListModels)
}

// New returns the trainer server. Two servers (replicas, or a restarted process) share the
// retraining lease and the drift cooldown through tags on the registered model in MLflow.
func New(cfg Config, deps Deps, logger *slog.Logger, reg prometheus.Registerer) *Server {
	return &Server{
		cfg: cfg, deps: deps, logger: logger, m: newMetrics(reg), now: time.Now,
		owner:    cmp.Or(cfg.LeaseOwner, defaultLeaseOwner()),
		store:    &modelstore.Store{Client: deps.MLflow, Logger: logger},
		training: map[string]bool{}, aliasMu: map[string]*sync.Mutex{}, known: map[string]bool{},
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

// RunOptions say why a run happens and which rows it reads.
type RunOptions struct {
	// Trigger labels metrics: "manual" or "drift".
	Trigger string
	// ChangeStart is the drift event's change_start; when set (and the request has no
	// data_from) the run reads rows from ChangeStart − Config.PreChange on.
	ChangeStart time.Time
	// WaitForData keeps a run whose data is short of the minimum waiting (re-reading every
	// Config.DataPoll) for up to this long before it is recorded as skipped: after a drift
	// event the labels of the changed traffic are still arriving. Zero: no wait.
	WaitForData time.Duration
}

// promotionSeed seeds the promotion bootstrap, so a decision can be recomputed exactly.
const promotionSeed = 1

// Train runs one training run for req and reports progress (progress may be nil). It
// fails with ErrRetrainRunning when a run for the model is in progress here or on another
// replica (the lease on the registered model).
func (s *Server) Train(ctx context.Context, req *trainerv1.RetrainRequest, trigger string, progress func(Progress)) (*RetrainOutcome, error) {
	return s.TrainWith(ctx, req, RunOptions{Trigger: trigger}, progress)
}

// TrainWith is Train with run options. The steps: check the request, take the lease, read
// the data (too little: a skipped run is recorded and ErrNoData returned), split by time,
// fit, score the champion on the same holdout rows after its own training data, decide by
// the paired bootstrap interval, log and register, publish the decision, promote. Only a
// run that registered a version records the retrain time that starts the drift cooldown.
func (s *Server) TrainWith(ctx context.Context, req *trainerv1.RetrainRequest, opts RunOptions, progress func(Progress)) (_ *RetrainOutcome, err error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	trigger := opts.Trigger
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
	window := map[string]string{"window_origin": "lookback", "window_from": "", "window_to": "", "change_start": "", "pre_change": ""}
	switch {
	case req.GetDataFrom() != nil:
		q.From = req.GetDataFrom().AsTime()
		window["window_origin"] = "request"
	case !opts.ChangeStart.IsZero():
		q.From = opts.ChangeStart.Add(-s.cfg.PreChange)
		window["window_origin"] = "change_start"
		window["change_start"] = opts.ChangeStart.UTC().Format(time.RFC3339Nano)
		window["pre_change"] = s.cfg.PreChange.String()
	}
	if req.GetDataTo() != nil {
		q.To = req.GetDataTo().AsTime()
		window["window_to"] = q.To.UTC().Format(time.RFC3339Nano)
	}
	if !q.From.IsZero() {
		window["window_from"] = q.From.UTC().Format(time.RFC3339Nano)
	} else if s.cfg.DataSource == DataSourceES {
		window["window_from"] = "now-" + s.cfg.ES.Lookback.String()
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
	ctx, held, err := s.acquireLease(ctx, model)
	if err != nil {
		return nil, err
	}
	completed := false
	defer func() { held.release(ctx, completed) }()

	start := s.now()
	logger := s.logger.With("model", model, "actor", req.GetActor(), "trigger", trigger)
	logger.Info("retrain started", "reason", req.GetReason(), "window_from", window["window_from"], "window_origin", window["window_origin"])

	progress(Progress{Stage: "data", Message: "loading training data"})
	var ds *Dataset
	var short *NotEnoughDataError
	for waited := time.Duration(0); ; waited += s.cfg.DataPoll {
		ds, short, err = s.loadChecked(ctx, q, spec)
		if err != nil {
			return nil, err
		}
		if short == nil || waited >= opts.WaitForData {
			break
		}
		if waited == 0 {
			logger.Info("waiting for labelled data", "have", short.Error(), "wait_max", opts.WaitForData)
		}
		progress(Progress{Stage: "data", Message: "waiting for labelled data: " + short.Error()})
		if !sleepCtx(ctx, s.cfg.DataPoll) {
			return nil, fmt.Errorf("waiting for labelled data: %w", ctx.Err())
		}
	}
	leaseCtx := ctx // the shadow period has its own time limit
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RetrainTimeout)
	defer cancel()
	if short != nil {
		s.recordSkip(ctx, logger, model, spec, req, short, window)
		outcome = "skipped"
		return nil, short
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

	// The champion, scored on the same holdout rows, after its own training data.
	progress(Progress{Stage: "evaluate", Message: "scoring the champion on the same holdout"})
	champ, err := s.evaluateChampion(ctx, model, spec, split.Holdout, ev)
	if err != nil {
		return nil, err
	}
	var comparison Comparison
	if champ.Version != "" {
		challengerScores := make([]float64, len(champ.Rows))
		for k, i := range champ.Rows {
			challengerScores[k] = trained.HoldoutScores[i]
		}
		bstart := time.Now()
		comparison = Compare(spec.Task, champ.Scores, challengerScores, champ.Holdout.Y, s.cfg.PromotionResamples, s.cfg.PromotionConfidence, promotionSeed)
		s.m.bootstrap.Observe(time.Since(bstart).Seconds())
	}
	decision := Decide(spec.Task, trained.Metrics, champ.Version != "", comparison, s.cfg.PromotionMargin)
	if champ.Note != "" {
		decision.Reason = champ.Note + "; " + decision.Reason
	}
	if req.GetSkipPromotion() {
		decision.Promote = false
		decision.Reason = "skip_promotion requested; " + decision.Reason
	}
	decision.Shadow = decision.Promote && champ.Version != "" && s.cfg.Shadow.Predictions > 0
	extra := maps.Clone(window)
	extra["train_to"] = time.Unix(0, split.Valid.EventTimes[split.Valid.Rows()-1]).UTC().Format(time.RFC3339Nano)
	extra["holdout_from"] = time.Unix(0, split.Holdout.EventTimes[0]).UTC().Format(time.RFC3339Nano)
	extra["labelled_rows"] = strconv.Itoa(ds.Rows())
	extra["positives"] = strconv.Itoa(ds.Positives())
	extra["comparison_rows"] = strconv.Itoa(comparison.Rows)
	extra["comparison_note"] = champ.Note
	extra["champion_train_to"] = champ.TrainEnd
	extra["promotion_resamples"] = strconv.Itoa(s.cfg.PromotionResamples)
	extra["promotion_confidence"] = strconv.FormatFloat(s.cfg.PromotionConfidence, 'g', -1, 64)
	extra["promotion_seed"] = strconv.Itoa(promotionSeed)
	extra["decision_reason"] = truncate(decision.Reason, 6000)

	progress(Progress{Stage: "log", Message: "logging the run to mlflow"})
	run, mv, source, err := s.logRun(ctx, model, req, trained, ds.Source, champ.Version, champ.Metrics, decision, start, extra)
	if err != nil {
		return nil, err
	}
	resp := &trainerv1.RetrainResponse{
		ModelName: model, RunId: run.ID, ModelVersion: mv.Version, Metrics: trained.Metrics, ChampionMetrics: champ.Metrics,
		Decision: decision.Reason, TrainingRows: int64(split.Train.Rows()), BestIteration: int32(trained.BestIteration), SourceUri: source,
	}
	s.publishBestEffort(ctx, logger, &eventsv1.ModelEvent{
		Type: eventsv1.ModelEventType_MODEL_EVENT_TYPE_REGISTERED, ModelName: model, ToVersion: mv.Version,
		Actor: req.GetActor(), Reason: req.GetReason(), Sha256: modelstore.SHA256Hex(trained.ModelText),
		FeatureSpecName: spec.Name, FeatureSpecVersion: strconv.Itoa(spec.Version), SourceUri: source, RunId: run.ID,
		Task: taskProto(spec.Task), Metrics: trained.Metrics,
	})
	expectFrom := ""
	if decision.Shadow {
		decision.Shadow = false
		sres, serr := s.runShadow(leaseCtx, logger, model, spec, champ, mv.Version, trained, progress)
		if serr != nil && !errors.Is(serr, errShadowIncomplete) {
			return nil, fmt.Errorf("shadow period of version %s: %w", mv.Version, serr)
		}
		decision.Promote = serr == nil && sres.Pass
		decision.Reason += "; " + sres.Reason
		if decision.Metrics == nil {
			decision.Metrics = map[string]float64{}
		}
		maps.Copy(decision.Metrics, sres.Metrics())
		resp.Decision = decision.Reason
		s.recordShadow(leaseCtx, logger, run.ID, decision, req)
		expectFrom = champ.Version // promote only over the champion the shadow compared with
	}
	outcome = "rejected"
	if decision.Promote {
		progress(Progress{Stage: "promote", Message: decision.Reason})
		reason := cmp.Or(req.GetReason(), "retrain") + "; " + decision.Reason
		if _, err := s.moveAlias(ctx, model, modelstore.AliasChampion, mv.Version, "trainer", reason, eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED, expectFrom); err != nil {
			return nil, fmt.Errorf("promote version %s: %w", mv.Version, err)
		}
		resp.Promoted = true
		outcome = "promoted"
	} else {
		if req.GetSkipPromotion() {
			outcome = "registered"
		}
		metrics := maps.Clone(trained.Metrics)
		maps.Copy(metrics, decision.Metrics)
		s.publishBestEffort(ctx, logger, &eventsv1.ModelEvent{
			Type: eventsv1.ModelEventType_MODEL_EVENT_TYPE_REJECTED, ModelName: model, FromVersion: champ.Version, ToVersion: mv.Version,
			Actor: req.GetActor(), Reason: decision.Reason, Sha256: modelstore.SHA256Hex(trained.ModelText),
			FeatureSpecName: spec.Name, FeatureSpecVersion: strconv.Itoa(spec.Version), SourceUri: source, RunId: run.ID,
			Task: taskProto(spec.Task), Metrics: metrics,
		})
	}
	// Only a drift-triggered run starts the drift cooldown: a manual retrain (or the first
	// version) just before a drift event must not swallow it, since the detector recommends
	// retraining once per shift.
	completed = trigger == "drift"
	elapsed := s.now().Sub(start)
	resp.DurationSeconds = elapsed.Seconds()
	s.m.lastSuccess.Set(float64(s.now().UnixNano()) / 1e9)
	s.m.duration.Observe(elapsed.Seconds())
	logger.Info("retrain finished", "model_version", mv.Version, "promoted", resp.Promoted, "decision", decision.Reason, "duration", elapsed)
	progress(Progress{Stage: "done", Message: decision.Reason})
	return resp, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// recordSkip records a retrain decided against for lack of labelled data: an MLflow run
// tagged mlops.skipped with the counts, a REJECTED model event without to_version, and the
// skipped counter. MLflow and Kafka failures are logged; the caller returns ErrNoData anyway.
func (s *Server) recordSkip(ctx context.Context, logger *slog.Logger, model string, spec featurespec.Spec, req *trainerv1.RetrainRequest,
	short *NotEnoughDataError, window map[string]string) {
	s.m.skipped.WithLabelValues("not_enough_data").Inc()
	logger.Warn("retrain skipped: not enough labelled data", "rows", short.Rows, "positives", short.Positives,
		"min_rows", short.MinRows, "min_positives", short.MinPositives)
	mlf := s.deps.MLflow
	runID := ""
	err := func() error {
		expID, err := mlf.EnsureExperiment(ctx, s.cfg.ExperimentPrefix+model)
		if err != nil {
			return err
		}
		tags := map[string]string{
			tagModel: model, tagTask: string(spec.Task), tagSpecName: spec.Name, tagSpecVersion: strconv.Itoa(spec.Version),
			tagActor: req.GetActor(), tagReason: req.GetReason(), tagSkipped: "true", tagDecision: "skipped",
			tagSkipReason: truncate(short.Error(), 5000),
		}
		if req.GetDriftEventId() != "" {
			tags[tagDriftEvent] = req.GetDriftEventId()
		}
		run, err := mlf.CreateRun(ctx, expID, fmt.Sprintf("%s-skipped-%s", model, s.now().UTC().Format("20060102T150405Z")), tags)
		if err != nil {
			return err
		}
		runID = run.ID
		params := maps.Clone(window)
		params["labelled_rows"] = strconv.Itoa(short.Rows)
		params["positives"] = strconv.Itoa(short.Positives)
		params["min_rows"] = strconv.Itoa(short.MinRows)
		params["min_positives"] = strconv.Itoa(short.MinPositives)
		params["feature_spec"] = spec.ID()
		now := s.now()
		ms := []mlflow.Metric{{Key: "labelled_rows", Value: float64(short.Rows), Timestamp: now}, {Key: "positives", Value: float64(short.Positives), Timestamp: now}}
		if err := mlf.LogBatch(ctx, run.ID, params, ms, nil); err != nil {
			return err
		}
		return mlf.FinishRun(ctx, run.ID, mlflow.RunFinished)
	}()
	if err != nil {
		logger.Warn("skipped retrain not recorded in mlflow", "err", err)
	}
	from := ""
	if cur, err := mlf.GetVersionByAlias(ctx, model, modelstore.AliasChampion); err == nil {
		from = cur.Version
	}
	s.publishBestEffort(ctx, logger, &eventsv1.ModelEvent{
		Type: eventsv1.ModelEventType_MODEL_EVENT_TYPE_REJECTED, ModelName: model, FromVersion: from,
		Actor: req.GetActor(), Reason: short.Error(), FeatureSpecName: spec.Name, FeatureSpecVersion: strconv.Itoa(spec.Version),
		RunId: runID, Task: taskProto(spec.Task),
		Metrics: map[string]float64{"labelled_rows": float64(short.Rows), "positives": float64(short.Positives),
			"min_rows": float64(short.MinRows), "min_positives": float64(short.MinPositives)},
	})
}

// championEval is the champion scored on the comparison rows.
type championEval struct {
	// Version is "" when there is no champion or it cannot serve this spec (Note says why).
	Version string
	// Rows are the indices of the comparison rows in the holdout: the holdout rows after the
	// champion's training data. Holdout holds those rows, Scores the champion's scores of
	// them and Metrics its metrics on them (nil without rows).
	Rows    []int
	Holdout *Dataset
	Scores  []float64
	Metrics map[string]float64
	// TrainEnd is the end of the champion's training data (its run's train_to, else
	// data_to), RFC3339; Note says what was done about it.
	TrainEnd string
	Note     string
}

// evaluateChampion scores the current champion on the holdout rows it did not train on.
// The holdout is the newest slice of the data; if the champion's own training data
// (its run's train_to param; data_to for runs that predate it, which also covers their
// holdout) reaches into it, only the rows after it are compared, and Note says so.
func (s *Server) evaluateChampion(ctx context.Context, model string, spec featurespec.Spec, holdout *Dataset, ev Evaluator) (championEval, error) {
	rm, err := s.deps.MLflow.GetRegisteredModel(ctx, model)
	if errors.Is(err, mlflow.ErrNotFound) {
		return championEval{}, nil
	}
	if err != nil {
		return championEval{}, fmt.Errorf("look up champion of %q: %w", model, err)
	}
	if _, ok := rm.Aliases[modelstore.AliasChampion]; !ok {
		return championEval{}, nil
	}
	l, err := s.store.Champion(ctx, model, spec.Fingerprint())
	if errors.Is(err, modelstore.ErrSpecMismatch) {
		return championEval{Note: "champion was trained on another feature spec"}, nil
	}
	if err != nil {
		return championEval{}, fmt.Errorf("load champion of %q: %w", model, err)
	}
	out := championEval{Version: l.Version}
	run, err := s.deps.MLflow.GetRun(ctx, l.RunID)
	if err != nil {
		return championEval{}, fmt.Errorf("read the training range of champion v%s: %w", l.Version, err)
	}
	endParam := "train_to"
	out.TrainEnd = run.Params["train_to"]
	if out.TrainEnd == "" {
		endParam, out.TrainEnd = "data_to", run.Params["data_to"]
	}
	var end time.Time
	if out.TrainEnd != "" {
		if end, err = time.Parse(time.RFC3339Nano, out.TrainEnd); err != nil {
			return championEval{}, fmt.Errorf("champion v%s param %s %q: %w", l.Version, endParam, out.TrainEnd, err)
		}
	}
	for i, t := range holdout.EventTimes {
		if end.IsZero() || t > end.UnixNano() {
			out.Rows = append(out.Rows, i)
		}
	}
	switch {
	case end.IsZero():
		out.Note = fmt.Sprintf("champion v%s has no recorded training range; compared on the whole holdout", l.Version)
	case len(out.Rows) == holdout.Rows():
		// The champion's training data ends before the holdout: nothing to cut.
	case len(out.Rows) == 0:
		out.Note = fmt.Sprintf("no holdout row after champion v%s's training data (%s %s)", l.Version, endParam, out.TrainEnd)
	default:
		out.Note = fmt.Sprintf("holdout cut to the %d of %d rows after champion v%s's training data (%s %s)", len(out.Rows), holdout.Rows(), l.Version, endParam, out.TrainEnd)
	}
	out.Holdout = holdout
	if len(out.Rows) != holdout.Rows() {
		out.Holdout = holdout.subset(out.Rows, spec.Len())
	}
	if len(out.Rows) == 0 {
		return out, nil
	}
	if out.Scores, err = ScoreModel(s.deps.Lib, l.ModelText, out.Holdout); err != nil {
		return championEval{}, fmt.Errorf("score champion v%s on the holdout: %w", l.Version, err)
	}
	m, _, _, err := ev.Evaluate(spec.Task, out.Holdout, out.Scores)
	if err != nil {
		// E.g. one class left after the cut; the bootstrap says the same (no interval).
		out.Note = strings.TrimPrefix(out.Note+"; champion metrics unavailable: "+err.Error(), "; ")
		return out, nil
	}
	out.Metrics = m
	return out, nil
}

// logRun records the run in MLflow (params, metrics, tags, artifacts) and registers the
// model version.
func (s *Server) logRun(ctx context.Context, model string, req *trainerv1.RetrainRequest, t *Trained, source, champVersion string,
	champMetrics map[string]float64, d Decision, start time.Time, extra map[string]string) (_ mlflow.Run, _ mlflow.ModelVersion, _ string, err error) {
	mlf := s.deps.MLflow
	expID, err := mlf.EnsureExperiment(ctx, s.cfg.ExperimentPrefix+model)
	if err != nil {
		return mlflow.Run{}, mlflow.ModelVersion{}, "", fmt.Errorf("log run: %w", err)
	}
	tags := map[string]string{
		tagModel: model, tagTask: string(t.Spec.Task), tagSpecName: t.Spec.Name, tagSpecVersion: strconv.Itoa(t.Spec.Version),
		tagActor: req.GetActor(), tagReason: req.GetReason(), tagDecision: decisionTag(d, req), tagDecisionReason: truncate(d.Reason, 5000),
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
	maps.Copy(params, extra)
	now := s.now()
	var ms []mlflow.Metric
	for _, k := range slices.Sorted(maps.Keys(t.Metrics)) {
		ms = append(ms, mlflow.Metric{Key: k, Value: t.Metrics[k], Timestamp: now})
	}
	for _, k := range slices.Sorted(maps.Keys(champMetrics)) {
		ms = append(ms, mlflow.Metric{Key: championPrefix + k, Value: champMetrics[k], Timestamp: now})
	}
	for _, k := range slices.Sorted(maps.Keys(d.Metrics)) {
		ms = append(ms, mlflow.Metric{Key: k, Value: d.Metrics[k], Timestamp: now})
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

// decisionTag is the value of tagDecision for a run that registered a version.
func decisionTag(d Decision, req *trainerv1.RetrainRequest) string {
	switch {
	case d.Promote && d.Shadow:
		return "shadow"
	case d.Promote:
		return "promoted"
	case req.GetSkipPromotion():
		return "registered"
	}
	return "rejected"
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
	return s.moveAlias(ctx, model, alias, version, actor, reason, typ, "")
}

// errAliasMoved means the alias no longer points at the version a conditional move expected.
var errAliasMoved = errors.New("alias no longer holds the expected version")

// moveAlias is MoveAlias; when expectFrom is set the move happens only if alias still points
// at expectFrom (checked under the model's alias lock), else the error matches errAliasMoved
// and ErrPrecondition.
func (s *Server) moveAlias(ctx context.Context, model, alias, version, actor, reason string, typ eventsv1.ModelEventType, expectFrom string) (*eventsv1.ModelEvent, error) {
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
	if expectFrom != "" && previous != expectFrom {
		return nil, fmt.Errorf("%w: %w: %q holds version %q, not %s", ErrPrecondition, errAliasMoved, alias, previous, expectFrom)
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

// loadChecked loads the training data of q and checks it against the minimum row and
// positive counts: short is non-nil (and ds may be nil) when the data falls short.
func (s *Server) loadChecked(ctx context.Context, q DataQuery, spec featurespec.Spec) (ds *Dataset, short *NotEnoughDataError, err error) {
	ds, err = s.deps.Data.Load(ctx, q)
	switch {
	case errors.As(err, &short):
	case errors.Is(err, ErrNoData):
		short = &NotEnoughDataError{MinRows: s.cfg.MinLabelledRows, Detail: err.Error()}
	case err != nil:
		return nil, nil, fmt.Errorf("load training data: %w", err)
	default:
		short = &NotEnoughDataError{Rows: ds.Rows(), Positives: ds.Positives(), MinRows: s.cfg.MinLabelledRows, Detail: ds.Source}
	}
	if spec.Task == featurespec.TaskBinary {
		short.MinPositives = s.cfg.MinPositives
	}
	short.MinRows = max(short.MinRows, s.cfg.MinLabelledRows, minRows)
	if err != nil || short.Rows < short.MinRows || short.Positives < short.MinPositives {
		return ds, short, nil
	}
	return ds, nil, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
