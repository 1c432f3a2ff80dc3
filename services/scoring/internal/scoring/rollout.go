package scoring

import (
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

// A feature-spec rollout (features start computing spec v2 while the champion moves from a
// v1 model to a v2 model) leaves vectors of one spec in flight while the other's model
// serves. Neither is dead-lettered:
//
//   - After a champion swap that changes the spec fingerprint, the previous champion stays
//     loaded for -model.previous-spec-grace and scores the vectors of its spec (the
//     prediction names that model's version).
//   - A stream vector no loaded model can score (v2 vectors before the v2 model is loaded, or
//     v1 vectors after the grace) is held back: a transient error, so its partition waits and
//     retries, and the reload loop is woken (the alias may have moved already). Only after
//     -model.spec-hold without a matching model does it go to the DLQ with reason
//     spec_mismatch.

// previousModel is the champion replaced by a model of another spec, kept until its grace
// ends. It is safe for concurrent use.
type previousModel struct {
	slot  slot
	mu    sync.Mutex
	timer *time.Timer
}

// keep installs m as the previous model for grace (nil retires the current one at once).
func (p *previousModel) keep(m *Model, grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.slot.swap(m)
	if m == nil {
		return
	}
	p.timer = time.AfterFunc(grace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.slot.peek() == m {
			p.slot.swap(nil)
		}
	})
}

// matches reports whether fv was computed for m's spec.
func matches(m *Model, fv *eventsv1.FeatureVector) bool {
	return m != nil && fv.GetSpecName() == m.Spec.Name && fv.GetSpecVersion() == m.specVersion
}

// pick returns the model that scores fv: the champion, or the previous champion when fv is of
// the previous spec and not the champion's.
func pick(champ, prev *Model, fv *eventsv1.FeatureVector) *Model {
	if !matches(champ, fv) && matches(prev, fv) {
		return prev
	}
	return champ
}

// holdBack tracks since when stream records of a spec no loaded model serves have been
// waiting. It is safe for concurrent use and bounded: the records waiting are at most one per
// partition (a held record stops its partition), and entries older than twice the hold are
// dropped.
type holdBack struct {
	mu    sync.Mutex
	since map[string]time.Time
}

const holdBackMax = 10000

// wait returns how long the record m has been held back (0 the first time).
func (h *holdBack) wait(m *kafka.Message, now time.Time, hold time.Duration) time.Duration {
	key := fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since == nil {
		h.since = map[string]time.Time{}
	}
	first, ok := h.since[key]
	if !ok {
		if len(h.since) >= holdBackMax {
			for k, t := range h.since {
				if now.Sub(t) > 2*hold {
					delete(h.since, k)
				}
			}
			if len(h.since) >= holdBackMax {
				clear(h.since)
			}
		}
		h.since[key] = now
		return 0
	}
	return now.Sub(first)
}

// done forgets m.
func (h *holdBack) done(m *kafka.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.since) > 0 {
		delete(h.since, fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset))
	}
}
