package features_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/features/internal/store"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
)

const outTopic = "features.test"

// reference computes the vectors of txs (in order) with featurespec.Step from empty state,
// keyed by transaction id; repeated ids are skipped.
func reference(t testing.TB, txs []*eventsv1.Transaction) map[string][]float64 {
	t.Helper()
	states := map[string]*featurespec.AccountState{}
	want := map[string][]float64{}
	for _, tx := range txs {
		if _, dup := want[tx.GetTransactionId()]; dup {
			continue
		}
		in, err := features.InputFromTransaction(tx)
		if err != nil {
			t.Fatal(err)
		}
		st := states[tx.GetAccountId()]
		if st == nil {
			st = &featurespec.AccountState{}
			states[tx.GetAccountId()] = st
		}
		out := make([]float64, featurespec.FraudLen)
		if err := featurespec.Step(st, in, out); err != nil {
			t.Fatal(err)
		}
		want[tx.GetTransactionId()] = out
	}
	return want
}

// handle runs one batch and requires a full result without errors.
func handle(t testing.TB, s *features.Server, msgs ...kafka.Message) []kafkaio.Result {
	t.Helper()
	res, err := s.HandleBatch(context.Background(), msgs)
	if err != nil {
		t.Fatalf("HandleBatch: %v", err)
	}
	if len(res) != len(msgs) {
		t.Fatalf("HandleBatch returned %d results for %d records", len(res), len(msgs))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("record %d: %v", i, r.Err)
		}
		if len(r.Output) != 1 {
			t.Fatalf("record %d: %d outputs, want 1", i, len(r.Output))
		}
	}
	return res
}

// txCount reads the TxCount of account from Redis.
func txCount(t testing.TB, rdb *redis.Client, prefix, account string) uint64 {
	t.Helper()
	st := store.New(rdb, store.Options{Prefix: prefix}, nil)
	snaps := make([]store.Snapshot, 1)
	if err := st.Load(context.Background(), []store.LoadRequest{{Account: account}}, snaps); err != nil {
		t.Fatal(err)
	}
	if snaps[0].Err != nil {
		t.Fatal(snaps[0].Err)
	}
	return snaps[0].State.TxCount
}

func TestHandleBatchComputesSpecVectors(t *testing.T) {
	t.Parallel()
	rdb, prefix := testRedis(t)
	s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), prometheus.NewRegistry())
	var txs []*eventsv1.Transaction
	var msgs []kafka.Message
	for i := range 40 {
		txs = append(txs, testTx(i))
		msgs = append(msgs, testRecord(t, i, txs[i]))
	}
	want := reference(t, txs)
	// Uneven batches, so accounts span batches and batches hold several records per account.
	var res []kafkaio.Result
	for _, b := range [][2]int{{0, 1}, {1, 12}, {12, 13}, {13, 40}} {
		res = append(res, handle(t, s, msgs[b[0]:b[1]]...)...)
	}
	spec := featurespec.Fraud()
	for i, r := range res {
		out := r.Output[0]
		fv := decodeFV(t, out)
		if out.Topic != outTopic || string(out.Key) != txs[i].GetAccountId() {
			t.Errorf("record %d: topic %q key %q, want %q %q", i, out.Topic, out.Key, outTopic, txs[i].GetAccountId())
		}
		if diff := cmp.Diff(want[txs[i].GetTransactionId()], fv.GetValues()); diff != "" {
			t.Errorf("record %d values (-want +got):\n%s", i, diff)
		}
		if err := spec.CheckVector(fv.GetValues()); err != nil {
			t.Errorf("record %d: %v", i, err)
		}
		if fv.GetSpecName() != spec.Name || fv.GetSpecVersion() != strconv.Itoa(spec.Version) || fv.GetSpecFingerprint() != spec.Fingerprint() {
			t.Errorf("record %d: spec %s/%s/%s", i, fv.GetSpecName(), fv.GetSpecVersion(), fv.GetSpecFingerprint())
		}
		if fv.GetTransactionId() != txs[i].GetTransactionId() || fv.GetAccountId() != txs[i].GetAccountId() ||
			fv.GetAmount() != txs[i].GetAmount() || fv.GetCurrency() != txs[i].GetCurrency() ||
			!proto.Equal(fv.GetEventTime(), txs[i].GetEventTime()) || !proto.Equal(fv.GetIngestedAt(), txs[i].GetIngestedAt()) {
			t.Errorf("record %d: transaction fields not carried over: %v", i, fv)
		}
		if fv.GetEventId() == "" || fv.GetComputedAt() == nil {
			t.Errorf("record %d: event_id %q computed_at %v", i, fv.GetEventId(), fv.GetComputedAt())
		}
		// Trace: the input's traceparent is propagated; without one a new trace starts. The
		// payload and the header always agree.
		hdr, _ := kafkaio.HeaderValue(out.Headers, kafkaio.HeaderTraceparent)
		if want := traceparentOf(i); want != "" && string(hdr) != want {
			t.Errorf("record %d: traceparent header %q, want the input's %q", i, hdr, want)
		}
		if !kafkaio.ValidTraceparent(hdr) || fv.GetTrace().GetTraceparent() != string(hdr) {
			t.Errorf("record %d: traceparent header %q, payload %q", i, hdr, fv.GetTrace().GetTraceparent())
		}
		if ct, _ := kafkaio.HeaderValue(out.Headers, kafkaio.HeaderContentType); string(ct) != kafkaio.ContentTypeProtobuf {
			t.Errorf("record %d: content-type %q", i, ct)
		}
	}
	for a := range 5 {
		if got := txCount(t, rdb, prefix, "acct-"+strconv.Itoa(a)); got != 8 {
			t.Errorf("acct-%d TxCount = %d, want 8", a, got)
		}
	}
}

func TestHandleBatchIsIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		batches [][]int // indexes of testTx per batch
	}{
		{name: "same batch", batches: [][]int{{0, 5, 0, 10}}},
		{name: "next batch", batches: [][]int{{0, 5, 10}, {5}}},
		{name: "after later transactions", batches: [][]int{{0, 5}, {10, 15, 20}, {5, 0, 25}}},
		{name: "redelivered batch", batches: [][]int{{0, 5, 10, 15}, {0, 5, 10, 15}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, prefix := testRedis(t)
			reg := prometheus.NewRegistry()
			s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), reg)
			first := map[string][]byte{}
			var seq []*eventsv1.Transaction
			replays := 0
			for _, batch := range tt.batches {
				var msgs []kafka.Message
				for _, i := range batch {
					msgs = append(msgs, testRecord(t, i, testTx(i)))
				}
				for k, r := range handle(t, s, msgs...) {
					tx := testTx(batch[k])
					v := r.Output[0].Value
					if prev, ok := first[tx.GetTransactionId()]; ok {
						replays++
						if !bytes.Equal(prev, v) {
							t.Errorf("replay of %s published %v, first time %v", tx.GetTransactionId(), decodeFV(t, r.Output[0]), decodeFV(t, kafka.Message{Value: prev}))
						}
						continue
					}
					first[tx.GetTransactionId()] = v
					seq = append(seq, tx)
				}
			}
			// All test transactions of this table are on acct-0 (i%5 == 0).
			if got := txCount(t, rdb, prefix, "acct-0"); got != uint64(len(first)) {
				t.Errorf("TxCount = %d, want %d (each transaction once)", got, len(first))
			}
			want := reference(t, seq)
			for id, v := range first {
				if diff := cmp.Diff(want[id], decodeFV(t, kafka.Message{Value: v}).GetValues()); diff != "" {
					t.Errorf("%s (-want +got):\n%s", id, diff)
				}
			}
			if got := testutil.ToFloat64(metric(t, reg, "mlops_features_replays_total")); got != float64(replays) {
				t.Errorf("mlops_features_replays_total = %v, want %d", got, replays)
			}
		})
	}
}

// metric returns the collector of the single-series metric name in reg.
func metric(t testing.TB, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.GetMetric() {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "", nil, nil), prometheus.UntypedValue, m.GetCounter().GetValue())
				}
			}
		}
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestHandleBatchRejectsBadRecords(t *testing.T) {
	t.Parallel()
	mutate := func(f func(tx *eventsv1.Transaction)) func(t testing.TB) kafka.Message {
		return func(t testing.TB) kafka.Message {
			tx := testTx(100)
			f(tx)
			return testRecord(t, 100, tx)
		}
	}
	tests := []struct {
		name   string
		record func(t testing.TB) kafka.Message
		reason string
	}{
		{"garbage bytes", func(t testing.TB) kafka.Message {
			return kafka.Message{Key: []byte("acct-0"), Value: []byte{0xff, 0xff, 0xff}}
		}, kafkaio.ReasonDecode},
		{"json content type", func(t testing.TB) kafka.Message {
			m := testRecord(t, 100, testTx(100))
			m.Headers[0].Value = []byte(kafkaio.ContentTypeJSON)
			return m
		}, kafkaio.ReasonDecode},
		{"no account", mutate(func(tx *eventsv1.Transaction) { tx.AccountId = "" }), kafkaio.ReasonValidation},
		{"no transaction id", mutate(func(tx *eventsv1.Transaction) { tx.TransactionId = "" }), kafkaio.ReasonValidation},
		{"no event time", mutate(func(tx *eventsv1.Transaction) { tx.EventTime = nil }), kafkaio.ReasonValidation},
		{"negative amount", mutate(func(tx *eventsv1.Transaction) { tx.Amount = -1 }), kafkaio.ReasonValidation},
		{"NaN amount", mutate(func(tx *eventsv1.Transaction) { tx.Amount = math.NaN() }), kafkaio.ReasonValidation},
		{"latitude out of range", mutate(func(tx *eventsv1.Transaction) { v := 91.0; tx.Latitude = &v }), kafkaio.ReasonValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, prefix := testRedis(t)
			s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), prometheus.NewRegistry())
			// A bad record between two good ones of the same account.
			msgs := []kafka.Message{testRecord(t, 0, testTx(0)), tt.record(t), testRecord(t, 5, testTx(5))}
			res, err := s.HandleBatch(context.Background(), msgs)
			if err != nil {
				t.Fatalf("HandleBatch: %v", err)
			}
			if len(res) != 3 || res[0].Err != nil || res[2].Err != nil {
				t.Fatalf("results %+v: want the good records handled", res)
			}
			if !kafkaio.IsPermanent(res[1].Err) || kafkaio.Reason(res[1].Err) != tt.reason || len(res[1].Output) != 0 {
				t.Errorf("bad record: err %v (reason %q), %d outputs; want permanent %q", res[1].Err, kafkaio.Reason(res[1].Err), len(res[1].Output), tt.reason)
			}
			if got := txCount(t, rdb, prefix, "acct-0"); got != 2 {
				t.Errorf("TxCount = %d, want 2", got)
			}
		})
	}
}

func TestHandleBatchRedisDownIsTransient(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: servicetest.FreeAddr(t), MaxRetries: -1})
	defer rdb.Close()
	s := features.New(testConfig(outTopic, "test:down:"), rdb, testLogger(t), prometheus.NewRegistry())
	res, err := s.HandleBatch(context.Background(), []kafka.Message{testRecord(t, 0, testTx(0)), testRecord(t, 1, testTx(1))})
	if err == nil || kafkaio.IsPermanent(err) {
		t.Fatalf("HandleBatch with Redis down = %v, %v; want a transient error", res, err)
	}
	// The batch fails as a whole: nothing may be reported as done (and so committed).
	if len(res) != 0 {
		t.Errorf("HandleBatch with Redis down returned %d results, want none", len(res))
	}
}

func TestHandleBatchCorruptStateGoesToDLQ(t *testing.T) {
	t.Parallel()
	rdb, prefix := testRedis(t)
	reg := prometheus.NewRegistry()
	s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), reg)
	st := store.New(rdb, store.Options{Prefix: prefix}, nil)
	if err := rdb.HSet(context.Background(), st.StateKey("acct-1"), "v", "3", "s", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	res, err := s.HandleBatch(context.Background(), []kafka.Message{testRecord(t, 0, testTx(0)), testRecord(t, 1, testTx(1)), testRecord(t, 2, testTx(2))})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[2].Err != nil {
		t.Errorf("healthy accounts failed: %v, %v", res[0].Err, res[2].Err)
	}
	if !kafkaio.IsPermanent(res[1].Err) || !errors.Is(res[1].Err, store.ErrBadState) {
		t.Errorf("account with corrupt state: %v, want a permanent ErrBadState", res[1].Err)
	}
	if got := testutil.ToFloat64(metric(t, reg, "mlops_features_bad_state_total")); got != 1 {
		t.Errorf("mlops_features_bad_state_total = %v, want 1", got)
	}
}

// TestHandleBatchConcurrentWriters runs several handlers (replicas overlapping during a
// rebalance) over the same stream at once: the compare-and-set must keep every account's
// state equal to applying each transaction exactly once, in order.
func TestHandleBatchConcurrentWriters(t *testing.T) {
	t.Parallel()
	rdb, prefix := testRedis(t)
	const n, writers = 150, 4
	var txs []*eventsv1.Transaction
	var msgs []kafka.Message
	for i := range n {
		txs = append(txs, testTx(i))
		msgs = append(msgs, testRecord(t, i, txs[i]))
	}
	want := reference(t, txs)
	outs := make([]map[string][]byte, writers)
	reg := prometheus.NewRegistry()
	var wg sync.WaitGroup
	for w := range writers {
		s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), prometheus.NewRegistry())
		if w == 0 {
			s = features.New(testConfig(outTopic, prefix), rdb, testLogger(t), reg)
		}
		outs[w] = map[string][]byte{}
		wg.Go(func() {
			size := 1 + 3*w
			for from := 0; from < n; {
				batch := msgs[from:min(from+size, n)]
				res, err := s.HandleBatch(context.Background(), batch)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				for _, r := range res {
					if r.Err != nil {
						if kafkaio.IsPermanent(r.Err) {
							t.Errorf("writer %d: %v", w, r.Err)
							return
						}
						break // lost every compare-and-set: retry from this record
					}
					outs[w][txs[from].GetTransactionId()] = r.Output[0].Value
					from++
				}
			}
		})
	}
	wg.Wait()
	for id, values := range want {
		var first []byte
		for w := range writers {
			v := outs[w][id]
			if first == nil {
				first = v
				if diff := cmp.Diff(values, decodeFV(t, kafka.Message{Value: v}).GetValues()); diff != "" {
					t.Errorf("%s (-want +got):\n%s", id, diff)
				}
			} else if !bytes.Equal(first, v) {
				t.Errorf("%s: writers published different vectors", id)
			}
		}
	}
	for a := range 5 {
		if got := txCount(t, rdb, prefix, "acct-"+strconv.Itoa(a)); got != n/5 {
			t.Errorf("acct-%d TxCount = %d, want %d", a, got, n/5)
		}
	}
	t.Logf("compare-and-set conflicts seen by writer 0: %v", testutil.ToFloat64(metric(t, reg, "mlops_features_cas_conflicts_total")))
}
