package ingest

import (
	"strconv"
	"testing"
	"time"
)

func TestDedup(t *testing.T) {
	t.Parallel()
	d := NewDedup(10*time.Minute, 3)
	first := Sighting{Origin: 1, EventID: 7, Content: 100}
	steps := []struct {
		name string
		id   string
		s    Sighting
		at   time.Duration
		dup  bool
	}{
		{"first sighting", "a", first, 0, false},
		{"kafka redelivery", "a", first, time.Minute, false},
		{"producer retry with the same event id", "a", Sighting{Origin: 2, EventID: 7, Content: 101}, time.Minute, false},
		{"resend of the same bytes", "a", Sighting{Origin: 3, Content: 100}, time.Minute, false},
		{"different record", "a", Sighting{Origin: 4, Content: 102}, 2 * time.Minute, true},
		{"other id", "b", Sighting{Origin: 5, Content: 103}, 2 * time.Minute, false},
		{"after the window", "a", Sighting{Origin: 6, Content: 104}, 11 * time.Minute, false},
		{"new first sighting counts", "a", Sighting{Origin: 7, Content: 105}, 12 * time.Minute, true},
	}
	for _, st := range steps {
		if got := d.Observe(st.id, st.s, testNow.Add(st.at)); got != st.dup {
			t.Errorf("%s: Observe = %v, want %v", st.name, got, st.dup)
		}
	}
	// Capacity: the oldest id is evicted first.
	d = NewDedup(time.Hour, 3)
	for i := range 4 {
		d.Observe(strconv.Itoa(i), Sighting{Content: uint64(i + 1)}, testNow)
	}
	if d.Len() != 3 {
		t.Errorf("Len = %d, want 3", d.Len())
	}
	if d.Observe("0", Sighting{Content: 99}, testNow) {
		t.Error("evicted id 0 still reported as a duplicate")
	}
	if !d.Observe("3", Sighting{Content: 99}, testNow) {
		t.Error("id 3 forgotten")
	}
	if NewDedup(0, 10).Observe("x", Sighting{}, testNow) || NewDedup(time.Hour, 0).Enabled() {
		t.Error("disabled dedup reports duplicates")
	}
}

func TestDedupGrowsAndWraps(t *testing.T) {
	t.Parallel()
	d := NewDedup(time.Second, 5000)
	now := testNow
	for i := range 20000 {
		if i%1500 == 0 {
			now = now.Add(600 * time.Millisecond) // expire about half of the entries
		}
		id := strconv.Itoa(i)
		if d.Observe(id, Sighting{Content: uint64(i + 1)}, now) {
			t.Fatalf("fresh id %s reported as a duplicate", id)
		}
		if !d.Observe(id, Sighting{Content: uint64(i + 2)}, now) {
			t.Fatalf("id %s forgotten right after insertion (len %d)", id, d.Len())
		}
	}
	if d.Len() > 5000 {
		t.Errorf("Len = %d, above the size", d.Len())
	}
}
