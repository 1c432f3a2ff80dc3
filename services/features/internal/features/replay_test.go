package features_test

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
)

// hotTx is testTx(i) moved to the single account "hot".
func hotTx(i int) *eventsv1.Transaction {
	tx := testTx(i)
	tx.AccountId = "hot"
	return tx
}

// A busy account can have far more than a handful of records in one uncommitted batch (up to
// -kafka.max-batch). Redelivering such a batch must neither count its transactions again nor
// publish different vectors: every transaction that may still be redelivered has to stay
// recognisable. This runs with the service's default configuration.
func TestFeaturesReplayHotAccount(t *testing.T) {
	t.Parallel()
	type span struct{ from, to int } // testTx indexes [from, to)
	tests := []struct {
		name string
		// applied are handled in turn, then replay is redelivered.
		applied []span
		replay  span
	}{
		{name: "200-record batch redelivered", applied: []span{{0, 200}}, replay: span{0, 200}},
		{
			// A transient failure at record 100 of the first batch: the loop committed 0..99
			// and handed 100.. back together with newly fetched records; that second batch,
			// 100 replays and 200 new transactions, is applied and then redelivered.
			name:    "batch after a hand-back redelivered",
			applied: []span{{0, 200}, {100, 400}},
			replay:  span{100, 400},
		},
		{name: "max-batch records redelivered", applied: []span{{0, 500}}, replay: span{0, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, prefix := testRedis(t)
			cfg, err := features.ParseConfig([]string{"-redis.prefix", prefix, "-features.topic", outTopic}, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			s := features.New(cfg, rdb, testLogger(t), prometheus.NewRegistry())
			records := func(sp span) []kafka.Message {
				var msgs []kafka.Message
				for i := sp.from; i < sp.to; i++ {
					msgs = append(msgs, testRecord(t, i, hotTx(i)))
				}
				return msgs
			}
			published := map[string][]byte{} // transaction id -> first vector
			var seq []*eventsv1.Transaction
			for _, sp := range tt.applied {
				for k, r := range handle(t, s, records(sp)...) {
					tx := hotTx(sp.from + k)
					if _, ok := published[tx.GetTransactionId()]; !ok {
						published[tx.GetTransactionId()] = r.Output[0].Value
						seq = append(seq, tx)
					}
				}
			}
			before := dumpKeys(t, rdb, prefix)

			res := handle(t, s, records(tt.replay)...)

			if diff := cmp.Diff(before, dumpKeys(t, rdb, prefix)); diff != "" {
				t.Errorf("redelivery changed the account's keys (-before +after):\n%s", diff)
			}
			if got, want := txCount(t, rdb, prefix, "hot"), uint64(len(seq)); got != want {
				t.Errorf("TxCount = %d, want %d (each transaction once)", got, want)
			}
			changed := 0
			for k, r := range res {
				id := hotTx(tt.replay.from + k).GetTransactionId()
				if !bytes.Equal(r.Output[0].Value, published[id]) {
					changed++
				}
			}
			if changed > 0 {
				t.Errorf("%d of %d redelivered transactions were re-published with a different vector", changed, len(res))
			}
			want := reference(t, seq)
			for _, tx := range seq {
				if diff := cmp.Diff(want[tx.GetTransactionId()], decodeFV(t, kafka.Message{Value: published[tx.GetTransactionId()]}).GetValues()); diff != "" {
					t.Fatalf("%s (-want +got):\n%s", tx.GetTransactionId(), diff)
				}
			}
		})
	}
}
