package ingest

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

// jsonDecoder is a single-pass decoder of the protojson form of Transaction, written for
// the hot path of tx.raw: it allocates only the decoded strings, the timestamps, the
// attributes map and the commerce block, where protojson.Unmarshal builds a token stream and
// goes through reflection. Its behaviour matches protojson with DiscardUnknown set from the
// policy (FuzzDecodeJSON cross-checks the two), plus the channel aliases.
type jsonDecoder struct {
	buf           []byte
	pos           int
	ignoreUnknown bool
	scratch       []byte // unescaped strings
}

// maxSkipDepth bounds the nesting of unknown values skipped under IgnoreUnknown.
const maxSkipDepth = 64

// Top-level Transaction fields, as bit positions for duplicate detection.
const (
	fEventID = iota
	fEventTime
	fTransactionID
	fAccountID
	fAmount
	fCurrency
	fMerchantID
	fMerchantCategory
	fDeviceID
	fIPAddress
	fCountry
	fLatitude
	fLongitude
	fChannel
	fAttributes
	fCommerce
	fIngestedAt
	fSource
)

// txFieldNames are the proto names of the fields above, for error messages.
var txFieldNames = [...]string{
	"event_id", "event_time", "transaction_id", "account_id", "amount", "currency", "merchant_id",
	"merchant_category", "device_id", "ip_address", "country", "latitude", "longitude", "channel",
	"attributes", "commerce", "ingested_at", "source",
}

func txField(name []byte) int {
	switch string(name) {
	case "event_id", "eventId":
		return fEventID
	case "event_time", "eventTime":
		return fEventTime
	case "transaction_id", "transactionId":
		return fTransactionID
	case "account_id", "accountId":
		return fAccountID
	case "amount":
		return fAmount
	case "currency":
		return fCurrency
	case "merchant_id", "merchantId":
		return fMerchantID
	case "merchant_category", "merchantCategory":
		return fMerchantCategory
	case "device_id", "deviceId":
		return fDeviceID
	case "ip_address", "ipAddress":
		return fIPAddress
	case "country":
		return fCountry
	case "latitude":
		return fLatitude
	case "longitude":
		return fLongitude
	case "channel":
		return fChannel
	case "attributes":
		return fAttributes
	case "commerce":
		return fCommerce
	case "ingested_at", "ingestedAt":
		return fIngestedAt
	case "source":
		return fSource
	}
	return -1
}

// CommerceSession fields.
const (
	cSessionID = iota
	cProductID
	cProductCategory
	cPageViews
	cSessionDuration
	cCartItems
	cCartValue
	cReferrer
	cReturning
)

var commerceFieldNames = [...]string{
	"commerce.session_id", "commerce.product_id", "commerce.product_category", "commerce.page_views",
	"commerce.session_duration_seconds", "commerce.cart_items", "commerce.cart_value", "commerce.referrer",
	"commerce.returning_customer",
}

func commerceField(name []byte) int {
	switch string(name) {
	case "session_id", "sessionId":
		return cSessionID
	case "product_id", "productId":
		return cProductID
	case "product_category", "productCategory":
		return cProductCategory
	case "page_views", "pageViews":
		return cPageViews
	case "session_duration_seconds", "sessionDurationSeconds":
		return cSessionDuration
	case "cart_items", "cartItems":
		return cCartItems
	case "cart_value", "cartValue":
		return cCartValue
	case "referrer":
		return cReferrer
	case "returning_customer", "returningCustomer":
		return cReturning
	}
	return -1
}

func (d *jsonDecoder) errAt(field, format string, args ...any) error {
	return &DecodeError{Format: "json", Field: field, Offset: d.pos, Msg: fmt.Sprintf(format, args...)}
}

func (d *jsonDecoder) ws() {
	for d.pos < len(d.buf) {
		switch d.buf[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jsonDecoder) peek() byte {
	if d.pos < len(d.buf) {
		return d.buf[d.pos]
	}
	return 0
}

// typeErr reports a value of the wrong JSON type for field.
func (d *jsonDecoder) typeErr(field, want string) error {
	got := "invalid JSON"
	switch c := d.peek(); {
	case c == 0 && d.pos >= len(d.buf):
		got = "end of input"
	case c == '"':
		got = "a string"
	case c == '{':
		got = "an object"
	case c == '[':
		got = "an array"
	case c == 't' || c == 'f':
		got = "a boolean"
	case c == 'n':
		got = "null"
	case c == '-' || (c >= '0' && c <= '9'):
		got = "a number"
	}
	return d.errAt(field, "want %s, got %s", want, got)
}

func (d *jsonDecoder) literal(lit string) bool {
	if bytes.HasPrefix(d.buf[d.pos:], []byte(lit)) {
		d.pos += len(lit)
		return true
	}
	return false
}

// transaction decodes the whole input as one Transaction object.
func (d *jsonDecoder) transaction(tx *eventsv1.Transaction) error {
	d.ws()
	if d.peek() != '{' {
		return d.typeErr("", "a JSON object")
	}
	var seen uint32
	err := d.object("", func(name []byte) error {
		f := txField(name)
		if f < 0 {
			return d.unknownField("", name)
		}
		path := txFieldNames[f]
		if seen&(1<<f) != 0 {
			return d.errAt(path, "duplicate field")
		}
		seen |= 1 << f
		switch f {
		case fEventID:
			return d.stringField(path, &tx.EventId)
		case fEventTime:
			return d.timestamp(path, &tx.EventTime)
		case fTransactionID:
			return d.stringField(path, &tx.TransactionId)
		case fAccountID:
			return d.stringField(path, &tx.AccountId)
		case fAmount:
			v, _, err := d.double(path)
			tx.Amount = v
			return err
		case fCurrency:
			return d.stringField(path, &tx.Currency)
		case fMerchantID:
			return d.stringField(path, &tx.MerchantId)
		case fMerchantCategory:
			return d.stringField(path, &tx.MerchantCategory)
		case fDeviceID:
			return d.stringField(path, &tx.DeviceId)
		case fIPAddress:
			return d.stringField(path, &tx.IpAddress)
		case fCountry:
			return d.stringField(path, &tx.Country)
		case fLatitude:
			return d.optionalDouble(path, &tx.Latitude)
		case fLongitude:
			return d.optionalDouble(path, &tx.Longitude)
		case fChannel:
			return d.channel(path, &tx.Channel)
		case fAttributes:
			return d.attributes(path, tx)
		case fCommerce:
			return d.commerce(path, &tx.Commerce)
		case fIngestedAt:
			return d.timestamp(path, &tx.IngestedAt)
		default: // fSource
			return d.stringField(path, &tx.Source)
		}
	})
	if err != nil {
		return err
	}
	d.ws()
	if d.pos != len(d.buf) {
		return d.errAt("", "unexpected data after the object")
	}
	return nil
}

func (d *jsonDecoder) unknownField(parent string, name []byte) error {
	if !d.ignoreUnknown {
		where := ""
		if parent != "" {
			where = " in " + parent
		}
		return d.errAt("", "unknown field %q%s (set -ingest.unknown-fields=ignore to drop unknown fields)", truncate(string(name)), where)
	}
	return d.skip(parent, 0)
}

// object decodes the JSON object at d.pos, calling member for each member with its name;
// member must consume the value. The name may alias scratch space that the next string
// decode overwrites: member must be done with it before it decodes a string.
func (d *jsonDecoder) object(field string, member func(name []byte) error) error {
	if d.peek() != '{' {
		return d.typeErr(field, "an object")
	}
	d.pos++
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return nil
	}
	for {
		d.ws()
		if d.peek() != '"' {
			return d.errAt(field, "want a member name in double quotes")
		}
		name, err := d.str(field)
		if err != nil {
			return err
		}
		d.ws()
		if d.peek() != ':' {
			return d.errAt(field, "want ':' after member name")
		}
		d.pos++
		d.ws()
		if err := member(name); err != nil {
			return err
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return nil
		default:
			return d.errAt(field, "want ',' or '}' after a member")
		}
	}
}

// str decodes the JSON string at d.pos and returns its bytes, which alias the input or
// scratch space valid until the next call.
func (d *jsonDecoder) str(field string) ([]byte, error) {
	if d.peek() != '"' {
		return nil, d.typeErr(field, "a string")
	}
	d.pos++
	start := d.pos
	for d.pos < len(d.buf) {
		c := d.buf[d.pos]
		switch {
		case c == '"':
			s := d.buf[start:d.pos]
			d.pos++
			if !utf8.Valid(s) {
				return nil, d.errAt(field, "invalid UTF-8 in string")
			}
			return s, nil
		case c == '\\':
			return d.strEscaped(field, start)
		case c < 0x20:
			return nil, d.errAt(field, "control character in string")
		}
		d.pos++
	}
	return nil, d.errAt(field, "unterminated string")
}

// strEscaped continues str from the first backslash, unescaping into scratch.
func (d *jsonDecoder) strEscaped(field string, start int) ([]byte, error) {
	out := append(d.scratch[:0], d.buf[start:d.pos]...)
	for d.pos < len(d.buf) {
		c := d.buf[d.pos]
		switch {
		case c == '"':
			d.pos++
			d.scratch = out
			if !utf8.Valid(out) {
				return nil, d.errAt(field, "invalid UTF-8 in string")
			}
			return out, nil
		case c < 0x20:
			return nil, d.errAt(field, "control character in string")
		case c != '\\':
			out = append(out, c)
			d.pos++
			continue
		}
		if d.pos+1 >= len(d.buf) {
			return nil, d.errAt(field, "unterminated string")
		}
		switch e := d.buf[d.pos+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(d.buf[d.pos+2:])
			if !ok {
				return nil, d.errAt(field, "invalid \\u escape in string")
			}
			if utf16.IsSurrogate(r) {
				rest := d.buf[d.pos+6:]
				r2, ok := hex4(rest[min(2, len(rest)):])
				if len(rest) < 6 || rest[0] != '\\' || rest[1] != 'u' || !ok {
					return nil, d.errAt(field, "unpaired surrogate in string")
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return nil, d.errAt(field, "unpaired surrogate in string")
				}
				d.pos += 6
			}
			out = utf8.AppendRune(out, r)
			d.pos += 4
		default:
			return nil, d.errAt(field, "invalid escape in string")
		}
		d.pos += 2
	}
	return nil, d.errAt(field, "unterminated string")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// scanNumber returns the length of the JSON number at the start of b, or -1.
func scanNumber(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			return -1
		}
	}
	return i
}

// numberText returns the text of a number value: a JSON number, or a JSON string holding
// one (protojson accepts both). special is true for the quoted "NaN", "Infinity" and
// "-Infinity", whose value is then f.
func (d *jsonDecoder) numberText(field string) (text []byte, f float64, special bool, err error) {
	switch c := d.peek(); {
	case c == '"':
		s, err := d.str(field)
		if err != nil {
			return nil, 0, false, err
		}
		switch string(s) {
		case "NaN":
			return nil, math.NaN(), true, nil
		case "Infinity":
			return nil, math.Inf(1), true, nil
		case "-Infinity":
			return nil, math.Inf(-1), true, nil
		}
		if scanNumber(s) != len(s) {
			return nil, 0, false, d.errAt(field, "want a number, got the string %q", truncate(string(s)))
		}
		return s, 0, false, nil
	case c == '-' || (c >= '0' && c <= '9'):
		n := scanNumber(d.buf[d.pos:])
		if n < 0 {
			return nil, 0, false, d.errAt(field, "malformed number")
		}
		d.pos += n
		return d.buf[d.pos-n : d.pos], 0, false, nil
	}
	return nil, 0, false, d.typeErr(field, "a number")
}

// double decodes a double; isNull reports a JSON null (the value is then 0).
func (d *jsonDecoder) double(field string) (v float64, isNull bool, err error) {
	if d.literal("null") {
		return 0, true, nil
	}
	text, f, special, err := d.numberText(field)
	if err != nil || special {
		return f, false, err
	}
	f, err = strconv.ParseFloat(string(text), 64)
	if err != nil {
		return 0, false, d.errAt(field, "number %s is out of range for a double", truncate(string(text)))
	}
	return f, false, nil
}

func (d *jsonDecoder) optionalDouble(field string, dst **float64) error {
	v, isNull, err := d.double(field)
	if err != nil || isNull {
		*dst = nil
		return err
	}
	*dst = &v
	return nil
}

// int32 decodes an int32: a number or quoted number with an integral value in range.
func (d *jsonDecoder) int32(field string) (int32, error) {
	if d.literal("null") {
		return 0, nil
	}
	text, _, special, err := d.numberText(field)
	if err != nil {
		return 0, err
	}
	if special {
		return 0, d.errAt(field, "want an integer, got a non-finite number")
	}
	if !bytes.ContainsAny(text, ".eE") {
		n, err := strconv.ParseInt(string(text), 10, 32)
		if err != nil {
			return 0, d.errAt(field, "integer %s is out of range for int32", truncate(string(text)))
		}
		return int32(n), nil
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return 0, d.errAt(field, "%s is not an int32", truncate(string(text)))
	}
	return int32(f), nil
}

func (d *jsonDecoder) boolean(field string, dst *bool) error {
	switch {
	case d.literal("true"):
		*dst = true
	case d.literal("false"), d.literal("null"):
		*dst = false
	default:
		return d.typeErr(field, "true or false")
	}
	return nil
}

func (d *jsonDecoder) stringField(field string, dst *string) error {
	if d.literal("null") {
		*dst = ""
		return nil
	}
	s, err := d.str(field)
	if err != nil {
		return err
	}
	*dst = string(s)
	return nil
}

// timestamp decodes an RFC 3339 timestamp string (years 0001 to 9999, as protojson).
func (d *jsonDecoder) timestamp(field string, dst **timestamppb.Timestamp) error {
	if d.literal("null") {
		*dst = nil
		return nil
	}
	s, err := d.str(field)
	if err != nil {
		return err
	}
	sec, nsec, ok := parseRFC3339(s)
	if !ok {
		sec, nsec, ok = parseTimeLenient(string(s))
	}
	if !ok {
		return d.errAt(field, "%q is not an RFC 3339 timestamp such as 2026-03-14T09:26:53.589Z", truncate(string(s)))
	}
	*dst = &timestamppb.Timestamp{Seconds: sec, Nanos: nsec}
	return nil
}

// parseRFC3339 parses the protojson form of a Timestamp, "2006-01-02T15:04:05[.fraction]"
// followed by "Z" or a "±hh:mm" offset, with one to nine fraction digits, into Unix seconds
// and nanoseconds. It checks every field's range and does not allocate.
func parseRFC3339(s []byte) (sec int64, nsec int32, ok bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, 0, false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hour, minute, second := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 {
		return 0, 0, false
	}
	i := 19
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		digits := j - i - 1
		if digits == 0 || digits > 9 {
			return 0, 0, false
		}
		n := num(s[i+1 : j])
		for range 9 - digits {
			n *= 10
		}
		nsec = int32(n)
		i = j
	}
	offset := 0
	switch rest := s[i:]; {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, om := num(rest[1:3]), num(rest[4:6])
		if oh < 0 || oh > 23 || om < 0 || om > 59 {
			return 0, 0, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, 0, false
	}
	sec = daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+second) - int64(offset)
	// protojson: the instant itself must lie within years 0001 to 9999 UTC.
	const minSec, maxSec = -62135596800, 253402300799
	if sec < minSec || sec > maxSec {
		return 0, 0, false
	}
	return sec, nsec, true
}

// parseTimeLenient accepts what protojson accepts beyond the canonical form (time.Parse
// tolerates, for example, a one-digit hour), with protojson's checks: the instant within
// years 0001 to 9999 and at most nine fraction digits. It is the slow path.
func parseTimeLenient(s string) (sec int64, nsec int32, ok bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, 0, false
	}
	const minSec, maxSec = -62135596800, 253402300799
	if sec = t.Unix(); sec < minSec || sec > maxSec {
		return 0, 0, false
	}
	i, j := strings.LastIndexByte(s, '.'), strings.LastIndexAny(s, "Z-+")
	if i >= 0 && j >= i && j-i > len(".999999999") {
		return 0, 0, false
	}
	return sec, int32(t.Nanosecond()), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian date (Howard
// Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// channel decodes a Channel by name, number or alias.
func (d *jsonDecoder) channel(field string, dst *eventsv1.Channel) error {
	switch c := d.peek(); {
	case d.literal("null"):
		*dst = eventsv1.Channel_CHANNEL_UNSPECIFIED
		return nil
	case c == '"':
		s, err := d.str(field)
		if err != nil {
			return err
		}
		if v, ok := eventsv1.Channel_value[string(s)]; ok {
			*dst = eventsv1.Channel(v)
			return nil
		}
		switch string(s) {
		case "pos":
			*dst = eventsv1.Channel_CHANNEL_POS
		case "online", "web":
			*dst = eventsv1.Channel_CHANNEL_ONLINE
		case "mobile", "app":
			*dst = eventsv1.Channel_CHANNEL_MOBILE
		case "atm":
			*dst = eventsv1.Channel_CHANNEL_ATM
		case "transfer":
			*dst = eventsv1.Channel_CHANNEL_TRANSFER
		default:
			if d.ignoreUnknown { // as protojson's DiscardUnknown: an unknown name is unset
				*dst = eventsv1.Channel_CHANNEL_UNSPECIFIED
				return nil
			}
			return d.errAt(field, "unknown channel %q: want CHANNEL_POS, CHANNEL_ONLINE, CHANNEL_MOBILE, CHANNEL_ATM, CHANNEL_TRANSFER (or pos, online, web, mobile, app, atm, transfer)", truncate(string(s)))
		}
		return nil
	default:
		n, err := d.int32(field)
		*dst = eventsv1.Channel(n)
		return err
	}
}

func (d *jsonDecoder) attributes(field string, tx *eventsv1.Transaction) error {
	if d.literal("null") {
		return nil
	}
	if d.peek() != '{' {
		return d.typeErr(field, "an object of strings")
	}
	return d.object(field, func(name []byte) error {
		if tx.Attributes == nil {
			tx.Attributes = make(map[string]string, 4)
		}
		k := string(name)
		if _, dup := tx.Attributes[k]; dup {
			return d.errAt(field, "duplicate key %q", truncate(k))
		}
		if d.peek() != '"' {
			return d.typeErr(field, "a string value for key "+strconv.Quote(truncate(k)))
		}
		v, err := d.str(field)
		if err != nil {
			return err
		}
		tx.Attributes[k] = string(v)
		return nil
	})
}

func (d *jsonDecoder) commerce(field string, dst **eventsv1.CommerceSession) error {
	if d.literal("null") {
		*dst = nil
		return nil
	}
	if d.peek() != '{' {
		return d.typeErr(field, "an object")
	}
	c := &eventsv1.CommerceSession{}
	*dst = c
	var seen uint16
	return d.object(field, func(name []byte) error {
		f := commerceField(name)
		if f < 0 {
			return d.unknownField(field, name)
		}
		path := commerceFieldNames[f]
		if seen&(1<<f) != 0 {
			return d.errAt(path, "duplicate field")
		}
		seen |= 1 << f
		var err error
		switch f {
		case cSessionID:
			err = d.stringField(path, &c.SessionId)
		case cProductID:
			err = d.stringField(path, &c.ProductId)
		case cProductCategory:
			err = d.stringField(path, &c.ProductCategory)
		case cPageViews:
			c.PageViews, err = d.int32(path)
		case cSessionDuration:
			c.SessionDurationSeconds, _, err = d.double(path)
		case cCartItems:
			c.CartItems, err = d.int32(path)
		case cCartValue:
			c.CartValue, _, err = d.double(path)
		case cReferrer:
			err = d.stringField(path, &c.Referrer)
		default: // cReturning
			err = d.boolean(path, &c.ReturningCustomer)
		}
		return err
	})
}

// skip consumes any JSON value (an unknown field's), checking its syntax.
func (d *jsonDecoder) skip(field string, depth int) error {
	if depth > maxSkipDepth {
		return d.errAt(field, "unknown value nested deeper than %d levels", maxSkipDepth)
	}
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str(field)
		return err
	case c == '{':
		return d.object(field, func([]byte) error { return d.skip(field, depth+1) })
	case c == '[':
		d.pos++
		d.ws()
		if d.peek() == ']' {
			d.pos++
			return nil
		}
		for {
			d.ws()
			if err := d.skip(field, depth+1); err != nil {
				return err
			}
			d.ws()
			switch d.peek() {
			case ',':
				d.pos++
			case ']':
				d.pos++
				return nil
			default:
				return d.errAt(field, "want ',' or ']' in array")
			}
		}
	case d.literal("true"), d.literal("false"), d.literal("null"):
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		n := scanNumber(d.buf[d.pos:])
		if n < 0 {
			return d.errAt(field, "malformed number")
		}
		d.pos += n
		return nil
	}
	return d.typeErr(field, "a JSON value")
}
