package scoring

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// HandleFeatures is the kafkaio.BatchHandler of features.v1: it decodes each FeatureVector,
// scores it with the champion (and the challenger in shadow) and returns one Prediction
// record per vector for the predictions topic, keyed by transaction id, with the record's
// trace context. The whole batch is scored by the model that was current when it started.
//
// One scoring deployment serves one model family (-model.spec) and shares features.v1 with
// the deployments of the other families (each in its own consumer group): a vector whose
// spec name is another family's (a purchase vector for the fraud deployment) is skipped,
// committed without a prediction and counted in mlops_scoring_skipped_total{spec}.
//
// Undecodable records are permanent errors (reason decode), vectors of the served family but
// another spec version (reason spec_mismatch) too, and vectors of the wrong length (reason
// validation). While no champion is loaded the batch fails transiently, so the loop waits
// and retries it.
func (s *Server) HandleFeatures(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
	champ := s.champion.acquire()
	if champ == nil {
		return nil, ErrNoModel
	}
	defer champ.release()
	var chall *Model
	if s.cfg.ChallengerEnabled {
		if chall = s.challenger.acquire(); chall != nil {
			defer chall.release()
		}
	}
	prev := s.previous.slot.acquire()
	if prev != nil {
		defer prev.release()
	}
	results := make([]kafkaio.Result, len(msgs))
	outs := make([]kafka.Message, len(msgs)) // each result's one output record
	// One buffer for every encoded prediction of the batch: each record's value is a
	// sub-slice; when append moves the buffer, the earlier values keep the old array.
	buf := make([]byte, 0, 512*len(msgs))
	for i := range msgs {
		m := &msgs[i]
		rec, nb, err := s.handleOne(champ, prev, chall, m, buf)
		buf = nb
		if err != nil {
			if !errors.Is(err, errOtherFamily) {
				results[i].Err = err
				if !kafkaio.IsPermanent(err) {
					// The records behind a transient failure wait for it (the loop hands
					// them back after a backoff).
					return results[:i+1], nil
				}
			}
			continue
		}
		outs[i] = rec
		results[i].Output = outs[i : i+1 : i+1]
	}
	return results, nil
}

// errSpecHeld marks a vector held back because no loaded model serves its spec (yet).
var errSpecHeld = errors.New("vector held back: no loaded model serves its spec yet")

func (s *Server) handleOne(champ, prev, chall *Model, m *kafka.Message, buf []byte) (kafka.Message, []byte, error) {
	start := s.sc.now()
	if ct, ok := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderContentType); ok && string(ct) != kafkaio.ContentTypeProtobuf {
		s.m.rejected.WithLabelValues(topics.ReasonDecode).Inc()
		return kafka.Message{}, buf, kafkaio.PermanentReason(topics.ReasonDecode, fmt.Errorf("feature vector at %s/%d/%d: unsupported content type %q", m.Topic, m.Partition, m.Offset, ct))
	}
	fv := new(eventsv1.FeatureVector)
	if err := proto.Unmarshal(m.Value, fv); err != nil {
		s.m.rejected.WithLabelValues(topics.ReasonDecode).Inc()
		return kafka.Message{}, buf, kafkaio.PermanentReason(topics.ReasonDecode, fmt.Errorf("decode FeatureVector at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
	}
	if name := fv.GetSpecName(); name != "" && name != s.cfg.Spec.Name {
		s.m.skipped.WithLabelValues(familyLabel(name)).Inc()
		return kafka.Message{}, buf, errOtherFamily
	}
	if fv.GetTransactionId() == "" {
		s.m.rejected.WithLabelValues(topics.ReasonValidation).Inc()
		return kafka.Message{}, buf, kafkaio.PermanentReason(topics.ReasonValidation, fmt.Errorf("feature vector at %s/%d/%d has no transaction id", m.Topic, m.Partition, m.Offset))
	}
	r := request{fv: fv, path: eventsv1.ScoringPath_SCORING_PATH_STREAM, featuresSec: s.sc.now().Sub(start).Seconds()}
	r.traceparent, r.tracestate = kafkaio.TraceContext(m.Headers)
	p, err := s.sc.score(pick(champ, prev, fv), chall, r)
	switch {
	case errors.Is(err, ErrSpecMismatch):
		if held := s.held.wait(m, s.sc.now(), s.cfg.SpecHold); held < s.cfg.SpecHold {
			if held == 0 {
				s.Reload() // the alias may have moved to a model of this spec already
			}
			s.m.specHeld.Inc()
			return kafka.Message{}, buf, fmt.Errorf("transaction %q (held %v of %v): %w: %w", fv.GetTransactionId(), held.Round(time.Millisecond), s.cfg.SpecHold, errSpecHeld, err)
		}
		s.held.done(m)
		s.m.rejected.WithLabelValues(topics.ReasonSpecMismatch).Inc()
		return kafka.Message{}, buf, kafkaio.PermanentReason(topics.ReasonSpecMismatch, fmt.Errorf("transaction %q, held back %v without a model of its spec: %w", fv.GetTransactionId(), s.cfg.SpecHold, err))
	case errors.Is(err, ErrInvalidFeatures):
		s.m.rejected.WithLabelValues(topics.ReasonValidation).Inc()
		return kafka.Message{}, buf, kafkaio.PermanentReason(topics.ReasonValidation, fmt.Errorf("transaction %q: %w", fv.GetTransactionId(), err))
	case err != nil:
		return kafka.Message{}, buf, err // transient: LightGBM failing is not the record's fault
	}
	s.held.done(m)
	if p.Explanation != nil {
		s.m.explainedStream.Inc()
	}
	if p.Latency.EndToEndSeconds > 0 {
		s.m.endToEndStream.Observe(p.Latency.EndToEndSeconds)
	}
	from := len(buf)
	buf, err = appendPrediction(buf, p, m.Value)
	if err != nil {
		return kafka.Message{}, buf, kafkaio.Permanent(fmt.Errorf("encode Prediction of transaction %q: %w", fv.GetTransactionId(), err))
	}
	value := buf[from:len(buf):len(buf)]
	return kafkaio.NewRecord(s.cfg.PredictionsTopic, []byte(fv.GetTransactionId()), value, kafkaio.ContentTypeProtobuf, m.Headers), buf, nil
}

// predictionFeaturesField is the field number of Prediction.features.
var predictionFeaturesField = (&eventsv1.Prediction{}).ProtoReflect().Descriptor().Fields().ByName("features").Number()

// appendPrediction appends the encoding of p, whose Features were decoded from fvBytes, to
// buf. The vector is not encoded again: the record's own bytes follow the other fields as
// the features field (a message field is its tag, its length and its bytes, in any order),
// which decodes to the same Prediction. p.Features is left as it was.
func appendPrediction(buf []byte, p *eventsv1.Prediction, fvBytes []byte) ([]byte, error) {
	fv := p.Features
	p.Features = nil
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, p)
	p.Features = fv
	if err != nil || fv == nil {
		return buf, err
	}
	buf = protowire.AppendTag(buf, predictionFeaturesField, protowire.BytesType)
	return protowire.AppendBytes(buf, fvBytes), nil
}

// errOtherFamily marks a vector of another model family: skipped, not an error.
var errOtherFamily = errors.New("vector of another model family")

// familyLabel bounds the spec label of mlops_scoring_skipped_total to the known families.
func familyLabel(name string) string {
	if _, err := featurespec.ByName(name); err == nil {
		return name
	}
	return "unknown"
}
