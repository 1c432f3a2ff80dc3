package scoring

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

// TestAppendPrediction checks that the stream's encoding, which appends the feature vector's
// record bytes instead of encoding the vector again, decodes to the same Prediction as
// proto.Marshal's, keeps fields of the vector this build does not know, and leaves p as it was.
func TestAppendPrediction(t *testing.T) {
	t.Parallel()
	fv := &eventsv1.FeatureVector{
		EventId: "ev-1", TransactionId: "tx-1", AccountId: "acc-1", SpecName: "fraud", SpecVersion: "2",
		Values: []float64{1.5, 0, -3, 42}, IngestedAt: timestamppb.New(timestamppb.Now().AsTime()),
	}
	fvBytes, err := proto.Marshal(fv)
	if err != nil {
		t.Fatal(err)
	}
	p := &eventsv1.Prediction{
		EventId: "p-1", TransactionId: "tx-1", AccountId: "acc-1", ModelName: "fraud", ModelVersion: "3",
		Score: 0.93, Decision: eventsv1.Decision_DECISION_ALERT, Threshold: 0.8, Features: fv,
		Latency:     &eventsv1.Latency{InferenceSeconds: 3e-6},
		Explanation: &eventsv1.Explanation{Method: "tree_shap", BaseValue: -2, Contributions: []*eventsv1.Contribution{{Feature: "amount", Value: 1.5, Contribution: 0.7}}},
	}
	want := proto.Clone(p)

	prefix := []byte("earlier record")
	buf, err := appendPrediction(append([]byte(nil), prefix...), p, fvBytes)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:len(prefix)]) != string(prefix) {
		t.Fatalf("appendPrediction overwrote the buffer's earlier bytes: %q", buf[:len(prefix)])
	}
	if p.Features != fv {
		t.Fatal("appendPrediction did not restore p.Features")
	}
	var got eventsv1.Prediction
	if err := proto.Unmarshal(buf[len(prefix):], &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, want) {
		t.Errorf("decoded %v\nwant    %v", &got, want)
	}

	// A vector with a field unknown to this build keeps it in the prediction.
	unknown := protowire.AppendTag(append([]byte(nil), fvBytes...), 999, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 7)
	buf, err = appendPrediction(nil, p, unknown)
	if err != nil {
		t.Fatal(err)
	}
	got.Reset()
	if err := proto.Unmarshal(buf, &got); err != nil {
		t.Fatal(err)
	}
	if u := got.GetFeatures().ProtoReflect().GetUnknown(); len(u) == 0 {
		t.Error("the vector's unknown field was dropped")
	}

	// Without features nothing is appended: the encoding is proto.Marshal's.
	noFV := proto.Clone(want).(*eventsv1.Prediction)
	noFV.Features = nil
	buf, err = appendPrediction(nil, noFV, fvBytes)
	if err != nil {
		t.Fatal(err)
	}
	got.Reset()
	if err := proto.Unmarshal(buf, &got); err != nil || got.Features != nil || !proto.Equal(&got, noFV) {
		t.Errorf("without features: decoded %v (err %v), want %v", &got, err, noFV)
	}
}
