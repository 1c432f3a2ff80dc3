package features_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/features/internal/store"
)

// loadRounds is the number of Redis load round trips the server of reg made.
func loadRounds(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mlops_features_redis_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == "load" {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// TestStateCache runs the stream through a server that remembers the states it wrote,
// interleaved with another writer (a replica during a rebalance), a deleted and rewritten
// account (expiry, operator) and a redelivered batch: remembered states save the load round
// trip while they are current, and every vector stays exactly the one of applying each
// transaction once, in order.
func TestStateCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := testRedis(t)
	reg := prometheus.NewRegistry()
	s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), reg)
	otherCfg := testConfig(outTopic, prefix)
	otherCfg.StateCache = 0
	other := features.New(otherCfg, rdb, testLogger(t), prometheus.NewRegistry())
	st := store.New(rdb, store.Options{Prefix: prefix}, nil)

	var history []*eventsv1.Transaction // every transaction applied, in order
	run := func(srv *features.Server, from, to int) []kafka.Message {
		t.Helper()
		var msgs []kafka.Message
		for i := from; i < to; i++ {
			tx := testTx(i)
			history = append(history, tx)
			msgs = append(msgs, testRecord(t, i, tx))
		}
		res := handle(t, srv, msgs...)
		want := reference(t, history)
		var out []kafka.Message
		for i, r := range res {
			fv := decodeFV(t, r.Output[0])
			if !slices.Equal(fv.GetValues(), want[fv.GetTransactionId()]) {
				t.Errorf("transaction %s (record %d of [%d, %d)): vector %v, want %v", fv.GetTransactionId(), i, from, to, fv.GetValues(), want[fv.GetTransactionId()])
			}
			out = append(out, r.Output[0])
		}
		return out
	}
	counter := func(name string) float64 { return testutil.ToFloat64(metric(t, reg, name)) }

	run(s, 0, 10) // five accounts, nothing remembered yet
	loads := loadRounds(t, reg)
	run(s, 10, 20)
	if got := counter("mlops_features_state_cache_hits_total"); got != 5 {
		t.Errorf("cache hits after the second batch = %v, want 5 (one per account)", got)
	}
	if got := loadRounds(t, reg); got != loads {
		t.Errorf("load round trips grew from %d to %d although every account was remembered", loads, got)
	}

	// Another writer moves every account on: the remembered states are stale.
	run(other, 20, 30)
	run(s, 30, 40)
	if got := counter("mlops_features_state_cache_stale_total"); got != 5 {
		t.Errorf("stale remembered states = %v, want 5", got)
	}
	if got := counter("mlops_features_cas_conflicts_total"); got != 0 {
		t.Errorf("cas conflicts = %v, want 0 (stale remembered states are counted apart)", got)
	}

	// acct-0 is deleted and rebuilt by the other writer up to the version the server
	// remembers, from other transactions: only the state, not the version, tells.
	version := rdb.HGet(ctx, st.StateKey("acct-0"), "v").Val()
	if err := rdb.Del(ctx, st.StateKey("acct-0"), st.RingKey("acct-0")).Err(); err != nil {
		t.Fatal(err)
	}
	history = slices.DeleteFunc(history, func(tx *eventsv1.Transaction) bool { return tx.GetAccountId() == "acct-0" })
	for i := 1000; rdb.HGet(ctx, st.StateKey("acct-0"), "v").Val() != version; i += 5 {
		if i > 1100 {
			t.Fatalf("acct-0 did not get back to version %s", version)
		}
		run(other, i, i+1)
	}
	run(s, 40, 50)
	if got := counter("mlops_features_state_cache_stale_total"); got != 6 {
		t.Errorf("stale remembered states = %v, want 6 (acct-0 rebuilt to the same version)", got)
	}

	// A redelivered batch: answered with the vectors published the first time, not applied
	// again, although the server remembers exactly the state its first delivery left.
	first := run(s, 50, 60)
	before := dumpKeys(t, rdb, prefix)
	res := handle(t, s, func() []kafka.Message {
		var msgs []kafka.Message
		for i := 50; i < 60; i++ {
			msgs = append(msgs, testRecord(t, i, testTx(i)))
		}
		return msgs
	}()...)
	for i, r := range res {
		if string(r.Output[0].Value) != string(first[i].Value) {
			t.Errorf("redelivered record %d: output differs from the first delivery's", i)
		}
	}
	if after := dumpKeys(t, rdb, prefix); !maps.Equal(before, after) {
		t.Error("the redelivered batch changed Redis")
	}
	if got := counter("mlops_features_replays_total"); got != 10 {
		t.Errorf("replays = %v, want 10", got)
	}
}
