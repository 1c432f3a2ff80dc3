package ingest

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ptr := func(f float64) *float64 { return &f }
	tests := []struct {
		name   string
		mutate func(tx *eventsv1.Transaction)
		want   []string // "field/code" of every expected error, in order
		msg    string   // a substring of the first error's message
	}{
		{name: "valid", mutate: func(*eventsv1.Transaction) {}},
		{name: "minimal payment", mutate: func(tx *eventsv1.Transaction) {
			*tx = eventsv1.Transaction{TransactionId: "t", AccountId: "a", Amount: 1, Currency: "USD", EventTime: tx.EventTime}
		}},
		{name: "empty", mutate: func(tx *eventsv1.Transaction) { *tx = eventsv1.Transaction{} },
			want: []string{"transaction_id/required", "account_id/required", "event_time/required", "amount/required", "currency/required"},
			msg:  "transaction_id: required"},
		{name: "zero amount payment", mutate: func(tx *eventsv1.Transaction) { tx.Amount = 0 },
			want: []string{"amount/required"}, msg: "positive amount"},
		{name: "zero amount shop event", mutate: func(tx *eventsv1.Transaction) {
			tx.Amount = 0
			tx.Commerce = &eventsv1.CommerceSession{PageViews: 3}
		}},
		{name: "negative amount", mutate: func(tx *eventsv1.Transaction) { tx.Amount = -1 }, want: []string{"amount/range"}, msg: "amount: must not be negative"},
		{name: "NaN amount", mutate: func(tx *eventsv1.Transaction) { tx.Amount = math.NaN() }, want: []string{"amount/range"}, msg: "finite"},
		{name: "infinite amount", mutate: func(tx *eventsv1.Transaction) { tx.Amount = math.Inf(1) }, want: []string{"amount/range"}},
		{name: "huge amount", mutate: func(tx *eventsv1.Transaction) { tx.Amount = 2e9 }, want: []string{"amount/range"}, msg: "exceeds the maximum 1e+09"},
		{name: "lower-case currency", mutate: func(tx *eventsv1.Transaction) { tx.Currency = "eur" }, want: []string{"currency/format"}, msg: "upper case"},
		{name: "unknown currency", mutate: func(tx *eventsv1.Transaction) { tx.Currency = "ABC" }, want: []string{"currency/unknown_value"}, msg: `"ABC" is not an active ISO 4217 code`},
		{name: "withdrawn currency", mutate: func(tx *eventsv1.Transaction) { tx.Currency = "HRK" }, want: []string{"currency/unknown_value"}},
		{name: "testing currency", mutate: func(tx *eventsv1.Transaction) { tx.Currency = "XTS" }, want: []string{"currency/unknown_value"}},
		{name: "event time in the future", mutate: func(tx *eventsv1.Transaction) { tx.EventTime = timestamppb.New(testNow.Add(6 * time.Minute)) },
			want: []string{"event_time/range"}, msg: "in the future"},
		{name: "event time within skew", mutate: func(tx *eventsv1.Transaction) { tx.EventTime = timestamppb.New(testNow.Add(4 * time.Minute)) }},
		{name: "event time too old", mutate: func(tx *eventsv1.Transaction) { tx.EventTime = timestamppb.New(testNow.Add(-31 * 24 * time.Hour)) },
			want: []string{"event_time/range"}, msg: "in the past"},
		{name: "invalid timestamp", mutate: func(tx *eventsv1.Transaction) { tx.EventTime = &timestamppb.Timestamp{Seconds: 1, Nanos: -5} },
			want: []string{"event_time/range"}},
		{name: "latitude out of range", mutate: func(tx *eventsv1.Transaction) { tx.Latitude = ptr(91) }, want: []string{"latitude/range"}, msg: "[-90, 90]"},
		{name: "latitude NaN", mutate: func(tx *eventsv1.Transaction) { tx.Latitude = ptr(math.NaN()) }, want: []string{"latitude/range"}},
		{name: "longitude out of range", mutate: func(tx *eventsv1.Transaction) { tx.Longitude = ptr(-180.5) }, want: []string{"longitude/range"}},
		{name: "zero latitude is a place", mutate: func(tx *eventsv1.Transaction) { tx.Latitude, tx.Longitude = ptr(0), ptr(0) }},
		{name: "undefined channel", mutate: func(tx *eventsv1.Transaction) { tx.Channel = 42 }, want: []string{"channel/unknown_value"}},
		{name: "bad ip", mutate: func(tx *eventsv1.Transaction) { tx.IpAddress = "300.1.1.1" }, want: []string{"ip_address/format"}},
		{name: "ipv6", mutate: func(tx *eventsv1.Transaction) { tx.IpAddress = "2001:db8::1" }},
		{name: "bad country", mutate: func(tx *eventsv1.Transaction) { tx.Country = "Germany" }, want: []string{"country/format"}},
		{name: "long transaction id", mutate: func(tx *eventsv1.Transaction) { tx.TransactionId = strings.Repeat("x", 129) },
			want: []string{"transaction_id/length"}, msg: "129 bytes exceeds the limit of 128"},
		{name: "control character", mutate: func(tx *eventsv1.Transaction) { tx.AccountId = "acc\x00" }, want: []string{"account_id/format"}},
		{name: "long merchant", mutate: func(tx *eventsv1.Transaction) { tx.MerchantId = strings.Repeat("m", 257) }, want: []string{"merchant_id/length"}},
		{name: "too many attributes", mutate: func(tx *eventsv1.Transaction) {
			for i := range 40 {
				tx.Attributes[strings.Repeat("k", i+1)] = "v"
			}
		}, want: []string{"attributes/length"}},
		{name: "empty attribute key", mutate: func(tx *eventsv1.Transaction) { tx.Attributes[""] = "v" }, want: []string{"attributes/format"}},
		{name: "bad commerce", mutate: func(tx *eventsv1.Transaction) {
			tx.Commerce = &eventsv1.CommerceSession{PageViews: -1, CartItems: -2, SessionDurationSeconds: math.Inf(1), CartValue: -1}
		}, want: []string{"commerce.page_views/range", "commerce.cart_items/range", "commerce.session_duration_seconds/range", "commerce.cart_value/range"}},
		{name: "several errors", mutate: func(tx *eventsv1.Transaction) { tx.Currency = ""; tx.Amount = -2 },
			want: []string{"amount/range", "currency/required"}},
	}
	v := NewValidator(DefaultLimits(), fixedClock)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tx := validTx()
			tt.mutate(tx)
			errs := v.Validate(tx, nil)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field+"/"+e.Code)
				if !strings.Contains(e.Message, e.Field) {
					t.Errorf("message %q does not name its field %q", e.Message, e.Field)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() errors (-want +got):\n%s", diff)
			}
			if tt.msg != "" && (len(errs) == 0 || !strings.Contains(errs[0].Message, tt.msg)) {
				t.Errorf("first error %v does not contain %q", errs, tt.msg)
			}
		})
	}
}

func TestValidateConfigurableLimits(t *testing.T) {
	t.Parallel()
	l := DefaultLimits()
	l.MaxAmount, l.MaxFutureSkew, l.MaxAge = 100, time.Hour, time.Hour
	v := NewValidator(l, fixedClock)
	tx := validTx()
	tx.Amount = 101
	tx.EventTime = timestamppb.New(testNow.Add(50 * time.Minute))
	if got := v.Validate(tx, nil); len(got) != 1 || got[0].Field != "amount" {
		t.Errorf("Validate() with max amount 100 and 1h skew = %v, want one amount error", got)
	}
	tx.Amount = 10
	tx.EventTime = timestamppb.New(testNow.Add(-2 * time.Hour))
	if got := v.Validate(tx, nil); len(got) != 1 || got[0].Field != "event_time" {
		t.Errorf("Validate() with max age 1h of a 2h old event = %v, want one event_time error", got)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	t.Parallel()
	var fe []FieldError
	for i := range 10 {
		fe = append(fe, FieldError{"f", CodeRange, "f" + strings.Repeat("!", i)})
	}
	msg := (&ValidationError{Fields: fe}).Error()
	if !strings.HasPrefix(msg, "invalid transaction: f; f!") || !strings.HasSuffix(msg, "and 2 more") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestCurrencyList(t *testing.T) {
	t.Parallel()
	codes := strings.Fields(iso4217Active)
	if !slices.IsSorted(codes) {
		t.Error("iso4217Active is not sorted")
	}
	if len(codes) < 150 || len(codes) > 200 {
		t.Errorf("iso4217Active has %d codes, want about 170", len(codes))
	}
	set := newCurrencySet(iso4217Active)
	for _, c := range codes {
		if len(c) != 3 || !set.has(c) {
			t.Errorf("code %q not in the set", c)
		}
	}
	for _, c := range []string{"", "EU", "EURO", "eur", "XXX", "XTS", "HRK", "BGN", "ANG", "ZWL", "SLL", "E1R"} {
		if set.has(c) {
			t.Errorf("set has %q", c)
		}
	}
}
