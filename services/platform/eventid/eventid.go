// Package eventid makes the event_id of Kafka events: random UUIDs for new events, and
// UUIDs derived from the source record for events that must keep their id when the record
// is processed again (a redelivery after a crash yields the same id, so downstream
// idempotency holds).
package eventid

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
)

// New returns a random (version 4) UUID in canonical text form. Safe for concurrent use.
func New() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return format(&b, 0x40)
}

// Derived returns a version 8 UUID (RFC 9562) from the SHA-256 of namespace and parts: the
// same inputs always give the same id, different namespaces never share ids by construction
// of the hash input (each part is length-prefixed).
func Derived(namespace string, parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(namespace)))
	h.Write(n[:])
	h.Write([]byte(namespace))
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var sum [sha256.Size]byte
	var b [16]byte
	copy(b[:], h.Sum(sum[:0]))
	return format(&b, 0x80)
}

// format sets the version nibble and the RFC 4122 variant and writes the 8-4-4-4-12 form.
func format(b *[16]byte, version byte) string {
	b[6] = b[6]&0x0f | version
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}
