package featurespec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Binary encoding of AccountState (for the online store).
//
//	magic "FS", version byte 1
//	uvarint TxCount, varint LastTime, f64 LogAmountMean, f64 LogAmountM2
//	uvarint LocCount, f64 HomeX, HomeY, HomeZ
//	byte flags (bit 0: LastHasLoc); if set: varint LastLocTime, f64 LastX, LastY, LastZ
//	uvarint n, then n buckets: varint Minute (first) or uvarint delta > 0, uvarint Count, f64 Sum
//	three key sets (merchants, devices, countries): uvarint n, then n times u64 Key, varint LastMinute, uvarint Uses
//
// f64 and u64 are little-endian fixed width, so floats round-trip exactly.
const (
	stateMagic0  = 'F'
	stateMagic1  = 'S'
	stateVersion = 1
)

// ErrBadState is wrapped by every decoding error.
var ErrBadState = errors.New("bad account state encoding")

// AppendBinary appends the binary encoding of s to b.
func (s *AccountState) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateMagic0, stateMagic1, stateVersion)
	b = binary.AppendUvarint(b, s.TxCount)
	b = binary.AppendVarint(b, s.LastTime)
	b = appendF64(b, s.LogAmountMean)
	b = appendF64(b, s.LogAmountM2)
	b = binary.AppendUvarint(b, s.LocCount)
	b = appendF64(b, s.HomeX)
	b = appendF64(b, s.HomeY)
	b = appendF64(b, s.HomeZ)
	if s.LastHasLoc {
		b = append(b, 1)
		b = binary.AppendVarint(b, s.LastLocTime)
		b = appendF64(b, s.LastX)
		b = appendF64(b, s.LastY)
		b = appendF64(b, s.LastZ)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Minutes)))
	for i, m := range s.Minutes {
		if i == 0 {
			b = binary.AppendVarint(b, m.Minute)
		} else {
			b = binary.AppendUvarint(b, uint64(m.Minute-s.Minutes[i-1].Minute))
		}
		b = binary.AppendUvarint(b, uint64(m.Count))
		b = appendF64(b, m.Sum)
	}
	for _, set := range [...][]Seen{s.Merchants, s.Devices, s.Countries} {
		b = binary.AppendUvarint(b, uint64(len(set)))
		for _, e := range set {
			b = binary.LittleEndian.AppendUint64(b, e.Key)
			b = binary.AppendVarint(b, e.LastMinute)
			b = binary.AppendUvarint(b, uint64(e.Uses))
		}
	}
	return b, nil
}

// MarshalBinary returns the binary encoding of s.
func (s *AccountState) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 128+16*len(s.Minutes)+24*(len(s.Merchants)+len(s.Devices)+len(s.Countries))))
}

// UnmarshalBinary decodes data into s, reusing s's slices. On error s is
// left unspecified and the error wraps ErrBadState.
func (s *AccountState) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if len(data) < 3 || data[0] != stateMagic0 || data[1] != stateMagic1 {
		return fmt.Errorf("%w: missing magic", ErrBadState)
	}
	if data[2] != stateVersion {
		return fmt.Errorf("%w: unsupported version %d", ErrBadState, data[2])
	}
	d.off = 3
	s.TxCount = d.uvarint("tx count")
	s.LastTime = d.varint("last time")
	s.LogAmountMean = d.f64("log amount mean")
	s.LogAmountM2 = d.f64("log amount m2")
	s.LocCount = d.uvarint("location count")
	s.HomeX, s.HomeY, s.HomeZ = d.f64("home x"), d.f64("home y"), d.f64("home z")
	switch flags := d.byte("flags"); flags {
	case 0:
		s.LastHasLoc, s.LastLocTime, s.LastX, s.LastY, s.LastZ = false, 0, 0, 0, 0
	case 1:
		s.LastHasLoc = true
		s.LastLocTime = d.varint("last location time")
		s.LastX, s.LastY, s.LastZ = d.f64("last x"), d.f64("last y"), d.f64("last z")
	default:
		d.fail("unknown flags %#x", flags)
	}
	n := d.count("minute buckets", DayMinutes)
	s.Minutes = s.Minutes[:0]
	for i := 0; i < n && d.err == nil; i++ {
		var m MinuteBucket
		if i == 0 {
			m.Minute = d.varint("first minute")
		} else {
			delta := d.uvarint("minute delta")
			if delta == 0 || delta >= DayMinutes {
				d.fail("minute delta %d outside [1, %d)", delta, DayMinutes)
			}
			m.Minute = s.Minutes[i-1].Minute + int64(delta)
		}
		m.Count = d.u32("bucket count")
		if m.Count == 0 {
			d.fail("empty minute bucket")
		}
		m.Sum = d.f64("bucket sum")
		if m.Sum < 0 {
			d.fail("negative bucket sum %v", m.Sum)
		}
		s.Minutes = append(s.Minutes, m)
	}
	if n > 0 && d.err == nil && s.Minutes[n-1].Minute-s.Minutes[0].Minute >= DayMinutes {
		d.fail("minute buckets span more than a day")
	}
	s.Merchants = d.seen(s.Merchants[:0], "merchants", MaxMerchants)
	s.Devices = d.seen(s.Devices[:0], "devices", MaxDevices)
	s.Countries = d.seen(s.Countries[:0], "countries", MaxCountries)
	if d.err == nil && d.off != len(data) {
		d.fail("%d trailing bytes", len(data)-d.off)
	}
	if d.err == nil {
		d.err = s.check()
	}
	return d.err
}

// DecodeAccountState decodes a binary-encoded AccountState.
func DecodeAccountState(data []byte) (*AccountState, error) {
	s := &AccountState{}
	if err := s.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return s, nil
}

// check validates cross-field invariants that Apply maintains.
func (s *AccountState) check() error {
	if s.LogAmountM2 < 0 {
		return fmt.Errorf("%w: negative m2 %v", ErrBadState, s.LogAmountM2)
	}
	if s.LocCount > s.TxCount {
		return fmt.Errorf("%w: %d located of %d transactions", ErrBadState, s.LocCount, s.TxCount)
	}
	if norm := s.HomeX*s.HomeX + s.HomeY*s.HomeY + s.HomeZ*s.HomeZ; norm > 1+1e-9 {
		return fmt.Errorf("%w: usual-location vector longer than 1", ErrBadState)
	}
	if s.LastHasLoc {
		if norm := s.LastX*s.LastX + s.LastY*s.LastY + s.LastZ*s.LastZ; math.Abs(norm-1) > 1e-6 {
			return fmt.Errorf("%w: last-location vector is not a unit vector", ErrBadState)
		}
	}
	return nil
}

type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrBadState, fmt.Sprintf(format, args...), d.off)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong %s", what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong %s", what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) u32(what string) uint32 {
	v := d.uvarint(what)
	if v > math.MaxUint32 {
		d.fail("%s %d overflows uint32", what, v)
		return 0
	}
	return uint32(v)
}

func (d *decoder) count(what string, max int) int {
	v := d.uvarint(what)
	if v > uint64(max) {
		d.fail("%d %s, at most %d", v, what, max)
		return 0
	}
	return int(v)
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated %s", what)
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *decoder) f64(what string) float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 8 {
		d.fail("truncated %s", what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail("%s is not finite", what)
		return 0
	}
	d.off += 8
	return v
}

func (d *decoder) seen(set []Seen, what string, max int) []Seen {
	n := d.count(what, max)
	for i := 0; i < n && d.err == nil; i++ {
		if len(d.b)-d.off < 8 {
			d.fail("truncated %s key", what)
			break
		}
		e := Seen{Key: binary.LittleEndian.Uint64(d.b[d.off:])}
		d.off += 8
		e.LastMinute = d.varint("key last minute")
		e.Uses = d.u32("key uses")
		if e.Key == 0 || e.Uses == 0 {
			d.fail("%s entry %d has zero key or zero uses", what, i)
		}
		for _, p := range set {
			if p.Key == e.Key {
				d.fail("duplicate %s key %#x", what, e.Key)
			}
		}
		set = append(set, e)
	}
	return set
}

func appendF64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}
