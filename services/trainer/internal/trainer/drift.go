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
)

// HandleDrift is the drift.events handler: an event with retrain=true starts a training run
// of its model unless one ran (or started) less than Config.RetrainCooldown ago or one is
// running now. The run happens inside the handler, so the record is committed after it.
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
	if !ev.GetRetrain() {
		s.m.driftEvents.WithLabelValues("informational").Inc()
		return nil, nil
	}
	model := ev.GetModelName()
	now := s.now()
	s.mu.Lock()
	last, seen := s.lastDrift[model]
	cooling := seen && now.Sub(last) < s.cfg.RetrainCooldown
	if !cooling {
		s.lastDrift[model] = now
	}
	s.mu.Unlock()
	if cooling {
		s.m.driftEvents.WithLabelValues("cooldown").Inc()
		s.logger.Debug("drift event within retrain cooldown", "model", model, "event_id", ev.GetEventId())
		return nil, nil
	}
	reason := fmt.Sprintf("drift: %s %s %.4g > %.4g", ev.GetMetric(), ev.GetFeature(), ev.GetValue(), ev.GetThreshold())
	if ev.GetMessage() != "" {
		reason = "drift: " + ev.GetMessage()
	}
	_, err := s.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "drift", Reason: reason, DriftEventId: ev.GetEventId()}, "drift", nil)
	switch {
	case err == nil:
		s.m.driftEvents.WithLabelValues("retrained").Inc()
	case errors.Is(err, ErrRetrainRunning):
		s.m.driftEvents.WithLabelValues("busy").Inc()
	case ctx.Err() != nil:
		// Shutting down: leave the record uncommitted so the next owner retrains.
		s.mu.Lock()
		delete(s.lastDrift, model)
		s.mu.Unlock()
		return nil, fmt.Errorf("retrain on drift event %s: %w", ev.GetEventId(), err)
	default:
		s.m.driftEvents.WithLabelValues("failed").Inc()
		s.logger.Warn("retrain on drift event failed; waiting for the next drift event", "model", model, "event_id", ev.GetEventId(), "err", err)
	}
	return nil, nil
}
