package drift

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/drift/internal/window"
	"github.com/streaming-mlops/mlops/sim"
)

// timedRecord is a prediction or label with the time it is published.
type timedRecord struct {
	at  int64
	msg kafka.Message
}

// TestDriftReplicasMergeExactly: in merged mode, one replica and three replicas (each
// reading one of three partitions) over the same predictions and labels judge identical
// windows and raise identical events, after a shift in the middle of the stream.
func TestDriftReplicasMergeExactly(t *testing.T) {
	t.Parallel()
	const refN, n = 100000, 30000
	base := sim.Config{Seed: 5, Accounts: 1700, Warmup: 7 * 24 * time.Hour, LabelDelayMin: time.Hour, LabelDelayMax: 36 * time.Hour}
	d0, err := sim.FraudDataset(base, refN+n)
	if err != nil {
		t.Fatal(err)
	}
	shifted := base
	shifted.Drifts = []sim.Drift{{At: time.Unix(0, d0.EventTimes[refN+n/2]), AmountScale: 2}}
	d, err := sim.FraudDataset(shifted, refN+n)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "-window.merge", "-window.duration", "6h", "-window.lateness", "0s", "-window.min-count", "500", "-window.min-labels", "50")
	ref := simReference(t, d, refN, 1250, cfg)

	// The stream: predictions at their event time, labels when they become known, partition =
	// key hash mod 3 for both (co-partitioned by transaction id).
	var recs []timedRecord
	last := d.EventTimes[refN+n-1]
	for i := refN; i < refN+n; i++ {
		tx := "tx-" + strconv.Itoa(i)
		part := int(window.Hash(tx) % 3)
		m := predictionRecord(t, tx, d.EventTimes[i], d.Row(i), scoreOf(d.Row(i)))
		m.Partition = part
		recs = append(recs, timedRecord{at: d.EventTimes[i], msg: m})
		if lt := d.LabelTimes[i]; lt <= last {
			b, err := proto.Marshal(&eventsv1.Label{EventId: "l-" + tx, EventTime: timestamppb.New(time.Unix(0, lt)), TransactionId: tx, Label: d.Y[i]})
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, timedRecord{at: lt, msg: kafka.Message{Topic: topics.Labels, Partition: part, Value: b}})
		}
	}
	slices.SortStableFunc(recs, func(a, b timedRecord) int { return int(a.at - b.at) })
	sources := []string{"predictions.v1/0", "predictions.v1/1", "predictions.v1/2", "labels.v1/0", "labels.v1/1", "labels.v1/2"}

	newServer := func() *Server {
		s := New(cfg, staticSource{"fraud": ref}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		s.LoadReferences(context.Background())
		return s
	}
	// stage1 runs one replica over its records in batches and returns its partial records.
	stage1 := func(s *Server, recs []timedRecord, batch int) []kafka.Message {
		var out []kafka.Message
		for b := 0; b < len(recs); b += batch {
			var msgs []kafka.Message
			for _, r := range recs[b:min(b+batch, len(recs))] {
				msgs = append(msgs, r.msg)
			}
			res, err := s.Handle(context.Background(), msgs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil {
					t.Fatalf("record %d: %v", b+i, r.Err)
				}
				out = append(out, r.Output...)
			}
		}
		return out
	}
	// merge runs stage 2 over partials in batches, then closes what is left (shutdown).
	merge := func(partials []kafka.Message, batch int) ([]*Closed, []*eventsv1.DriftEvent) {
		m := newServer()
		m.SetSources(sources)
		var evs []*eventsv1.DriftEvent
		for b := 0; b < len(partials); b += batch {
			res, err := m.HandlePartials(context.Background(), partials[b:min(b+batch, len(partials))])
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil {
					t.Fatalf("partial %d: %v", b+i, r.Err)
				}
				for _, rec := range r.Output {
					ev := new(eventsv1.DriftEvent)
					if err := proto.Unmarshal(rec.Value, ev); err != nil {
						t.Fatal(err)
					}
					evs = append(evs, ev)
				}
			}
		}
		m.mergeMu.Lock()
		evs = append(evs, m.closeMerged(m.monitors["fraud"], true)...)
		m.mergeMu.Unlock()
		return m.monitors["fraud"].snapshot(false).History, evs
	}

	oneClosed, oneEvents := merge(stage1(newServer(), recs, 500), 7)

	var parts [3][]timedRecord
	for _, r := range recs {
		parts[r.msg.Partition] = append(parts[r.msg.Partition], r)
	}
	var outs [3][]kafka.Message
	for p := range parts {
		outs[p] = stage1(newServer(), parts[p], 173+p*50)
	}
	var interleaved []kafka.Message // round-robin, as a partials consumer would see them
	for i := 0; ; i++ {
		done := true
		for p := range outs {
			if i < len(outs[p]) {
				interleaved = append(interleaved, outs[p][i])
				done = false
			}
		}
		if done {
			break
		}
	}
	threeClosed, threeEvents := merge(interleaved, 11)

	if len(oneClosed) < 20 {
		t.Fatalf("%d merged windows over %d predictions, want at least 20", len(oneClosed), n)
	}
	stats := func(cs []*Closed) []window.Stats {
		out := make([]window.Stats, len(cs))
		for i, c := range cs {
			out[i] = c.Stats
		}
		return out
	}
	if diff := cmp.Diff(stats(oneClosed), stats(threeClosed), cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("window statistics differ between one and three replicas (-one +three):\n%s", diff)
	}
	if diff := cmp.Diff(oneEvents, threeEvents, protocmp.Transform()); diff != "" {
		t.Errorf("drift events differ between one and three replicas (-one +three):\n%s", diff)
	}
	if len(oneEvents) == 0 || !containsFeature(oneEvents, "amount") {
		t.Errorf("the amount doubling raised no amount event in merged mode: %v", oneEvents)
	}
	var labelled int64
	for _, c := range oneClosed {
		labelled += c.Stats.Perf.Labelled
	}
	if labelled == 0 {
		t.Error("no labels joined in merged mode")
	}
	t.Logf("%d windows, %d events, %d labels joined, %d partial records from one replica, %d from three",
		len(oneClosed), len(oneEvents), labelled, len(stage1(newServer(), recs, 500)), len(interleaved))
}
