package features_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/sim"
)

// simTransaction converts a simulated transaction to the protobuf the feature service reads
// from tx.validated (as ingestion would publish it).
func simTransaction(tx *sim.Transaction) *eventsv1.Transaction {
	p := tx.Proto()
	p.EventId, p.Source = "ev-"+tx.TransactionID, "loadtest"
	return p
}

// TestStreamMatchesSimulatorDataset streams simulator transactions through the handler in
// uneven batches, with redeliveries mixed in, and requires exactly the feature rows of
// sim.FraudDataset (the training-side computation) for the same configuration.
func TestStreamMatchesSimulatorDataset(t *testing.T) {
	t.Parallel()
	rdb, prefix := testRedis(t)
	s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), prometheus.NewRegistry())

	// Few, busy accounts so that windows, novelty and velocity features all get exercised;
	// fraud on so every pattern appears.
	cfg := sim.Config{Seed: 11, Accounts: 60, Merchants: 50, TxPerAccountPerDay: 30, FraudRate: 0.05}
	const n = 3000
	ds, err := sim.FraudDataset(cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]kafka.Message, n)
	ids := make([]string, n)
	for i := range n {
		tx, _ := gen.Next()
		ids[i] = tx.TransactionID
		msgs[i] = testRecord(t, i, simTransaction(&tx))
		if got, want := tx.EventTime.UnixNano(), ds.EventTimes[i]; got != want {
			t.Fatalf("row %d: simulator event time %d, dataset %d: the streams diverged", i, got, want)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	first := make(map[string][]byte, n)
	redeliveries := 0
	start := time.Now()
	for from := 0; from < n; {
		size := 1 + rng.IntN(64)
		batch := append([]kafka.Message(nil), msgs[from:min(from+size, n)]...)
		// Redeliver a few recent records inside the batch, as after a crash before commit.
		for range rng.IntN(3) {
			batch = append(batch, msgs[max(0, from-rng.IntN(20))])
		}
		for k, r := range handle(t, s, batch...) {
			fv := decodeFV(t, r.Output[0])
			id := fv.GetTransactionId()
			if prev, ok := first[id]; ok {
				redeliveries++
				if !bytes.Equal(prev, r.Output[0].Value) {
					t.Fatalf("redelivery of %s (batch position %d) published a different vector", id, k)
				}
				continue
			}
			first[id] = r.Output[0].Value
		}
		from += size
	}
	elapsed := time.Since(start)

	width := ds.Spec.Len()
	mismatches := 0
	for i, id := range ids {
		got := decodeFV(t, kafka.Message{Value: first[id]}).GetValues()
		want := ds.Row(i)
		if len(got) != width {
			t.Fatalf("row %d: %d values, want %d", i, len(got), width)
		}
		for j := range width {
			if math.Float64bits(got[j]) != math.Float64bits(want[j]) {
				mismatches++
				if mismatches <= 10 {
					t.Errorf("row %d (%s) feature %s: service %v, dataset %v", i, id, ds.Spec.Features[j].Name, got[j], want[j])
				}
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d of %d values differ from sim.FraudDataset", mismatches, n*width)
	}
	if redeliveries == 0 {
		t.Error("no redeliveries were exercised")
	}
	t.Logf("%d transactions (+%d redeliveries) in %v: %.0f records/s through Redis", n, redeliveries, elapsed, float64(n+redeliveries)/elapsed.Seconds())
}
