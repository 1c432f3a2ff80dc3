package main

import (
	"context"
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
