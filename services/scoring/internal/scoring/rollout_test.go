package scoring

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

// specV2 is the fraud spec at version 2: a new fingerprint (the rollout's new spec).
func specV2() featurespec.Spec {
	s := featurespec.Fraud()
	s.Version = 2
	return s
}

// localModelSpec is localModel for a model trained on spec.
func localModelSpec(t testing.TB, l *lightgbm.Library, text []byte, version string, spec featurespec.Spec) *Model {
	t.Helper()
	m, err := buildModel(l, modelstore.Loaded{
		ModelName: "fraud-test", Version: version, ModelText: text, Spec: spec,
		Manifest: modelstore.Manifest{ModelName: "fraud-test", SHA256: modelstore.SHA256Hex(text), FeatureSpecFingerprint: spec.Fingerprint(), Task: "binary", Threshold: 0.5},
	}, modelOptions{DefaultThreshold: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// specRecords encodes vectors from..to of d as features.v1 records of spec version ver, at
// offsets from..to of partition 0.
func specRecords(t testing.TB, d *scoringtest.Data, from, to int, ver string) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for i := from; i < to; i++ {
		fv := vector(d, i, "rollout-v"+ver)
		fv.SpecVersion = ver
		b, err := proto.Marshal(fv)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, kafka.Message{Topic: "features.v1", Offset: int64(i), Key: []byte(fv.AccountId), Value: b})
	}
	return out
}

// TestSpecRolloutHoldsBack: during a feature-spec rollout nothing is dead-lettered. Vectors of
// the new spec that arrive before the new model are held back (transient), then scored by it
// once it is loaded; vectors of the old spec still in flight after the reload are scored by
// the previous champion, on the stream and on the sync path; only a vector no model serves
// for longer than -model.spec-hold goes to the DLQ with reason spec_mismatch.
func TestSpecRolloutHoldsBack(t *testing.T) {
	t.Parallel()
	l := lib(t)
	d := scoringtest.FraudData(t)
	text1 := scoringtest.TrainModel(t, l, 20)
	text2 := scoringtest.TrainModel(t, l, 30)
	want1 := expectedScores(t, l, text1, d, lightgbm.PredictNormal)
	want2 := expectedScores(t, l, text2, d, lightgbm.PredictNormal)

	t.Run("reload to a new spec with both in flight", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.SpecHold = time.Hour
		s, reg := newTestServer(t, cfg, Deps{}, localModelSpec(t, l, text1, "1", featurespec.Fraud()))

		// The features service switched to v2 before the v2 model is promoted.
		early := specRecords(t, d, 0, 5, "2")
		res, err := s.HandleFeatures(t.Context(), early)
		if err != nil || len(res) != 1 || res[0].Err == nil || kafkaio.IsPermanent(res[0].Err) || !errors.Is(res[0].Err, errSpecHeld) {
			t.Fatalf("v2 vectors before the v2 model: HandleFeatures() = %v, %v; want the first held back (transient), the rest waiting", res, err)
		}

		s.Install("champion", localModelSpec(t, l, text2, "2", specV2()))

		// Old-spec vectors still in flight, the held v2 vectors and new ones, interleaved.
		batch := append(specRecords(t, d, 10, 20, "1"), early...)
		batch = append(batch, specRecords(t, d, 20, 25, "1")...)
		res, err = s.HandleFeatures(t.Context(), batch)
		if err != nil || len(res) != len(batch) {
			t.Fatalf("HandleFeatures() after the reload = %d results, %v", len(res), err)
		}
		for i, r := range res {
			if r.Err != nil || len(r.Output) != 1 {
				t.Errorf("record %d: %v, %d outputs; want a prediction", i, r.Err, len(r.Output))
				continue
			}
			var p eventsv1.Prediction
			if err := proto.Unmarshal(r.Output[0].Value, &p); err != nil {
				t.Fatal(err)
			}
			var fv eventsv1.FeatureVector
			if err := proto.Unmarshal(batch[i].Value, &fv); err != nil {
				t.Fatal(err)
			}
			row := int(batch[i].Offset)
			wantVersion, wantScore := "2", want2[row]
			if fv.SpecVersion == "1" {
				wantVersion, wantScore = "1", want1[row]
			}
			if p.ModelVersion != wantVersion || p.Score != wantScore {
				t.Errorf("record %d (spec v%s): model %s score %v, want model %s score %v", i, fv.SpecVersion, p.ModelVersion, p.Score, wantVersion, wantScore)
			}
		}

		// The sync path too: an old-spec vector is scored by the previous champion.
		old := vector(d, 30, "rollout-sync")
		resp, err := s.Score(t.Context(), &scoringv1.ScoreRequest{Features: old})
		if err != nil || resp.ModelVersion != "1" || resp.Score != want1[30] {
			t.Errorf("Score(v1 vector) after the reload = %v, %v; want version 1's score %v", resp, err, want1[30])
		}
		if v := kafkaiotest.MetricValue(reg, "mlops_scoring_rejected_total", map[string]string{"reason": topics.ReasonSpecMismatch}); v != 0 {
			t.Errorf("mlops_scoring_rejected_total{reason=spec_mismatch} = %v, want 0", v)
		}
	})

	t.Run("promotion in the registry of a model of the new spec", func(t *testing.T) {
		t.Parallel()
		c := mlflow.New(stacktest.MLflowURL(t))
		t.Cleanup(c.HTTP.CloseIdleConnections)
		name := scoringtest.UniqueModelName("test-scoring-rollout")
		v1 := scoringtest.PublishSpec(t, c, name, text1, 0.5, featurespec.Fraud())
		v2 := scoringtest.PublishSpec(t, c, name, text2, 0.5, specV2())
		scoringtest.PromoteSpec(t, c, name, modelstore.AliasChampion, v1, featurespec.Fraud())
		cfg := testConfig(t)
		cfg.ModelName, cfg.CacheDir, cfg.SpecHold = name, t.TempDir(), time.Hour
		s := New(cfg, Deps{Lib: l, Store: &modelstore.Store{Client: c, CacheDir: cfg.CacheDir, Logger: discard()}}, discard(), prometheus.NewRegistry())
		t.Cleanup(s.Close)
		if err := s.LoadModels(t.Context()); err != nil {
			t.Fatal(err)
		}
		scoringtest.PromoteSpec(t, c, name, modelstore.AliasChampion, v2, specV2())
		if err := s.refresh(t.Context(), modelstore.AliasChampion); err != nil {
			t.Fatalf("reload to the model of spec v2: %v", err)
		}
		if got := s.champion.peek(); got.Version != v2 || got.Spec.Fingerprint() != specV2().Fingerprint() {
			t.Fatalf("champion %s of spec %s after the reload, want %s of %s", got.Version, got.Spec.Fingerprint(), v2, specV2().Fingerprint())
		}
		batch := append(specRecords(t, d, 40, 42, "1"), specRecords(t, d, 42, 44, "2")...)
		res, err := s.HandleFeatures(t.Context(), batch)
		if err != nil || len(res) != len(batch) {
			t.Fatalf("HandleFeatures() = %v, %v", res, err)
		}
		for i, r := range res {
			var p eventsv1.Prediction
			if r.Err != nil || len(r.Output) != 1 || proto.Unmarshal(r.Output[0].Value, &p) != nil {
				t.Fatalf("record %d: %v", i, r.Err)
			}
			if want := map[bool]string{true: v1, false: v2}[i < 2]; p.ModelVersion != want {
				t.Errorf("record %d scored by version %s, want %s", i, p.ModelVersion, want)
			}
		}
	})

	t.Run("previous model retired after its grace", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.PreviousSpecGrace = 100 * time.Millisecond
		cfg.SpecHold = time.Hour
		m1 := localModelSpec(t, l, text1, "1", featurespec.Fraud())
		s, _ := newTestServer(t, cfg, Deps{}, m1)
		s.Install("champion", localModelSpec(t, l, text2, "2", specV2()))
		select {
		case <-m1.Closed():
		case <-time.After(20 * time.Second):
			t.Fatal("previous champion not freed after its grace")
		}
		res, err := s.HandleFeatures(t.Context(), specRecords(t, d, 0, 1, "1"))
		if err != nil || len(res) != 1 || !errors.Is(res[0].Err, errSpecHeld) || kafkaio.IsPermanent(res[0].Err) {
			t.Errorf("v1 vector after the grace = %v, %v; want held back", res, err)
		}
	})

	t.Run("held back until spec-hold, then dead-lettered", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.SpecHold = 300 * time.Millisecond
		s, _ := newTestServer(t, cfg, Deps{}, localModelSpec(t, l, text2, "2", specV2()))
		recs := specRecords(t, d, 0, 1, "1")
		start := time.Now()
		var last error
		kafkaiotest.WaitFor(t, 20*time.Second, "the held vector dead-lettered", func() (bool, error) {
			res, err := s.HandleFeatures(t.Context(), recs)
			if err != nil || len(res) != 1 || res[0].Err == nil {
				return false, errors.New("vector of an unserved spec scored")
			}
			last = res[0].Err
			return kafkaio.IsPermanent(last), nil
		})
		if held := time.Since(start); held < cfg.SpecHold {
			t.Errorf("dead-lettered after %v, before the hold of %v", held, cfg.SpecHold)
		}
		if kafkaio.Reason(last) != topics.ReasonSpecMismatch {
			t.Errorf("reason %q, want %q", kafkaio.Reason(last), topics.ReasonSpecMismatch)
		}
	})
}
