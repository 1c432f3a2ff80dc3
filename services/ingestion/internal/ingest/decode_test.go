package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
)

// contractFixtures are the JSON examples of docs/contracts.md.
var contractFixtures = []string{"transaction_fraud.json", "transaction_commerce.json"}

func readContractFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "proto", "contracts", "testdata", name))
	if err != nil {
		t.Fatalf("read contract fixture: %v", err)
	}
	return b
}

// TestDecodeJSONMatchesProtojson decodes the contract fixtures with both decoders.
func TestDecodeJSONMatchesProtojson(t *testing.T) {
	t.Parallel()
	for _, name := range contractFixtures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := readContractFixture(t, name)
			want := &eventsv1.Transaction{}
			if err := protojson.Unmarshal(data, want); err != nil {
				t.Fatalf("protojson: %v", err)
			}
			got := &eventsv1.Transaction{}
			if err := NewDecoder(RejectUnknown).DecodeJSON(data, got); err != nil {
				t.Fatalf("DecodeJSON: %v", err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("DecodeJSON differs from protojson (-want +got):\n%s", diff)
			}
			if errs := NewValidator(DefaultLimits(), fixedClock).Validate(got, nil); len(errs) > 0 {
				t.Errorf("contract fixture is invalid: %v", errs)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		ignore  bool
		want    *eventsv1.Transaction // compared when set
		wantErr string                // substring of the error
		field   string                // DecodeError.Field
	}{
		{name: "simulator shape", in: `{"transaction_id":"sim-1","account_id":"acc-00042","amount":12.5,"currency":"EUR",
			"merchant_id":"m-0003","merchant_category":"grocery","device_id":"d-1","country":"DE","latitude":52.52,
			"longitude":13.405,"channel":"pos","event_time":"2026-03-14T09:59:00.123456789Z"}`,
			want: &eventsv1.Transaction{TransactionId: "sim-1", AccountId: "acc-00042", Amount: 12.5, Currency: "EUR",
				MerchantId: "m-0003", MerchantCategory: "grocery", DeviceId: "d-1", Country: "DE", Latitude: proto.Float64(52.52),
				Longitude: proto.Float64(13.405), Channel: eventsv1.Channel_CHANNEL_POS,
				EventTime: ts(testNow.Unix()-60, 123456789)}},
		{name: "channel aliases", in: `{"channel":"web"}`, want: &eventsv1.Transaction{Channel: eventsv1.Channel_CHANNEL_ONLINE}},
		{name: "channel app", in: `{"channel":"app"}`, want: &eventsv1.Transaction{Channel: eventsv1.Channel_CHANNEL_MOBILE}},
		{name: "channel number", in: `{"channel":4}`, want: &eventsv1.Transaction{Channel: eventsv1.Channel_CHANNEL_ATM}},
		{name: "camel case and escapes", in: `{"transactionId":"a\"b\u00e9\ud83d\ude00","accountId":"x\/y"}`,
			want: &eventsv1.Transaction{TransactionId: "a\"bé😀", AccountId: "x/y"}},
		{name: "quoted numbers", in: `{"amount":"1.5e2","commerce":{"pageViews":"7","cartItems":2.0}}`,
			want: &eventsv1.Transaction{Amount: 150, Commerce: &eventsv1.CommerceSession{PageViews: 7, CartItems: 2}}},
		{name: "nulls", in: `{"latitude":null,"commerce":null,"attributes":null,"event_time":null,"amount":null,"source":null}`,
			want: &eventsv1.Transaction{}},
		{name: "offset timestamp", in: `{"event_time":"2026-03-14T11:00:00+01:00"}`, want: &eventsv1.Transaction{EventTime: ts(testNow.Unix(), 0)}},
		{name: "unknown field rejected", in: `{"transaction_id":"t","colour":"red"}`, wantErr: `unknown field "colour"`},
		{name: "unknown field ignored", in: `{"transaction_id":"t","colour":{"a":[1,2,{"b":null}]}}`, ignore: true,
			want: &eventsv1.Transaction{TransactionId: "t"}},
		{name: "unknown commerce field", in: `{"commerce":{"basket":1}}`, wantErr: `unknown field "basket" in commerce`},
		{name: "amount as bool", in: `{"amount":true}`, wantErr: "want a number, got a boolean", field: "amount"},
		{name: "amount as word", in: `{"amount":"lots"}`, wantErr: `want a number, got the string "lots"`, field: "amount"},
		{name: "amount out of range", in: `{"amount":1e400}`, wantErr: "out of range", field: "amount"},
		{name: "id as number", in: `{"transaction_id":42}`, wantErr: "want a string, got a number", field: "transaction_id"},
		{name: "bad timestamp", in: `{"event_time":"yesterday"}`, wantErr: "not an RFC 3339 timestamp", field: "event_time"},
		{name: "timestamp without zone", in: `{"event_time":"2026-03-14T09:00:00"}`, wantErr: "not an RFC 3339", field: "event_time"},
		{name: "february 30", in: `{"event_time":"2026-02-30T09:00:00Z"}`, wantErr: "not an RFC 3339", field: "event_time"},
		{name: "unknown channel", in: `{"channel":"carrier pigeon"}`, wantErr: "unknown channel", field: "channel"},
		{name: "page views fraction", in: `{"commerce":{"page_views":1.5}}`, wantErr: "not an int32", field: "commerce.page_views"},
		{name: "duplicate field", in: `{"amount":1,"amount":2}`, wantErr: "duplicate field", field: "amount"},
		{name: "duplicate across spellings", in: `{"account_id":"a","accountId":"b"}`, wantErr: "duplicate field", field: "account_id"},
		{name: "duplicate attribute", in: `{"attributes":{"k":"a","k":"b"}}`, wantErr: `duplicate key "k"`, field: "attributes"},
		{name: "attribute not a string", in: `{"attributes":{"k":1}}`, wantErr: `want a string value for key "k", got a number`, field: "attributes"},
		{name: "not an object", in: `[1]`, wantErr: "want a JSON object, got an array"},
		{name: "truncated", in: `{"amount":1`, wantErr: "want ',' or '}'"},
		{name: "trailing data", in: `{} {}`, wantErr: "unexpected data after the object"},
		{name: "invalid utf8", in: "{\"source\":\"\xff\"}", wantErr: "invalid UTF-8", field: "source"},
		{name: "lone surrogate", in: `{"source":"\ud800"}`, wantErr: "unpaired surrogate", field: "source"},
		{name: "control character", in: "{\"source\":\"a\tb\"}", wantErr: "control character", field: "source"},
		{name: "empty", in: ``, wantErr: "got end of input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := RejectUnknown
			if tt.ignore {
				u = IgnoreUnknown
			}
			got := &eventsv1.Transaction{}
			err := NewDecoder(u).DecodeJSON([]byte(tt.in), got)
			if tt.wantErr != "" {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("DecodeJSON() error = %v, want a *DecodeError", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || de.Field != tt.field {
					t.Errorf("DecodeJSON() error = %q (field %q), want it to contain %q (field %q)", err, de.Field, tt.wantErr, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeJSON() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("DecodeJSON() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeContentTypes(t *testing.T) {
	t.Parallel()
	tx := validTx()
	bin, err := proto.Marshal(tx)
	if err != nil {
		t.Fatal(err)
	}
	js := []byte(protojson.Format(tx))
	// A protobuf value that starts with "\n{": event_id of 123 bytes.
	longID := validTx()
	longID.EventId = strings.Repeat("e", 123)
	binLF, _ := proto.Marshal(longID)
	unknownField := protowire.AppendVarint(protowire.AppendTag(append([]byte{}, bin...), 99, protowire.VarintType), 1)

	tests := []struct {
		name    string
		ct      string
		hasCT   bool
		value   []byte
		want    *eventsv1.Transaction
		wantErr string
		ignore  bool
	}{
		{name: "json", ct: topics.ContentTypeJSON, hasCT: true, value: js, want: tx},
		{name: "json with charset", ct: "Application/JSON; charset=utf-8", hasCT: true, value: js, want: tx},
		{name: "protobuf", ct: topics.ContentTypeProtobuf, hasCT: true, value: bin, want: tx},
		{name: "sniffed json", value: js, want: tx},
		{name: "sniffed json after blanks", value: append([]byte(" \r\n"), js...), want: tx},
		{name: "sniffed protobuf", value: bin, want: tx},
		{name: "empty header sniffs", hasCT: true, value: js, want: tx},
		{name: "protobuf starting with newline brace", value: binLF, want: longID},
		{name: "unsupported", ct: "text/csv", hasCT: true, value: []byte("a,b"), wantErr: `unsupported content-type "text/csv"`},
		{name: "json declared but protobuf sent", ct: topics.ContentTypeJSON, hasCT: true, value: bin, wantErr: "decode json"},
		{name: "garbage protobuf", value: []byte{0xff, 0xff, 0xff}, wantErr: "decode protobuf"},
		{name: "unknown protobuf field", value: unknownField, wantErr: "unknown field number 99"},
		{name: "unknown protobuf field ignored", value: unknownField, ignore: true, want: tx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := RejectUnknown
			if tt.ignore {
				u = IgnoreUnknown
			}
			got := &eventsv1.Transaction{}
			err := NewDecoder(u).Decode([]byte(tt.ct), tt.hasCT, tt.value, got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Decode() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Decode() (-want +got):\n%s", diff)
			}
			if len(got.ProtoReflect().GetUnknown()) != 0 {
				t.Error("unknown fields kept")
			}
		})
	}
}

func TestParseRFC3339MatchesProtojson(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1970-01-01T00:00:00Z", "2000-02-29T12:00:00-05:30",
		"1969-12-31T23:59:59.5Z", "2026-03-14T09:26:53.589Z", "2024-02-29T00:00:00+14:00",
	} {
		var want eventsv1.Transaction
		if err := protojson.Unmarshal([]byte(`{"eventTime":"`+s+`"}`), &want); err != nil {
			t.Fatalf("protojson %s: %v", s, err)
		}
		sec, nsec, ok := parseRFC3339([]byte(s))
		if !ok || sec != want.EventTime.Seconds || nsec != want.EventTime.Nanos {
			t.Errorf("parseRFC3339(%s) = %d, %d, %v; want %d, %d", s, sec, nsec, ok, want.EventTime.Seconds, want.EventTime.Nanos)
		}
	}
	if _, _, ok := parseRFC3339([]byte("2026-03-14T24:00:00Z")); ok {
		t.Error("hour 24 accepted")
	}
	if _, _, ok := parseRFC3339([]byte("2026-03-14T09:00:00.1234567890Z")); ok {
		t.Error("ten fraction digits accepted")
	}
}
