package predlog

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
)

// The hand-written encoder of prediction documents renders the same JSON value as
// encoding/json does for the same struct, for full and sparse documents, odd strings and
// numbers at the edges of the decimal/exponent formats.
func TestPredictionDocJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 7, 0, 0, 123_000_000, time.UTC)
	nan := math.NaN()
	full := func() *eventsv1.Prediction {
		values := make([]float64, featurespec.Fraud().Len())
		for i := range values {
			values[i] = []float64{0, 1e-7, 1e21, -2.5, 123456789.125, 1e-6, 0.1, 5e-324}[i%8]
		}
		values[3] = nan
		return &eventsv1.Prediction{
			EventId: "e\"1\\\n\t\x01<&>", EventTime: timestamppb.New(at), TransactionId: "tx-\u2028é\xff",
			AccountId: "acc", ModelName: "fraud", ModelVersion: "7", Task: eventsv1.Task_TASK_BINARY_CLASSIFICATION,
			Score: 0.97, Decision: eventsv1.Decision_DECISION_ALERT, Threshold: math.Inf(1),
			Features: &eventsv1.FeatureVector{SpecName: "fraud", SpecVersion: "1", Values: values, Amount: 12.5,
				Currency: "EUR", ComputedAt: timestamppb.New(at)},
			Explanation: &eventsv1.Explanation{BaseValue: nan, Method: "tree_shap", Contributions: []*eventsv1.Contribution{
				{Feature: "amount", Value: 12.5, Contribution: nan}, {Feature: "x", Value: nan, Contribution: -1e-9}}},
			Shadow: &eventsv1.ShadowPrediction{ModelName: "fraud", ModelVersion: "8", Score: nan, Threshold: 0.5,
				Decision: eventsv1.Decision_DECISION_PASS, InferenceSeconds: 2e-5},
			Latency:  &eventsv1.Latency{InferenceSeconds: nan, EndToEndSeconds: 0.02},
			ScoredAt: timestamppb.New(at), Path: eventsv1.ScoringPath_SCORING_PATH_STREAM,
			Trace: &eventsv1.TraceContext{Traceparent: "00-abc-def-01"},
		}
	}
	unnamed := full()
	unnamed.Features = &eventsv1.FeatureVector{SpecName: "mystery", SpecVersion: "1", Values: []float64{1, nan, -3}}
	allMissing := full()
	allMissing.Features.Values = []float64{nan, nan}
	allMissing.Features.Names = []string{"a", "b"}
	emptyParts := full()
	emptyParts.Explanation = &eventsv1.Explanation{BaseValue: nan}
	emptyParts.Latency = &eventsv1.Latency{InferenceSeconds: nan}
	tests := map[string]*eventsv1.Prediction{
		"full":        full(),
		"minimal":     {TransactionId: "tx", EventTime: timestamppb.New(at), Score: 0},
		"positional":  unnamed,
		"all missing": allMissing,
		"empty parts": emptyParts,
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			_, doc, err := buildPrediction(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := doc.AppendJSON(nil)
			if err != nil {
				t.Fatalf("AppendJSON: %v", err)
			}
			type plain predictionDoc // encoding/json by reflection, not through AppendJSON
			want, err := json.Marshal((*plain)(doc))
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("AppendJSON produced invalid JSON %s: %v", got, err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("AppendJSON =\n%s\nencoding/json =\n%s", got, want)
			}
			// features is rendered by hand in both: check it against the vector itself.
			wantFeatures := map[string]any{}
			if names := featureNames(p.GetFeatures()); names != nil {
				for i, v := range p.GetFeatures().GetValues() {
					if !math.IsNaN(v) {
						wantFeatures[names[i]] = v
					}
				}
			}
			gotFeatures, _ := g.(map[string]any)["features"].(map[string]any)
			if len(wantFeatures) == 0 && gotFeatures != nil || len(wantFeatures) > 0 && !reflect.DeepEqual(gotFeatures, wantFeatures) {
				t.Errorf("features = %v, want %v", gotFeatures, wantFeatures)
			}
		})
	}
}

func featureNames(fv *eventsv1.FeatureVector) []string {
	if len(fv.GetNames()) == len(fv.GetValues()) && fv.GetNames() != nil {
		return fv.GetNames()
	}
	if s, err := featurespec.ByName(fv.GetSpecName() + "-v" + fv.GetSpecVersion()); err == nil && s.Len() == len(fv.GetValues()) {
		return s.Names()
	}
	return nil
}

// Numbers are written exactly as encoding/json writes them, strings escaped so that they read
// back as the same string (invalid UTF-8 as U+FFFD), and non-finite numbers refused.
func TestAppendScalars(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 123456789.125, math.MaxFloat64, 5e-324, 0.1} {
		got, err := esbulk.AppendFloat(nil, f)
		want, _ := json.Marshal(f)
		if err != nil || string(got) != string(want) {
			t.Errorf("AppendFloat(%v) = %s, %v; want %s", f, got, err, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := esbulk.AppendFloat(nil, f); err == nil {
			t.Errorf("AppendFloat(%v): no error", f)
		}
	}
	for _, s := range []string{"", "plain", "q\"b\\s/", "\x00\x1f\x7f\n\r\t", "é€😀", "bad\xff\xfe", "\u2028\u2029", strings.Repeat("ab", 100)} {
		got := esbulk.AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("AppendString(%q) = %s: invalid JSON: %v", s, got, err)
			continue
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("AppendString(%q) reads back as %q, want %q", s, back, wantBack)
		}
	}
}
