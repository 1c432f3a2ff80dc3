package drift

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/sim"
)

// feedLabelled sends rows [from, to) as predictions of version, scored by score, each batch
// followed by the rows' labels, and returns the drift events raised.
func feedLabelled(t *testing.T, s *Server, d *sim.Dataset, from, to int, version string, score func([]float64) float64) []*eventsv1.DriftEvent {
	t.Helper()
	var out []*eventsv1.DriftEvent
	collect := func(msgs []kafka.Message) {
		res, err := s.Handle(context.Background(), msgs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("record %d: %v", i, r.Err)
			}
			for _, rec := range r.Output {
				ev := new(eventsv1.DriftEvent)
				if err := proto.Unmarshal(rec.Value, ev); err != nil {
					t.Fatal(err)
				}
				out = append(out, ev)
			}
		}
	}
	for b := from; b < to; b += 250 {
		var preds, labels []kafka.Message
		for i := b; i < min(b+250, to); i++ {
			tx := "tx-" + strconv.Itoa(i)
			m := predictionRecord(t, tx, d.EventTimes[i], d.Row(i), score(d.Row(i)))
			p := new(eventsv1.Prediction)
			if err := proto.Unmarshal(m.Value, p); err != nil {
				t.Fatal(err)
			}
			p.ModelVersion = version
			m.Value, _ = proto.Marshal(p)
			preds = append(preds, m)
			lb, _ := proto.Marshal(&eventsv1.Label{TransactionId: tx, Label: d.Truth[i], EventTime: timestamppb.New(time.Unix(0, d.EventTimes[i]))})
			labels = append(labels, kafka.Message{Topic: topics.Labels, Value: lb})
		}
		collect(preds)
		collect(labels)
	}
	return out
}

// TestDriftRollbackOnRegression: after the champion moves from version 1 to version 2, a
// version 2 that ranks transactions worse than version 1 did raises exactly one rollback
// event (back to version 1) within the watch; a version 2 as good as version 1 raises none.
func TestDriftRollbackOnRegression(t *testing.T) {
	t.Parallel()
	const window, refN = 2000, 40000
	d, err := sim.FraudDataset(sim.Config{Seed: 21, Accounts: 3000, Warmup: 7 * 24 * time.Hour, FraudRate: 0.05}, refN+12*window)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		score    func([]float64) float64
		rollback bool
	}{
		{name: "worse", score: func(r []float64) float64 { return 1 - scoreOf(r) }, rollback: true},
		{name: "as good", score: scoreOf, rollback: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, "-window.count", strconv.Itoa(window), "-window.min-count", "500", "-window.min-labels", "200",
				"-window.duration", "10000h", "-rollback.watch", "6")
			v1 := simReference(t, d, refN, window, cfg)
			v2, err := NewReference("fraud", "2", "run-2", d.Spec, 0.8, v1.Profile, cfg)
			if err != nil {
				t.Fatal(err)
			}
			src := staticSource{"fraud": v1}
			s := New(cfg, src, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			s.LoadReferences(context.Background())
			if evs := feedLabelled(t, s, d, refN, refN+4*window, "1", scoreOf); hasRollback(evs) {
				t.Fatalf("rollback before any promotion: %v", evs)
			}
			src["fraud"] = v2
			s.LoadReferences(context.Background())
			evs := feedLabelled(t, s, d, refN+4*window, refN+10*window, "2", tc.score)
			var rb []*eventsv1.DriftEvent
			for _, ev := range evs {
				if ev.GetRollback() {
					rb = append(rb, ev)
				}
			}
			if !tc.rollback {
				if len(rb) > 0 {
					t.Errorf("a version as good as its predecessor raised a rollback: %s", rb[0].GetMessage())
				}
				return
			}
			if len(rb) != 1 {
				t.Fatalf("%d rollback events, want 1: %v", len(rb), evs)
			}
			ev := rb[0]
			if ev.GetModelVersion() != "2" || ev.GetPreviousVersion() != "1" || ev.GetRetrain() {
				t.Errorf("rollback event: version %q previous %q retrain %v, want 2, 1, false", ev.GetModelVersion(), ev.GetPreviousVersion(), ev.GetRetrain())
			}
			if ev.GetMetric() != eventsv1.DriftMetric_DRIFT_METRIC_AUC {
				t.Errorf("rollback metric %s, want realized AUC (labels were there)", ev.GetMetric())
			}
			t.Log(ev.GetMessage())
		})
	}
}

func hasRollback(evs []*eventsv1.DriftEvent) bool {
	for _, ev := range evs {
		if ev.GetRollback() {
			return true
		}
	}
	return false
}
