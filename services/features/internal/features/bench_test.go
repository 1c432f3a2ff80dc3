package features_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// benchRecords returns n tx.validated records spread over accounts accounts, one second of
// event time apart.
func benchRecords(b *testing.B, n, accounts int) []kafka.Message {
	b.Helper()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		lat, lon := 40+float64(i%17), -3+float64(i%11)
		tx := &eventsv1.Transaction{
			EventId: "ev-" + strconv.Itoa(i), EventTime: timestamppb.New(baseTime.Add(time.Duration(i) * time.Second)),
			TransactionId: "tx-" + strconv.Itoa(i), AccountId: "acct-" + strconv.Itoa((i*7919)%accounts),
			Amount: 5 + float64(i%97), Currency: "EUR", MerchantId: "m-" + strconv.Itoa(i%301), DeviceId: "d-" + strconv.Itoa(i%5),
			Country: "ES", Latitude: &lat, Longitude: &lon, IngestedAt: timestamppb.Now(),
		}
		v, err := proto.Marshal(tx)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: "tx.validated", Key: []byte(tx.GetAccountId()), Value: v, Offset: int64(i),
			Headers: []kafka.Header{{Key: kafkaio.HeaderContentType, Value: []byte(kafkaio.ContentTypeProtobuf)}}}
	}
	return msgs
}

// BenchmarkHandleBatch measures the stream handler against the real Redis: one op is one
// record (decode, two pipelined round trips per batch, compute, encode). "replay" hands
// every batch in twice and times only the second, all-replay pass.
func BenchmarkHandleBatch(b *testing.B) {
	for _, bc := range []struct {
		name     string
		batch    int
		accounts int
		replay   bool
	}{
		{"batch=1", 1, 10000, false},
		{"batch=100", 100, 10000, false},
		{"batch=500", 500, 10000, false},
		{"batch=500/hot-accounts=50", 500, 50, false},
		{"batch=500/replay", 500, 10000, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rdb, prefix := testRedis(b)
			s := features.New(testConfig(outTopic, prefix), rdb, testLogger(b), prometheus.NewRegistry())
			msgs := benchRecords(b, b.N, bc.accounts)
			ctx := context.Background()
			run := func(batch []kafka.Message) {
				res, err := s.HandleBatch(ctx, batch)
				if err != nil || len(res) != len(batch) {
					b.Fatalf("HandleBatch: %d results, %v", len(res), err)
				}
			}
			if bc.replay {
				for from := 0; from < len(msgs); from += bc.batch {
					run(msgs[from:min(from+bc.batch, len(msgs))])
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for from := 0; from < len(msgs); from += bc.batch {
				run(msgs[from:min(from+bc.batch, len(msgs))])
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
