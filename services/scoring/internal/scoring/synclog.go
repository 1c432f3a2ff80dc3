package scoring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/run"
)

// The sync prediction log: a Score call answers without waiting for anything the caller did
// not ask for. Its prediction goes to the log in the background:
//
//	Score ──(explanation owed: alert or sample)──> explainCh ──> explanation workers ─┐
//	  └──────────────────────────────────────────────────────────────────────────────┴─> logCh ──> publisher ──> predictions topic
//	                                      (logCh full, or publishing failing) ──> spill file ──(replayed when Kafka answers)──┘
//
// Nothing in it blocks a caller: a full explanation queue makes the caller compute the
// explanation itself (back-pressure, counted in mlops_scoring_explain_inline_total); a full
// log buffer or a failing broker sends records to the bounded spill file; only a record that
// fits nowhere (no spill dir, spill full or unwritable) is lost, counted in
// mlops_scoring_sync_log_dropped_total and logged at Error with its transaction id.

// explainJob is a prediction owed an explanation before it is logged; m is held (a
// reference) until the job is done.
type explainJob struct {
	m *Model
	p *eventsv1.Prediction
}

// syncLog is the state the sync log pipeline shares between Score calls and its actor.
type syncLog struct {
	mu             sync.RWMutex // read: a send on explainCh or logCh; write: closing them
	explainClosing bool
	logClosing     bool
	explainCh      chan explainJob
	logCh          chan kafka.Message
	inflight       sync.WaitGroup // explanation jobs queued or running
	spill          *spill         // nil until first needed (or the actor starts), or when disabled
	spillMu        sync.Mutex     // guards spill, spillErr and spillClosed
	spillErr       error          // why the spill could not be opened
	spillClosed    bool
	outage         bool // only the publisher goroutine reads and writes it
}

func newSyncLog(cfg Config) *syncLog {
	return &syncLog{
		explainCh: make(chan explainJob, max(cfg.ExplainQueue, 1)),
		logCh:     make(chan kafka.Message, max(cfg.SyncLogBuffer, 1)),
	}
}

// explainLater makes sure p gets its explanation and is logged: it queues the job for the
// explanation workers, or, when the queue is full or closing, explains p right here
// (back-pressure on the caller, counted, never a prediction logged without its explanation).
func (s *Server) explainLater(m *Model, p *eventsv1.Prediction) {
	if s.deps.Producer == nil {
		return // nothing is logged, so nothing is owed
	}
	if m.tryAcquire() {
		s.log.mu.RLock()
		if !s.log.explainClosing {
			s.log.inflight.Add(1)
			select {
			case s.log.explainCh <- explainJob{m: m, p: p}:
				s.log.mu.RUnlock()
				return
			default:
				s.log.inflight.Done()
			}
		}
		s.log.mu.RUnlock()
		m.release()
	}
	s.m.explainInline.Inc()
	s.explainNow(m, p)
	s.logSync(p)
}

// explainNow sets p's explanation from m (best effort: a failure leaves the prediction
// unexplained and counts an error, as on the stream).
func (s *Server) explainNow(m *Model, p *eventsv1.Prediction) {
	start := s.sc.now()
	ex, err := s.sc.explain(m, p.GetFeatures().GetValues())
	if err != nil {
		m.obs.errored.Inc()
		return
	}
	p.Explanation = ex
	p.Latency.ExplanationSeconds = s.sc.now().Sub(start).Seconds()
	s.m.explainedSync.Inc()
}

// logSync hands a sync prediction to the publisher without waiting: when the buffer is full
// or closed the record goes to the spill file; when that fails too it is counted and logged.
func (s *Server) logSync(p *eventsv1.Prediction) {
	if s.deps.Producer == nil {
		return
	}
	b, err := proto.Marshal(p)
	if err != nil {
		s.m.syncLogDropped.Inc()
		s.logger.Error("sync prediction not logged: encode", "transaction_id", p.GetTransactionId(), "event_id", p.GetEventId(), "err", err)
		return
	}
	rec := kafkaio.NewRecord(s.cfg.PredictionsTopic, []byte(p.TransactionId), b, kafkaio.ContentTypeProtobuf, kafkaio.TraceHeaders(p.GetTrace().GetTraceparent(), p.GetTrace().GetTracestate()))
	s.log.mu.RLock()
	if !s.log.logClosing {
		select {
		case s.log.logCh <- rec:
			s.log.mu.RUnlock()
			return
		default:
		}
	}
	s.log.mu.RUnlock()
	s.spillOrDrop([]kafka.Message{rec}, "log buffer full")
}

// spillOrDrop writes msgs to the spill file; what does not fit is counted and logged.
func (s *Server) spillOrDrop(msgs []kafka.Message, why string) {
	s.log.spillMu.Lock()
	sp, err := s.openSpillLocked()
	var n int
	if sp != nil {
		n, err = sp.append(msgs)
		s.m.syncLogSpilled.Add(float64(n))
	}
	s.log.spillMu.Unlock()
	for _, m := range msgs[n:] {
		s.m.syncLogDropped.Inc()
		s.logger.Error("sync prediction lost: not published and not spilled", "topic", m.Topic, "transaction_id", string(m.Key),
			"why", why, "err", err)
	}
}

// openSpillLocked returns the spill file, opening it on first use. Called with spillMu held.
func (s *Server) openSpillLocked() (*spill, error) {
	switch {
	case s.log.spill != nil:
		return s.log.spill, nil
	case s.cfg.SpillDir == "":
		return nil, errors.New("no spill directory configured")
	case s.log.spillClosed:
		return nil, errors.New("spill file closed (service stopped)")
	case s.log.spillErr != nil:
		return nil, s.log.spillErr
	}
	sp, err := openSpillSlot(s.cfg.SpillDir, s.cfg.ModelName, s.cfg.SpillMaxBytes)
	if err != nil {
		s.log.spillErr = err
		return nil, err
	}
	s.log.spill = sp
	return sp, nil
}

// SyncLogActor runs the sync prediction log: the explanation workers (-explain.workers) and
// the publisher, which writes buffered predictions to the predictions topic in batches, each
// attempt ending when the producer acknowledges or gives up. What cannot be published goes to the spill
// file under -sync.spill-dir and is replayed, in order, every -sync.log-retry-interval until
// Kafka takes it; a spill file left by an earlier run is replayed too. On shutdown it
// finishes the queued explanations, publishes what is buffered within the shutdown timeout,
// spills the rest, then closes the spill file and the producer. It fails at start when the
// spill directory cannot be opened (or another process holds it).
func (s *Server) SyncLogActor() run.Actor {
	return run.Actor{Name: "sync-prediction-log", Run: func(ctx context.Context) (err error) {
		if s.deps.Producer == nil {
			<-ctx.Done()
			s.closeExplain()
			s.closeLog()
			return nil
		}
		defer func() { err = errors.Join(err, s.deps.Producer.Close()) }()
		defer func() { err = errors.Join(err, s.closeSpill()) }()
		if s.cfg.SpillDir != "" {
			s.log.spillMu.Lock()
			sp, err := s.openSpillLocked()
			s.log.spillMu.Unlock()
			if err != nil {
				s.closeExplain()
				s.closeLog()
				return fmt.Errorf("sync prediction log: %w", err)
			}
			if n := sp.pending(); n > 0 {
				s.logger.Info("spilled sync predictions found; replaying", "records", n, "dir", s.cfg.SpillDir)
				s.log.outage = true
			}
		}
		var workers sync.WaitGroup
		for range max(s.cfg.ExplainWorkers, 1) {
			workers.Go(func() {
				for job := range s.log.explainCh {
					s.explainNow(job.m, job.p)
					job.m.release()
					s.logSync(job.p)
					s.log.inflight.Done()
				}
			})
		}
		wctx := context.WithoutCancel(ctx)
		retry := time.NewTicker(s.cfg.SyncLogRetryInterval)
		defer retry.Stop()
		batch := make([]kafka.Message, 0, 256)
		collect := func(first kafka.Message) {
			batch = append(batch[:0], first)
			for len(batch) < cap(batch) {
				select {
				case m, ok := <-s.log.logCh:
					if !ok {
						return
					}
					batch = append(batch, m)
				default:
					return
				}
			}
		}
	loop:
		for {
			select {
			case m := <-s.log.logCh:
				collect(m)
				s.publish(wctx, batch)
			case <-retry.C:
				s.replay(ctx, wctx)
			case <-ctx.Done():
				break loop
			}
		}
		// Draining: finish the owed explanations (they land in logCh or the spill), then
		// publish what is buffered within the shutdown timeout and spill the rest.
		s.closeExplain()
		workers.Wait()
		s.closeLog()
		deadline := time.Now().Add(s.cfg.ShutdownTimeout)
		for m := range s.log.logCh {
			collect(m)
			if time.Now().After(deadline) {
				s.spillOrDrop(batch, "shutdown")
				continue
			}
			dctx, cancel := context.WithDeadline(wctx, deadline)
			s.publish(dctx, batch)
			cancel()
		}
		return nil
	}}
}

func (s *Server) closeExplain() {
	s.log.mu.Lock()
	if !s.log.explainClosing {
		s.log.explainClosing = true
		close(s.log.explainCh)
	}
	s.log.mu.Unlock()
}

func (s *Server) closeLog() {
	s.log.mu.Lock()
	if !s.log.logClosing {
		s.log.logClosing = true
		close(s.log.logCh)
	}
	s.log.mu.Unlock()
}

func (s *Server) closeSpill() error {
	s.log.spillMu.Lock()
	defer s.log.spillMu.Unlock()
	sp := s.log.spill
	s.log.spill = nil
	s.log.spillClosed = true
	if sp == nil {
		return nil
	}
	if n := sp.pending(); n > 0 {
		s.logger.Warn("sync predictions left in the spill file for the next start", "records", n, "dir", s.cfg.SpillDir)
	}
	return sp.close()
}

// write publishes msgs and returns the producer's verdict. It sets no time limit of its own:
// when the producer gives up on a batch (its attempts are bounded) the records are known
// not to be written, whereas a batch abandoned by a timeout here may still be written later
// by the producer, and its spilled copy would then be published twice. Only the shutdown
// deadline cuts a write short.
func (s *Server) write(ctx context.Context, msgs []kafka.Message) error {
	return s.deps.Producer.WriteMessages(ctx, msgs...)
}

// publish writes batch; on failure the records not acknowledged go to the spill file. While
// the spill holds records, new ones join it behind them (order is kept, and a dead broker is
// not waited for once per batch) and the replay publishes them.
func (s *Server) publish(ctx context.Context, batch []kafka.Message) {
	if sp := s.currentSpill(); sp != nil && sp.pending() > 0 {
		s.spillOrDrop(batch, "earlier records still spilled")
		return
	}
	err := s.write(ctx, batch)
	if err == nil {
		return
	}
	failed := batch
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(batch) {
		failed = failed[:0:0]
		for i, e := range werrs {
			if e != nil {
				failed = append(failed, batch[i])
			}
		}
	}
	if !s.log.outage {
		s.log.outage = true
		s.logger.Warn("sync predictions not published; spilling them until the topic takes writes again",
			"topic", s.cfg.PredictionsTopic, "records", len(failed), "dir", s.cfg.SpillDir, "err", err)
	}
	s.spillOrDrop(failed, "publish failed")
}

func (s *Server) currentSpill() *spill { return s.log.currentSpill() }

func (l *syncLog) currentSpill() *spill {
	l.spillMu.Lock()
	defer l.spillMu.Unlock()
	return l.spill
}

// replay publishes the spilled records in order, a chunk at a time, until the spill is empty,
// a write fails (tried again at the next tick) or the service stops.
func (s *Server) replay(ctx, wctx context.Context) {
	sp := s.currentSpill()
	if sp == nil {
		return
	}
	for ctx.Err() == nil && sp.pending() > 0 {
		msgs, next, err := sp.peek(256)
		if err != nil {
			s.logger.Error("spill file unreadable; its records are not replayed", "dir", s.cfg.SpillDir, "records", sp.pending(), "err", err)
			return
		}
		for i := range msgs {
			msgs[i].Topic = s.cfg.PredictionsTopic
		}
		if err := s.write(wctx, msgs); err != nil {
			s.logger.Debug("spilled sync predictions not replayed yet", "topic", s.cfg.PredictionsTopic, "records", sp.pending(), "err", err)
			return
		}
		if err := sp.advance(next, len(msgs)); err != nil {
			s.logger.Error("spill replay offset not saved; records may be published again", "dir", s.cfg.SpillDir, "err", err)
			return
		}
		s.m.syncLogReplayed.Add(float64(len(msgs)))
	}
	if s.log.outage && sp.pending() == 0 {
		s.log.outage = false
		s.logger.Info("spilled sync predictions published; predictions topic takes writes again", "topic", s.cfg.PredictionsTopic)
	}
}
