package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/mlopsctl/internal/cli"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// TestDLQCommandErrors checks that bad selections fail before any I/O, with a clear message.
func TestDLQCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no subcommand", args: []string{"dlq"}, want: "usage: mlopsctl dlq list|show|redrive"},
		{name: "unknown subcommand", args: []string{"dlq", "purge"}, want: `unknown dlq command "purge"`},
		{name: "unknown service", args: []string{"dlq", "list", "-service", "billing"}, want: `unknown service "billing"`},
		{name: "bad time range", args: []string{"dlq", "list", "-since", "1h", "-until", "2h"}, want: "bad time range"},
		{name: "unparsable time", args: []string{"dlq", "redrive", "-since", "last week"}, want: `-since "last week"`},
		{name: "show needs an id", args: []string{"dlq", "show"}, want: "usage: mlopsctl dlq show"},
		{name: "show bad id", args: []string{"dlq", "show", "tx.dlq/zero/1"}, want: "partition and offset must be non-negative integers"},
		{name: "redrive needs a selection", args: []string{"dlq", "redrive"}, want: "pass -all"},
		{name: "redrive negative limit", args: []string{"dlq", "redrive", "-all", "-limit", "-1"}, want: "-limit -1"},
		{name: "no topics", args: []string{"dlq", "list", "-dlq.topics", ","}, want: "no dead-letter topic"},
		{name: "topics unknown command", args: []string{"topics", "create"}, want: `unknown topics command "create"`},
		{name: "topics bad partitions", args: []string{"topics", "ensure", "-kafka.partitions", "-2"}, want: "partitions -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := cli.Run(context.Background(), tt.args, func(string) string { return "" }, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestDLQRedriveIdempotent dead-letters records through a real consumer on the real broker,
// lists, shows and redrives them with mlopsctl, and checks that redriving the same letters
// again, a wider selection overlapping them, and letters left pending by interrupted runs
// (written before the crash or not) puts each letter back on its source topic exactly once.
func TestDLQRedriveIdempotent(t *testing.T) {
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	prefix := kafkaiotest.UniqueName("dlqtest")
	src, dlqTopic := prefix+"-tx.raw", prefix+"-tx.dlq"
	kafkaiotest.CreateTopics(t, brokers, 3, src)
	kafkaiotest.CreateTopics(t, brokers, 2, dlqTopic)
	getenv := func(string) string { return "" }
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		full := append(append(append([]string{}, args[:2]...), "-kafka.brokers", strings.Join(brokers, ",")), args[2:]...)
		if err := cli.Run(ctx, full, getenv, &out, &errOut); err != nil {
			t.Fatalf("mlopsctl %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}

	// Eight transactions: six are rejected (three invalid, three undecodable), two pass.
	values := map[string]string{
		"a0": `{"transaction_id":"t0","amount":-1}`, "a1": `{"transaction_id":"t1","amount":-2}`,
		"a2": `{"transaction_id":"t2","amount":-3}`, "a3": `not json`, "a6": `[1]`, "a7": `{"amount":`,
		"a4": `{"transaction_id":"t4","amount":4}`, "a5": `{"transaction_id":"t5","amount":5}`,
	}
	var msgs []kafka.Message
	for k, v := range values {
		msgs = append(msgs, kafkaio.NewRecord(src, []byte(k), []byte(v), kafkaio.ContentTypeJSON, nil))
	}
	kafkaiotest.Produce(t, brokers, msgs...)
	cfg := kafkaiotest.ConsumerConfig(brokers, prefix+"-group", src)
	cfg.ClientID, cfg.DLQTopic = "ingestion", dlqTopic
	handler := func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
		var tx struct {
			Amount float64 `json:"amount"`
		}
		if err := json.Unmarshal(m.Value, &tx); err != nil {
			return nil, kafkaio.PermanentReason(kafkaio.ReasonDecode, fmt.Errorf("decode: %w", err))
		}
		if tx.Amount <= 0 {
			return nil, kafkaio.PermanentReason(kafkaio.ReasonValidation, errors.New("amount must be positive"))
		}
		return nil, nil
	}
	c, err := kafkaio.NewConsumer(cfg, kafkaio.PerMessage(handler), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("consumer: %v", err)
		}
	})
	kafkaiotest.WaitFor(t, 60*time.Second, "all eight records committed", func() (bool, error) {
		committed, err := kafkaiotest.CommittedOffsets(context.Background(), brokers, cfg.GroupID, src)
		if err != nil {
			return false, err
		}
		sum := int64(0)
		for _, o := range committed {
			sum += max(o, 0)
		}
		return sum == 8, nil
	})
	stop()
	wg.Wait()

	// list: every letter, and the filters.
	var listed []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(run("dlq", "list", "-dlq.topics", dlqTopic, "-service", "ingestion", "-since", "10m", "-json")), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("list -json line %q: %v", line, err)
		}
		listed = append(listed, v)
	}
	if len(listed) != 6 {
		t.Fatalf("list found %d letters, want 6: %v", len(listed), listed)
	}
	for _, l := range listed {
		if l["source_topic"] != src || l["service"] != "ingestion" {
			t.Errorf("letter %v: want source topic %s, service ingestion", l, src)
		}
	}
	if out := run("dlq", "list", "-dlq.topics", dlqTopic, "-reason", "decode"); strings.Count(out, dlqTopic+"/") != 3 || !strings.Contains(out, "a3") {
		t.Errorf("list -reason decode:\n%s", out)
	}
	if out := run("dlq", "list", "-dlq.topics", dlqTopic, "-service", "scoring"); strings.Contains(out, dlqTopic+"/") {
		t.Errorf("list -service scoring found letters:\n%s", out)
	}
	if out := run("dlq", "list", "-dlq.topics", dlqTopic, "-until", "2026-01-01T00:00:00Z"); strings.Contains(out, dlqTopic+"/") {
		t.Errorf("list -until in the past found letters:\n%s", out)
	}

	// show: headers and the JSON payload, indented.
	var first string
	for _, l := range listed {
		if l["reason"] == "validation" {
			first = l["id"].(string)
			break
		}
	}
	show := run("dlq", "show", "-dlq.topics", dlqTopic, first)
	for _, want := range []string{"dlq-reason: validation", "dlq-error: amount must be positive", "dlq-source-topic: " + src, "payload (", "json", "\n  \"transaction_id\": "} {
		if !strings.Contains(show, want) {
			t.Errorf("show %s lacks %q:\n%s", first, want, show)
		}
	}

	redriven := func() map[string]int {
		ids := map[string]int{}
		for _, m := range kafkaiotest.ReadTopic(t, brokers, src) {
			if id, ok := kafkaio.HeaderValue(m.Headers, cli.HeaderRedriveID); ok {
				ids[string(id)]++
				if _, ok := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderDLQReason); ok {
					t.Errorf("redriven record %s kept its dlq headers", id)
				}
			}
		}
		return ids
	}
	// One letter by id, then the invalid ones (overlapping it), then again, then all.
	if out := run("dlq", "redrive", "-dlq.topics", dlqTopic, first); !strings.Contains(out, "redriven 1, 0 already") {
		t.Errorf("redrive by id: %s", out)
	}
	if out := run("dlq", "redrive", "-dlq.topics", dlqTopic, "-reason", "validation"); !strings.Contains(out, "redriven 2, 1 already") {
		t.Errorf("redrive -reason validation: %s", out)
	}
	if out := run("dlq", "redrive", "-dlq.topics", dlqTopic, "-reason", "validation"); !strings.Contains(out, "redriven 0, 3 already") {
		t.Errorf("redrive -reason validation again: %s", out)
	}
	// Two interrupted runs, as a crash would leave them: one decode letter recorded as
	// pending and written to the source topic, another recorded as pending only.
	var decode []map[string]any
	for _, l := range listed {
		if l["reason"] == "decode" {
			decode = append(decode, l)
		}
	}
	ends, err := kafkaio.EndOffsets(context.Background(), brokers, src)
	if err != nil {
		t.Fatal(err)
	}
	pending, _ := json.Marshal(map[string]any{"state": "pending", "target": src, "ends": ends})
	ledger := kafkaio.RedriveLedger(dlqTopic)
	written := kafka.Message{Topic: src, Key: []byte(decode[0]["key"].(string)), Value: []byte(values[decode[0]["key"].(string)]),
		Headers: []kafka.Header{{Key: cli.HeaderRedriveID, Value: []byte(decode[0]["id"].(string))}}}
	kafkaiotest.Produce(t, brokers,
		kafka.Message{Topic: ledger, Key: []byte(decode[0]["id"].(string)), Value: pending},
		kafka.Message{Topic: ledger, Key: []byte(decode[1]["id"].(string)), Value: pending})
	kafkaiotest.Produce(t, brokers, written)
	if out := run("dlq", "redrive", "-dlq.topics", dlqTopic, "-all", "-dry-run"); !strings.Contains(out, "would redrive 2, 4 already") {
		t.Errorf("redrive -all -dry-run: %s", out)
	}
	if out := run("dlq", "redrive", "-dlq.topics", dlqTopic, "-all"); !strings.Contains(out, "redriven 2, 4 already") {
		t.Errorf("redrive -all: %s", out)
	}
	if out := run("dlq", "redrive", "-dlq.topics", dlqTopic, "-all"); !strings.Contains(out, "redriven 0, 6 already") {
		t.Errorf("redrive -all again: %s", out)
	}
	ids := redriven()
	if len(ids) != 6 {
		t.Errorf("source topic has %d redriven letters, want 6: %v", len(ids), ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("letter %s redriven %d times, want once", id, n)
		}
	}
	if n := len(kafkaiotest.ReadTopic(t, brokers, src)); n != 14 {
		t.Errorf("source topic holds %d records, want 8 originals + 6 redriven", n)
	}
}
