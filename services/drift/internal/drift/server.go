// Package drift watches the live predictions and labels of each monitored model against its
// champion's reference profile, in tumbling windows, and raises drift events: feature and
// score drift (PSI, KS, JS against calibrated thresholds), data quality, realized
// performance once labels arrive and estimated performance before they do.
package drift

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/run"
)

// Server is the drift service: the Kafka handler, the reference loader and the gRPC API.
// It is safe for concurrent use.
type Server struct {
	driftv1.UnimplementedDriftServiceServer
	cfg         Config
	logger      *slog.Logger
	m           *metrics
	refs        ReferenceSource
	monitors    map[string]*monitor
	labelsTopic string

	// Merged mode: the source partitions and their watermarks (stage 2).
	mergeMu sync.Mutex
	sources map[string]sourceState
	now     func() time.Time

	joinMu sync.Mutex
	join   *joiner
	logged sync.Map // causes already logged once

	refresh chan struct{}
}

// New returns the drift server. refs nil means the MLflow registry at cfg.MLflowURL.
func New(cfg Config, refs ReferenceSource, logger *slog.Logger, reg prometheus.Registerer) *Server {
	if refs == nil {
		refs = registrySource{client: mlflow.New(cfg.MLflowURL), cfg: cfg}
	}
	s := &Server{cfg: cfg, logger: logger, m: newMetrics(reg), refs: refs, monitors: map[string]*monitor{},
		labelsTopic: topics.Labels, join: newJoiner(cfg.JoinMaxEntries, int64(cfg.JoinMaxAge)),
		refresh: make(chan struct{}, 1), sources: map[string]sourceState{}, now: time.Now}
	if len(cfg.Kafka.Topics) > 1 {
		s.labelsTopic = cfg.Kafka.Topics[1]
	}
	for _, model := range cfg.Models {
		s.monitors[model] = newMonitor(model, cfg, s.m)
	}
	return s
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { driftv1.RegisterDriftServiceServer(g, s) }

// Refresh asks the reference loop to re-resolve every champion now.
func (s *Server) Refresh() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
}

// LoadReferences resolves every model's champion once and swaps the references that
// changed; events of windows closed by a swap are returned for publishing.
func (s *Server) LoadReferences(ctx context.Context) []*eventsv1.DriftEvent {
	var evs []*eventsv1.DriftEvent
	for _, model := range s.cfg.Models {
		mo := s.monitors[model]
		ref, err := s.refs.Load(ctx, model)
		if err != nil {
			s.m.referenceLoads.WithLabelValues(model, "error").Inc()
			if cur := mo.reference(); cur == nil {
				s.count("reference", outcomeNoReference+"_"+model, "reference profile not loaded; retrying", "model", model, "err", err)
			} else {
				s.logger.Warn("reference refresh failed; keeping the loaded one", "model", model, "model_version", cur.Version, "err", err)
			}
			continue
		}
		s.m.referenceLoads.WithLabelValues(model, "ok").Inc()
		if cur := mo.reference(); cur == nil || cur.Version != ref.Version || cur.RunID != ref.RunID {
			s.logger.Info("reference profile loaded", "model", model, "model_version", ref.Version, "run_id", ref.RunID,
				"calibrated", ref.Profile.Features[0].Alarm != nil, "window_state_bytes", ref.Layout.Bytes())
		}
		evs = append(evs, mo.setReference(ref)...)
	}
	return evs
}

// ReferenceActor keeps the references current: at start, every RefreshInterval, and when
// model.events reports a champion move. Events of windows closed by a swap are published
// with producer p.
func (s *Server) ReferenceActor(p *kafkaio.Producer) run.Actor {
	return run.Actor{Name: "references", Run: func(ctx context.Context) error {
		var wg sync.WaitGroup
		defer wg.Wait()
		tailCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		wg.Go(func() {
			kafkaio.Tail(tailCtx, s.cfg.Kafka, s.cfg.ModelEventsTopic, s.logger, nil, func(m kafka.Message) {
				var ev eventsv1.ModelEvent
				if proto.Unmarshal(m.Value, &ev) == nil && ev.GetAlias() == modelstore.AliasChampion && s.monitors[ev.GetModelName()] != nil {
					s.Refresh()
				}
			})
		})
		t := time.NewTicker(s.cfg.RefreshInterval)
		defer t.Stop()
		for {
			s.publish(ctx, p, s.LoadReferences(ctx))
			select {
			case <-ctx.Done():
				s.flush(p)
				return nil
			case <-t.C:
			case <-s.refresh:
			}
		}
	}}
}

// flush closes every open window at shutdown and publishes their events.
func (s *Server) flush(p *kafkaio.Producer) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var evs []*eventsv1.DriftEvent
	for _, model := range s.cfg.Models {
		evs = append(evs, s.monitors[model].flush()...)
	}
	s.publish(ctx, p, evs)
}

func (s *Server) publish(ctx context.Context, p *kafkaio.Producer, evs []*eventsv1.DriftEvent) {
	if len(evs) == 0 || p == nil {
		return
	}
	recs := make([]kafka.Message, 0, len(evs))
	for _, ev := range evs {
		rec, err := s.record(ev)
		if err != nil {
			s.logger.Error("drift event not encoded", "err", err)
			continue
		}
		recs = append(recs, rec)
	}
	if err := p.WriteMessages(ctx, recs...); err != nil {
		s.logger.Error("drift events of a window closed by a reference swap not published", "events", len(recs), "err", err)
	}
}

// monitor returns the monitor of name, or the only one when name is empty.
func (s *Server) monitor(name string) (*monitor, error) {
	if name == "" && len(s.cfg.Models) == 1 {
		name = s.cfg.Models[0]
	}
	if name == "" {
		return nil, fmt.Errorf("model_name is required: monitored models are %v", s.cfg.Models)
	}
	mo := s.monitors[name]
	if mo == nil {
		return nil, fmt.Errorf("model %q is not monitored (monitored: %v)", name, s.cfg.Models)
	}
	return mo, nil
}
