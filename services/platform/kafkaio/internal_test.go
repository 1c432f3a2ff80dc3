package kafkaio

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
)

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	b := &backoff{min: 100 * time.Millisecond, max: 10 * time.Second}
	want := 100 * time.Millisecond
	for attempt := range 80 {
		if attempt > 0 {
			want = min(2*want, 10*time.Second)
		}
		d := b.next()
		if d < want/2 || d > want {
			t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, want/2, want)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v, want <= 100ms", d)
	}
}

func TestDLQRecord(t *testing.T) {
	t.Parallel()
	in := kafka.Message{Topic: "tx.raw", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte{0xff},
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("x")}}}
	long := strings.Repeat("é", 1000) // 2000 bytes
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	got := dlqRecord(in, "tx.dlq", "ingestion", ReasonDecode, errors.New(long), at)
	if got.Topic != "tx.dlq" || string(got.Key) != "k" || string(got.Value) != "\xff" || got.Partition != 0 {
		t.Errorf("record = %+v", got)
	}
	want := map[string]string{
		"traceparent": "x", HeaderDLQReason: "decode", HeaderDLQSourceTopic: "tx.raw",
		HeaderDLQSourcePartition: "2", HeaderDLQSourceOffset: "41", HeaderDLQService: "ingestion",
		HeaderDLQTime: "2026-01-02T03:04:05.000000006Z",
	}
	for k, v := range want {
		if h, _ := HeaderValue(got.Headers, k); string(h) != v {
			t.Errorf("header %s = %q, want %q", k, h, v)
		}
	}
	e, _ := HeaderValue(got.Headers, HeaderDLQError)
	if len(e) > 1024 || len(e) < 1000 || !utf8.Valid(e) {
		t.Errorf("dlq-error has %d bytes (valid UTF-8: %v), want <= 1024, valid", len(e), utf8.Valid(e))
	}
}

func TestLastPerPartitionAndSplit(t *testing.T) {
	t.Parallel()
	msgs := []kafka.Message{
		{Topic: "a", Partition: 0, Offset: 5}, {Topic: "b", Partition: 0, Offset: 1},
		{Topic: "a", Partition: 0, Offset: 6}, {Topic: "a", Partition: 1, Offset: 2}, {Topic: "b", Partition: 0, Offset: 2},
	}
	last := lastPerPartition(msgs)
	got := map[string]int64{}
	for _, m := range last {
		got[m.Topic+string(rune('0'+m.Partition))] = m.Offset
	}
	if len(got) != 3 || got["a0"] != 6 || got["a1"] != 2 || got["b0"] != 2 {
		t.Errorf("lastPerPartition = %v", got)
	}
	groups := splitByTopic(msgs)
	if len(groups) != 2 || len(groups[0]) != 3 || groups[0][1].Offset != 6 || len(groups[1]) != 2 {
		t.Errorf("splitByTopic = %v", groups)
	}
}
