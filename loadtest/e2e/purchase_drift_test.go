package e2e_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile"
	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/sim"
)

// TestPurchaseDriftRetrainScenario is the closed loop for the purchase-probability model, every
// service a separate process on the real stack: version 1 learns from the shop's own sessions
// before the monitored period; clean labelled shop traffic raises no drift event over more
// than 10 windows; then a holiday rush starts (more engaged, mostly mobile, discounted
// sessions whose carts are mostly checked out); the drift service flags it within 2 windows;
// the trainer retrains exactly once on the logged purchase predictions from the change on,
// passes the bootstrap interval and the shadow period, and promotes; scoring-purchase swaps
// to it with no session lost; and on the traffic after the swap the new champion's MSE is
// under the 0.1 alarm again. Simulated time is compressed: days of a shop in minutes.
func TestPurchaseDriftRetrainScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	ls := newLoopStack(t, ctx, "e2e-shop")
	brokers, esURL, id, tp, driftTopic, model, indexPrefix, bins, env := ls.brokers, ls.esURL, ls.id, ls.tp, ls.driftTopic, ls.model, ls.indexPrefix, ls.bins, ls.env
	const (
		window    = 1000
		clean     = 12 * window // > 10 windows before the change
		maxDrift  = 16 * window // published after the change at most, then the test waits for the promotion
		afterSwap = 6 * window  // scored by the new champion
		history   = 60000       // sessions version 1 learns from
		burnIn    = 250000      // sessions before them
	)

	// The shop: 2000 customers (who churn), 600 sessions an hour of sim time, purchase labels
	// 30 minutes after a session ends, from 30 days back. Version 1 learns from 60,000 sessions
	// (about four sim days); the monitored traffic is the same simulation going on.
	cfg := sim.SessionConfig{Seed: 202, Customers: 2000, SessionsPerHour: 600,
		Start: time.Now().Add(-30 * 24 * time.Hour).Truncate(time.Second)}
	shop, err := sim.NewSessions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Customers come and go (churn): a new shop's purchase histories take a few customer
	// lifetimes (~50 visits, about a week here) to settle, so the simulation runs that long
	// before the history version 1 learns from.
	for range burnIn {
		shop.Next()
	}
	hist, err := shop.Dataset(history)
	if err != nil {
		t.Fatal(err)
	}
	v1File := filepath.Join(t.TempDir(), "purchase-v1.csv.gz")
	if err := datasetfile.WriteFile(v1File, hist.Labelled()); err != nil {
		t.Fatal(err)
	}
	fraudModel := "e2e-shop-fraud-" + id // the trainer's other use case, unused here
	boot := start(t, "trainer-bootstrap", bins["trainer"], true, env, "-model.purchase", model, "-model.fraud", fraudModel,
		"-topic.model-events", tp.modelEvents, "-drift.consume=false", "-data.source", "file", "-data.file", v1File,
		"-drift.window", fmt.Sprint(window), "-kafka.group", "e2e-boot-"+id)
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
	v1, err := trainerv1.NewTrainerServiceClient(dial(t, boot.grpc)).Retrain(rctx, &trainerv1.RetrainRequest{ModelName: model, Reason: "e2e: v1", Actor: "e2e"})
	rcancel()
	if err != nil || !v1.GetPromoted() {
		t.Fatalf("v1: %v %v\n%s", v1, err, boot.tail())
	}
	boot.stop(t)

	trainer := ls.startTrainer(t, window, "-model.purchase", model, "-model.fraud", fraudModel, "-data.min-rows", "5000",
		"-shadow.predictions", "1000")
	features := ls.startPipeline(t)
	scoring := start(t, "scoring-purchase", bins["scoring"], true, env, ls.scoringArgs(t, "scoring-purchase", features, tp.predictions, "-model.spec", "purchase")...)
	drift := ls.startMonitoring(t, window)
	dc := driftv1.NewDriftServiceClient(dial(t, drift.grpc))
	tc := trainerv1.NewTrainerServiceClient(dial(t, trainer.grpc))

	sent := 0
	phase := map[string]string{} // session id -> "before", "after-change", "after-swap"
	sessionTime := map[string]time.Time{}
	var last time.Time
	// publish sends the next n sessions and the purchase labels that fell due meanwhile for
	// sessions this test published (not the history's).
	publish := func(n int, tag string) {
		t.Helper()
		var raw, labels []kafka.Message
		for range n {
			s, due := shop.Next()
			phase[s.SessionID], sessionTime[s.SessionID], last = tag, s.EventTime, s.EventTime
			b, err := proto.Marshal(s.Proto())
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, kafkaio.NewRecord(tp.raw, []byte(s.CustomerID), b, topics.ContentTypeProtobuf, nil))
			labels = appendPurchaseLabels(t, labels, tp.labels, due, phase, sessionTime)
		}
		kafkaiotest.Produce(t, []string{brokers}, raw...)
		if len(labels) > 0 {
			kafkaiotest.Produce(t, []string{brokers}, labels...)
		}
		sent += len(raw)
	}
	scored := func() int {
		c, _ := esCount(esURL, indexPrefix+"*", fmt.Sprintf(`{"query":{"term":{"model_name":%q}}}`, model))
		return c
	}
	loop := &closedLoop{model: model, v1: v1.GetModelVersion(), brokers: brokers, driftTopic: driftTopic, window: window, maxDrift: maxDrift,
		tc: tc, dc: dc, trainer: trainer, drift: drift, scoring: scoring,
		publish: func(n int) { publish(n, "after-change") }, sent: func() int { return sent }, scored: scored}

	// 1. Clean traffic: more than 10 windows, no drift event.
	for range clean / window {
		publish(window, "before")
	}
	loop.clean(t, ctx, 11, 4*time.Minute)

	// 2. The holiday rush, until the trainer promoted a new champion; 3. scoring-purchase serves it.
	d, err := sim.SessionScenarioDrift(sim.ScenarioSeason, last.Add(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := shop.AddDrift(d); err != nil {
		t.Fatal(err)
	}
	v2 := loop.untilPromoted(t, ctx)
	for range afterSwap / window {
		publish(window, "after-swap")
	}
	var owed []kafka.Message
	owed = appendPurchaseLabels(t, owed, tp.labels, shop.Drain(), phase, sessionTime)
	kafkaiotest.Produce(t, []string{brokers}, owed...)
	loop.untilLabelled(t, ctx, esURL, indexPrefix+"*")

	// No session lost or doubled across the swap, none refused; the MSE per stretch.
	docs := esAllDocs(t, esURL, indexPrefix+"*", model)
	if len(docs) != sent {
		t.Errorf("%d purchase documents for %d sessions", len(docs), sent)
	}
	if rej := metricSum(scrapeText(scoring.admin), "mlops_scoring_rejected_total"); rej != 0 {
		t.Errorf("scoring rejected %v vectors", rej)
	}
	type stretch struct{ pred, actual []float64 }
	var before, changed, after stretch
	for _, d := range docs {
		var s *stretch
		switch {
		case math.IsNaN(d.actual):
			continue
		case phase[d.tx] == "before" && d.version == v1.GetModelVersion():
			s = &before
		case phase[d.tx] == "after-change" && d.version == v1.GetModelVersion():
			s = &changed
		case phase[d.tx] == "after-swap" && d.version == v2:
			s = &after
		default:
			continue
		}
		s.pred, s.actual = append(s.pred, d.score), append(s.actual, d.actual)
	}
	mseBefore, mseChanged, mseAfter := driftstat.MSE(before.pred, before.actual), driftstat.MSE(changed.pred, changed.actual), driftstat.MSE(after.pred, after.actual)
	t.Logf("MSE: v%s before the change %.4f (%d sessions); v%s in the rush %.4f (%d); v%s after the swap %.4f (%d); purchase rate before %.3f, after %.3f",
		v1.GetModelVersion(), mseBefore, len(before.pred), v1.GetModelVersion(), mseChanged, len(changed.pred), v2, mseAfter, len(after.pred),
		meanOf(before.actual), meanOf(after.actual))
	if len(after.pred) < afterSwap/2 || !(mseAfter < 0.1) {
		t.Errorf("after the swap the new champion's MSE is %.4f on %d sessions, want under 0.1", mseAfter, len(after.pred))
	}
	if !(mseChanged > mseAfter) {
		t.Errorf("in the rush the old champion's MSE %.4f is not above the new one's %.4f after the swap", mseChanged, mseAfter)
	}
}

// appendPurchaseLabels appends the labels.v1 records of the due purchase labels whose session
// the test published (phase set), with their session's time.
func appendPurchaseLabels(t *testing.T, out []kafka.Message, topic string, due []sim.PurchaseLabel, phase map[string]string, at map[string]time.Time) []kafka.Message {
	t.Helper()
	for i := range due {
		if phase[due[i].SessionID] == "" {
			continue
		}
		b, err := proto.Marshal(due[i].Proto(at[due[i].SessionID]))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, kafkaio.NewRecord(topic, []byte(due[i].SessionID), b, topics.ContentTypeProtobuf, nil))
	}
	return out
}

// modelHistory lists model's events for a failure message.
func modelHistory(ctx context.Context, tc trainerv1.TrainerServiceClient, model string) string {
	h, err := tc.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: model})
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, e := range h.GetEvents() {
		lines = append(lines, fmt.Sprintf("%s %s %s->%s: %s", e.GetType(), e.GetAlias(), e.GetFromVersion(), e.GetToVersion(), e.GetReason()))
	}
	return strings.Join(lines, "\n")
}

func meanOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
