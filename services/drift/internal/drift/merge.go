package drift

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/drift/internal/window"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/run"
)

// Merged mode (Config.Merge). Stage 1, on every replica: the records of a batch go into
// partial states keyed by (model, event-time window); at the end of the batch each partial is
// published to the partials topic, keyed by model, together with the batch's watermarks (the
// largest event time seen per source partition), before the batch is committed. Stage 2, in
// the replica that owns the model's partition of the partials topic: partials are merged into
// the window they belong to (exact counts add, samples union), and a window is judged once
// every source partition's watermark is past its end plus the allowed lateness (a partition
// silent for Config.Idle no longer holds it back). Because windows are defined by event time
// and the state merges exactly, the judged windows do not depend on how many replicas there
// are or which partitions each one read.

// partial is the record published to the partials topic (gob; an internal format).
type partial struct {
	Model, RunID, Version string
	// Window is the event-time window index (start = Window × duration); -1 for a
	// watermark-only record.
	Window int64
	State  []byte
	// Watermarks are the largest event times per source partition ("topic/partition").
	Watermarks map[string]int64
}

// contentTypePartial marks partial records.
const contentTypePartial = "application/x-drift-partial+gob"

// batch collects what one Handle call contributes in merged mode.
type batch struct {
	states     map[string]map[int64]*window.State // model → window → state
	watermarks map[string]int64
}

func newBatch() *batch {
	return &batch{states: map[string]map[int64]*window.State{}, watermarks: map[string]int64{}}
}

func (b *batch) mark(m *kafka.Message, eventTime int64) {
	k := m.Topic + "/" + strconv.Itoa(m.Partition)
	if v, ok := b.watermarks[k]; !ok || eventTime > v {
		b.watermarks[k] = eventTime
	}
}

func (b *batch) state(model string, w int64, l *window.Layout) *window.State {
	byW := b.states[model]
	if byW == nil {
		byW = map[int64]*window.State{}
		b.states[model] = byW
	}
	st := byW[w]
	if st == nil {
		st = window.NewState(l)
		byW[w] = st
	}
	return st
}

// windowOf is the event-time window index of t (Unix ns).
func (s *Server) windowOf(t int64) int64 {
	d := int64(s.cfg.WindowDuration)
	w := t / d
	if t < 0 && t%d != 0 {
		w--
	}
	return w
}

// partials encodes the batch's partial states (one record per model and window, plus one
// watermark record per monitored model when no state of its own carried them).
func (s *Server) partials(b *batch) ([]kafka.Message, error) {
	var out []kafka.Message
	for _, model := range s.cfg.Models {
		ref := s.monitors[model].reference()
		byW := b.states[model]
		if len(byW) == 0 {
			if len(b.watermarks) == 0 {
				continue
			}
			p := partial{Model: model, Window: -1, Watermarks: b.watermarks}
			if ref != nil {
				p.RunID, p.Version = ref.RunID, ref.Version
			}
			rec, err := s.partialRecord(p)
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
			continue
		}
		for _, w := range slices.Sorted(maps.Keys(byW)) {
			enc, err := byW[w].MarshalBinary()
			if err != nil {
				return nil, err
			}
			rec, err := s.partialRecord(partial{Model: model, RunID: ref.RunID, Version: ref.Version, Window: w, State: enc, Watermarks: b.watermarks})
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

func (s *Server) partialRecord(p partial) (kafka.Message, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&p); err != nil {
		return kafka.Message{}, fmt.Errorf("encode partial window: %w", err)
	}
	return kafkaio.NewRecord(s.cfg.PartialsTopic, []byte(p.Model), buf.Bytes(), contentTypePartial, nil), nil
}

// SetSources declares the source partitions ("topic/partition") whose watermarks a merged
// window waits for. The merge actor sets them from the brokers' metadata; partitions seen in
// partials are added as they come.
func (s *Server) SetSources(sources []string) {
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	now := s.now()
	for _, src := range sources {
		if _, ok := s.sources[src]; !ok {
			s.sources[src] = sourceState{watermark: math.MinInt64, seen: now}
		}
	}
}

// sourceState is what the merger knows of one source partition.
type sourceState struct {
	watermark int64     // largest event time reported
	seen      time.Time // processing time of the last report that advanced it
}

// HandlePartials is the stage-2 handler of the partials topic: it merges partial states and
// judges every window that all source partitions have passed. Records that do not decode are
// dead-lettered; partials of an older reference than the monitor's are counted and dropped;
// partials of a newer one are retried after a reference refresh.
func (s *Server) HandlePartials(_ context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
	results := make([]kafkaio.Result, len(msgs))
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	for i := range msgs {
		m := &msgs[i]
		var p partial
		if err := gob.NewDecoder(bytes.NewReader(m.Value)).Decode(&p); err != nil {
			results[i].Err = s.reject(m, outcomeInvalid, kafkaio.ReasonDecode, fmt.Errorf("decode partial window at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
			continue
		}
		mo := s.monitors[p.Model]
		if mo == nil {
			s.count(m.Topic, outcomeUnmonitored, "partial of a model not monitored here skipped", "model", p.Model)
			continue
		}
		now := s.now()
		for src, wm := range p.Watermarks {
			st, ok := s.sources[src]
			if !ok || wm > st.watermark {
				s.sources[src] = sourceState{watermark: wm, seen: now}
			}
		}
		if p.Window >= 0 {
			if err := s.mergePartial(mo, m, &p); err != nil {
				results[i].Err = err
				continue
			}
		}
		for _, ev := range s.closeMerged(mo, false) {
			rec, err := s.record(ev)
			if err != nil {
				results[i].Err = err
				break
			}
			results[i].Output = append(results[i].Output, rec)
		}
	}
	return results, nil
}

func (s *Server) mergePartial(mo *monitor, m *kafka.Message, p *partial) error {
	ref, retired := mo.referenceFor(p.RunID)
	switch {
	case retired:
		s.count(m.Topic, "stale_reference", "partial computed against a previous champion's reference dropped", "model", p.Model, "run_id", p.RunID)
		return nil
	case ref == nil:
		s.Refresh()
		return fmt.Errorf("partial of %s run %s: that reference is not loaded here yet", p.Model, p.RunID)
	}
	st, err := window.DecodeState(ref.Layout, p.State)
	if err != nil {
		return s.reject(m, outcomeInvalid, kafkaio.ReasonDecode, fmt.Errorf("partial window at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
	}
	mo.mu.Lock()
	defer mo.mu.Unlock()
	if p.Window <= mo.lastMerged {
		s.count(m.Topic, "late", "partial of an already judged window dropped (raise -window.lateness)", "model", p.Model)
		return nil
	}
	if cur := mo.open[p.Window]; cur != nil {
		cur.Merge(st)
	} else {
		mo.open[p.Window] = st
	}
	return nil
}

// closeMerged judges, in order, every open merged window of mo whose end (plus lateness) all
// active source partitions have passed; all of them when force is set (shutdown).
func (s *Server) closeMerged(mo *monitor, force bool) []*eventsv1.DriftEvent {
	low := int64(math.MaxInt64)
	now := s.now()
	for _, st := range s.sources {
		if now.Sub(st.seen) >= s.cfg.Idle {
			continue // a silent partition does not hold windows back
		}
		low = min(low, st.watermark)
	}
	mo.mu.Lock()
	defer mo.mu.Unlock()
	var evs []*eventsv1.DriftEvent
	for _, w := range slices.Sorted(maps.Keys(mo.open)) {
		end := (w + 1) * int64(s.cfg.WindowDuration)
		if !force && (low == math.MaxInt64 || end+int64(s.cfg.Lateness) > low) {
			break
		}
		st := mo.open[w]
		delete(mo.open, w)
		mo.lastMerged = w
		evs = append(evs, mo.judgeLocked(st, mo.ref, "time", eventsv1.WindowKind_WINDOW_KIND_TIME)...)
	}
	return evs
}

// MergeActor runs stage 2 of merged mode: it declares the source partitions from the
// brokers' metadata, then consumes the partials topic in group "<group>-merge".
func (s *Server) MergeActor(logger *slog.Logger, reg prometheus.Registerer) run.Actor {
	kc := s.cfg.Kafka
	kc.Topics = []string{s.cfg.PartialsTopic}
	kc.GroupID = s.cfg.Kafka.GroupID + "-merge"
	consumer := kafkaio.BatchConsumerActor(kc, s.HandlePartials, logger, reg)
	return run.Actor{Name: "merge", Run: func(ctx context.Context) error {
		for _, topic := range s.cfg.Kafka.Topics {
			parts, err := s.cfg.Kafka.EndOffsets(ctx, topic)
			if err != nil {
				logger.Warn("source partitions unknown; learning them from partials", "topic", topic, "err", err)
				continue
			}
			var srcs []string
			for p := range parts {
				srcs = append(srcs, topic+"/"+strconv.Itoa(p))
			}
			s.SetSources(srcs)
		}
		return consumer.Run(ctx)
	}}
}
