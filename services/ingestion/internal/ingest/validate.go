package ingest

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

// Codes of FieldError, a small fixed set (they are also a metric label).
const (
	CodeRequired     = "required"      // a required field is missing or empty
	CodeRange        = "range"         // a number or time outside its allowed range
	CodeFormat       = "format"        // a string that is not of the required form
	CodeLength       = "length"        // a string, map or record that is too long
	CodeUnknownValue = "unknown_value" // a code or enum value that is not defined
	CodeDuplicate    = "duplicate"     // a transaction id already seen within the window
	CodeUnknownField = "unknown_field" // a field the schema does not have
)

// FieldError describes one invalid field. Field is the proto field path ("amount",
// "commerce.page_views", "attributes"), from a fixed set, so it may be used as a metric label;
// Message names the field and says what is wrong, for people.
type FieldError struct {
	Field   string
	Code    string
	Message string
}

func (e FieldError) Error() string { return e.Message }

// ValidationError is the error of a transaction that decoded but is not acceptable. It lists
// every invalid field.
type ValidationError struct {
	Fields []FieldError
}

// maxErrorsInMessage caps how many field errors Error spells out.
const maxErrorsInMessage = 8

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid transaction: ")
	for i, f := range e.Fields {
		if i == maxErrorsInMessage {
			fmt.Fprintf(&b, "; and %d more", len(e.Fields)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Message)
	}
	return b.String()
}

// Limits bounds what the validator accepts. The zero value of a field is not a usable limit:
// start from DefaultLimits.
type Limits struct {
	// MaxRecordBytes is the largest encoded transaction accepted (the Kafka record value or the
	// gRPC message). Default: 64 KiB.
	MaxRecordBytes int
	// MaxAmount is the largest amount (and commerce.cart_value), in major currency units.
	// Default: 1e9.
	MaxAmount float64
	// MaxFutureSkew is how far event_time may lie ahead of the ingestion clock (producers'
	// clocks drift). Default: 5m.
	MaxFutureSkew time.Duration
	// MaxAge is how far event_time may lie behind the ingestion clock. Default: 720h (30 days).
	MaxAge time.Duration
	// MaxIDLength is the longest event_id, transaction_id and account_id, in bytes.
	// Default: 128.
	MaxIDLength int
	// MaxStringLength is the longest other string field and attribute value, in bytes.
	// Default: 256.
	MaxStringLength int
	// MaxAttributes is the most entries of attributes. Default: 32.
	MaxAttributes int
	// MaxAttributeKeyLength is the longest attribute key, in bytes. Default: 64.
	MaxAttributeKeyLength int
}

// DefaultLimits returns the default limits (see Limits).
func DefaultLimits() Limits {
	return Limits{
		MaxRecordBytes:        64 << 10,
		MaxAmount:             1e9,
		MaxFutureSkew:         5 * time.Minute,
		MaxAge:                30 * 24 * time.Hour,
		MaxIDLength:           128,
		MaxStringLength:       256,
		MaxAttributes:         32,
		MaxAttributeKeyLength: 64,
	}
}

// Validate reports every unusable limit.
func (l Limits) Validate() []error {
	var errs []error
	positive := []struct {
		name string
		ok   bool
	}{
		{"max record bytes", l.MaxRecordBytes > 0},
		{"max amount", l.MaxAmount > 0 && !math.IsInf(l.MaxAmount, 0)},
		{"max future skew", l.MaxFutureSkew >= 0},
		{"max age", l.MaxAge > 0},
		{"max id length", l.MaxIDLength > 0},
		{"max string length", l.MaxStringLength > 0},
		{"max attributes", l.MaxAttributes >= 0},
		{"max attribute key length", l.MaxAttributeKeyLength > 0},
	}
	for _, p := range positive {
		if !p.ok {
			errs = append(errs, fmt.Errorf("ingest %s: out of range", p.name))
		}
	}
	return errs
}

// Validator checks decoded transactions against the contract of mlops.events.v1.Transaction
// and the configured Limits. It is safe for concurrent use.
type Validator struct {
	limits     Limits
	now        func() time.Time
	currencies *currencySet
}

// NewValidator returns a validator with limits and a clock (time.Now in production; tests
// inject a fixed one).
func NewValidator(limits Limits, now func() time.Time) *Validator {
	return &Validator{limits: limits, now: now, currencies: newCurrencySet(iso4217Active)}
}

// Validate appends an error for every invalid field of tx to errs and returns the result; no
// error was found when it returns errs unchanged. The rules, beyond the field types the
// decoders enforce:
//
//   - transaction_id, account_id, currency and event_time are required;
//   - amount is finite, at most MaxAmount, and positive, except that a shop event (commerce
//     set) may have amount 0 (a page view before any purchase);
//   - currency is an active ISO 4217 code in upper case; country two upper-case letters;
//     ip_address an IPv4 or IPv6 address;
//   - event_time lies within [now-MaxAge, now+MaxFutureSkew];
//   - latitude in [-90, 90] and longitude in [-180, 180] when set;
//   - channel is a defined Channel value;
//   - strings are within their length limits and hold no control characters; attributes has
//     at most MaxAttributes entries with non-empty keys;
//   - commerce counts and amounts are non-negative and finite.
func (v *Validator) Validate(tx *eventsv1.Transaction, errs []FieldError) []FieldError {
	l := &v.limits
	errs = v.id(errs, "event_id", tx.GetEventId(), false)
	errs = v.id(errs, "transaction_id", tx.GetTransactionId(), true)
	errs = v.id(errs, "account_id", tx.GetAccountId(), true)
	errs = v.eventTime(errs, tx.GetEventTime())
	if ts := tx.GetIngestedAt(); ts != nil && ts.CheckValid() != nil {
		errs = append(errs, FieldError{"ingested_at", CodeRange, "ingested_at: not a valid timestamp: " + ts.CheckValid().Error()})
	}

	switch amount := tx.GetAmount(); {
	case math.IsNaN(amount) || math.IsInf(amount, 0):
		errs = append(errs, FieldError{"amount", CodeRange, "amount: must be a finite number, got " + formatFloat(amount)})
	case amount < 0:
		errs = append(errs, FieldError{"amount", CodeRange, "amount: must not be negative, got " + formatFloat(amount)})
	case amount == 0 && tx.GetCommerce() == nil:
		errs = append(errs, FieldError{"amount", CodeRequired, "amount: required: a payment must have a positive amount"})
	case amount > l.MaxAmount:
		errs = append(errs, FieldError{"amount", CodeRange, "amount: " + formatFloat(amount) + " exceeds the maximum " + formatFloat(l.MaxAmount)})
	}

	switch c := tx.GetCurrency(); {
	case c == "":
		errs = append(errs, FieldError{"currency", CodeRequired, "currency: required (an ISO 4217 code such as EUR)"})
	case v.currencies.has(c):
	case v.currencies.has(strings.ToUpper(c)):
		errs = append(errs, FieldError{"currency", CodeFormat, fmt.Sprintf("currency: %q must be upper case (%s)", truncate(c), strings.ToUpper(c))})
	default:
		errs = append(errs, FieldError{"currency", CodeUnknownValue, fmt.Sprintf("currency: %q is not an active ISO 4217 code", truncate(c))})
	}

	errs = v.text(errs, "merchant_id", tx.GetMerchantId())
	errs = v.text(errs, "merchant_category", tx.GetMerchantCategory())
	errs = v.text(errs, "device_id", tx.GetDeviceId())
	errs = v.text(errs, "source", tx.GetSource())
	if ip := tx.GetIpAddress(); ip != "" {
		if len(ip) > 64 {
			errs = append(errs, FieldError{"ip_address", CodeLength, fmt.Sprintf("ip_address: %d bytes is too long for an IP address", len(ip))})
		} else if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, FieldError{"ip_address", CodeFormat, fmt.Sprintf("ip_address: %q is not an IPv4 or IPv6 address", truncate(ip))})
		}
	}
	if c := tx.GetCountry(); c != "" && !(len(c) == 2 && isUpper(c[0]) && isUpper(c[1])) {
		errs = append(errs, FieldError{"country", CodeFormat, fmt.Sprintf("country: %q is not an ISO 3166-1 alpha-2 code (two upper-case letters)", truncate(c))})
	}
	if tx.Latitude != nil {
		if lat := tx.GetLatitude(); !(lat >= -90 && lat <= 90) {
			errs = append(errs, FieldError{"latitude", CodeRange, "latitude: must be within [-90, 90], got " + formatFloat(lat)})
		}
	}
	if tx.Longitude != nil {
		if lon := tx.GetLongitude(); !(lon >= -180 && lon <= 180) {
			errs = append(errs, FieldError{"longitude", CodeRange, "longitude: must be within [-180, 180], got " + formatFloat(lon)})
		}
	}
	if ch := tx.GetChannel(); eventsv1.Channel_name[int32(ch)] == "" {
		errs = append(errs, FieldError{"channel", CodeUnknownValue, fmt.Sprintf("channel: %d is not a defined Channel value", int32(ch))})
	}
	errs = v.attributes(errs, tx.GetAttributes())
	if c := tx.GetCommerce(); c != nil {
		errs = v.commerce(errs, c)
	}
	return errs
}

func (v *Validator) id(errs []FieldError, field, s string, required bool) []FieldError {
	switch {
	case s == "":
		if required {
			errs = append(errs, FieldError{field, CodeRequired, field + ": required"})
		}
	case len(s) > v.limits.MaxIDLength:
		errs = append(errs, FieldError{field, CodeLength, fmt.Sprintf("%s: %d bytes exceeds the limit of %d", field, len(s), v.limits.MaxIDLength)})
	case !printable(s):
		errs = append(errs, FieldError{field, CodeFormat, field + ": must be valid UTF-8 without control characters"})
	}
	return errs
}

func (v *Validator) text(errs []FieldError, field, s string) []FieldError {
	switch {
	case len(s) > v.limits.MaxStringLength:
		errs = append(errs, FieldError{field, CodeLength, fmt.Sprintf("%s: %d bytes exceeds the limit of %d", field, len(s), v.limits.MaxStringLength)})
	case !printable(s):
		errs = append(errs, FieldError{field, CodeFormat, field + ": must be valid UTF-8 without control characters"})
	}
	return errs
}

func (v *Validator) eventTime(errs []FieldError, ts *timestamppb.Timestamp) []FieldError {
	if ts == nil {
		return append(errs, FieldError{"event_time", CodeRequired, "event_time: required"})
	}
	if err := ts.CheckValid(); err != nil {
		return append(errs, FieldError{"event_time", CodeRange, "event_time: not a valid timestamp: " + err.Error()})
	}
	t := ts.AsTime()
	now := v.now()
	if t.After(now.Add(v.limits.MaxFutureSkew)) {
		return append(errs, FieldError{"event_time", CodeRange, fmt.Sprintf("event_time: %s is more than %v in the future (now %s)",
			t.Format(time.RFC3339Nano), v.limits.MaxFutureSkew, now.UTC().Format(time.RFC3339))})
	}
	if t.Before(now.Add(-v.limits.MaxAge)) {
		return append(errs, FieldError{"event_time", CodeRange, fmt.Sprintf("event_time: %s is more than %v in the past (now %s)",
			t.Format(time.RFC3339Nano), v.limits.MaxAge, now.UTC().Format(time.RFC3339))})
	}
	return errs
}

func (v *Validator) attributes(errs []FieldError, attrs map[string]string) []FieldError {
	if len(attrs) > v.limits.MaxAttributes {
		return append(errs, FieldError{"attributes", CodeLength, fmt.Sprintf("attributes: %d entries exceeds the limit of %d", len(attrs), v.limits.MaxAttributes)})
	}
	for k, val := range attrs {
		switch {
		case k == "":
			errs = append(errs, FieldError{"attributes", CodeFormat, "attributes: empty key"})
		case len(k) > v.limits.MaxAttributeKeyLength:
			errs = append(errs, FieldError{"attributes", CodeLength, fmt.Sprintf("attributes: key of %d bytes exceeds the limit of %d", len(k), v.limits.MaxAttributeKeyLength)})
		case !printable(k):
			errs = append(errs, FieldError{"attributes", CodeFormat, "attributes: key must be valid UTF-8 without control characters"})
		case len(val) > v.limits.MaxStringLength:
			errs = append(errs, FieldError{"attributes", CodeLength, fmt.Sprintf("attributes[%q]: %d bytes exceeds the limit of %d", truncate(k), len(val), v.limits.MaxStringLength)})
		case !printable(val):
			errs = append(errs, FieldError{"attributes", CodeFormat, fmt.Sprintf("attributes[%q]: must be valid UTF-8 without control characters", truncate(k))})
		}
	}
	return errs
}

func (v *Validator) commerce(errs []FieldError, c *eventsv1.CommerceSession) []FieldError {
	errs = v.text(errs, "commerce.session_id", c.GetSessionId())
	errs = v.text(errs, "commerce.product_id", c.GetProductId())
	errs = v.text(errs, "commerce.product_category", c.GetProductCategory())
	errs = v.text(errs, "commerce.referrer", c.GetReferrer())
	if n := c.GetPageViews(); n < 0 {
		errs = append(errs, FieldError{"commerce.page_views", CodeRange, "commerce.page_views: must not be negative, got " + strconv.Itoa(int(n))})
	}
	if n := c.GetCartItems(); n < 0 {
		errs = append(errs, FieldError{"commerce.cart_items", CodeRange, "commerce.cart_items: must not be negative, got " + strconv.Itoa(int(n))})
	}
	if d := c.GetSessionDurationSeconds(); !(d >= 0 && d <= 366*24*3600) {
		errs = append(errs, FieldError{"commerce.session_duration_seconds", CodeRange, "commerce.session_duration_seconds: must be within [0, 1 year], got " + formatFloat(d)})
	}
	if x := c.GetCartValue(); !(x >= 0 && x <= v.limits.MaxAmount) {
		errs = append(errs, FieldError{"commerce.cart_value", CodeRange, "commerce.cart_value: must be within [0, " + formatFloat(v.limits.MaxAmount) + "], got " + formatFloat(x)})
	}
	return errs
}

// printable reports whether s is valid UTF-8 without C0 control characters or DEL. The
// binary decoder already guarantees UTF-8; the JSON decoder too; the check is cheap.
func printable(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		i += size
	}
	return true
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// truncate shortens s for an error message.
func truncate(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
