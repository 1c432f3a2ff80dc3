package trainer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
)

// liveRows makes n labelled rows (fraud rate 10%) whose champion and challenger scores
// separate the classes as well as champGap and challGap say (0: no skill).
func liveRows(n int, champGap, challGap float64, seed uint64) []shadowRow {
	r := rand.New(rand.NewPCG(seed, 1))
	rows := make([]shadowRow, n)
	for i := range rows {
		y := 0.0
		if r.Float64() < 0.1 {
			y = 1
		}
		rows[i] = shadowRow{champion: 0.2 + champGap*y + 0.3*r.Float64(), challenger: 0.2 + challGap*y + 0.3*r.Float64(),
			threshold: 0.8, label: y, labelled: true}
	}
	return rows
}

func TestJudgeShadow(t *testing.T) {
	cal := &driftstat.Platt{A: 8, B: -5}
	unlabelled := func(rows []shadowRow) []shadowRow {
		out := append([]shadowRow(nil), rows...)
		for i := range out {
			out[i].labelled = false
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		task      featurespec.Task
		rows      []shadowRow
		champ     *driftstat.Platt
		wantBasis string
		wantPass  bool
		wantIn    string
	}{
		{"better challenger passes on labels", featurespec.TaskBinary, liveRows(2000, 0.2, 0.4, 1), cal, "realized", true, "shadow passed: realized live auc"},
		{"equal models pass", featurespec.TaskBinary, liveRows(2000, 0.3, 0.3, 2), cal, "realized", true, "passed"},
		{"worse challenger fails on labels", featurespec.TaskBinary, liveRows(2000, 0.4, 0.05, 3), cal, "realized", false, "shadow failed: realized live auc"},
		{"no labels: estimated", featurespec.TaskBinary, unlabelled(liveRows(2000, 0.3, 0.3, 4)), cal, "estimated", true, "estimated live auc"},
		{"no labels and no calibration", featurespec.TaskBinary, unlabelled(liveRows(500, 0.3, 0.3, 5)), nil, "estimated", false, "no calibration"},
		{"regression realized", featurespec.TaskRegression, liveRows(1000, 0.5, 0.1, 6), nil, "realized", false, "realized live mse"},
		{"regression estimated", featurespec.TaskRegression, unlabelled(liveRows(1000, 0.3, 0.3, 7)), nil, "estimated", true, "estimated live mse"},
		{"nothing shadow-scored", featurespec.TaskBinary, nil, cal, "", false, "no live predictions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := JudgeShadow(tc.task, tc.rows, tc.champ, cal, 300, 0.01)
			if res.Basis != tc.wantBasis || res.Pass != tc.wantPass || !strings.Contains(res.Reason, tc.wantIn) {
				t.Errorf("JudgeShadow = basis %q pass %v reason %q; want basis %q pass %v reason containing %q",
					res.Basis, res.Pass, res.Reason, tc.wantBasis, tc.wantPass, tc.wantIn)
			}
			if res.Predictions != len(tc.rows) {
				t.Errorf("Predictions = %d, want %d", res.Predictions, len(tc.rows))
			}
		})
	}
	// The realized numbers are the metric on the rows, nothing else.
	rows := liveRows(3000, 0.1, 0.5, 8)
	res := JudgeShadow(featurespec.TaskBinary, rows, nil, nil, 300, 0.01)
	var cs, hs []float64
	var ys []bool
	for _, r := range rows {
		cs, hs, ys = append(cs, r.champion), append(hs, r.challenger), append(ys, r.label == 1)
	}
	if want := driftstat.AUC(cs, ys); math.Abs(res.Champion-want) > 1e-12 {
		t.Errorf("champion AUC %v, want %v", res.Champion, want)
	}
	if want := driftstat.AUC(hs, ys); math.Abs(res.Challenger-want) > 1e-12 || res.Challenger <= res.Champion {
		t.Errorf("challenger AUC %v, want %v above the champion's %v", res.Challenger, want, res.Champion)
	}
	if m := res.Metrics(); m["shadow_predictions"] != 3000 || m["shadow_challenger_auc"] != res.Challenger {
		t.Errorf("Metrics() = %v", m)
	}
}

func TestShadowCollectorJoinsAndDeduplicates(t *testing.T) {
	c := newShadowCollector("fraud", "1", "2", featurespec.TaskBinary, 10)
	pred := func(tx, champVersion, shadowVersion string, score, shadow float64) []byte {
		b, err := proto.Marshal(&eventsv1.Prediction{TransactionId: tx, ModelName: "fraud", ModelVersion: champVersion, Score: score, Threshold: 0.8,
			Shadow: &eventsv1.ShadowPrediction{ModelName: "fraud", ModelVersion: shadowVersion, Score: shadow}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	label := func(tx string, y float64, kind eventsv1.LabelKind) []byte {
		b, err := proto.Marshal(&eventsv1.Label{TransactionId: tx, Label: y, Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c.label(label("a", 1, eventsv1.LabelKind_LABEL_KIND_FRAUD)) // early label
	c.prediction(pred("a", "1", "2", 0.9, 0.95))
	c.prediction(pred("a", "1", "2", 0.9, 0.95)) // redelivery
	c.prediction(pred("b", "1", "2", 0.1, 0.2))
	c.prediction(pred("c", "3", "2", 0.1, 0.2))                    // beside another champion
	c.prediction(pred("d", "1", "9", 0.1, 0.2))                    // another challenger
	c.prediction([]byte{0xff, 0xff})                               // undecodable
	c.label(label("b", 0, eventsv1.LabelKind_LABEL_KIND_PURCHASE)) // another use case
	c.label(label("b", 0, eventsv1.LabelKind_LABEL_KIND_FRAUD))
	if n, l := c.counts(); n != 2 || l != 2 {
		t.Errorf("counts = %d predictions, %d labelled; want 2, 2", n, l)
	}
	if c.other != 1 || c.invalid != 1 {
		t.Errorf("other %d invalid %d, want 1 and 1", c.other, c.invalid)
	}
}

// TestShadowPeriodDecidesPromotion: a challenger that beats a weak champion offline is put
// in shadow (challenger alias) and promoted only when its live performance on shadow-scored
// predictions holds up; a live regression keeps the champion, and a shadow period without
// traffic times out without promotion. Each ends with the challenger alias removed and the
// decision, with its shadow numbers, in the model events and the MLflow run. The test plays
// the scoring replicas' part: it publishes predictions carrying the challenger's shadow
// score, and their labels.
func TestShadowPeriodDecidesPromotion(t *testing.T) {
	st := startTrainer(t, 3000)
	suffix := fmt.Sprint(time.Now().UnixNano())
	predTopic, labelTopic := "test-shadow-predictions-"+suffix, "test-shadow-labels-"+suffix
	kafkaiotest.CreateTopics(t, st.brokers, 2, predTopic, labelTopic)
	srv := st.newServer(t, "-shadow.predictions", "400", "-shadow.timeout", "90s", "-shadow.label-wait", "20s",
		"-shadow.min-labelled", "300", "-topic.predictions", predTopic, "-topic.labels", labelTopic)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// No scoring replica shadow-scores (scoring without -challenger.enabled): the shadow period
	// runs out and the champion stays.
	t.Run("no shadow traffic keeps the champion", func(t *testing.T) {
		quiet := st.newServer(t, "-shadow.predictions", "400", "-shadow.timeout", "3s", "-topic.predictions", predTopic, "-topic.labels", labelTopic)
		model := "test-shadow-quiet-" + suffix
		st.data.mode.Store(sourceShuffle)
		v1, err := quiet.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "weak v1"}, "manual", nil)
		st.data.mode.Store(sourceNormal)
		if err != nil || !v1.GetPromoted() {
			t.Fatalf("v1 = %v, %v; want promoted", v1, err)
		}
		v2, err := quiet.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "good v2"}, "manual", nil)
		if err != nil {
			t.Fatalf("v2: %v", err)
		}
		if v2.GetPromoted() || !strings.Contains(v2.GetDecision(), "shadow period incomplete: 0 of 400") {
			t.Errorf("v2 promoted %v, decision %q; want not promoted, the shadow period incomplete", v2.GetPromoted(), v2.GetDecision())
		}
		if champ, err := st.mlf.GetVersionByAlias(ctx, model, modelstore.AliasChampion); err != nil || champ.Version != v1.GetModelVersion() {
			t.Errorf("champion = %q, %v; want %s", champ.Version, err, v1.GetModelVersion())
		}
		if _, err := st.mlf.GetVersionByAlias(ctx, model, modelstore.AliasChallenger); !errors.Is(err, mlflow.ErrNotFound) {
			t.Errorf("challenger alias after the shadow period: %v, want removed", err)
		}
	})

	for _, tc := range []struct {
		name         string
		live         func(n int) []shadowRow
		wantPromoted bool
		wantIn       string
	}{
		{"live regression keeps the champion", func(n int) []shadowRow { return liveRows(n, 0.5, 0.0, 11) }, false, "shadow failed: realized live auc"},
		{"live improvement promotes", func(n int) []shadowRow { return liveRows(n, 0.1, 0.5, 12) }, true, "shadow passed: realized live auc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := fmt.Sprintf("test-shadow-%d-%s", len(tc.name), suffix)
			// A weak champion (shuffled labels), so that a normal retrain beats it offline.
			st.data.mode.Store(sourceShuffle)
			v1, err := srv.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "weak v1"}, "manual", nil)
			st.data.mode.Store(sourceNormal)
			if err != nil || !v1.GetPromoted() {
				t.Fatalf("v1 = %v, %v; want promoted (first version, no shadow)", v1, err)
			}
			type result struct {
				resp *trainerv1.RetrainResponse
				err  error
			}
			done := make(chan result, 1)
			var stages []string
			go func() {
				r, err := srv.Train(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "good v2"}, "manual",
					func(p Progress) { stages = append(stages, p.Stage) })
				done <- result{r, err}
			}()
			var v2 string
			kafkaiotest.WaitFor(t, 3*time.Minute, "v2 as challenger", func() (bool, error) {
				mv, err := st.mlf.GetVersionByAlias(ctx, model, modelstore.AliasChallenger)
				if errors.Is(err, mlflow.ErrNotFound) {
					return false, nil
				}
				v2 = mv.Version
				return err == nil, err
			})
			// Live traffic: the champion's served score with the challenger's shadow score; labels
			// follow their predictions, as chargebacks do.
			rows := tc.live(500)
			var preds, labels []kafka.Message
			for i, r := range rows {
				tx := fmt.Sprintf("%s-tx-%d", model, i)
				p, err := proto.Marshal(&eventsv1.Prediction{TransactionId: tx, ModelName: model, ModelVersion: v1.GetModelVersion(), Score: r.champion, Threshold: 0.8,
					Shadow: &eventsv1.ShadowPrediction{ModelName: model, ModelVersion: v2, Score: r.challenger, Threshold: 0.8}})
				if err != nil {
					t.Fatal(err)
				}
				l, err := proto.Marshal(&eventsv1.Label{TransactionId: tx, Label: r.label, Kind: eventsv1.LabelKind_LABEL_KIND_FRAUD})
				if err != nil {
					t.Fatal(err)
				}
				preds = append(preds, kafka.Message{Topic: predTopic, Key: []byte(tx), Value: p})
				labels = append(labels, kafka.Message{Topic: labelTopic, Key: []byte(tx), Value: l})
			}
			kafkaiotest.Produce(t, st.brokers, preds...)
			kafkaiotest.Produce(t, st.brokers, labels...)
			var res result
			select {
			case res = <-done:
			case <-ctx.Done():
				t.Fatal("retrain did not finish")
			}
			if res.err != nil {
				t.Fatalf("v2 retrain: %v", res.err)
			}
			t.Logf("v2 decision: %s", res.resp.GetDecision())
			if res.resp.GetModelVersion() != v2 || res.resp.GetPromoted() != tc.wantPromoted || !strings.Contains(res.resp.GetDecision(), tc.wantIn) {
				t.Fatalf("v2 = version %s promoted %v decision %q; want version %s promoted %v, decision containing %q",
					res.resp.GetModelVersion(), res.resp.GetPromoted(), res.resp.GetDecision(), v2, tc.wantPromoted, tc.wantIn)
			}
			if !strings.Contains(strings.Join(stages, ","), "shadow") {
				t.Errorf("progress stages %v, want a shadow stage", stages)
			}
			champ, err := st.mlf.GetVersionByAlias(ctx, model, modelstore.AliasChampion)
			wantChamp := v1.GetModelVersion()
			if tc.wantPromoted {
				wantChamp = v2
			}
			if err != nil || champ.Version != wantChamp {
				t.Errorf("champion = %q, %v; want %s", champ.Version, err, wantChamp)
			}
			if _, err := st.mlf.GetVersionByAlias(ctx, model, modelstore.AliasChallenger); !errors.Is(err, mlflow.ErrNotFound) {
				t.Errorf("challenger alias after the shadow period: %v, want removed", err)
			}
			mv, err := st.mlf.GetModelVersion(ctx, model, v2)
			if err != nil {
				t.Fatal(err)
			}
			run, err := st.mlf.GetRun(ctx, mv.RunID)
			if err != nil {
				t.Fatal(err)
			}
			wantTag := map[bool]string{true: "promoted", false: "rejected"}[tc.wantPromoted]
			if run.Tags[tagDecision] != wantTag || run.Metrics["shadow_predictions"].Value != 500 || run.Metrics["shadow_labelled"].Value != 500 {
				t.Errorf("run tag %s = %q, shadow metrics %v; want %q and 500 predictions, 500 labelled", tagDecision, run.Tags[tagDecision], run.Metrics, wantTag)
			}
			h, err := st.client.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: model})
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			var decided *eventsv1.ModelEvent
			for _, e := range h.GetEvents() {
				kinds = append(kinds, e.GetType().String()+"/"+e.GetAlias()+"/"+e.GetToVersion()+e.GetFromVersion())
				if e.GetToVersion() == v2 && e.GetAlias() != modelstore.AliasChallenger &&
					(e.GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_REJECTED || (e.GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED)) {
					decided = e
				}
			}
			if decided == nil || decided.GetMetrics()["shadow_predictions"] != 500 {
				t.Errorf("history %v: want the decision on v2 with its shadow numbers, got %v", kinds, decided)
			}
			if !strings.Contains(strings.Join(kinds, " "), "ALIAS_REMOVED/challenger") {
				t.Errorf("history %v: want the challenger alias removal audited", kinds)
			}
		})
	}
}
