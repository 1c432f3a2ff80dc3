package scoring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/run"
)

// LoadModels loads the champion and, when enabled, the challenger (best effort: a missing
// challenger is not an error). MLflow being down is handled by the Store, which serves the
// verified local copy.
func (s *Server) LoadModels(ctx context.Context) error {
	if err := s.refresh(ctx, modelstore.AliasChampion); err != nil {
		return err
	}
	if s.cfg.ChallengerEnabled {
		if err := s.refresh(ctx, modelstore.AliasChallenger); err != nil {
			s.logger.Warn("challenger not loaded; scoring without shadow", "model", s.cfg.ModelName, "err", err)
		}
	}
	return nil
}

// Install puts m into the slot of alias ("champion" or "challenger"), retiring the model it
// replaces once its last request finished. LoadModels and the reload actor use it; tests may
// install models built in process.
func (s *Server) Install(alias string, m *Model) {
	sl := s.slotOf(alias)
	if m != nil {
		m.Alias = alias
		m.obs = s.m.forVersion(m.Version)
	}
	// A champion replaced by a model of another spec keeps scoring the vectors of its spec
	// still in flight for the grace period (rollout.go): take its reference before the swap
	// drops the slot's.
	var keep *Model
	if cur := sl.peek(); alias == modelstore.AliasChampion && m != nil && cur != nil &&
		cur.Spec.Fingerprint() != m.Spec.Fingerprint() && s.cfg.PreviousSpecGrace > 0 && cur.tryAcquire() {
		keep = cur
	}
	old := sl.swap(m)
	if old != nil {
		s.m.modelInfo.DeleteLabelValues(old.Name, old.Version, alias, old.Spec.Fingerprint())
	}
	if keep != nil {
		s.previous.keep(keep, s.cfg.PreviousSpecGrace) // the previous slot owns the reference taken above
		s.logger.Info("previous champion kept for vectors of its spec", "model", keep.Name, "model_version", keep.Version,
			"spec", keep.Spec.Fingerprint(), "grace", s.cfg.PreviousSpecGrace)
	}
	if m == nil {
		if old != nil {
			s.m.reloads.WithLabelValues(alias, "unloaded").Inc()
			s.logger.Info("model unloaded", "alias", alias, "model", old.Name, "model_version", old.Version)
		}
		return
	}
	s.m.modelInfo.WithLabelValues(m.Name, m.Version, alias, m.Spec.Fingerprint()).Set(1)
	s.m.reloads.WithLabelValues(alias, "swapped").Inc()
	prev := ""
	if old != nil {
		prev = old.Version
	}
	s.logger.Info("model loaded", "alias", alias, "model", m.Name, "model_version", m.Version, "previous", prev,
		"threshold", m.Threshold, "from_cache", m.fromCache.Load(), "sha256", m.SHA256, "evaluator", m.Evaluator)
	if m.evaluatorNote != nil {
		s.logger.Info("model scored by LightGBM: the compact evaluator does not cover it", "model", m.Name, "model_version", m.Version, "reason", m.evaluatorNote)
	}
}

func (s *Server) slotOf(alias string) *slot {
	if alias == modelstore.AliasChallenger {
		return &s.challenger
	}
	return &s.champion
}

// refresh makes the slot of alias hold the version alias points at in the registry. It is
// called from one goroutine at a time (startup, then the reload loop). A cheap alias lookup
// comes first, so an unchanged alias downloads nothing. When MLflow is down the current
// model keeps serving; without one the Store's verified cache is used.
func (s *Server) refresh(ctx context.Context, alias string) error {
	if s.deps.Store == nil || s.deps.Lib == nil {
		return errors.New("no model store configured")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LoadTimeout)
	defer cancel()
	cur := s.slotOf(alias).peek()
	want := s.cfg.Spec.Fingerprint()
	if cur != nil {
		mv, err := s.deps.Store.Client.GetVersionByAlias(ctx, s.cfg.ModelName, alias)
		switch {
		case err == nil && mv.Version == cur.Version && !cur.fromCache.Load():
			return nil
		case errors.Is(err, mlflow.ErrNotFound) && alias == modelstore.AliasChallenger:
			s.Install(alias, nil)
			return nil
		case err != nil:
			s.m.reloads.WithLabelValues(alias, "failed").Inc()
			return fmt.Errorf("resolve alias %q of model %q (serving version %s): %w", alias, s.cfg.ModelName, cur.Version, err)
		}
		want = s.specOf(mv)
	} else if s.followsFamily() {
		// Best effort: when MLflow is down the Store falls back to the cache of the
		// configured spec.
		if mv, err := s.deps.Store.Client.GetVersionByAlias(ctx, s.cfg.ModelName, alias); err == nil {
			want = s.specOf(mv)
		}
	}
	l, err := s.deps.Store.LoadAlias(ctx, s.cfg.ModelName, alias, want)
	if err != nil {
		if errors.Is(err, mlflow.ErrNotFound) && alias == modelstore.AliasChallenger {
			return nil
		}
		s.m.reloads.WithLabelValues(alias, "failed").Inc()
		return err
	}
	if cur != nil && cur.Version == l.Version && cur.SHA256 == l.Manifest.SHA256 {
		// Same model: at most it is now confirmed by MLflow instead of the cache.
		cur.fromCache.Store(l.FromCache)
		return nil
	}
	m, err := buildModel(s.deps.Lib, l, modelOptions{DefaultThreshold: s.cfg.DefaultThreshold, Evaluator: s.cfg.Evaluator, CheckEvery: s.cfg.EvaluatorCheckEvery, CPUEvery: s.cfg.InferenceCPUEvery, Logger: s.logger})
	if err != nil {
		s.m.reloads.WithLabelValues(alias, "failed").Inc()
		return err
	}
	s.Install(alias, m)
	return nil
}

// followsFamily reports whether -model.spec names a family ("fraud"), whose new versions a
// promotion may roll out, rather than one pinned version ("fraud-v1").
func (s *Server) followsFamily() bool { return s.cfg.SpecName == s.cfg.Spec.Name }

// specOf returns the spec fingerprint the served alias's version mv must have: the one it was
// registered with when that is another version of the served family and the service follows
// the family (a feature-spec rollout), else the configured spec's.
func (s *Server) specOf(mv mlflow.ModelVersion) string {
	fp := mv.Tags[modelstore.TagSpecFingerprint]
	if s.followsFamily() && strings.HasPrefix(fp, s.cfg.Spec.Name+"-v") {
		return fp
	}
	return s.cfg.Spec.Fingerprint()
}

// refreshAll refreshes every served alias and logs failures (the current models keep serving).
func (s *Server) refreshAll(ctx context.Context) {
	aliases := []string{modelstore.AliasChampion}
	if s.cfg.ChallengerEnabled {
		aliases = append(aliases, modelstore.AliasChallenger)
	}
	for _, a := range aliases {
		if err := s.refresh(ctx, a); err != nil && ctx.Err() == nil {
			s.logger.Warn("model reload failed; keeping the current model", "alias", a, "model", s.cfg.ModelName, "err", err)
		}
	}
}

// ReloadActor keeps the served models current: it reloads on model.events records that move
// a served alias of the served model, and polls the aliases every PollInterval as a safety
// net (every second while no champion is loaded).
func (s *Server) ReloadActor() run.Actor {
	return run.Actor{Name: "model-reload", Run: func(ctx context.Context) error {
		var wg sync.WaitGroup
		wg.Go(func() { s.watchModelEvents(ctx) })
		defer wg.Wait()
		for {
			wait := s.cfg.PollInterval
			if s.champion.peek() == nil {
				wait = min(wait, time.Second)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			case <-s.reload:
				t.Stop()
			}
			s.refreshAll(ctx)
		}
	}}
}

// Reload asks the reload loop to refresh the aliases now. It does not wait.
func (s *Server) Reload() {
	select {
	case s.reload <- struct{}{}:
	default:
	}
}

// WatchingModelEvents is closed once the model.events watcher reads from the end of every
// partition: events published after that are seen.
func (s *Server) WatchingModelEvents() <-chan struct{} { return s.watchOK }

// watchModelEvents tails model.events (every replica sees every event; nothing is
// committed) and triggers a reload on alias moves.
func (s *Server) watchModelEvents(ctx context.Context) {
	kafkaio.Tail(ctx, s.cfg.Kafka, s.cfg.ModelEventsTopic, s.logger, func() { close(s.watchOK) }, func(m kafka.Message) {
		var ev eventsv1.ModelEvent
		if err := proto.Unmarshal(m.Value, &ev); err != nil {
			s.logger.Warn("undecodable model event ignored", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			return
		}
		if s.relevant(&ev) {
			s.logger.Info("model event received", "type", ev.GetType().String(), "model", ev.GetModelName(), "alias", ev.GetAlias(),
				"model_version", ev.GetToVersion(), "previous", ev.GetFromVersion(), "event_id", ev.GetEventId())
			s.Reload()
		}
	})
}

// relevant reports whether ev moves an alias this service serves.
func (s *Server) relevant(ev *eventsv1.ModelEvent) bool {
	if ev.GetModelName() != s.cfg.ModelName {
		return false
	}
	switch ev.GetType() {
	case eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED, eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK,
		eventsv1.ModelEventType_MODEL_EVENT_TYPE_ALIAS_REMOVED:
	default:
		return false
	}
	return ev.GetAlias() == modelstore.AliasChampion || (s.cfg.ChallengerEnabled && ev.GetAlias() == modelstore.AliasChallenger)
}
