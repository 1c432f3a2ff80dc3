package ingest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
)

// UnknownFields says what the decoders do with fields the Transaction schema does not have.
type UnknownFields int

const (
	// RejectUnknown makes an unknown field a decode error (JSON: a member the schema does not
	// name; protobuf: a field number it does not know). The default, as docs/contracts.md
	// promises: nothing is silently dropped.
	RejectUnknown UnknownFields = iota
	// IgnoreUnknown drops unknown fields and decodes the rest.
	IgnoreUnknown
)

// String returns the flag spelling of u.
func (u UnknownFields) String() string {
	if u == IgnoreUnknown {
		return "ignore"
	}
	return "reject"
}

// ParseUnknownFields parses "reject" or "ignore".
func ParseUnknownFields(s string) (UnknownFields, error) {
	switch s {
	case "reject":
		return RejectUnknown, nil
	case "ignore":
		return IgnoreUnknown, nil
	}
	return 0, fmt.Errorf("unknown fields policy %q: want reject or ignore", s)
}

// DecodeError is the error of a record whose bytes are not a Transaction: malformed JSON or
// protobuf, a wrongly typed or unknown field, or an unsupported content type.
type DecodeError struct {
	// Format is "json", "protobuf" or "content-type".
	Format string
	// Field is the proto field path the error is about, or "".
	Field string
	// Offset is the byte offset in the value where the error was found, or -1.
	Offset int
	// Msg says what is wrong.
	Msg string
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("decode ")
	b.WriteString(e.Format)
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Offset >= 0 {
		b.WriteString(" (at byte ")
		b.WriteString(strconv.Itoa(e.Offset))
		b.WriteByte(')')
	}
	return b.String()
}

// Decoder turns record values into Transactions. It keeps scratch space between calls, so a
// Decoder must not be used by two goroutines at once; make one per goroutine.
type Decoder struct {
	unknown UnknownFields
	json    jsonDecoder
}

// NewDecoder returns a decoder applying the unknown-fields policy u.
func NewDecoder(u UnknownFields) *Decoder {
	return &Decoder{unknown: u}
}

// DecodeJSON decodes the protobuf canonical JSON of a Transaction (protojson: proto or
// lowerCamelCase field names, enums by name or number, RFC 3339 timestamps, numbers or
// quoted numbers for doubles and integers, null for unset) into tx, which is reset first.
// As an extension for transaction systems, channel also accepts the lower-case aliases pos,
// online, web, mobile, app, atm and transfer. An error is a *DecodeError.
func (d *Decoder) DecodeJSON(data []byte, tx *eventsv1.Transaction) error {
	proto.Reset(tx)
	d.json.buf, d.json.pos, d.json.ignoreUnknown = data, 0, d.unknown == IgnoreUnknown
	err := d.json.transaction(tx)
	d.json.buf = nil
	return err
}

// DecodeProto decodes the protobuf binary encoding of a Transaction into tx, which is reset
// first. Unknown fields are rejected or dropped according to the policy. An error is a
// *DecodeError.
func (d *Decoder) DecodeProto(data []byte, tx *eventsv1.Transaction) error {
	if err := proto.Unmarshal(data, tx); err != nil {
		return &DecodeError{Format: "protobuf", Offset: -1, Msg: err.Error()}
	}
	return d.checkUnknown(tx)
}

// checkUnknown applies the unknown-fields policy to a message decoded from protobuf (by
// DecodeProto or by gRPC).
func (d *Decoder) checkUnknown(tx *eventsv1.Transaction) error {
	unknown := tx.ProtoReflect().GetUnknown()
	var commerceUnknown []byte
	if c := tx.GetCommerce(); c != nil {
		commerceUnknown = c.ProtoReflect().GetUnknown()
	}
	if len(unknown) == 0 && len(commerceUnknown) == 0 {
		return nil
	}
	if d.unknown == IgnoreUnknown {
		tx.ProtoReflect().SetUnknown(nil)
		if commerceUnknown != nil {
			tx.GetCommerce().ProtoReflect().SetUnknown(nil)
		}
		return nil
	}
	if len(unknown) > 0 {
		return &DecodeError{Format: "protobuf", Offset: -1, Msg: "unknown field number " + fieldNumbers(unknown) + " (the producer uses a newer schema; deploy ingestion first or set -ingest.unknown-fields=ignore)"}
	}
	return &DecodeError{Format: "protobuf", Field: "commerce", Offset: -1, Msg: "unknown field number " + fieldNumbers(commerceUnknown)}
}

// fieldNumbers lists the field numbers of raw protobuf fields.
func fieldNumbers(b []byte) string {
	var out []string
	for len(b) > 0 && len(out) < 8 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			break
		}
		out = append(out, strconv.Itoa(int(num)))
		b = b[n+m:]
	}
	return strings.Join(out, ", ")
}

// Decode decodes a record value according to its content-type header (topics.HeaderContentType):
// application/json is JSON, application/x-protobuf is protobuf (media type parameters such
// as charset are ignored). Without the header, or with an empty one, a value whose first
// non-blank byte is '{' is read as JSON and anything else as protobuf. Any other content type
// is a decode error. hasCT reports whether the header was present.
func (d *Decoder) Decode(contentType []byte, hasCT bool, value []byte, tx *eventsv1.Transaction) error {
	ct := mediaType(contentType)
	switch {
	case hasCT && len(ct) > 0:
		// string(ct) in a call whose argument does not escape does not allocate.
		switch {
		case strings.EqualFold(string(ct), topics.ContentTypeJSON):
			return d.DecodeJSON(value, tx)
		case strings.EqualFold(string(ct), topics.ContentTypeProtobuf), strings.EqualFold(string(ct), "application/protobuf"):
			return d.DecodeProto(value, tx)
		}
		return &DecodeError{Format: "content-type", Offset: -1,
			Msg: fmt.Sprintf("unsupported content-type %q: want %s or %s", truncate(string(ct)), topics.ContentTypeJSON, topics.ContentTypeProtobuf)}
	case looksLikeJSON(value):
		if value[0] == '\n' {
			// A protobuf Transaction whose event_id (field 1, tag 0x0A) is 123 bytes long
			// starts with "\n{" too: try protobuf first, then JSON.
			if err := d.DecodeProto(value, tx); err == nil {
				return nil
			}
		}
		return d.DecodeJSON(value, tx)
	default:
		return d.DecodeProto(value, tx)
	}
}

// mediaType returns the media type of a content-type value without parameters or blanks.
func mediaType(ct []byte) []byte {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.TrimSpace(ct)
}

// looksLikeJSON reports whether the first byte that is not JSON whitespace is '{'. No
// protobuf Transaction starts with '{' (0x7B would be field 15 as a group), ' ', '\t' or
// '\r' (wrong wire types for fields 4 and 1); "\n" starts one whose event_id is set, which
// Decode resolves.
func looksLikeJSON(v []byte) bool {
	for _, c := range v {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}
