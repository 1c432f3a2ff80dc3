package eventid_test

import (
	"regexp"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/eventid"
)

var (
	v4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	v8 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

func TestNew(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := eventid.New()
		if !v4.MatchString(id) {
			t.Fatalf("New() = %q, not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestDerived(t *testing.T) {
	t.Parallel()
	a := eventid.Derived("ingestion", []byte("tx.raw"), []byte("3"), []byte("42"))
	if !v8.MatchString(a) {
		t.Fatalf("Derived = %q, not a version 8 UUID", a)
	}
	if b := eventid.Derived("ingestion", []byte("tx.raw"), []byte("3"), []byte("42")); b != a {
		t.Errorf("same inputs gave %q and %q", a, b)
	}
	// Part boundaries matter: ("ab","c") and ("a","bc") must differ, as must namespaces.
	for _, other := range []string{
		eventid.Derived("ingestion", []byte("tx.ra"), []byte("w3"), []byte("42")),
		eventid.Derived("scoring", []byte("tx.raw"), []byte("3"), []byte("42")),
		eventid.Derived("ingestion", []byte("tx.raw"), []byte("3"), []byte("43")),
	} {
		if other == a {
			t.Errorf("different inputs gave the same id %q", a)
		}
	}
}

func BenchmarkDerived(b *testing.B) {
	parts := [][]byte{[]byte("e2d3c4b5-0000-4000-8000-000000000000"), []byte("12"), {1}}
	for b.Loop() {
		_ = eventid.Derived("scoring", parts...)
	}
}
