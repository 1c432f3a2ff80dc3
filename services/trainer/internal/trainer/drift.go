package trainer

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
)

// HandleDrift is the drift.events handler.
//
// An event with rollback=true moves the champion of its model back from model_version to
// previous_version (ROLLED_BACK, actor "drift", the event's message as reason) if
// model_version is still the champion; otherwise it is counted and ignored, so a replayed
// event never rolls back twice.
//
// An event with retrain=true starts a training run of its model from the event's
// change_start on, unless a retrain of the model completed less than Config.RetrainCooldown
// ago (the TagRetrainLast tag on the registered model, shared by replicas and restarts) or
// one is running (the lease). The run happens inside the handler, so the record is committed
// after it. Only a run that registered a version starts the cooldown: a failed or skipped one
// leaves the next event free to retry.
//
// A run that fails is logged and counted but not retried from the record (the drift
// detector raises the event again after its own cooldown); retrying in place would block
// the partition behind a run that may keep failing for hours. An undecodable record goes
// to the dead-letter topic.
func (s *Server) HandleDrift(ctx context.Context, m kafka.Message) ([]kafka.Message, error) {
	ev := &eventsv1.DriftEvent{}
	if err := proto.Unmarshal(m.Value, ev); err != nil || ev.GetModelName() == "" {
		s.m.driftEvents.WithLabelValues("invalid").Inc()
		if err == nil {
			err = errors.New("drift event without model_name")
		}
		return nil, kafkaio.PermanentReason(kafkaio.ReasonDecode, fmt.Errorf("decode drift event at offset %d: %w", m.Offset, err))
	}
	if ev.GetRollback() {
		return nil, s.handleRollback(ctx, ev, m.Offset)
	}
	if !ev.GetRetrain() {
		s.m.driftEvents.WithLabelValues("informational").Inc()
		return nil, nil
	}
	model := ev.GetModelName()
	last, err := s.lastRetrain(ctx, model)
	if err != nil {
		// MLflow unreachable: retry the record (a run could not start anyway).
		return nil, fmt.Errorf("drift event %s: read retrain cooldown of %q: %w", ev.GetEventId(), model, err)
	}
	if !last.IsZero() && s.now().Sub(last) < s.cfg.RetrainCooldown {
		s.m.driftEvents.WithLabelValues("cooldown").Inc()
		s.logger.Debug("drift event within retrain cooldown", "model", model, "event_id", ev.GetEventId(), "last_retrain", last)
		return nil, nil
	}
	reason := fmt.Sprintf("drift: %s %s %.4g > %.4g", ev.GetMetric(), ev.GetFeature(), ev.GetValue(), ev.GetThreshold())
	if ev.GetMessage() != "" {
		reason = "drift: " + ev.GetMessage()
	}
	opts := RunOptions{Trigger: "drift", WaitForData: s.cfg.DriftLabelWait}
	if ev.GetChangeStart() != nil {
		opts.ChangeStart = ev.GetChangeStart().AsTime()
	}
	_, err = s.TrainWith(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "drift", Reason: reason, DriftEventId: ev.GetEventId()}, opts, nil)
	switch {
	case err == nil:
		s.m.driftEvents.WithLabelValues("retrained").Inc()
	case errors.Is(err, ErrRetrainRunning):
		s.m.driftEvents.WithLabelValues("busy").Inc()
	case errors.Is(err, ErrNoData):
		// Recorded (skipped run, REJECTED event); the next drift event tries again.
		s.m.driftEvents.WithLabelValues("skipped").Inc()
	case ctx.Err() != nil:
		// Shutting down: leave the record uncommitted so the next owner retrains.
		return nil, fmt.Errorf("retrain on drift event %s: %w", ev.GetEventId(), err)
	default:
		s.m.driftEvents.WithLabelValues("failed").Inc()
		s.logger.Warn("retrain on drift event failed; waiting for the next drift event", "model", model, "event_id", ev.GetEventId(), "err", err)
	}
	return nil, nil
}

// handleRollback applies a rollback event (see HandleDrift). A malformed event or a target
// version that cannot serve goes to the dead-letter topic with an Error log (a person must
// look: the regressed version still serves); MLflow or Kafka being unavailable is retried.
func (s *Server) handleRollback(ctx context.Context, ev *eventsv1.DriftEvent, offset int64) error {
	model, bad, prev := ev.GetModelName(), ev.GetModelVersion(), ev.GetPreviousVersion()
	if bad == "" || prev == "" || bad == prev {
		s.m.driftEvents.WithLabelValues("invalid").Inc()
		return kafkaio.PermanentReason(kafkaio.ReasonValidation, fmt.Errorf("rollback event %s at offset %d: model_version %q and previous_version %q must be set and differ", ev.GetEventId(), offset, bad, prev))
	}
	cur, err := s.deps.MLflow.GetVersionByAlias(ctx, model, modelstore.AliasChampion)
	switch {
	case errors.Is(err, mlflow.ErrNotFound):
		cur = mlflow.ModelVersion{}
	case err != nil:
		return fmt.Errorf("rollback event %s: read champion of %q: %w", ev.GetEventId(), model, err)
	}
	if cur.Version != bad {
		s.m.driftEvents.WithLabelValues("rollback_stale").Inc()
		s.logger.Info("rollback event ignored: the version is no longer champion", "model", model, "model_version", bad, "champion", cur.Version, "event_id", ev.GetEventId())
		return nil
	}
	reason := ev.GetMessage()
	if reason == "" {
		reason = fmt.Sprintf("drift: version %s performs worse on live traffic than %s", bad, prev)
	}
	_, err = s.moveAlias(ctx, model, modelstore.AliasChampion, prev, "drift", reason, eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK, bad)
	switch {
	case err == nil:
		s.m.driftEvents.WithLabelValues("rolled_back").Inc()
		s.logger.Warn("champion rolled back on a drift event", "model", model, "model_version", prev, "from", bad, "event_id", ev.GetEventId(), "reason", reason)
		return nil
	case errors.Is(err, errAliasMoved):
		s.m.driftEvents.WithLabelValues("rollback_stale").Inc()
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrPrecondition), errors.Is(err, modelstore.ErrIntegrity), errors.Is(err, modelstore.ErrSpecMismatch):
		s.m.driftEvents.WithLabelValues("rollback_failed").Inc()
		s.logger.Error("automatic rollback impossible; the regressed version still serves", "model", model, "model_version", bad, "previous", prev, "event_id", ev.GetEventId(), "err", err)
		return kafkaio.Permanent(fmt.Errorf("rollback event %s: %w", ev.GetEventId(), err))
	}
	return fmt.Errorf("rollback event %s: %w", ev.GetEventId(), err)
}
