package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
)

// ShadowConfig configures the shadow period between a passed offline comparison and the
// champion alias move (-shadow.*). The trainer points the challenger alias at the new
// version; scoring replicas started with -challenger.enabled score it beside the champion on
// live traffic and put its score in Prediction.shadow. The trainer tails the predictions
// and labels topics, and compares the two models on the same live rows: on realized labels
// when enough arrived, else on confidence-based estimates.
type ShadowConfig struct {
	// Predictions is how many shadow-scored live predictions the decision needs; 0 turns the
	// shadow period off (the alias moves right after the offline comparison). Default: 0.
	Predictions int
	// Timeout bounds the shadow period; a challenger with fewer predictions by then is not
	// promoted (is scoring running with -challenger.enabled?). Default: 1h.
	Timeout time.Duration
	// LabelWait is how long the trainer keeps collecting labels for the shadow rows after
	// the last needed prediction, unless MinLabelled are in already. Default: 2m.
	LabelWait time.Duration
	// MinLabelled is the fewest labelled shadow rows (binary: with both classes) for a
	// realized comparison; fewer fall back to estimates. Default: 300.
	MinLabelled int
	// Tolerance is how much worse than the champion's the challenger's live metric may be
	// (AUC lower, MSE higher) and still pass: the offline interval already showed it better,
	// the shadow guards against a regression on live traffic. Default: 0.01.
	Tolerance float64
	// PredictionsTopic and LabelsTopic are tailed during the shadow period.
	PredictionsTopic string
	LabelsTopic      string
}

// shadowRow is one live prediction of the champion with the challenger's shadow score.
type shadowRow struct {
	champion, challenger float64
	threshold            float64
	label                float64
	labelled             bool
}

// ShadowResult is the verdict of a shadow period.
type ShadowResult struct {
	Predictions int
	Labelled    int
	Positives   int
	// Basis is "realized" (labels) or "estimated" (confidence-based, no labels needed).
	Basis string
	// Metric is "auc" (binary) or "mse" (regression); Champion and Challenger its values on
	// the same rows.
	Metric               string
	Champion, Challenger float64
	Pass                 bool
	Reason               string
}

// Metrics are the result's numbers for the model event and the MLflow run.
func (r ShadowResult) Metrics() map[string]float64 {
	m := map[string]float64{
		"shadow_predictions": float64(r.Predictions), "shadow_labelled": float64(r.Labelled),
		"shadow_positives": float64(r.Positives),
	}
	if !math.IsNaN(r.Champion) && !math.IsNaN(r.Challenger) && r.Metric != "" {
		m["shadow_champion_"+r.Metric] = r.Champion
		m["shadow_challenger_"+r.Metric] = r.Challenger
	}
	return m
}

// shadowCollector gathers shadow rows and their labels from the tailed topics.
type shadowCollector struct {
	model, champion, challenger string
	purchase                    bool
	maxLabels                   int

	mu      sync.Mutex
	rows    map[string]*shadowRow
	early   map[string]float64 // labels whose prediction was not seen (yet)
	other   int                // shadow predictions next to another champion version
	labels  int
	invalid int
}

func newShadowCollector(model, champion, challenger string, task featurespec.Task, want int) *shadowCollector {
	return &shadowCollector{
		model: model, champion: champion, challenger: challenger, purchase: task == featurespec.TaskRegression,
		maxLabels: max(10*want, 10000), rows: map[string]*shadowRow{}, early: map[string]float64{},
	}
}

func (c *shadowCollector) prediction(b []byte) {
	var p eventsv1.Prediction
	if err := proto.Unmarshal(b, &p); err != nil {
		c.mu.Lock()
		c.invalid++
		c.mu.Unlock()
		return
	}
	sh := p.GetShadow()
	if p.GetModelName() != c.model || sh == nil || sh.GetModelVersion() != c.challenger || p.GetTransactionId() == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.GetModelVersion() != c.champion {
		c.other++
		return
	}
	if _, dup := c.rows[p.GetTransactionId()]; dup { // a redelivered prediction counts once
		return
	}
	r := &shadowRow{champion: p.GetScore(), challenger: sh.GetScore(), threshold: p.GetThreshold()}
	if l, ok := c.early[p.GetTransactionId()]; ok {
		r.label, r.labelled = l, true
		delete(c.early, p.GetTransactionId())
		c.labels++
	}
	c.rows[p.GetTransactionId()] = r
}

func (c *shadowCollector) label(b []byte) {
	var l eventsv1.Label
	if err := proto.Unmarshal(b, &l); err != nil {
		c.mu.Lock()
		c.invalid++
		c.mu.Unlock()
		return
	}
	if (l.GetKind() == eventsv1.LabelKind_LABEL_KIND_PURCHASE) != c.purchase || l.GetTransactionId() == "" ||
		math.IsNaN(l.GetLabel()) || math.IsInf(l.GetLabel(), 0) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.rows[l.GetTransactionId()]; ok {
		if !r.labelled {
			c.labels++
		}
		r.label, r.labelled = l.GetLabel(), true
		return
	}
	if len(c.early) < c.maxLabels {
		c.early[l.GetTransactionId()] = l.GetLabel()
	}
}

// counts returns the predictions and labelled rows collected so far.
func (c *shadowCollector) counts() (predictions, labelled int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rows), c.labels
}

func (c *shadowCollector) snapshot() []shadowRow {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]shadowRow, 0, len(c.rows))
	for _, r := range c.rows {
		out = append(out, *r)
	}
	return out
}

// JudgeShadow compares challenger and champion on the same live rows. With at least
// minLabelled labelled rows (binary: both classes present) it compares the realized metric
// (AUC, or MSE for regression); otherwise confidence-based estimates: for binary the expected
// AUC under each model's Platt calibration fitted on the offline holdout (champ, chall: nil
// means no estimate), for regression the expected squared error Σ p(1−p)/n of each model's
// predictions read as probabilities. The challenger passes when it is not worse than the
// champion by more than tol.
func JudgeShadow(task featurespec.Task, rows []shadowRow, champ, chall *driftstat.Platt, minLabelled int, tol float64) ShadowResult {
	res := ShadowResult{Predictions: len(rows), Metric: "auc", Champion: math.NaN(), Challenger: math.NaN()}
	regression := task == featurespec.TaskRegression
	if regression {
		res.Metric = "mse"
	}
	var cs, hs, ys []float64
	for _, r := range rows {
		if !r.labelled {
			continue
		}
		cs, hs, ys = append(cs, r.champion), append(hs, r.challenger), append(ys, r.label)
		if r.label >= 0.5 {
			res.Positives++
		}
	}
	res.Labelled = len(ys)
	if len(rows) == 0 {
		res.Reason = "shadow: no live predictions were shadow-scored"
		return res
	}
	realized := res.Labelled >= max(minLabelled, 1) && (regression || (res.Positives > 0 && res.Positives < res.Labelled))
	switch {
	case realized && regression:
		res.Basis = "realized"
		res.Champion, res.Challenger = driftstat.MSE(cs, ys), driftstat.MSE(hs, ys)
	case realized:
		res.Basis = "realized"
		labels := make([]bool, len(ys))
		for i, y := range ys {
			labels[i] = y >= 0.5
		}
		res.Champion, res.Challenger = driftstat.AUC(cs, labels), driftstat.AUC(hs, labels)
	case regression:
		res.Basis = "estimated"
		res.Champion, res.Challenger = expectedSquaredError(rows, func(r shadowRow) float64 { return r.champion }),
			expectedSquaredError(rows, func(r shadowRow) float64 { return r.challenger })
	default:
		res.Basis = "estimated"
		if champ == nil || chall == nil {
			res.Reason = fmt.Sprintf("shadow: %d predictions, %d labelled (fewer than %d with both classes) and no calibration to estimate AUC with",
				res.Predictions, res.Labelled, minLabelled)
			return res
		}
		res.Champion, res.Challenger = estimatedAUC(rows, *champ, func(r shadowRow) float64 { return r.champion }),
			estimatedAUC(rows, *chall, func(r shadowRow) float64 { return r.challenger })
	}
	worse := res.Champion - res.Challenger // how much worse the challenger is
	rel, op := "-", ">="
	if regression {
		worse, rel, op = -worse, "+", "<="
	}
	res.Pass = !math.IsNaN(worse) && worse <= tol
	verdict := "passed"
	if !res.Pass {
		verdict, op = "failed", map[string]string{">=": "<", "<=": ">"}[op]
	}
	res.Reason = fmt.Sprintf("shadow %s: %s live %s %.4f %s champion's %.4f %s %g (%d predictions, %d labelled, %d positive)",
		verdict, res.Basis, res.Metric, res.Challenger, op, res.Champion, rel, tol, res.Predictions, res.Labelled, res.Positives)
	return res
}

func estimatedAUC(rows []shadowRow, cal driftstat.Platt, score func(shadowRow) float64) float64 {
	probs, scores := make([]float64, len(rows)), make([]float64, len(rows))
	for i, r := range rows {
		scores[i] = score(r)
		probs[i] = cal.Apply(scores[i])
	}
	return driftstat.EstimatePerformance(probs, rows[0].threshold, scores).AUC
}

func expectedSquaredError(rows []shadowRow, pred func(shadowRow) float64) float64 {
	var sum float64
	for _, r := range rows {
		p := min(max(pred(r), 0), 1)
		sum += p * (1 - p)
	}
	return sum / float64(len(rows))
}

// errShadowIncomplete means the shadow period ended before enough predictions were scored.
var errShadowIncomplete = errors.New("shadow period incomplete")

// runShadow runs the shadow period of version (which passed the offline comparison against
// champ) and returns its verdict. The challenger alias is removed again whatever the outcome.
func (s *Server) runShadow(ctx context.Context, logger *slog.Logger, model string, spec featurespec.Spec, champ championEval,
	version string, trained *Trained, progress func(Progress)) (ShadowResult, error) {
	cfg := s.cfg.Shadow
	col := newShadowCollector(model, champ.Version, version, spec.Task, cfg.Predictions)
	tailCtx, stop := context.WithCancel(ctx)
	var ready, tails sync.WaitGroup
	defer func() { stop(); tails.Wait() }() // the tails end when their context does
	for topic, handle := range map[string]func([]byte){cfg.PredictionsTopic: col.prediction, cfg.LabelsTopic: col.label} {
		ready.Add(1)
		once := sync.OnceFunc(ready.Done)
		tails.Go(func() {
			defer once() // a tail that gives up (ctx done) must not leave the wait hanging
			kafkaio.Tail(tailCtx, s.cfg.Kafka, topic, logger, once, func(m kafka.Message) { handle(m.Value) })
		})
	}
	tailing := make(chan struct{})
	go func() { ready.Wait(); close(tailing) }()
	select {
	case <-tailing:
	case <-ctx.Done():
		return ShadowResult{}, ctx.Err()
	case <-time.After(cfg.Timeout):
		return ShadowResult{}, fmt.Errorf("topics %s and %s not readable within %s", cfg.PredictionsTopic, cfg.LabelsTopic, cfg.Timeout)
	}

	reason := fmt.Sprintf("shadow period: passed the offline comparison; scored beside champion %s on %d live predictions before promotion", champ.Version, cfg.Predictions)
	if _, err := s.MoveAlias(ctx, model, modelstore.AliasChallenger, version, "trainer", reason, eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED); err != nil {
		return ShadowResult{}, fmt.Errorf("set the challenger alias: %w", err)
	}
	defer s.removeChallenger(context.WithoutCancel(ctx), logger, model, version)
	logger.Info("shadow period started", "challenger", version, "champion", champ.Version, "predictions", cfg.Predictions, "timeout", cfg.Timeout)
	progress(Progress{Stage: "shadow", Message: fmt.Sprintf("version %s in shadow beside champion %s: waiting for %d live predictions", version, champ.Version, cfg.Predictions)})

	deadline := time.NewTimer(cfg.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var enoughAt time.Time
	lastReport := time.Time{}
	for {
		n, labelled := col.counts()
		now := time.Now()
		if n >= cfg.Predictions && enoughAt.IsZero() {
			enoughAt = now
		}
		if !enoughAt.IsZero() && (labelled >= cfg.MinLabelled || now.Sub(enoughAt) >= cfg.LabelWait) {
			break
		}
		if now.Sub(lastReport) >= 5*time.Second {
			progress(Progress{Stage: "shadow", Message: fmt.Sprintf("%d/%d shadow predictions, %d labelled", min(n, cfg.Predictions), cfg.Predictions, labelled),
				Iteration: min(n, cfg.Predictions), MaxIterations: cfg.Predictions})
			lastReport = now
		}
		select {
		case <-ctx.Done():
			return ShadowResult{}, ctx.Err()
		case <-deadline.C:
			res := JudgeShadow(spec.Task, nil, nil, nil, 0, 0)
			res.Predictions, res.Labelled = n, labelled
			res.Reason = fmt.Sprintf("shadow period incomplete: %d of %d live predictions were shadow-scored within %s (is scoring running with -challenger.enabled?)",
				n, cfg.Predictions, cfg.Timeout)
			return res, errShadowIncomplete
		case <-tick.C:
		}
	}
	stop()
	tails.Wait()
	rows := col.snapshot()
	var champCal, challCal *driftstat.Platt
	if spec.Task == featurespec.TaskBinary {
		champCal = plattOn(champ.Scores, champ.Holdout.Y)
		challCal = plattOn(trained.HoldoutScores, trained.Split.Holdout.Y)
	}
	res := JudgeShadow(spec.Task, rows, champCal, challCal, cfg.MinLabelled, cfg.Tolerance)
	col.mu.Lock()
	other, invalid := col.other, col.invalid
	col.mu.Unlock()
	logger.Info("shadow period finished", "challenger", version, "pass", res.Pass, "basis", res.Basis, "metric", res.Metric,
		"champion_value", res.Champion, "challenger_value", res.Challenger, "predictions", res.Predictions, "labelled", res.Labelled,
		"beside_other_champion", other, "undecodable", invalid)
	return res, nil
}

// plattOn fits a Platt calibration of scores to labels; nil when it cannot be fitted.
func plattOn(scores, y []float64) *driftstat.Platt {
	if len(scores) == 0 || len(scores) != len(y) {
		return nil
	}
	labels := make([]bool, len(y))
	for i, v := range y {
		labels[i] = v >= 0.5
	}
	c, ok := driftstat.FitPlatt(scores, labels)
	if !ok {
		return nil
	}
	return &c
}

// removeChallenger deletes the challenger alias after a shadow period (if it still points
// at version) and audits the removal; failures are logged, the scoring replicas then keep
// shadow-scoring until the alias is removed by hand.
func (s *Server) removeChallenger(ctx context.Context, logger *slog.Logger, model, version string) {
	cur, err := s.deps.MLflow.GetVersionByAlias(ctx, model, modelstore.AliasChallenger)
	if err != nil || cur.Version != version {
		return
	}
	if err := s.deps.MLflow.DeleteAlias(ctx, model, modelstore.AliasChallenger); err != nil {
		logger.Error("challenger alias not removed after the shadow period; remove it by hand", "challenger", version, "err", err)
		return
	}
	s.publishBestEffort(ctx, logger, &eventsv1.ModelEvent{
		Type: eventsv1.ModelEventType_MODEL_EVENT_TYPE_ALIAS_REMOVED, ModelName: model, FromVersion: version,
		Alias: modelstore.AliasChallenger, Actor: "trainer", Reason: "shadow period over",
	})
}

// recordShadow adds the shadow period's numbers and the final decision to the MLflow run
// (best effort: the model event carries them too).
func (s *Server) recordShadow(ctx context.Context, logger *slog.Logger, runID string, d Decision, req *trainerv1.RetrainRequest) {
	now := s.now()
	var ms []mlflow.Metric
	for _, k := range slices.Sorted(maps.Keys(d.Metrics)) {
		if strings.HasPrefix(k, "shadow_") && !math.IsNaN(d.Metrics[k]) {
			ms = append(ms, mlflow.Metric{Key: k, Value: d.Metrics[k], Timestamp: now})
		}
	}
	tags := map[string]string{tagDecision: decisionTag(d, req), tagDecisionReason: truncate(d.Reason, 5000)}
	if err := s.deps.MLflow.LogBatch(ctx, runID, nil, ms, tags); err != nil {
		logger.Warn("shadow result not recorded in the MLflow run", "run_id", runID, "err", err)
	}
}
