package drift

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/drift/internal/window"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// Reasons a record is dead-lettered or counted.
const (
	outcomeOK           = "ok"
	outcomeUnmonitored  = "unmonitored"
	outcomeNoReference  = "no_reference"
	outcomeSpecMismatch = "spec_mismatch"
	outcomeInvalid      = "invalid"
	outcomeUnknownTx    = "unknown_transaction"
)

// Handle is the batch handler of predictions.v1 and labels.v1. A prediction joins its
// model's open window (and the label join); a label joins the open window of its
// prediction's model. The records of a batch that close a window carry the window's drift
// events as output, so they are committed only after the events are acknowledged.
//
// Undecodable records and predictions whose vector does not match the champion's spec are
// permanent errors (dead-lettered with the reason). Predictions of models not monitored and
// predictions that arrive before any reference could be loaded are counted and skipped; a
// label whose prediction has not been seen is parked until it comes (bounded: the oldest
// parked label is dropped and counted as unknown_transaction when full). None of those is bad
// input. Each cause is logged once.
func (s *Server) Handle(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
	results := make([]kafkaio.Result, len(msgs))
	var b *batch
	if s.cfg.Merge {
		b = newBatch()
	}
	last := -1
	for i := range msgs {
		m := &msgs[i]
		var evs []*eventsv1.DriftEvent
		var err error
		switch m.Topic {
		case s.labelsTopic:
			err = s.handleLabel(m, b)
		default:
			evs, err = s.handlePrediction(m, b)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		last = i
		for _, ev := range evs {
			rec, err := s.record(ev)
			if err != nil {
				results[i].Err = err
				break
			}
			results[i].Output = append(results[i].Output, rec)
		}
	}
	s.joinMu.Lock()
	s.m.joinEntries.Set(float64(s.join.Len()))
	s.joinMu.Unlock()
	if b != nil && last >= 0 {
		// The batch's partial states travel with its last good record, so they are
		// acknowledged before the batch is committed.
		recs, err := s.partials(b)
		if err != nil {
			return nil, err
		}
		results[last].Output = append(results[last].Output, recs...)
	}
	return results, nil
}

func (s *Server) record(ev *eventsv1.DriftEvent) (kafka.Message, error) {
	b, err := proto.Marshal(ev)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode drift event: %w", err)
	}
	return kafkaio.NewRecord(s.cfg.DriftTopic, []byte(ev.GetModelName()), b, kafkaio.ContentTypeProtobuf, nil), nil
}

func (s *Server) handlePrediction(m *kafka.Message, b *batch) ([]*eventsv1.DriftEvent, error) {
	p := new(eventsv1.Prediction)
	if err := proto.Unmarshal(m.Value, p); err != nil {
		return nil, s.reject(m, outcomeInvalid, topics.ReasonDecode, fmt.Errorf("decode Prediction at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
	}
	if p.GetTransactionId() == "" || p.GetFeatures() == nil || p.GetEventTime() == nil {
		return nil, s.reject(m, outcomeInvalid, topics.ReasonValidation, fmt.Errorf("prediction at %s/%d/%d lacks transaction id, features or event time", m.Topic, m.Partition, m.Offset))
	}
	if b != nil {
		b.mark(m, p.GetEventTime().AsTime().UnixNano())
	}
	mo := s.monitors[p.GetModelName()]
	if mo == nil {
		s.count(m.Topic, outcomeUnmonitored, "prediction of a model not monitored skipped", "model", p.GetModelName())
		return nil, nil
	}
	ref := mo.reference()
	if ref == nil {
		s.count(m.Topic, outcomeNoReference, "prediction skipped: no reference profile loaded yet", "model", p.GetModelName())
		return nil, nil
	}
	fv := p.GetFeatures()
	if fp := fv.GetSpecFingerprint(); (fp != "" && fp != ref.SpecFingerprint) || len(fv.GetValues()) != len(ref.Names) {
		return nil, s.reject(m, outcomeSpecMismatch, topics.ReasonSpecMismatch,
			fmt.Errorf("prediction at %s/%d/%d: vector of spec %q with %d values, the reference of %s version %s is %s with %d",
				m.Topic, m.Partition, m.Offset, fp, len(fv.GetValues()), ref.Model, ref.Version, ref.SpecFingerprint, len(ref.Names)))
	}
	score := p.GetScore()
	threshold := p.GetThreshold()
	if threshold == 0 && !ref.Ref.Regression {
		threshold = ref.Ref.Threshold
	}
	et := p.GetEventTime().AsTime().UnixNano()
	hash := window.Hash(p.GetTransactionId())
	key := joinKey(p.GetTransactionId(), ref.Ref.Regression)
	pend := pending{model: p.GetModelName(), score: score, threshold: threshold, amount: fv.GetAmount(), eventTime: et,
		version: versionNumber(p.GetModelVersion())}
	s.joinMu.Lock()
	early, labelled := s.join.claim(key)
	if !labelled {
		s.join.put(key, pend)
	}
	if s.join.evictedSize+s.join.evictedAge > 0 {
		s.m.joinEvicted.WithLabelValues("size").Add(float64(s.join.evictedSize))
		s.m.joinEvicted.WithLabelValues("age").Add(float64(s.join.evictedAge))
		s.join.evictedSize, s.join.evictedAge = 0, 0
	}
	s.joinMu.Unlock()
	s.m.records.WithLabelValues(m.Topic, outcomeOK).Inc()
	if b != nil {
		b.state(mo.model, s.windowOf(et), ref.Layout).AddPrediction(hash, et, p.GetModelVersion(), fv.GetValues(), score, threshold)
		if labelled {
			s.applyLabel(mo, b, hash, pend, early)
		}
		return nil, nil
	}
	evs := mo.addPrediction(hash, et, p.GetModelVersion(), fv.GetValues(), score, threshold)
	if labelled {
		s.applyLabel(mo, nil, hash, pend, early)
	}
	return evs, nil
}

func (s *Server) handleLabel(m *kafka.Message, b *batch) error {
	l := new(eventsv1.Label)
	if err := proto.Unmarshal(m.Value, l); err != nil {
		return s.reject(m, outcomeInvalid, topics.ReasonDecode, fmt.Errorf("decode Label at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
	}
	if b != nil && l.GetEventTime() != nil {
		b.mark(m, l.GetEventTime().AsTime().UnixNano())
	}
	if l.GetTransactionId() == "" || math.IsNaN(l.GetLabel()) || math.IsInf(l.GetLabel(), 0) {
		return s.reject(m, outcomeInvalid, topics.ReasonValidation, fmt.Errorf("label at %s/%d/%d: no transaction id or a non-finite label", m.Topic, m.Partition, m.Offset))
	}
	key := joinKey(l.GetTransactionId(), l.GetKind() == eventsv1.LabelKind_LABEL_KIND_PURCHASE)
	el := earlyLabel{label: l.GetLabel()}
	if l.GetEventTime() != nil {
		el.eventTime = l.GetEventTime().AsTime().UnixNano()
	}
	s.joinMu.Lock()
	p, ok := s.join.take(key)
	evicted := false
	if !ok {
		evicted = s.join.park(key, el)
	}
	s.joinMu.Unlock()
	if evicted {
		s.count(m.Topic, outcomeUnknownTx, "parked label dropped unjoined to make room (its prediction never came, or came to another replica)")
	}
	if !ok {
		s.m.records.WithLabelValues(m.Topic, "parked").Inc()
		return nil
	}
	s.applyLabel(s.monitors[p.model], b, window.Hash(l.GetTransactionId()), p, el)
	s.m.records.WithLabelValues(m.Topic, outcomeOK).Inc()
	return nil
}

// applyLabel adds a joined label: to the open window (local mode), or to the batch's state of
// the window of the time the label became known (merged mode; the prediction's time when
// the label has none).
func (s *Server) applyLabel(mo *monitor, b *batch, hash uint64, p pending, l earlyLabel) {
	if b == nil {
		mo.addLabel(hash, p, l.label)
		return
	}
	at := p.eventTime
	if l.eventTime != 0 {
		at = l.eventTime
	}
	if ref := mo.reference(); ref != nil {
		b.state(mo.model, s.windowOf(at), ref.Layout).AddLabel(hash, p.score, l.label, p.amount, p.threshold, p.version)
	}
}

// reject counts, logs once per cause and returns the permanent error that dead-letters m.
func (s *Server) reject(m *kafka.Message, outcome, reason string, err error) error {
	s.count(m.Topic, outcome, "record dead-lettered", "reason", reason, "err", err)
	return kafkaio.PermanentReason(reason, err)
}

// count increments the outcome counter and logs the first occurrence of each cause.
func (s *Server) count(topic, outcome, msg string, args ...any) {
	s.m.records.WithLabelValues(topic, outcome).Inc()
	if _, seen := s.logged.LoadOrStore(topic+"|"+outcome, true); !seen {
		s.logger.Warn(msg, append([]any{"topic", topic, "outcome", outcome, "note", "logged once per cause; see mlops_drift_records_total"}, args...)...)
	}
}

// versionNumber parses an MLflow version ("3") for the labelled sample; NaN otherwise.
func versionNumber(v string) float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// joinKey keys the label join by transaction and use case: a purchase label (regression)
// joins the purchase prediction of the transaction, a fraud or unspecified one the fraud
// prediction, as predlog joins them onto their documents.
func joinKey(tx string, regression bool) string {
	if regression {
		return tx + ":purchase"
	}
	return tx
}
