package scoring

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

// TestScoreEqualsLightGBM checks that the stream handler's prediction for each row is the
// LightGBM binding's batch output for the same model and vector (and so Python's: the binding
// has bit-exact parity tests), that decisions follow the threshold, and that explanations
// are the top 3 SHAP values by |contribution|, equal to the binding's contrib output (to
// shapTol; the base value exactly).
func TestScoreEqualsLightGBM(t *testing.T) {
	t.Parallel()
	l := lib(t)
	d := scoringtest.FraudData(t)
	text := scoringtest.TrainModel(t, l, 20)
	want := expectedScores(t, l, text, d, lightgbm.PredictNormal)
	contrib := expectedScores(t, l, text, d, lightgbm.PredictContrib)
	const threshold = 0.5
	cfg := testConfig(t)
	cfg.ExplainSampleRate = 0.2
	s, _ := newTestServer(t, cfg, Deps{}, localModel(t, l, text, "7", threshold))

	n := 400
	msgs := make([]kafka.Message, n)
	for i := range n {
		b, err := proto.Marshal(vector(d, i, "parity"))
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: "features", Partition: 0, Offset: int64(i), Value: b,
			Headers: []kafka.Header{{Key: kafkaio.HeaderTraceparent, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}}
	}
	res, err := s.HandleFeatures(t.Context(), msgs)
	if err != nil || len(res) != n {
		t.Fatalf("HandleFeatures() = %d results, %v; want %d, nil", len(res), err, n)
	}
	alerts, explained, sampledPass := 0, 0, 0
	for i, r := range res {
		if r.Err != nil || len(r.Output) != 1 {
			t.Fatalf("record %d: %d outputs, %v", i, len(r.Output), r.Err)
		}
		out := r.Output[0]
		var p eventsv1.Prediction
		if err := proto.Unmarshal(out.Value, &p); err != nil {
			t.Fatal(err)
		}
		if out.Topic != cfg.PredictionsTopic || string(out.Key) != "tx-parity-"+strconv.Itoa(i) || p.TransactionId != string(out.Key) {
			t.Errorf("record %d: topic %s key %s, want %s keyed by transaction id", i, out.Topic, out.Key, cfg.PredictionsTopic)
		}
		if tp, _ := kafkaio.HeaderValue(out.Headers, kafkaio.HeaderTraceparent); string(tp) != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || p.GetTrace().GetTraceparent() != string(tp) {
			t.Errorf("record %d: traceparent %q / %q not propagated", i, tp, p.GetTrace().GetTraceparent())
		}
		if p.Score != want[i] {
			t.Errorf("record %d: score %.17g, lightgbm says %.17g", i, p.Score, want[i])
		}
		wantDecision := eventsv1.Decision_DECISION_PASS
		if want[i] >= threshold {
			wantDecision = eventsv1.Decision_DECISION_ALERT
			alerts++
		}
		if p.Decision != wantDecision || p.Threshold != threshold || p.ModelVersion != "7" || p.Path != eventsv1.ScoringPath_SCORING_PATH_STREAM {
			t.Errorf("record %d: decision %v threshold %v version %s path %v", i, p.Decision, p.Threshold, p.ModelVersion, p.Path)
		}
		if p.Latency.GetInferenceSeconds() <= 0 || p.Latency.GetEndToEndSeconds() < 0.01 || p.GetScoredAt() == nil || p.GetFeatures().GetTransactionId() != p.TransactionId {
			t.Errorf("record %d: latency %v scored_at %v features %v", i, p.Latency, p.ScoredAt, p.Features != nil)
		}
		if wantDecision == eventsv1.Decision_DECISION_ALERT && p.Explanation == nil {
			t.Errorf("record %d: alert without explanation", i)
		}
		if p.Explanation == nil {
			continue
		}
		explained++
		if wantDecision == eventsv1.Decision_DECISION_PASS {
			sampledPass++
		}
		checkExplanation(t, i, &p, contrib[i*(d.Width+1):(i+1)*(d.Width+1)], d.Row(i))
	}
	if alerts == 0 || alerts == n {
		t.Fatalf("%d of %d alerts: the fixture model should produce both decisions", alerts, n)
	}
	if pass := n - alerts; sampledPass < pass/10 || sampledPass > pass*3/10 {
		t.Errorf("%d of %d passes explained at sample rate 0.2", sampledPass, pass)
	}
	t.Logf("%d records, %d alerts, %d explained", n, alerts, explained)
}

// shapTol is how far an explanation's contributions may be from LightGBM's: the service
// computes them with the Go TreeSHAP (platform/lightgbm), which sums in another order, so
// they agree to rounding; the tolerance is the binding's parity tolerance against Python.
const shapTol = 1e-12

func checkExplanation(t *testing.T, i int, p *eventsv1.Prediction, contrib, row []float64) {
	t.Helper()
	ex := p.Explanation
	names := featurespec.Fraud().Names()
	if ex.Method != "tree_shap" || len(ex.Contributions) != 3 || ex.BaseValue != contrib[len(row)] {
		t.Errorf("record %d: explanation %v, want 3 tree_shap contributions with base %v", i, ex, contrib[len(row)])
		return
	}
	// The kept ones are the largest |contribution|, in descending order.
	var rest []float64
	kept := map[string]bool{}
	for j, c := range ex.Contributions {
		k := featurespec.Fraud().Index(c.Feature)
		if k < 0 || math.Abs(c.Contribution-contrib[k]) > shapTol || !(c.Value == row[k] || math.IsNaN(row[k]) && math.IsNaN(c.Value)) {
			t.Errorf("record %d: contribution %d = %v, lightgbm says %s=%v (value %v)", i, j, c, names[max(k, 0)], contrib[max(k, 0)], row[max(k, 0)])
		}
		if j > 0 && math.Abs(c.Contribution) > math.Abs(ex.Contributions[j-1].Contribution) {
			t.Errorf("record %d: contributions not ordered by |contribution|: %v", i, ex.Contributions)
		}
		kept[c.Feature] = true
	}
	sum := contrib[len(row)]
	for k, n := range names {
		sum += contrib[k]
		if !kept[n] {
			rest = append(rest, contrib[k])
		}
	}
	for _, r := range rest {
		if math.Abs(r) > math.Abs(ex.Contributions[2].Contribution)+shapTol {
			t.Errorf("record %d: dropped contribution %v is larger than kept %v", i, r, ex.Contributions[2].Contribution)
		}
	}
	// base + all contributions = raw score = logit(probability).
	if raw := math.Log(p.Score / (1 - p.Score)); math.Abs(sum-raw) > 1e-9 {
		t.Errorf("record %d: base+contributions = %v, logit(score) = %v", i, sum, raw)
	}
}

// TestHandleFeaturesRejects checks the dead-letter reasons of bad records and that a batch
// waits (transient error) while no model is loaded.
func TestHandleFeaturesRejects(t *testing.T) {
	t.Parallel()
	l := lib(t)
	d := scoringtest.FraudData(t)
	text := scoringtest.TrainModel(t, l, 20)
	cfg := testConfig(t)
	cfg.SpecHold = 0 // a vector of another spec version goes to the DLQ at once (the hold: TestSpecRolloutHoldsBack)
	s, reg := newTestServer(t, cfg, Deps{}, localModel(t, l, text, "1", 0.8))

	enc := func(mut func(fv *eventsv1.FeatureVector)) []byte {
		fv := vector(d, 1, "rej")
		mut(fv)
		b, err := proto.Marshal(fv)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		msg     kafka.Message
		reason  string
		wantErr bool
		// skipped: committed without output or error (another deployment's family).
		skipped bool
	}{
		{name: "ok", msg: kafka.Message{Value: enc(func(*eventsv1.FeatureVector) {})}},
		{name: "not protobuf", msg: kafka.Message{Value: []byte{0xff, 0xff, 0xff}}, reason: topics.ReasonDecode, wantErr: true},
		{name: "json content type", msg: kafka.Message{Value: enc(func(*eventsv1.FeatureVector) {}), Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/json")}}}, reason: topics.ReasonDecode, wantErr: true},
		{name: "other spec version", msg: kafka.Message{Value: enc(func(fv *eventsv1.FeatureVector) { fv.SpecVersion = "2" })}, reason: topics.ReasonSpecMismatch, wantErr: true},
		{name: "other family is skipped", msg: kafka.Message{Value: enc(func(fv *eventsv1.FeatureVector) { fv.SpecName = "purchase" })}, skipped: true},
		{name: "unknown family is skipped", msg: kafka.Message{Value: enc(func(fv *eventsv1.FeatureVector) { fv.SpecName = "churn" })}, skipped: true},
		{name: "no spec name", msg: kafka.Message{Value: enc(func(fv *eventsv1.FeatureVector) { fv.SpecName = "" })}, reason: topics.ReasonSpecMismatch, wantErr: true},
		{name: "short vector", msg: kafka.Message{Value: enc(func(fv *eventsv1.FeatureVector) { fv.Values = fv.Values[:3] })}, reason: topics.ReasonValidation, wantErr: true},
		{name: "no transaction id", msg: kafka.Message{Value: enc(func(fv *eventsv1.FeatureVector) { fv.TransactionId = "" })}, reason: topics.ReasonValidation, wantErr: true},
		{name: "missing values are fine", msg: kafka.Message{Value: enc(func(fv *eventsv1.FeatureVector) {
			for i := range fv.Values {
				fv.Values[i] = math.NaN()
			}
		})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := s.HandleFeatures(t.Context(), []kafka.Message{tt.msg})
			if err != nil || len(res) != 1 {
				t.Fatalf("HandleFeatures() = %v, %v", res, err)
			}
			if got := res[0].Err; (got != nil) != tt.wantErr || kafkaio.Reason(got) != tt.reason {
				t.Errorf("error = %v (reason %q), want reason %q", got, kafkaio.Reason(got), tt.reason)
			}
			if got := len(res[0].Output); (got == 0) != (tt.wantErr || tt.skipped) {
				t.Errorf("%d outputs, skipped %v", got, tt.skipped)
			}
		})
	}
	t.Run("no model", func(t *testing.T) {
		t.Parallel()
		empty, _ := newTestServer(t, testConfig(t), Deps{}, nil)
		_, err := empty.HandleFeatures(t.Context(), []kafka.Message{tests[0].msg})
		if err == nil || kafkaio.IsPermanent(err) {
			t.Errorf("HandleFeatures() without model = %v, want a transient error", err)
		}
	})
	t.Run("skips counted", func(t *testing.T) {
		t.Parallel()
		cs, creg := newTestServer(t, testConfig(t), Deps{}, localModel(t, l, text, "1", 0.8))
		msgs := []kafka.Message{tests[0].msg}
		for _, tt := range tests {
			if tt.skipped {
				msgs = append(msgs, tt.msg)
			}
		}
		if _, err := cs.HandleFeatures(t.Context(), msgs); err != nil {
			t.Fatal(err)
		}
		want := "\n" + `# HELP mlops_scoring_skipped_total Feature vectors of another model family (spec name) on the features topic, committed without a prediction: another scoring deployment serves them.
# TYPE mlops_scoring_skipped_total counter
mlops_scoring_skipped_total{spec="purchase"} 1
mlops_scoring_skipped_total{spec="unknown"} 1
`
		if err := testutil.GatherAndCompare(creg, strings.NewReader(want), "mlops_scoring_skipped_total"); err != nil {
			t.Error(err)
		}
	})
	_ = reg
}

// TestModelEvaluator checks what scores a loaded model: the compact evaluator by default,
// wrapped in the sampled check against LightGBM, LightGBM when asked, and LightGBM, with the
// reason kept, for a model the compact evaluator does not cover; each gives LightGBM's
// scores bit for bit.
func TestModelEvaluator(t *testing.T) {
	t.Parallel()
	l := lib(t)
	d := scoringtest.FraudData(t)
	text := scoringtest.TrainModel(t, l, 20)
	want := expectedScores(t, l, text, d, lightgbm.PredictNormal)
	// The same trees under an objective whose output transform the forest does not reproduce.
	crossEntropy := []byte(strings.Replace(string(text), "objective=binary sigmoid:1", "objective=cross_entropy", 1))
	if string(crossEntropy) == string(text) {
		t.Fatal("no objective=binary sigmoid:1 line in the model text")
	}
	wantCE := expectedScores(t, l, crossEntropy, d, lightgbm.PredictNormal)
	build := func(text []byte, opts modelOptions) *Model {
		spec := featurespec.Fraud()
		m, err := buildModel(l, modelstore.Loaded{
			ModelName: "fraud-test", Version: "1", ModelText: text, Spec: spec,
			Manifest: modelstore.Manifest{ModelName: "fraud-test", SHA256: modelstore.SHA256Hex(text), FeatureSpecFingerprint: spec.Fingerprint(), Task: "binary", Threshold: 0.5},
		}, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.release)
		return m
	}
	for _, tc := range []struct {
		name      string
		text      []byte
		want      []float64
		opts      modelOptions
		evaluator string
		check     func(m *Model) bool
	}{
		{name: "default", text: text, want: want, opts: modelOptions{CheckEvery: 1000, CPUEvery: 1}, evaluator: EvaluatorForest, check: func(m *Model) bool {
			c, ok := m.predictor.(*checkedPredictor)
			if !ok {
				return false
			}
			_, ok = c.fast.(*lightgbm.Forest)
			return ok && c.every == 1000 && m.evaluatorNote == nil
		}},
		{name: "unchecked", text: text, want: want, opts: modelOptions{}, evaluator: EvaluatorForest, check: func(m *Model) bool {
			_, ok := m.predictor.(*lightgbm.Forest)
			return ok
		}},
		{name: "lightgbm asked", text: text, want: want, opts: modelOptions{Evaluator: EvaluatorLightGBM, CheckEvery: 1000, CPUEvery: 1}, evaluator: EvaluatorLightGBM, check: func(m *Model) bool {
			_, ok := m.predictor.(*lightgbm.FastPredictorPool)
			return ok && m.evaluatorNote == nil
		}},
		{name: "not covered", text: crossEntropy, want: wantCE, opts: modelOptions{CheckEvery: 1000}, evaluator: EvaluatorLightGBM, check: func(m *Model) bool {
			_, ok := m.predictor.(*lightgbm.FastPredictorPool)
			return ok && errors.Is(m.evaluatorNote, lightgbm.ErrForestUnsupported)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := build(tc.text, tc.opts)
			if m.Evaluator != tc.evaluator || !tc.check(m) {
				t.Fatalf("evaluator %q (%T, note %v), want %q", m.Evaluator, m.predictor, m.evaluatorNote, tc.evaluator)
			}
			reg := prometheus.NewRegistry()
			m.obs = newMetrics(reg, 10).forVersion("1")
			for i := range d.Rows {
				got, err := m.predictor.Predict(d.Row(i))
				if err != nil {
					t.Fatal(err)
				}
				if math.Float64bits(got) != math.Float64bits(tc.want[i]) {
					t.Fatalf("row %d: %.17g, LightGBM %.17g", i, got, tc.want[i])
				}
			}
			// -metrics.inference-cpu-every: every prediction sampled at 1, none at 0.
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var count uint64
			for _, mf := range mfs {
				if mf.GetName() == "mlops_scoring_inference_cpu_seconds" {
					for _, mt := range mf.GetMetric() {
						count += mt.GetHistogram().GetSampleCount()
					}
				}
			}
			if want := uint64(d.Rows); (tc.opts.CPUEvery == 1 && count != want) || (tc.opts.CPUEvery == 0 && count != 0) {
				t.Errorf("CPUEvery %d: %d CPU samples for %d predictions", tc.opts.CPUEvery, count, d.Rows)
			}
		})
	}
}
