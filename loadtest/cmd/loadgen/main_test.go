package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// TestRunPublishesDecodableRecords checks that every transaction decodes under the contract's
// strict rules (protojson without DiscardUnknown for JSON, proto for protobuf), that the mix
// follows -proto-fraction, that no event is from the future and labels name known transactions.
func TestRunPublishesDecodableRecords(t *testing.T) {
	t.Parallel()
	wall := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return wall }
	o := options{n: 300, seed: 7, accounts: 50, protoFraction: 0.25, labels: true, lag: 72 * time.Hour,
		labelDelay: 10 * time.Minute, txTopic: topics.TxRaw, labelTopic: topics.Labels}
	var msgs []kafka.Message
	st, err := run(context.Background(), o, now, func(_ context.Context, m ...kafka.Message) error {
		msgs = append(msgs, m...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Transactions != 300 || st.Proto != 75 || st.JSON != 225 {
		t.Errorf("stats = %+v, want 300 transactions, 75 protobuf, 225 JSON", st)
	}
	seen := map[string]bool{}
	var labels int
	for _, m := range msgs {
		ct, _ := kafkaio.HeaderValue(m.Headers, topics.HeaderContentType)
		switch m.Topic {
		case topics.TxRaw:
			var tx eventsv1.Transaction
			var err error
			if string(ct) == topics.ContentTypeJSON {
				err = protojson.Unmarshal(m.Value, &tx)
			} else {
				err = proto.Unmarshal(m.Value, &tx)
			}
			if err != nil {
				t.Fatalf("transaction (%s) does not decode: %v\n%s", ct, err, m.Value)
			}
			if tx.GetEventTime().AsTime().After(wall) {
				t.Errorf("transaction %s from the future: %v", tx.GetTransactionId(), tx.GetEventTime().AsTime())
			}
			if string(m.Key) != tx.GetAccountId() || tx.GetAmount() <= 0 || tx.GetCurrency() == "" {
				t.Errorf("transaction %s: key %q amount %v currency %q", tx.GetTransactionId(), m.Key, tx.GetAmount(), tx.GetCurrency())
			}
			seen[tx.GetTransactionId()] = true
		case topics.Labels:
			var l eventsv1.Label
			if err := proto.Unmarshal(m.Value, &l); err != nil {
				t.Fatal(err)
			}
			if !seen[l.GetTransactionId()] || l.GetTransactionTime() == nil {
				t.Errorf("label for unknown transaction %s or without transaction_time", l.GetTransactionId())
			}
			labels++
		default:
			t.Fatalf("unexpected topic %q", m.Topic)
		}
	}
	if labels != st.Labels || labels == 0 {
		t.Errorf("labels published %d, stats say %d; want > 0", labels, st.Labels)
	}
}

func TestParseRequiresBound(t *testing.T) {
	t.Parallel()
	if _, err := parse([]string{"-n=0", "-duration=0"}, func(string) string { return "" }); err == nil {
		t.Error("an unbounded run was accepted")
	}
}

func TestRunSwitchesDriftScenario(t *testing.T) {
	t.Parallel()
	wall := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	calls := 0
	now := func() time.Time { calls++; return wall.Add(time.Duration(calls) * time.Second) } // the wall clock moves
	o := options{n: 400, seed: 7, accounts: 50, labels: true, lag: 72 * time.Hour, labelDelay: 10 * time.Minute,
		txTopic: topics.TxRaw, labelTopic: topics.Labels, drift: "new-pattern", driftAfter: 100 * time.Second}
	st, err := run(context.Background(), o, now, func(context.Context, ...kafka.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, st.DriftAt)
	if err != nil || at.Before(wall.Add(-o.lag)) || at.After(wall.Add(time.Hour)) {
		t.Errorf("drift switched on at %q (%v), want a sim time within the run", st.DriftAt, err)
	}
	if _, err := parse([]string{"-drift", "nonsense"}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "unknown drift scenario") {
		t.Errorf("parse(-drift nonsense) = %v, want an unknown scenario error", err)
	}
}

// A write that fails is retried, and only what failed is sent again, in order: the first
// attempt fails the records of accounts whose id ends in an odd digit (one partition's, as
// kafka.WriteErrors; kafkaio's producer fails a partition's later records with its failed
// ones) and writes the rest, the second
// fails outright (fate unknown: all of the rest go again), the third succeeds. The run then
// reports every transaction, each record lands once or (after the unknown-fate failure)
// twice, and each account's transactions first land in the order they were generated.
// A write that keeps failing gives up after -retry-for with the write's error.
func TestRunRetriesFailedWrites(t *testing.T) {
	t.Parallel()
	wall := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	o := options{n: 200, seed: 3, accounts: 50, labels: false, lag: 72 * time.Hour, labelDelay: time.Minute,
		txTopic: topics.TxRaw, labelTopic: topics.Labels, maxBatch: 500, retryFor: time.Minute}
	var (
		calls, failed1 int
		written        []kafka.Message
		offered        [][]kafka.Message
	)
	st, err := run(context.Background(), o, func() time.Time { return wall }, func(_ context.Context, m ...kafka.Message) error {
		calls++
		offered = append(offered, slices.Clone(m)) // m is the publisher's buffer, reused
		switch calls {
		case 1:
			werrs := make(kafka.WriteErrors, len(m))
			for i := range m {
				if k := m[i].Key; (k[len(k)-1]-'0')%2 == 1 {
					werrs[i] = kafka.NotLeaderForPartition
					failed1++
				} else {
					written = append(written, m[i])
				}
			}
			return werrs
		case 2:
			written = append(written, m[:len(m)/2]...) // half landed, then the connection broke
			return errors.New("unexpected EOF")
		}
		written = append(written, m...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Transactions != 200 {
		t.Errorf("stats = %+v, want 200 transactions", st)
	}
	if calls < 3 {
		t.Fatalf("%d write calls, want at least 3", calls)
	}
	if failed1 == 0 || len(offered[1]) != failed1 {
		t.Errorf("second attempt sent %d records, want the %d that failed (of %d)", len(offered[1]), failed1, len(offered[0]))
	}
	// Per account, first landings follow generation order (the order records were first
	// offered: new ones come only after the retries of earlier ones).
	genOrder := map[string]int{}
	for _, call := range offered {
		for _, m := range call {
			if _, ok := genOrder[string(m.Value)]; !ok {
				genOrder[string(m.Value)] = len(genOrder)
			}
		}
	}
	seen := map[string]bool{}
	last := map[string]int{}
	for _, m := range written {
		if seen[string(m.Value)] {
			continue
		}
		seen[string(m.Value)] = true
		if i, ok := last[string(m.Key)]; ok && genOrder[string(m.Value)] < i {
			t.Fatalf("account %s: a record landed before an earlier one was written", m.Key)
		}
		last[string(m.Key)] = genOrder[string(m.Value)]
	}

	o.retryFor = 200 * time.Millisecond
	_, err = run(context.Background(), o, func() time.Time { return wall }, func(context.Context, ...kafka.Message) error {
		return kafka.NotLeaderForPartition
	})
	if !errors.Is(err, kafka.NotLeaderForPartition) {
		t.Errorf("run with a write that always fails = %v, want the write's error after -retry-for", err)
	}
}
