package trainer

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
)

// Modes of testSource.
const (
	sourceNormal int32 = iota
	sourceFail
	sourceShuffle
)

// testSource wraps the integration tests' file source: it can fail every load (a failing
// run) or shuffle the labels (a deliberately bad challenger).
type testSource struct {
	inner DataSource
	mode  atomic.Int32
	// short makes that many next loads return only 100 rows (labels still arriving); loads
	// counts every load.
	short, loads atomic.Int32
}

var errInjected = errors.New("injected data source failure")

func (s *testSource) Load(ctx context.Context, q DataQuery) (*Dataset, error) {
	s.loads.Add(1)
	if s.short.Add(-1) >= 0 {
		q.MaxRows = 100
		return s.inner.Load(ctx, q)
	}
	s.short.Store(0)
	switch s.mode.Load() {
	case sourceFail:
		return nil, errInjected
	case sourceShuffle:
		d, err := s.inner.Load(ctx, q)
		if err != nil {
			return nil, err
		}
		out := *d
		out.Y = append([]float64(nil), d.Y...)
		r := rand.New(rand.NewPCG(3, 4))
		r.Shuffle(len(out.Y), func(i, j int) { out.Y[i], out.Y[j] = out.Y[j], out.Y[i] })
		return &out, nil
	}
	return s.inner.Load(ctx, q)
}

func driftRecord(t *testing.T, ev *eventsv1.DriftEvent) kafka.Message {
	t.Helper()
	if ev.EventId == "" {
		ev.EventId = eventid.New()
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: topics.DriftEvents, Key: []byte(ev.GetModelName()), Value: b}
}

// TestAutoRollback: v1 is a good champion; v2, trained on shuffled labels, is rejected by the
// bootstrap rule and then promoted by hand; a drift rollback event for v2 moves the champion
// back to v1, audited as ROLLED_BACK by "drift" with the event's message; replaying the event
// changes nothing.
func TestAutoRollback(t *testing.T) {
	st := startTrainer(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	model := "test-rollback-" + st.modelKey
	v1, err := st.client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "good"})
	if err != nil || !v1.GetPromoted() {
		t.Fatalf("v1 = %v, %v; want promoted", v1, err)
	}
	st.data.mode.Store(sourceShuffle)
	v2, err := st.client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "shuffled labels"})
	st.data.mode.Store(sourceNormal)
	if err != nil || v2.GetPromoted() {
		t.Fatalf("v2 (shuffled labels) = %v, %v; want registered, not promoted", v2, err)
	}
	if !strings.Contains(v2.GetDecision(), "delta_auc") || !strings.Contains(v2.GetDecision(), "lower bound <= margin") {
		t.Errorf("v2 decision = %q, want the bootstrap interval and the rule", v2.GetDecision())
	}
	t.Logf("v2: %s", v2.GetDecision())
	if _, err := st.client.Promote(admin(ctx), &trainerv1.PromoteRequest{ModelName: model, Version: v2.GetModelVersion(), Actor: "alice", Reason: "force the bad one"}); err != nil {
		t.Fatal(err)
	}

	const msg = "live AUC of v2 0.51 below v1's 0.93 by more than 0.02 over 3 windows"
	rec := driftRecord(t, &eventsv1.DriftEvent{ModelName: model, ModelVersion: v2.GetModelVersion(), PreviousVersion: v1.GetModelVersion(),
		Rollback: true, Metric: eventsv1.DriftMetric_DRIFT_METRIC_AUC, Value: 0.51, Threshold: 0.91, Message: msg})
	for i := range 2 { // the second delivery is a replay
		if _, err := st.srv.HandleDrift(ctx, rec); err != nil {
			t.Fatalf("HandleDrift(rollback) #%d: %v", i, err)
		}
		champ, err := st.mlf.GetVersionByAlias(ctx, model, "champion")
		if err != nil || champ.Version != v1.GetModelVersion() {
			t.Fatalf("champion after rollback event #%d = %q, %v; want %s", i, champ.Version, err, v1.GetModelVersion())
		}
	}
	h, err := st.client.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: model, Alias: "champion"})
	if err != nil {
		t.Fatal(err)
	}
	var rollbacks []*eventsv1.ModelEvent
	for _, e := range h.GetEvents() {
		if e.GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK {
			rollbacks = append(rollbacks, e)
		}
	}
	if len(h.GetEvents()) != 3 || len(rollbacks) != 1 {
		t.Fatalf("champion history = %v, want PROMOTED, PROMOTED, one ROLLED_BACK", h.GetEvents())
	}
	rb := rollbacks[0]
	if rb != h.GetEvents()[0] || rb.GetActor() != "drift" || rb.GetReason() != msg || rb.GetFromVersion() != v2.GetModelVersion() || rb.GetToVersion() != v1.GetModelVersion() {
		t.Errorf("rollback event = %v, want the newest, by drift, %s -> %s, reason %q", rb, v2.GetModelVersion(), v1.GetModelVersion(), msg)
	}
	for action, want := range map[string]float64{"rolled_back": 1, "rollback_stale": 1} {
		if got := testutil.ToFloat64(st.srv.m.driftEvents.WithLabelValues(action)); got != want {
			t.Errorf("drift events %s = %v, want %v", action, got, want)
		}
	}
	// A rollback event naming a version that never was champion is ignored too.
	if _, err := st.srv.HandleDrift(ctx, driftRecord(t, &eventsv1.DriftEvent{ModelName: model, ModelVersion: "99", PreviousVersion: "1", Rollback: true})); err != nil {
		t.Errorf("HandleDrift(rollback of a non-champion) = %v, want ignored", err)
	}
	if _, err := st.srv.HandleDrift(ctx, driftRecord(t, &eventsv1.DriftEvent{ModelName: model, Rollback: true})); err == nil {
		t.Error("HandleDrift(rollback without versions) = nil, want a permanent error")
	}
}

// TestTrainerLeaseAndCooldown: the cooldown and the lease live on the registered model in
// MLflow, so a restarted server sees the cooldown and a second server is refused while the
// first runs; a failed run starts no cooldown.
func TestTrainerLeaseAndCooldown(t *testing.T) {
	st := startTrainer(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	model := "test-lease-" + st.modelKey
	event := func() kafka.Message {
		return driftRecord(t, &eventsv1.DriftEvent{ModelName: model, Feature: "amount", Metric: eventsv1.DriftMetric_DRIFT_METRIC_PSI, Value: 0.3, Threshold: 0.1, Retrain: true})
	}

	// A failing run does not start the cooldown: the next event retrains.
	st.data.mode.Store(sourceFail)
	if _, err := st.srv.HandleDrift(ctx, event()); err != nil {
		t.Fatalf("HandleDrift (failing run): %v", err)
	}
	st.data.mode.Store(sourceNormal)
	if last, err := st.srv.lastRetrain(ctx, model); err != nil || !last.IsZero() {
		t.Fatalf("retrain time after a failed run = %v, %v; want unset", last, err)
	}
	if _, err := st.srv.HandleDrift(ctx, event()); err != nil {
		t.Fatalf("HandleDrift: %v", err)
	}
	for action, want := range map[string]float64{"failed": 1, "retrained": 1} {
		if got := testutil.ToFloat64(st.srv.m.driftEvents.WithLabelValues(action)); got != want {
			t.Errorf("drift events %s = %v, want %v", action, got, want)
		}
	}
	rm, err := st.mlf.GetRegisteredModel(ctx, model)
	if err != nil {
		t.Fatal(err)
	}
	if rm.Tags[TagRetrainLast] == "" || rm.Tags[TagRetrainLease] != "" {
		t.Errorf("tags after the run = %v, want %s set and no lease", rm.Tags, TagRetrainLast)
	}

	// A restarted process (new Server, same MLflow) still sees the cooldown.
	restarted := st.newServer(t)
	if _, err := restarted.HandleDrift(ctx, event()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(restarted.m.driftEvents.WithLabelValues("cooldown")); got != 1 {
		t.Errorf("restarted server: cooldown events = %v, want 1", got)
	}

	// A second replica is refused while the first holds the lease (asked mid-training).
	other := st.newServer(t)
	var otherErr error
	var leaseDuring string
	asked := false
	_, err = st.srv.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "lease"}, "manual", func(p Progress) {
		if p.Stage == "train" && !asked {
			asked = true
			_, otherErr = other.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "other"}, "manual", nil)
			if rm, err := st.mlf.GetRegisteredModel(ctx, model); err == nil {
				leaseDuring = rm.Tags[TagRetrainLease]
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(otherErr, ErrRetrainRunning) || !strings.Contains(otherErr.Error(), st.srv.owner) {
		t.Errorf("second server's Train during the run = %v, want ErrRetrainRunning naming %s", otherErr, st.srv.owner)
	}
	if l, ok := parseLease(leaseDuring); !ok || l.Owner != st.srv.owner || !l.Expiry.After(time.Now()) {
		t.Errorf("lease during the run = %q, want held by %s", leaseDuring, st.srv.owner)
	}

	// A live lease of another owner refuses; an expired one is taken over.
	if err := st.srv.setModelTag(ctx, model, TagRetrainLease, lease{Owner: "ghost", Expiry: time.Now().Add(time.Minute)}.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "other"}, "manual", nil); !errors.Is(err, ErrRetrainRunning) {
		t.Errorf("Train under a live foreign lease = %v, want ErrRetrainRunning", err)
	}
	if err := st.srv.setModelTag(ctx, model, TagRetrainLease, lease{Owner: "ghost", Expiry: time.Now().Add(-time.Second)}.String()); err != nil {
		t.Fatal(err)
	}
	_, held, err := other.acquireLease(ctx, model)
	if err != nil {
		t.Fatalf("taking over an expired lease: %v", err)
	}
	held.release(ctx, false)
	if got := testutil.ToFloat64(other.m.leases.WithLabelValues("taken_over")); got != 1 {
		t.Errorf("leases taken over = %v, want 1", got)
	}
	if rm, err := st.mlf.GetRegisteredModel(ctx, model); err != nil || rm.Tags[TagRetrainLease] != "" {
		t.Errorf("lease after release = %q, %v; want none", rm.Tags[TagRetrainLease], err)
	}
}

// TestTrainerDataWindowAndMinimum: a drift event's change_start bounds the training rows
// (recorded in the run); too few labelled rows or positives record a skipped run and a
// REJECTED event and fail the RPC with FAILED_PRECONDITION and the numbers.
func TestTrainerDataWindowAndMinimum(t *testing.T) {
	st := startTrainer(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	model := "test-window-" + st.modelKey
	all, err := st.data.inner.Load(ctx, DataQuery{Spec: st.srv.specFor(model, eventsv1.Task_TASK_BINARY_CLASSIFICATION)})
	if err != nil {
		t.Fatal(err)
	}
	n := all.Rows()
	change := time.Unix(0, all.EventTimes[n/3]) // two thirds of the rows are after the change

	if _, err := st.srv.HandleDrift(ctx, driftRecord(t, &eventsv1.DriftEvent{ModelName: model, Retrain: true, Message: "amount shifted",
		ChangeStart: timestamppb.New(change), WindowsPersisted: 2})); err != nil {
		t.Fatal(err)
	}
	mvs, err := st.mlf.SearchModelVersions(ctx, model)
	if err != nil || len(mvs) != 1 {
		t.Fatalf("versions after the drift retrain = %d, %v; want 1", len(mvs), err)
	}
	run, err := st.mlf.GetRun(ctx, mvs[0].RunID)
	if err != nil {
		t.Fatal(err)
	}
	from, _ := time.Parse(time.RFC3339Nano, run.Params["data_from"])
	rows := 0
	for _, k := range []string{"rows_train", "rows_valid", "rows_holdout"} {
		v, _ := strconv.Atoi(run.Params[k])
		rows += v
	}
	if run.Params["window_origin"] != "change_start" || run.Params["change_start"] != change.UTC().Format(time.RFC3339Nano) ||
		from.Before(change.Truncate(time.Second)) || rows != n-n/3 || run.Tags[tagDecision] != "promoted" {
		t.Errorf("drift run params = %v (%d rows), want the window from change_start %v with %d rows", run.Params, rows, change, n-n/3)
	}

	// Too few rows: the RPC fails with the numbers, the decision is recorded.
	late := time.Unix(0, all.EventTimes[n-500])
	_, err = st.client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "late window", DataFrom: timestamppb.New(late)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not enough labelled data: 500 rows (need 1000)") {
		t.Fatalf("Retrain on 500 rows = %v, want FAILED_PRECONDITION with the counts", err)
	}
	// Too few positives.
	strict := st.newServer(t, "-data.min-positives", "100000")
	if _, err := strict.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "tester"}, "manual", nil); !errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), "positives (need 100000)") {
		t.Fatalf("Train with min positives 100000 = %v, want ErrNoData with the positives", err)
	}
	if got := testutil.ToFloat64(st.srv.m.skipped.WithLabelValues("not_enough_data")); got != 1 {
		t.Errorf("skipped runs = %v, want 1", got)
	}
	var rejected []*eventsv1.ModelEvent
	for _, e := range readEvents(t, st.brokers, model) {
		if e.GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_REJECTED && e.GetToVersion() == "" {
			rejected = append(rejected, e)
		}
	}
	if len(rejected) != 2 || !strings.HasPrefix(rejected[0].GetReason(), "not enough labelled data: 500 rows") || rejected[0].GetMetrics()["labelled_rows"] != 500 || rejected[0].GetRunId() == "" {
		t.Fatalf("REJECTED events without version = %v, want two, the first for 500 rows", rejected)
	}
	skippedRun, err := st.mlf.GetRun(ctx, rejected[0].GetRunId())
	if err != nil {
		t.Fatal(err)
	}
	if skippedRun.Tags[tagSkipped] != "true" || skippedRun.Params["labelled_rows"] != "500" || skippedRun.Params["window_origin"] != "request" {
		t.Errorf("skipped run tags %v params %v", skippedRun.Tags, skippedRun.Params)
	}
	// Neither skipped run started the cooldown: the retrain time is still the drift run's.
	last, err := st.srv.lastRetrain(ctx, model)
	if err != nil || last.After(skippedRun.StartTime) {
		t.Errorf("retrain time = %v, %v; want before the skipped run (%v)", last, err, skippedRun.StartTime)
	}
}

// TestTrainerWaitsForLabels: a drift-triggered retrain whose data is still short of the
// minimum (labels of the changed traffic arriving) waits and re-reads instead of skipping,
// and trains once the rows are there; nothing is recorded as skipped meanwhile.
func TestTrainerWaitsForLabels(t *testing.T) {
	st := startTrainer(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := st.newServer(t, "-drift.label-wait", "1m", "-data.poll", "50ms")
	model := "test-wait-" + st.modelKey
	st.data.short.Store(3)
	st.data.loads.Store(0)
	if _, err := srv.HandleDrift(ctx, driftRecord(t, &eventsv1.DriftEvent{ModelName: model, Retrain: true, Message: "new fraud pattern"})); err != nil {
		t.Fatal(err)
	}
	mvs, err := st.mlf.SearchModelVersions(ctx, model)
	if err != nil || len(mvs) != 1 {
		t.Fatalf("versions after the waiting retrain = %d, %v; want 1", len(mvs), err)
	}
	if got := st.data.loads.Load(); got < 4 {
		t.Errorf("data loaded %d times, want at least 4 (three short reads, then enough)", got)
	}
	if got := testutil.ToFloat64(srv.m.skipped.WithLabelValues("not_enough_data")); got != 0 {
		t.Errorf("skipped runs = %v, want 0 while waiting", got)
	}
}

// TestManualRetrainLeavesDriftCooldown: a manual retrain (the first version, or one an
// analyst ran) does not start the drift cooldown, so a drift event right after it still
// retrains: the detector recommends retraining only once per shift.
func TestManualRetrainLeavesDriftCooldown(t *testing.T) {
	st := startTrainer(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	model := "test-manual-" + st.modelKey
	if _, err := st.client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "first version"}); err != nil {
		t.Fatal(err)
	}
	if last, err := st.srv.lastRetrain(ctx, model); err != nil || !last.IsZero() {
		t.Fatalf("retrain time after a manual retrain = %v, %v; want unset", last, err)
	}
	if _, err := st.srv.HandleDrift(ctx, driftRecord(t, &eventsv1.DriftEvent{ModelName: model, Retrain: true, Message: "shift"})); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(st.srv.m.driftEvents.WithLabelValues("retrained")); got != 1 {
		t.Errorf("drift events that retrained = %v, want 1 (no cooldown from the manual run)", got)
	}
	if last, err := st.srv.lastRetrain(ctx, model); err != nil || last.IsZero() {
		t.Errorf("retrain time after the drift retrain = %v, %v; want set", last, err)
	}
}
