package ingest

import (
	"hash/maphash"
	"sync"
	"time"
)

// Sighting identifies one arrival of a transaction, so the deduplicator can tell a
// redelivery of the same record from a different record that reuses a transaction id.
type Sighting struct {
	// Origin identifies the source record: a hash of topic, partition and offset for Kafka;
	// 0 when there is none (gRPC).
	Origin uint64
	// EventID is a hash of the producer's event_id, 0 when it had none. Producers that retry
	// keep the event id.
	EventID uint64
	// Content is a hash of the encoded transaction as received.
	Content uint64
}

// sameRecord reports whether a and b are arrivals of the same record: a Kafka redelivery
// (same topic, partition and offset), a producer retry (same event id) or a resend of the
// same bytes (same content).
func (a Sighting) sameRecord(b Sighting) bool {
	return (a.Origin != 0 && a.Origin == b.Origin) ||
		(a.EventID != 0 && a.EventID == b.EventID) ||
		a.Content == b.Content
}

// Dedup remembers the transaction ids seen in the last Window, up to Size of them, and
// tells duplicates from redeliveries. Memory is bounded: about 60 bytes per remembered id
// (ids are kept as 64-bit hashes), so about 60 MB at the default million. It is safe for
// concurrent use.
//
// Entries expire Window after their first sighting, and when the table is full the oldest is
// evicted first. Since every entry lives exactly Window from its insertion, insertion order is
// expiry order, so the table is a ring (FIFO) rather than a recency list: evicting the least
// recently inserted id is what an LRU with a fixed TTL would do, without re-linking on every
// hit. A later sighting does not extend the window.
//
// The table is per process: replicas do not share it, and it starts empty after a restart.
// Duplicates it misses are harmless downstream, because features are idempotent per
// transaction id and the Elasticsearch document _id is the transaction id.
type Dedup struct {
	window time.Duration
	size   int
	seed   maphash.Seed

	mu    sync.Mutex
	index map[uint64]int32 // id hash -> ring slot
	ring  []dedupEntry
	head  int // oldest entry
	n     int // live entries in the ring
}

type dedupEntry struct {
	id      uint64
	expires int64 // unix nanoseconds
	seen    Sighting
}

// NewDedup returns a deduplicator for window and size; size 0 or window 0 disables it
// (Observe then reports nothing as a duplicate).
func NewDedup(window time.Duration, size int) *Dedup {
	return &Dedup{window: window, size: size, seed: maphash.MakeSeed(), index: map[uint64]int32{}}
}

// Enabled reports whether the deduplicator remembers anything.
func (d *Dedup) Enabled() bool { return d.size > 0 && d.window > 0 }

// Hash hashes b with the deduplicator's seed (for Sighting fields).
func (d *Dedup) Hash(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return maphash.Bytes(d.seed, b) | 1 // never 0, which means "none"
}

// HashString is Hash for a string.
func (d *Dedup) HashString(s string) uint64 {
	if s == "" {
		return 0
	}
	return maphash.String(d.seed, s) | 1
}

// Observe records a sighting of transaction id at now and reports whether it is a
// duplicate: the id was first seen within the window, by a different record (see
// Sighting). A redelivery of the first record is not a duplicate. Only first sightings are
// remembered.
func (d *Dedup) Observe(id string, s Sighting, now time.Time) (duplicate bool) {
	if !d.Enabled() || id == "" {
		return false
	}
	key := maphash.String(d.seed, id)
	t := now.UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(t)
	if slot, ok := d.index[key]; ok {
		e := &d.ring[slot]
		if e.expires > t {
			return !e.seen.sameRecord(s)
		}
	}
	if d.n == d.size {
		d.evictOldest()
	}
	if d.n == len(d.ring) {
		d.grow()
	}
	slot := (d.head + d.n) % len(d.ring)
	d.ring[slot] = dedupEntry{id: key, expires: t + int64(d.window), seen: s}
	d.index[key] = int32(slot)
	d.n++
	return false
}

// grow enlarges the ring (doubling, up to size), moving the live entries to its start.
func (d *Dedup) grow() {
	ring := make([]dedupEntry, min(d.size, max(1024, 2*len(d.ring))))
	for i := range d.n {
		old := (d.head + i) % len(d.ring)
		ring[i] = d.ring[old]
		if slot, ok := d.index[ring[i].id]; ok && int(slot) == old {
			d.index[ring[i].id] = int32(i)
		}
	}
	d.ring, d.head = ring, 0
}

// Len returns the number of remembered ids.
func (d *Dedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// expire drops entries that expired by t.
func (d *Dedup) expire(t int64) {
	for d.n > 0 && d.ring[d.head].expires <= t {
		d.evictOldest()
	}
}

func (d *Dedup) evictOldest() {
	e := &d.ring[d.head]
	if slot, ok := d.index[e.id]; ok && int(slot) == d.head {
		delete(d.index, e.id)
	}
	d.head = (d.head + 1) % len(d.ring)
	d.n--
}
