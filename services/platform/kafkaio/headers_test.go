package kafkaio_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

func TestPermanent(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	tests := []struct {
		name          string
		err           error
		wantPermanent bool
		wantReason    string
	}{
		{name: "nil", err: nil},
		{name: "plain is transient", err: base},
		{name: "permanent default reason", err: kafkaio.Permanent(base), wantPermanent: true, wantReason: kafkaio.ReasonPermanent},
		{name: "permanent with reason", err: kafkaio.PermanentReason(kafkaio.ReasonValidation, base), wantPermanent: true, wantReason: "validation"},
		{name: "wrapped keeps reason", err: fmt.Errorf("handle: %w", kafkaio.PermanentReason(kafkaio.ReasonDecode, base)), wantPermanent: true, wantReason: "decode"},
		{name: "permanent nil is nil", err: kafkaio.Permanent(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := kafkaio.IsPermanent(tt.err); got != tt.wantPermanent {
				t.Errorf("IsPermanent() = %v, want %v", got, tt.wantPermanent)
			}
			if got := kafkaio.Reason(tt.err); got != tt.wantReason {
				t.Errorf("Reason() = %q, want %q", got, tt.wantReason)
			}
			if tt.wantPermanent && !errors.Is(tt.err, base) {
				t.Errorf("errors.Is(err, base) = false, want the cause kept")
			}
		})
	}
}

func TestNewRecordTraceContext(t *testing.T) {
	t.Parallel()
	parentTP := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	tests := []struct {
		name      string
		parent    []kafka.Header
		wantTP    string // empty: a fresh one
		wantState string
	}{
		{name: "no parent starts a trace"},
		{name: "copies parent", parent: []kafka.Header{{Key: "traceparent", Value: parentTP}, {Key: "tracestate", Value: []byte("a=b")}}, wantTP: string(parentTP), wantState: "a=b"},
		{name: "invalid parent starts a trace", parent: []kafka.Header{{Key: "traceparent", Value: []byte("00-zz-00")}}},
		{name: "all-zero trace id is invalid", parent: []kafka.Header{{Key: "traceparent", Value: []byte("00-00000000000000000000000000000000-00f067aa0ba902b7-01")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := kafkaio.NewRecord("topic", []byte("k"), []byte("v"), kafkaio.ContentTypeProtobuf, tt.parent)
			if m.Topic != "topic" || string(m.Key) != "k" || string(m.Value) != "v" {
				t.Errorf("record = %+v", m)
			}
			if ct, _ := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderContentType); string(ct) != kafkaio.ContentTypeProtobuf {
				t.Errorf("content-type = %q", ct)
			}
			tp, ok := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderTraceparent)
			if !ok || !kafkaio.ValidTraceparent(tp) {
				t.Fatalf("traceparent %q is not valid", tp)
			}
			if tt.wantTP != "" && string(tp) != tt.wantTP {
				t.Errorf("traceparent = %q, want %q", tp, tt.wantTP)
			}
			if tt.wantTP == "" && tt.parent != nil && string(tp) == string(tt.parent[0].Value) {
				t.Errorf("invalid parent traceparent was copied")
			}
			st, _ := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderTracestate)
			if string(st) != tt.wantState {
				t.Errorf("tracestate = %q, want %q", st, tt.wantState)
			}
		})
	}
	a, b := kafkaio.NewTraceparent(), kafkaio.NewTraceparent()
	if string(a) == string(b) {
		t.Errorf("two new traceparents are equal: %s", a)
	}
}

func TestTraceContextRoundTrip(t *testing.T) {
	t.Parallel()
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name           string
		tp, ts         string
		wantTP, wantTS string
	}{
		{name: "parent and state", tp: tp, ts: "a=b", wantTP: tp, wantTS: "a=b"},
		{name: "parent only", tp: tp, wantTP: tp},
		{name: "none", ts: "a=b"},
		{name: "invalid parent dropped with its state", tp: "00-zz-00", ts: "a=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := kafkaio.TraceHeaders(tt.tp, tt.ts)
			if tt.tp == "" && h != nil {
				t.Errorf("TraceHeaders(\"\", %q) = %v, want nil", tt.ts, h)
			}
			gotTP, gotTS := kafkaio.TraceContext(h)
			if gotTP != tt.wantTP || gotTS != tt.wantTS {
				t.Errorf("TraceContext(TraceHeaders(%q, %q)) = %q, %q; want %q, %q", tt.tp, tt.ts, gotTP, gotTS, tt.wantTP, tt.wantTS)
			}
			m := kafkaio.NewRecord("topic", nil, nil, kafkaio.ContentTypeProtobuf, h)
			if got, _ := kafkaio.TraceContext(m.Headers); tt.wantTP != "" && got != tt.wantTP {
				t.Errorf("NewRecord did not carry the trace: %q", got)
			}
		})
	}
}
