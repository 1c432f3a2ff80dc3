package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func testLetter(reason, service, source string, at time.Time) letter {
	return newLetter(kafka.Message{Topic: "tx.dlq", Partition: 0, Offset: 7, Headers: []kafka.Header{
		{Key: "dlq-reason", Value: []byte(reason)},
		{Key: "dlq-service", Value: []byte(service)},
		{Key: "dlq-source-topic", Value: []byte(source)},
		{Key: "dlq-source-partition", Value: []byte("2")},
		{Key: "dlq-source-offset", Value: []byte("41")},
		{Key: "dlq-time", Value: []byte(at.UTC().Format(time.RFC3339Nano))},
	}})
}

func TestDLQFilter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	l := testLetter("validation", "ingestion", "tx.raw", now.Add(-time.Hour))
	if l.source != (letterID{topic: "tx.raw", partition: 2, offset: 41}) || l.id.String() != "tx.dlq/0/7" {
		t.Fatalf("letter = %+v", l)
	}
	tests := []struct {
		name                                     string
		reasons, services, sources, since, until string
		want                                     bool
	}{
		{name: "no filter", want: true},
		{name: "reason matches one of a list", reasons: "decode, validation", want: true},
		{name: "reason differs", reasons: "decode", want: false},
		{name: "service matches", services: "ingestion", want: true},
		{name: "service differs", services: "scoring,predlog", want: false},
		{name: "source topic differs", sources: "features.v1", want: false},
		{name: "inside an absolute range", since: "2026-11-30T10:00:00Z", until: "2026-11-30T11:30:00Z", want: true},
		{name: "until is exclusive", since: "2026-11-30T10:00:00Z", until: "2026-11-30T11:00:00Z", want: false},
		{name: "since is inclusive", since: "2026-11-30T11:00:00Z", want: true},
		{name: "relative since includes", since: "90m", want: true},
		{name: "relative since excludes", since: "30m", want: false},
		{name: "relative until excludes", until: "2h", want: false},
		{name: "all filters", reasons: "validation", services: "ingestion", sources: "tx.raw", since: "2h", until: "1m", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := parseFilter(tt.reasons, tt.services, tt.sources, tt.since, tt.until, now)
			if err != nil {
				t.Fatalf("parseFilter: %v", err)
			}
			if got := f.match(l); got != tt.want {
				t.Errorf("match = %v, want %v (filter %+v)", got, tt.want, f)
			}
		})
	}
}

func TestDLQFilterErrors(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name                   string
		services, since, until string
		want                   []string
	}{
		{name: "unknown service", services: "ingestion,billing", want: []string{`unknown service "billing"`, "ingestion, features"}},
		{name: "since after until", since: "2026-11-30T11:00:00Z", until: "2026-11-30T10:00:00Z", want: []string{"bad time range", "is not before"}},
		{name: "empty range", since: "1h", until: "1h", want: []string{"bad time range"}},
		{name: "unparsable time", since: "yesterday", want: []string{`-since "yesterday"`, "RFC 3339"}},
		{name: "negative duration", until: "-5m", want: []string{`-until "-5m"`}},
		{name: "every problem at once", services: "x", since: "nope", want: []string{`unknown service "x"`, `-since "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseFilter("", tt.services, "", tt.since, tt.until, now)
			if err == nil {
				t.Fatal("parseFilter succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseLetterID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]letterID{
		"tx.dlq/0/7":        {topic: "tx.dlq", partition: 0, offset: 7},
		"team/a.dlq/12/345": {topic: "team/a.dlq", partition: 12, offset: 345},
	} {
		if got, err := parseLetterID(in); err != nil || got != want {
			t.Errorf("parseLetterID(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got := want.String(); got != in {
			t.Errorf("String() = %q, want %q", got, in)
		}
	}
	for _, bad := range []string{"", "tx.dlq", "tx.dlq/0", "/0/1", "tx.dlq/x/1", "tx.dlq/0/-1", "tx.dlq/-1/0"} {
		if _, err := parseLetterID(bad); err == nil {
			t.Errorf("parseLetterID(%q) succeeded, want an error", bad)
		}
	}
}

func TestRedriveRecord(t *testing.T) {
	t.Parallel()
	l := testLetter("validation", "ingestion", "tx.raw", time.Now())
	l.msg.Key, l.msg.Value = []byte("acct-1"), []byte(`{"transaction_id":"t1"}`)
	l.msg.Headers = append([]kafka.Header{{Key: "content-type", Value: []byte("application/json")}, {Key: "redrive-id", Value: []byte("old/0/1")}}, l.msg.Headers...)
	r := redriveRecord(l)
	if r.Topic != "tx.raw" || string(r.Key) != "acct-1" || string(r.Value) != `{"transaction_id":"t1"}` {
		t.Errorf("record = %+v", r)
	}
	var keys []string
	for _, h := range r.Headers {
		keys = append(keys, h.Key+"="+string(h.Value))
	}
	if got, want := strings.Join(keys, " "), "content-type=application/json redrive-id=tx.dlq/0/7"; got != want {
		t.Errorf("headers = %s, want %s", got, want)
	}
}
