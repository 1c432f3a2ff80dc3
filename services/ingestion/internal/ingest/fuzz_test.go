package ingest

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

// Committed seeds live in testdata/fuzz/<FuzzName>/; `go test` runs them as regular tests.
// Run a fuzzer with: go test -run '^$' -fuzz FuzzDecodeJSON -fuzztime 60s ./internal/ingest/

// FuzzDecodeJSON checks that the JSON decoder never panics, agrees with protojson (the
// reference implementation of the mapping) except for the documented channel aliases, and
// that a valid result round-trips through protojson and protobuf encodings.
func FuzzDecodeJSON(f *testing.F) {
	for _, name := range contractFixtures {
		f.Add(readContractFixture(f, name), false)
	}
	f.Add([]byte(`{"transaction_id":"t","account_id":"a","amount":"1e2","currency":"EUR","event_time":"2026-03-14T09:59:00+00:00","channel":"web"}`), false)
	f.Add([]byte(`{"x":[{"y":null},true,-0.5e-3,"\u00e9"],"amount":1}`), true)
	v := NewValidator(DefaultLimits(), fixedClock)
	f.Fuzz(func(t *testing.T, data []byte, ignore bool) {
		u := RejectUnknown
		if ignore {
			u = IgnoreUnknown
		}
		got := &eventsv1.Transaction{}
		err := NewDecoder(u).DecodeJSON(data, got)
		want := &eventsv1.Transaction{}
		refErr := protojson.UnmarshalOptions{DiscardUnknown: ignore}.Unmarshal(data, want)
		switch {
		case err == nil && refErr == nil:
			if usesChannelAlias(data) { // protojson (ignoring unknown) leaves an alias unset
				want.Channel = got.Channel
			}
			if !proto.Equal(want, got) { // proto.Equal takes NaN == NaN, cmp does not
				t.Fatalf("DecodeJSON differs from protojson (-protojson +DecodeJSON):\n%s", cmp.Diff(want, got, protocmp.Transform()))
			}
		case err != nil && refErr == nil:
			// protojson is lenient with some invalid JSON (it takes "10e" for a number);
			// the decoder is not.
			if json.Valid(data) && !strings.Contains(err.Error(), "nested deeper") {
				t.Fatalf("DecodeJSON rejects what protojson accepts: %v", err)
			}
			return
		case err == nil && refErr != nil:
			if !usesChannelAlias(data) {
				t.Fatalf("DecodeJSON accepts what protojson rejects (%v)", refErr)
			}
		default:
			return
		}
		if len(v.Validate(got, nil)) == 0 {
			roundTrip(t, got)
		}
	})
}

func usesChannelAlias(data []byte) bool {
	for _, a := range []string{"pos", "online", "web", "mobile", "app", "atm", "transfer"} {
		if bytes.Contains(data, []byte(`"`+a+`"`)) {
			return true
		}
	}
	return false
}

// roundTrip checks that tx survives protojson → DecodeJSON and protobuf → DecodeProto.
func roundTrip(t *testing.T, tx *eventsv1.Transaction) {
	t.Helper()
	js, err := protojson.Marshal(tx)
	if err != nil {
		t.Fatalf("protojson.Marshal of a valid transaction: %v", err)
	}
	back := &eventsv1.Transaction{}
	if err := NewDecoder(RejectUnknown).DecodeJSON(js, back); err != nil {
		t.Fatalf("DecodeJSON of protojson output %s: %v", js, err)
	}
	if !proto.Equal(tx, back) {
		t.Fatalf("JSON round trip (-before +after):\n%s", cmp.Diff(tx, back, protocmp.Transform()))
	}
	bin, err := proto.Marshal(tx)
	if err != nil {
		t.Fatalf("proto.Marshal of a valid transaction: %v", err)
	}
	back = &eventsv1.Transaction{}
	if err := NewDecoder(RejectUnknown).DecodeProto(bin, back); err != nil {
		t.Fatalf("DecodeProto of proto.Marshal output: %v", err)
	}
	if !proto.Equal(tx, back) {
		t.Fatalf("protobuf round trip (-before +after):\n%s", cmp.Diff(tx, back, protocmp.Transform()))
	}
}

// FuzzDecodeProto checks that the protobuf decoder never panics, that the unknown-fields
// policy holds, and that a valid result round-trips.
func FuzzDecodeProto(f *testing.F) {
	for _, tx := range []*eventsv1.Transaction{validTx(), {TransactionId: "t", Commerce: &eventsv1.CommerceSession{PageViews: 3}}} {
		b, err := proto.Marshal(tx)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	f.Add([]byte{0x0a, 0x01, 'x', 0xf8, 0x06, 0x01}, true) // event_id "x" and unknown field 111
	v := NewValidator(DefaultLimits(), fixedClock)
	f.Fuzz(func(t *testing.T, data []byte, ignore bool) {
		u := RejectUnknown
		if ignore {
			u = IgnoreUnknown
		}
		got := &eventsv1.Transaction{}
		if err := NewDecoder(u).DecodeProto(data, got); err != nil {
			return
		}
		if len(got.ProtoReflect().GetUnknown()) != 0 || (got.Commerce != nil && len(got.Commerce.ProtoReflect().GetUnknown()) != 0) {
			t.Fatal("DecodeProto kept unknown fields")
		}
		if len(v.Validate(got, nil)) == 0 {
			roundTrip(t, got)
		}
	})
}

// FuzzValidate checks that the validator never panics, that what it accepts satisfies the
// contract's invariants, and that an accepted transaction round-trips.
func FuzzValidate(f *testing.F) {
	f.Add("tx-1", "acc-1", 12.5, "EUR", testNow.Unix()-60, int32(0), 52.5, 13.4, int32(1), "card_bin", "411111", false)
	f.Add("", "acc-1", -1.0, "eur", int64(0), int32(-1), 91.0, 181.0, int32(9), "", "v", true)
	f.Add("tx-2", "acc-2", 0.0, "USD", testNow.Unix()+200, int32(999999999), 0.0, 0.0, int32(0), "k", "", true)
	v := NewValidator(DefaultLimits(), fixedClock)
	f.Fuzz(func(t *testing.T, id, account string, amount float64, currency string, sec int64, nanos int32,
		lat, lon float64, channel int32, key, val string, shop bool) {
		tx := &eventsv1.Transaction{
			TransactionId: id, AccountId: account, Amount: amount, Currency: currency,
			EventTime: &timestamppb.Timestamp{Seconds: sec, Nanos: nanos},
			Latitude:  &lat, Longitude: &lon, Channel: eventsv1.Channel(channel),
			Attributes: map[string]string{key: val},
		}
		if shop {
			tx.Commerce = &eventsv1.CommerceSession{CartValue: amount, PageViews: channel}
		}
		if errs := v.Validate(tx, nil); len(errs) > 0 {
			for _, e := range errs {
				if e.Field == "" || e.Code == "" || !strings.Contains(e.Message, strings.SplitN(e.Field, ".", 2)[0]) {
					t.Fatalf("malformed field error %+v", e)
				}
			}
			return
		}
		et := tx.EventTime.AsTime()
		switch {
		case id == "" || account == "":
			t.Fatal("accepted without ids")
		case math.IsNaN(amount) || math.IsInf(amount, 0) || amount < 0 || (amount == 0 && !shop):
			t.Fatalf("accepted amount %v", amount)
		case !newCurrencySet(iso4217Active).has(currency):
			t.Fatalf("accepted currency %q", currency)
		case lat < -90 || lat > 90 || lon < -180 || lon > 180:
			t.Fatalf("accepted position %v, %v", lat, lon)
		case et.After(testNow.Add(5*time.Minute)) || et.Before(testNow.Add(-30*24*time.Hour)):
			t.Fatalf("accepted event time %v", et)
		}
		roundTrip(t, tx)
	})
}
