package kafkaio

import (
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/proto/topics"
)

// Record header names, from the event contracts (proto/topics). Every record carries
// HeaderContentType and the W3C trace context; dead-lettered records add the HeaderDLQ*
// headers to the original ones.
const (
	HeaderContentType = topics.HeaderContentType
	HeaderTraceparent = topics.HeaderTraceparent
	HeaderTracestate  = topics.HeaderTracestate

	// HeaderDLQReason is the short, enumerable reason (see ReasonDecode and friends).
	HeaderDLQReason = topics.HeaderDLQReason
	// HeaderDLQError is the error text, truncated to 1 KiB.
	HeaderDLQError = topics.HeaderDLQError
	// HeaderDLQSourceTopic, HeaderDLQSourcePartition and HeaderDLQSourceOffset locate the
	// original record (partition and offset in decimal).
	HeaderDLQSourceTopic     = topics.HeaderDLQSourceTopic
	HeaderDLQSourcePartition = topics.HeaderDLQSourcePartition
	HeaderDLQSourceOffset    = topics.HeaderDLQSourceOffset
	// HeaderDLQService is the ClientID of the service that rejected the record.
	HeaderDLQService = topics.HeaderDLQService
	// HeaderDLQTime is when the record was dead-lettered, RFC 3339 with nanoseconds, UTC.
	HeaderDLQTime = topics.HeaderDLQTime
)

// Content types of record values.
const (
	ContentTypeProtobuf = topics.ContentTypeProtobuf
	ContentTypeJSON     = topics.ContentTypeJSON
)

// HeaderValue returns the value of the first header named key, and whether there was one.
func HeaderValue(headers []kafka.Header, key string) ([]byte, bool) {
	for _, h := range headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// NewRecord returns a record for topic with key and value, a content-type header and the W3C
// trace context of parent: its traceparent (and tracestate) headers are copied when parent
// carries a valid traceparent, otherwise a new traceparent starts a new trace. parent is
// typically the Headers of the record being handled; nil starts a new trace.
func NewRecord(topic string, key, value []byte, contentType string, parent []kafka.Header) kafka.Message {
	headers := make([]kafka.Header, 0, 3)
	headers = append(headers, kafka.Header{Key: HeaderContentType, Value: []byte(contentType)})
	if tp, ok := HeaderValue(parent, HeaderTraceparent); ok && ValidTraceparent(tp) {
		headers = append(headers, kafka.Header{Key: HeaderTraceparent, Value: tp})
		if ts, ok := HeaderValue(parent, HeaderTracestate); ok {
			headers = append(headers, kafka.Header{Key: HeaderTracestate, Value: ts})
		}
	} else {
		headers = append(headers, kafka.Header{Key: HeaderTraceparent, Value: NewTraceparent()})
	}
	return kafka.Message{Topic: topic, Key: key, Value: value, Headers: headers}
}

// TraceContext returns the W3C trace context that headers carry: traceparent is "" when they
// carry no valid one (tracestate is then "" too).
func TraceContext(headers []kafka.Header) (traceparent, tracestate string) {
	tp, ok := HeaderValue(headers, HeaderTraceparent)
	if !ok || !ValidTraceparent(tp) {
		return "", ""
	}
	ts, _ := HeaderValue(headers, HeaderTracestate)
	return string(tp), string(ts)
}

// TraceHeaders returns the traceparent (and, when not empty, tracestate) headers of a trace
// context that did not arrive in Kafka headers (gRPC metadata, a stored event), to pass as
// NewRecord's parent. It returns nil when traceparent is empty; NewRecord then starts a new
// trace, as it does for an invalid traceparent.
func TraceHeaders(traceparent, tracestate string) []kafka.Header {
	if traceparent == "" {
		return nil
	}
	h := make([]kafka.Header, 1, 2)
	h[0] = kafka.Header{Key: HeaderTraceparent, Value: []byte(traceparent)}
	if tracestate != "" {
		h = append(h, kafka.Header{Key: HeaderTracestate, Value: []byte(tracestate)})
	}
	return h
}

// NewTraceparent returns a new W3C traceparent (version 00, random trace and parent ids,
// sampled flag set).
func NewTraceparent() []byte {
	var ids [24]byte
	for i := 0; i < len(ids); i += 8 {
		u := rand.Uint64()
		for j := range 8 {
			ids[i+j] = byte(u >> (8 * j))
		}
	}
	out := make([]byte, 0, 55)
	out = append(out, "00-"...)
	out = hex.AppendEncode(out, ids[:16])
	out = append(out, '-')
	out = hex.AppendEncode(out, ids[16:])
	out = append(out, "-01"...)
	return out
}

// ValidTraceparent reports whether tp is a well-formed version-00 W3C traceparent with
// non-zero trace and parent ids.
func ValidTraceparent(tp []byte) bool {
	if len(tp) != 55 || tp[0] != '0' || tp[1] != '0' || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return false
	}
	for _, span := range [][2]int{{3, 35}, {36, 52}, {53, 55}} {
		for _, c := range tp[span[0]:span[1]] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return !allZero(tp[3:35]) && !allZero(tp[36:52])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}

// dlqRecord returns the dead-letter record for m: the original key, value and headers plus
// the HeaderDLQ* headers.
func dlqRecord(m kafka.Message, dlqTopic, service, reason string, cause error, now time.Time) kafka.Message {
	headers := make([]kafka.Header, 0, len(m.Headers)+7)
	headers = append(headers, m.Headers...)
	errText := ""
	if cause != nil {
		errText = truncateUTF8(cause.Error(), maxDLQError)
	}
	headers = append(headers,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderDLQError, Value: []byte(errText)},
		kafka.Header{Key: HeaderDLQSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderDLQSourcePartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		kafka.Header{Key: HeaderDLQSourceOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		kafka.Header{Key: HeaderDLQService, Value: []byte(service)},
		kafka.Header{Key: HeaderDLQTime, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
	)
	return kafka.Message{Topic: dlqTopic, Key: m.Key, Value: m.Value, Headers: headers}
}

// maxDLQError is the most bytes of error text a dead-letter record carries.
const maxDLQError = 1024

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
