package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/sim"
)

// TestDriftRetrainScenario is the closed loop on the real stack, every service a separate
// process: clean labelled traffic raises no drift event over more than 10 windows; then the
// simulator starts a new fraud pattern (bust-out) and amounts grow by half; the drift service
// flags it within 2 windows; the trainer retrains exactly once, on the logged predictions
// from the change on (waiting for their labels), and promotes the challenger only because the
// bootstrap interval clears the margin and the shadow period on live traffic holds; scoring
// swaps to it with no transaction lost; and on the traffic after the swap the new champion
// ranks the changed traffic better than the old champion did and its AUC is back within 0.02
// of the pre-drift AUC (beyond the noise of the two measurements).
// Simulated time is compressed: about two weeks of a 1200-account bank in a few minutes.
func TestDriftRetrainScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	ls := newLoopStack(t, ctx, "e2e-loop")
	brokers, esURL, id, tp, driftTopic, model, indexPrefix, bins, env := ls.brokers, ls.esURL, ls.id, ls.tp, ls.driftTopic, ls.model, ls.indexPrefix, ls.bins, ls.env
	const (
		window    = 1000
		accounts  = 1200
		clean     = 14 * window // > 10 windows before the change
		maxDrift  = 24 * window // published after the change at most, then the test waits for the promotion
		afterSwap = 10 * window // scored by the new champion
	)

	// Version 1 learnt from the same bank's history (the simulator's world comes from its seed:
	// the same customers, merchants and devices; another stream seed, so other transactions —
	// with the same stream seed the month before would replay the monitored traffic, and the
	// pre-drift AUC would be in-sample) in the month before the monitored period: ~17 sim days,
	// so its reference profile's alarms see the bank's own day-to-day variation. Its stream
	// starts after 15 days of history (the monitored one after 21): the simulated bank keeps
	// maturing (accounts gather devices, so distinct_devices_24h and location_score creep up
	// over weeks), and a training stretch centred on the monitored one keeps that slow trend
	// out of the clean windows' comparison.
	liveStart := time.Now().Add(-14 * 24 * time.Hour).Truncate(time.Second)
	v1File := datasetfiletest.Simulate(t, "-n", "60000", "-accounts", fmt.Sprint(accounts), "-warmup", "360h", "-seed", "101", "-stream-seed", "1101",
		"-fraud-rate", "0.02", "-start", liveStart.Add(-30*24*time.Hour).Format(time.RFC3339))
	boot := start(t, "trainer-bootstrap", bins["trainer"], true, env, "-model.fraud", model, "-topic.model-events", tp.modelEvents,
		"-drift.consume=false", "-data.source", "file", "-data.file", v1File, "-drift.window", fmt.Sprint(window),
		"-kafka.group", "e2e-boot-"+id)
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
	v1, err := trainerv1.NewTrainerServiceClient(dial(t, boot.grpc)).Retrain(rctx, &trainerv1.RetrainRequest{ModelName: model, Reason: "e2e: v1", Actor: "e2e"})
	rcancel()
	if err != nil || !v1.GetPromoted() {
		t.Fatalf("v1: %v %v\n%s", v1, err, boot.tail())
	}
	boot.stop(t)

	trainer := ls.startTrainer(t, window, "-model.fraud", model, "-data.min-rows", "36000", "-data.min-positives", "600", "-drift.pre-change", "240h")
	features := ls.startPipeline(t)
	scoringArgs := func(predictions string) []string { return ls.scoringArgs(t, "scoring", features, predictions) }
	// During the bank's warm-up (account history the features service must see, like the
	// training set's warm-up) scoring publishes to a side topic nobody monitors.
	warmTopic := "e2e-" + id + ".warmup-predictions"
	if err := kafkaio.EnsureTopics(ctx, []string{brokers}, []kafkaio.TopicSpec{{Name: warmTopic, Partitions: 3}}); err != nil {
		t.Fatal(err)
	}
	scoringWarm := start(t, "scoring-warmup", bins["scoring"], true, env, scoringArgs(warmTopic)...)
	drift := ls.startMonitoring(t, window)
	dc := driftv1.NewDriftServiceClient(dial(t, drift.grpc))

	// The bank: ~3600 transactions a sim day, chargebacks within 30 min to 6 h of sim time,
	// a 21-day warm-up (as the training set had: account histories as mature as those the
	// model learnt from, and old enough that a customer's merchants, devices and countries are
	// mostly known) from 35 days back, so every event is in the past (ingestion refuses the
	// future; its age limit and predlog's parked-label age are raised for this replay of old
	// events).
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Accounts, cfg.FraudRate = 101, accounts, 0.02
	cfg.Warmup = 504 * time.Hour
	cfg.Start = liveStart
	cfg.LabelDelayMin, cfg.LabelDelayMax = 30*time.Minute, 6*time.Hour
	// Find the sim time of the change (the `clean`-th transaction after the warm-up) on a dry
	// run of the same stream, then schedule the drift there: a new fraud pattern and amounts
	// x1.5.
	dry, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var change time.Time
	for i := 0; i <= clean; {
		tx, _ := dry.Next()
		if !tx.EventTime.Before(cfg.Start) {
			change = tx.EventTime
			i++
		}
	}
	pattern, err := sim.ScenarioDrift(sim.ScenarioNewPattern, change)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Drifts = []sim.Drift{pattern, {At: change, AmountScale: 1.5}}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	sent := 0
	phase := map[string]string{} // transaction id -> "warmup", "before", "after-change", "after-swap"
	next, nextDue := s.Next()
	// publish sends the next n transactions (all of the warm-up when tag is "warmup") and the
	// labels that fell due meanwhile for transactions after the warm-up.
	publish := func(n int, tag string) {
		t.Helper()
		var raw, labels []kafka.Message
		for k := 0; tag == "warmup" && next.EventTime.Before(cfg.Start) || tag != "warmup" && k < n; k++ {
			tx, due := next, slices.Clone(nextDue) // Next reuses its label slice
			next, nextDue = s.Next()
			phase[tx.TransactionID] = tag
			b, err := proto.Marshal(tx.Proto())
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, kafkaio.NewRecord(tp.raw, []byte(tx.AccountID), b, topics.ContentTypeProtobuf, nil))
			for i := range due {
				if p := phase[due[i].TransactionID]; p == "" || p == "warmup" {
					continue
				}
				lb, err := proto.Marshal(due[i].Proto())
				if err != nil {
					t.Fatal(err)
				}
				labels = append(labels, kafkaio.NewRecord(tp.labels, []byte(due[i].TransactionID), lb, topics.ContentTypeProtobuf, nil))
			}
		}
		kafkaiotest.Produce(t, []string{brokers}, raw...)
		if len(labels) > 0 {
			kafkaiotest.Produce(t, []string{brokers}, labels...)
		}
		if tag != "warmup" {
			sent += len(raw)
		}
	}

	// 0. The warm-up, scored to the side topic; then scoring moves to the monitored topic.
	publish(0, "warmup")
	warm := len(phase)
	waitFor(t, ctx, 2*time.Minute, "the warm-up scored", func() (bool, string) {
		ends, err := kafkaio.EndOffsets(ctx, []string{brokers}, warmTopic)
		var n int64
		for _, e := range ends {
			n += e
		}
		return err == nil && n >= int64(warm), fmt.Sprintf("%d/%d %v", n, warm, err)
	})
	scoringWarm.stop(t)
	scoring := start(t, "scoring", bins["scoring"], true, env, scoringArgs(tp.predictions)...)
	scored := func() int {
		c, _ := esCount(esURL, indexPrefix+"*", fmt.Sprintf(`{"query":{"term":{"model_name":%q}}}`, model))
		return c
	}
	loop := &closedLoop{model: model, v1: v1.GetModelVersion(), brokers: brokers, driftTopic: driftTopic, window: window, maxDrift: maxDrift,
		tc: trainerv1.NewTrainerServiceClient(dial(t, trainer.grpc)), dc: dc, trainer: trainer, drift: drift, scoring: scoring,
		publish: func(n int) { publish(n, "after-change") }, sent: func() int { return sent }, scored: scored}

	// 1. Clean traffic: more than 10 windows, no drift event.
	for range clean / window {
		publish(window, "before")
	}
	loop.clean(t, ctx, 13, 3*time.Minute)

	// 2. The change, until the trainer promoted a new champion; 3. scoring serves it.
	v2 := loop.untilPromoted(t, ctx)

	for range afterSwap / window {
		publish(window, "after-swap")
	}
	// The labels still owed: those due at the one transaction generated but not sent, then the
	// rest of the simulator's queue.
	for _, l := range append(slices.Clone(nextDue), s.Drain()...) {
		if p, ok := phase[l.TransactionID]; ok && p != "warmup" {
			lb, _ := proto.Marshal(l.Proto())
			kafkaiotest.Produce(t, []string{brokers}, kafkaio.NewRecord(tp.labels, []byte(l.TransactionID), lb, topics.ContentTypeProtobuf, nil))
		}
	}
	loop.untilLabelled(t, ctx, esURL, indexPrefix+"*")

	// No transaction lost or doubled across the swap, none refused.
	docs := esAllDocs(t, esURL, indexPrefix+"*", model)
	if len(docs) != sent {
		t.Errorf("%d prediction documents for %d transactions", len(docs), sent)
	}
	if rej := metricSum(scrapeText(scoring.admin), "mlops_scoring_rejected_total"); rej != 0 {
		t.Errorf("scoring rejected %v vectors", rej)
	}
	type ranked struct {
		scores []float64
		labels []bool
	}
	var before, changed, after ranked
	for _, d := range docs {
		if math.IsNaN(d.actual) {
			continue
		}
		var set *ranked
		switch {
		case phase[d.tx] == "before" && d.version == v1.GetModelVersion():
			set = &before
		case phase[d.tx] == "after-change" && d.version == v1.GetModelVersion():
			set = &changed
		case phase[d.tx] == "after-swap" && d.version == v2:
			set = &after
		default:
			continue
		}
		set.scores, set.labels = append(set.scores, d.score), append(set.labels, d.actual >= 0.5)
	}
	aucBefore, aucChanged, aucAfter := driftstat.AUC(before.scores, before.labels), driftstat.AUC(changed.scores, changed.labels), driftstat.AUC(after.scores, after.labels)
	t.Logf("AUC: v%s before the change %.4f (%d rows); v%s after the change %.4f (%d rows); v%s after the swap %.4f (%d rows)",
		v1.GetModelVersion(), aucBefore, len(before.scores), v1.GetModelVersion(), aucChanged, len(changed.scores), v2, aucAfter, len(after.scores))
	// The promotion already proved the challenger better on the same post-change holdout (the
	// bootstrap interval); live, the two champions serve different stretches of the changed
	// traffic (bust-out episodes build up over time), so the live check is only that the new
	// one ranks better.
	if len(after.scores) < afterSwap/2 || !(aucAfter > aucChanged) {
		t.Errorf("on the changed traffic the retrained champion's AUC is %.4f (%d rows), want above the old champion's %.4f",
			aucAfter, len(after.scores), aucChanged)
	}
	// Recovery: back within 0.02 of the pre-drift AUC. Both are measured on ~10,000 labelled
	// rows with a few hundred frauds, so each carries a standard error near 0.007 (Hanley and
	// McNeil); the test fails when the gap exceeds 0.02 by more than that noise explains
	// (one-sided, 95%), and logs the point estimate.
	gap := aucBefore - aucAfter
	se := math.Hypot(aucSE(aucBefore, before.labels), aucSE(aucAfter, after.labels))
	if gap > 0.02+1.645*se {
		t.Errorf("AUC after the swap %.4f is %.4f below the pre-drift %.4f: more than 0.02 + 1.645 x SE %.4f", aucAfter, gap, aucBefore, se)
	}
	t.Logf("recovery: %.4f after the swap vs %.4f before the change (gap %.4f, standard error of the gap %.4f)", aucAfter, aucBefore, gap, se)
}

// readDriftEvents reads every drift event published so far.
func readDriftEvents(t *testing.T, brokers, topic string) []*eventsv1.DriftEvent {
	t.Helper()
	var out []*eventsv1.DriftEvent
	for _, m := range kafkaiotest.ReadTopic(t, []string{brokers}, topic) {
		ev := new(eventsv1.DriftEvent)
		if err := proto.Unmarshal(m.Value, ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func scrapeText(admin string) string {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// scoredDoc is what the scenario reads back of a prediction document.
type scoredDoc struct {
	tx, version   string
	score, actual float64
}

// esAllDocs pages through every prediction document of model (search_after on the
// transaction id).
func esAllDocs(t *testing.T, base, index, model string) []scoredDoc {
	t.Helper()
	var out []scoredDoc
	var after []any
	for {
		q := map[string]any{
			"size": 5000, "sort": []any{map[string]any{"transaction_id": "asc"}},
			"_source": []string{"transaction_id", "model_version", "score", "actual"},
			"query":   map[string]any{"term": map[string]any{"model_name": model}},
		}
		if after != nil {
			q["search_after"] = after
		}
		body, _ := json.Marshal(q)
		resp, err := http.Post(base+"/"+index+"/_search", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Hits struct {
				Hits []struct {
					Source struct {
						TX      string   `json:"transaction_id"`
						Version string   `json:"model_version"`
						Score   float64  `json:"score"`
						Actual  *float64 `json:"actual"`
					} `json:"_source"`
					Sort []any `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Hits.Hits) == 0 {
			return out
		}
		for _, h := range r.Hits.Hits {
			a := math.NaN()
			if h.Source.Actual != nil {
				a = *h.Source.Actual
			}
			out = append(out, scoredDoc{tx: h.Source.TX, version: h.Source.Version, score: h.Source.Score, actual: a})
			after = h.Sort
		}
	}
}

// aucSE is the Hanley–McNeil standard error of an AUC a measured on labels.
func aucSE(a float64, labels []bool) float64 {
	var pos, neg float64
	for _, l := range labels {
		if l {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return math.Inf(1)
	}
	q1, q2 := a/(2-a), 2*a*a/(1+a)
	return math.Sqrt((a*(1-a) + (pos-1)*(q1-a*a) + (neg-1)*(q2-a*a)) / (pos * neg))
}

// inShadow reports whether a version of model is in its shadow period: the newest event on
// the challenger alias set it.
func inShadow(ctx context.Context, tc trainerv1.TrainerServiceClient, model string) bool {
	h, err := tc.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: model, Alias: "challenger"})
	if err != nil || len(h.GetEvents()) == 0 {
		return false
	}
	return h.GetEvents()[0].GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED
}
