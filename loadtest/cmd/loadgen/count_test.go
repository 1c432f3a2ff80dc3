package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// TestRunPublishesExactlyN: a count-bounded run at full speed publishes exactly -n
// transactions even when -n is far more than the accounts make in two sim days (the default
// lag once covered about 12,000 of 2,000 accounts, and the run then crawled at the sim's real
// pace until -duration ended it, silently).
func TestRunPublishesExactlyN(t *testing.T) {
	t.Parallel()
	wall := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	o := options{n: 5000, seed: 3, accounts: 40, protoFraction: 0.2, labels: true, labelDelay: 10 * time.Minute,
		txTopic: topics.TxRaw, labelTopic: topics.Labels}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	txs := 0
	st, err := run(ctx, o, func() time.Time { return wall }, func(_ context.Context, m ...kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		for i := range m {
			if m[i].Topic == topics.TxRaw {
				txs++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("run: %v (stats %+v)", err, st)
	}
	if st.Transactions != o.n || txs != o.n {
		t.Errorf("stats say %d transactions, %d were written; want exactly %d", st.Transactions, txs, o.n)
	}
}

// TestRunFailsWhenSimCatchesWallClock: when the sim time an explicit -lag gives runs out before
// -n transactions are out, the run stops at once with an error that says how far it got and
// what to change, instead of waiting for the wall clock.
func TestRunFailsWhenSimCatchesWallClock(t *testing.T) {
	t.Parallel()
	wall := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	o := options{n: 5000, seed: 3, accounts: 40, labels: false, lag: 2 * time.Hour, labelDelay: 10 * time.Minute,
		txTopic: topics.TxRaw, labelTopic: topics.Labels}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := run(ctx, o, func() time.Time { return wall }, func(context.Context, ...kafka.Message) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "reached the wall clock") || !strings.Contains(err.Error(), "of 5000") {
		t.Fatalf("run = %v; want an error saying sim time reached the wall clock, with the count", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the run waited for the test's deadline instead of stopping")
	}
	if st.Transactions == 0 || st.Transactions >= o.n {
		t.Errorf("published %d before stopping, want some but fewer than %d", st.Transactions, o.n)
	}
}

// TestParseRejectsRunBeyondIngestionAge: a count that needs more sim time than ingestion
// accepts (events older than 30 days are rejected) is refused up front, naming -accounts.
func TestParseRejectsRunBeyondIngestionAge(t *testing.T) {
	t.Parallel()
	_, err := parse([]string{"-n", "1000000", "-accounts", "2000"}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "-accounts") {
		t.Errorf("parse(-n 1000000 -accounts 2000) = %v; want an error naming -accounts", err)
	}
	if _, err := parse([]string{"-n", "1000000", "-accounts", "200000"}, func(string) string { return "" }); err != nil {
		t.Errorf("parse(-n 1000000 -accounts 200000) = %v", err)
	}
}

// TestLoadgenPublishesExactlyNOnKafka runs the command against the real broker at full speed:
// exactly -n transactions land in the topic and the final JSON line says so. A -duration that
// ends the run before -n is an error naming the count reached.
func TestLoadgenPublishesExactlyNOnKafka(t *testing.T) {
	brokers := stacktest.KafkaBrokers(t)
	txTopic, labelTopic := kafkaiotest.UniqueName("loadgen-n-tx"), kafkaiotest.UniqueName("loadgen-n-labels")
	kafkaiotest.CreateTopics(t, []string{brokers}, 3, txTopic, labelTopic)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 20000
	var stderr bytes.Buffer
	args := []string{"-kafka.brokers", brokers, "-tx-topic", txTopic, "-label-topic", labelTopic,
		"-n", fmt.Sprint(n), "-rate", "0", "-duration", "90s"}
	if err := realMain(ctx, args, func(string) string { return "" }, &stderr); err != nil {
		t.Fatalf("loadgen: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	var st stats
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &st); err != nil || st.Transactions != n {
		t.Errorf("final line %q: %d transactions (%v), want %d", lines[len(lines)-1], st.Transactions, err, n)
	}
	ends, err := kafkaiotest.EndOffsets(ctx, []string{brokers}, txTopic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, o := range ends {
		total += o
	}
	if total != n {
		t.Errorf("topic holds %d transactions, want exactly %d", total, n)
	}

	// Too short a -duration for -n: an error that names the count reached.
	args = []string{"-kafka.brokers", brokers, "-tx-topic", txTopic, "-label-topic", labelTopic,
		"-n", "100000", "-accounts", "100000", "-rate", "50", "-duration", "300ms"}
	err = realMain(ctx, args, func(string) string { return "" }, &stderr)
	if err == nil || !strings.Contains(err.Error(), "of 100000 transactions") {
		t.Errorf("loadgen with -duration shorter than -n needs = %v; want an error with the count", err)
	}
}

// TestRunRampSteps: -ramp publishes each step's rate x duration, one step after the other with
// the pause between, and reports each finished step as a JSON line with its window.
func TestRunRampSteps(t *testing.T) {
	t.Parallel()
	o, err := parse([]string{"-ramp", "2000/150ms,4000/150ms", "-ramp-pause", "100ms", "-accounts", "500"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if o.n != 900 {
		t.Fatalf("-ramp sets -n to %d, want 900", o.n)
	}
	var lines bytes.Buffer
	o.stepOut = &lines
	begin := time.Now()
	st, err := run(context.Background(), o, time.Now, func(context.Context, ...kafka.Message) error { return nil })
	if err != nil || st.Transactions != 900 {
		t.Fatalf("run = %+v, %v; want 900 transactions", st, err)
	}
	type step struct {
		Step         int     `json:"step"`
		Rate         float64 `json:"rate"`
		Transactions int     `json:"transactions"`
		Start        int64   `json:"start_unix_ms"`
		End          int64   `json:"end_unix_ms"`
	}
	var steps []step
	dec := json.NewDecoder(&lines)
	for dec.More() {
		var s step
		if err := dec.Decode(&s); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, s)
	}
	if len(steps) != 2 || steps[0].Transactions != 300 || steps[1].Transactions != 600 || steps[1].Rate != 4000 {
		t.Fatalf("steps = %+v, want 300 at 2000/s then 600 at 4000/s", steps)
	}
	if gap := steps[1].Start - steps[0].End; gap != 100 {
		t.Errorf("pause between steps %d ms, want 100", gap)
	}
	if took := time.Since(begin); took < 350*time.Millisecond {
		t.Errorf("the ramp took %v, want at least its 400ms schedule", took)
	}
	if _, err := parse([]string{"-ramp", "100/0s"}, func(string) string { return "" }); err == nil {
		t.Error("a ramp step without duration was accepted")
	}
}
