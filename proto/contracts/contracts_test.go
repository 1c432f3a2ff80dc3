package contracts_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

func ts(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err) // test fixture typo
	}
	return timestamppb.New(t)
}

// roundTrip encodes m in both wire formats the platform uses and decodes it
// back into a new message of the same type.
func roundTrip(t *testing.T, m proto.Message) (fromBinary, fromJSON proto.Message) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("proto.Marshal: %v", err)
	}
	fromBinary = m.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(b, fromBinary); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	j, err := protojson.Marshal(m)
	if err != nil {
		t.Fatalf("protojson.Marshal: %v", err)
	}
	fromJSON = m.ProtoReflect().New().Interface()
	if err := protojson.Unmarshal(j, fromJSON); err != nil {
		t.Fatalf("protojson.Unmarshal(%s): %v", j, err)
	}
	return fromBinary, fromJSON
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	fraud := &eventsv1.Transaction{
		EventId:          "e-1",
		EventTime:        ts("2026-03-14T09:26:53.589123456Z"),
		TransactionId:    "tx-1",
		AccountId:        "acc-1",
		Amount:           129.95,
		Currency:         "EUR",
		MerchantId:       "m-1",
		MerchantCategory: "5732",
		DeviceId:         "dev-1",
		IpAddress:        "2001:db8::1",
		Country:          "DE",
		Latitude:         proto.Float64(52.52),
		Longitude:        proto.Float64(13.405),
		Channel:          eventsv1.Channel_CHANNEL_POS,
		Attributes:       map[string]string{"card_bin": "411111", "empty": ""},
		IngestedAt:       ts("2026-03-14T09:26:53.6Z"),
		Source:           "gateway-eu",
	}
	vector := &eventsv1.FeatureVector{
		EventId:       "e-2",
		EventTime:     fraud.GetEventTime(),
		TransactionId: "tx-1",
		AccountId:     "acc-1",
		SpecName:      "fraud",
		SpecVersion:   "3",
		Values:        []float64{129.95, math.NaN(), math.Inf(1), -0.5, 0},
		Names:         []string{"amount", "seconds_since_last_tx", "velocity", "z", "device_risk"},
		ComputedAt:    ts("2026-03-14T09:26:53.7Z"),
		Amount:        129.95,
		Currency:      "EUR",
		Trace:         &eventsv1.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
	tests := []struct {
		name string
		msg  proto.Message
	}{
		{name: "empty transaction", msg: &eventsv1.Transaction{}},
		{name: "fraud transaction", msg: fraud},
		{name: "commerce transaction", msg: &eventsv1.Transaction{
			TransactionId: "ord-1", AccountId: "cust-1", Latitude: proto.Float64(0),
			Commerce: &eventsv1.CommerceSession{SessionId: "s", ProductId: "sku", PageViews: 7, CartValue: 89.9, ReturningCustomer: true},
		}},
		{name: "feature vector with NaN and Inf", msg: vector},
		{name: "prediction", msg: &eventsv1.Prediction{
			EventId: "e-3", EventTime: fraud.GetEventTime(), TransactionId: "tx-1", AccountId: "acc-1",
			ModelName: "fraud", ModelVersion: "7", Task: eventsv1.Task_TASK_BINARY_CLASSIFICATION,
			Score: 0.93, Decision: eventsv1.Decision_DECISION_ALERT, Threshold: 0.8, Features: vector,
			Explanation: &eventsv1.Explanation{BaseValue: -2.1, Method: "tree_shap", Contributions: []*eventsv1.Contribution{
				{Feature: "amount", Value: 129.95, Contribution: 1.7},
				{Feature: "seconds_since_last_tx", Value: math.NaN(), Contribution: 0.2},
			}},
			Shadow:   &eventsv1.ShadowPrediction{ModelName: "fraud", ModelVersion: "8", Score: 0.88, Decision: eventsv1.Decision_DECISION_ALERT, Threshold: 0.8},
			Latency:  &eventsv1.Latency{InferenceSeconds: 0.000012, EndToEndSeconds: 0.004},
			ScoredAt: ts("2026-03-14T09:26:53.71Z"), Path: eventsv1.ScoringPath_SCORING_PATH_STREAM,
		}},
		{name: "label", msg: &eventsv1.Label{EventId: "e-4", EventTime: ts("2026-04-01T00:00:00Z"), TransactionId: "tx-1",
			AccountId: "acc-1", Label: 1, Kind: eventsv1.LabelKind_LABEL_KIND_FRAUD, Source: "chargeback"}},
		{name: "drift event", msg: &eventsv1.DriftEvent{EventId: "e-5", EventTime: ts("2026-04-01T00:00:00Z"), ModelName: "fraud",
			ModelVersion: "7", Feature: "amount", Metric: eventsv1.DriftMetric_DRIFT_METRIC_KS, Value: 0.31, Threshold: 0.1,
			PValue: proto.Float64(0), Severity: eventsv1.Severity_SEVERITY_CRITICAL, Retrain: true,
			Window: &eventsv1.Window{Start: ts("2026-03-31T00:00:00Z"), End: ts("2026-04-01T00:00:00Z"), Count: 1 << 40, Kind: eventsv1.WindowKind_WINDOW_KIND_TIME}}},
		{name: "model event", msg: &eventsv1.ModelEvent{EventId: "e-6", EventTime: ts("2026-04-01T00:00:00Z"),
			Type: eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK, ModelName: "fraud", FromVersion: "8", ToVersion: "7",
			Alias: "champion", Actor: "alice", Reason: "precision dropped", Sha256: "ab12", Metrics: map[string]float64{"auc": 0.94}}},
		{name: "dead letter", msg: &eventsv1.DeadLetter{EventId: "e-7", EventTime: ts("2026-04-01T00:00:00Z"),
			Key: []byte("acc-1"), Value: []byte{0xff, 0x00, '{'}, Reason: "decode", Error: "unexpected EOF",
			Headers:     []*eventsv1.Header{{Key: "content-type", Value: []byte("application/json")}, {Key: "x", Value: nil}, {Key: "x", Value: []byte{0}}},
			SourceTopic: "tx.raw", SourcePartition: 2, SourceOffset: 1<<40 + 1, Service: "ingestion"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fromBinary, fromJSON := roundTrip(t, tt.msg)
			opts := cmp.Options{protocmp.Transform(), cmpopts.EquateNaNs()}
			if diff := cmp.Diff(tt.msg, fromBinary, opts); diff != "" {
				t.Errorf("binary round trip mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.msg, fromJSON, opts); diff != "" {
				t.Errorf("JSON round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPresence pins that an explicit zero of an optional field survives
// encoding: latitude 0 is a real place, not "unknown".
func TestPresence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		tx           *eventsv1.Transaction
		wantLatitude bool
	}{
		{name: "unset", tx: &eventsv1.Transaction{}, wantLatitude: false},
		{name: "zero", tx: &eventsv1.Transaction{Latitude: proto.Float64(0)}, wantLatitude: true},
		{name: "nonzero", tx: &eventsv1.Transaction{Latitude: proto.Float64(-33.9)}, wantLatitude: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fromBinary, fromJSON := roundTrip(t, tt.tx)
			for format, m := range map[string]proto.Message{"binary": fromBinary, "json": fromJSON} {
				if got := m.(*eventsv1.Transaction).Latitude != nil; got != tt.wantLatitude {
					t.Errorf("%s: latitude present = %v, want %v", format, got, tt.wantLatitude)
				}
			}
		})
	}
}

// TestJSONExamples decodes the JSON documents shown in docs/contracts.md the
// way ingestion decodes tx.raw records with content-type application/json.
func TestJSONExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want *eventsv1.Transaction
	}{
		{file: "transaction_fraud.json", want: &eventsv1.Transaction{
			EventId: "6f1c2a9e-3b7d-4c5e-9a51-2f0d8e7b4c11", EventTime: ts("2026-03-14T09:26:53.589Z"),
			TransactionId: "tx-000042", AccountId: "acc-1001", Amount: 129.95, Currency: "EUR",
			MerchantId: "m-778", MerchantCategory: "5732", DeviceId: "dev-9f2", IpAddress: "203.0.113.7",
			Country: "DE", Latitude: proto.Float64(52.52), Longitude: proto.Float64(13.405),
			Channel: eventsv1.Channel_CHANNEL_ONLINE, Attributes: map[string]string{"card_bin": "411111"},
			Source: "gateway-eu",
		}},
		{file: "transaction_commerce.json", want: &eventsv1.Transaction{
			EventId: "0b8e4d0c-7c3f-4f7b-8d7e-5f1f3a9c2e20", EventTime: ts("2026-03-14T09:30:00Z"),
			TransactionId: "ord-5521", AccountId: "cust-77", Currency: "USD", MerchantId: "shop-1",
			Channel: eventsv1.Channel_CHANNEL_MOBILE, Latitude: proto.Float64(0),
			Commerce: &eventsv1.CommerceSession{SessionId: "s-abc", ProductId: "sku-123", ProductCategory: "shoes",
				PageViews: 7, SessionDurationSeconds: 312.5, CartItems: 2, CartValue: 89.9, Referrer: "search",
				ReturningCustomer: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatalf("read fixture: %v", err)
			}
			got := &eventsv1.Transaction{}
			if err := protojson.Unmarshal(data, got); err != nil {
				t.Fatalf("protojson.Unmarshal: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("decoded %s mismatch (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

// TestJSONRejects pins inputs that ingestion must dead-letter as "decode"
// rather than accept with a silently wrong value.
func TestJSONRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, json string
	}{
		{name: "unknown field", json: `{"transaction_id":"t","amount_cents":12}`},
		{name: "unknown enum name", json: `{"channel":"CHANNEL_CARRIER_PIGEON"}`},
		{name: "amount as text", json: `{"amount":"twelve"}`},
		{name: "bad timestamp", json: `{"event_time":"yesterday"}`},
		{name: "not an object", json: `[1,2]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := protojson.Unmarshal([]byte(tt.json), &eventsv1.Transaction{}); err == nil {
				t.Errorf("protojson.Unmarshal(%s) succeeded, want an error", tt.json)
			}
		})
	}
}
