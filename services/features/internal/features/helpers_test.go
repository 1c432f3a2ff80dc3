package features_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// testRedis returns a client of the real Redis and a key prefix unique to the test; the
// test's keys are deleted and the client closed when it ends.
func testRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: stacktest.RedisAddr(t)})
	prefix := kafkaiotest.UniqueName("test:features") + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		deleteKeys(ctx, t, rdb, prefix)
		if err := rdb.Close(); err != nil {
			t.Errorf("close redis client: %v", err)
		}
	})
	return rdb, prefix
}

func deleteKeys(ctx context.Context, t testing.TB, rdb *redis.Client, prefix string) {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan test keys: %v", err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := rdb.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Errorf("delete test keys: %v", err)
			return
		}
		keys = keys[n:]
	}
}

// dumpKeys returns every key under prefix with a printable dump of its value.
func dumpKeys(t testing.TB, rdb *redis.Client, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "hash":
			out[k] = fmt.Sprint(rdb.HGetAll(ctx, k).Val())
		case "list":
			out[k] = fmt.Sprint(rdb.LRange(ctx, k, 0, -1).Val())
		default:
			out[k] = typ
		}
		out[k] += " ttl=" + rdb.PTTL(ctx, k).Val().String()
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testConfig returns a Config for a server writing topic with keys under prefix. The state
// cache is on, as in production, so every test of the stream and record paths also runs
// the writes computed on remembered states.
func testConfig(topic, prefix string) features.Config {
	return features.Config{OutputTopic: topic, RedisPrefix: prefix, ReplayWindow: 32, StateCache: 1000}
}

var baseTime = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// testTx returns the i-th transaction of a small synthetic stream over five accounts.
func testTx(i int) *eventsv1.Transaction {
	lat, lon := 48.1+float64(i%3)*2.5, 11.5-float64(i%4)*3
	tx := &eventsv1.Transaction{
		EventId:       "ev-" + strconv.Itoa(i),
		EventTime:     timestamppb.New(baseTime.Add(time.Duration(i) * 37 * time.Second)),
		TransactionId: "tx-" + strconv.Itoa(i),
		AccountId:     "acct-" + strconv.Itoa(i%5),
		Amount:        10 + float64(i%13)*7.25,
		Currency:      "EUR",
		MerchantId:    "m-" + strconv.Itoa(i%4),
		DeviceId:      "d-" + strconv.Itoa(i%3),
		Country:       []string{"DE", "FR", "DE", "AT"}[i%4],
		IngestedAt:    timestamppb.New(baseTime.Add(time.Duration(i)*37*time.Second + time.Millisecond)),
	}
	if i%7 != 3 {
		tx.Latitude, tx.Longitude = &lat, &lon
	}
	return tx
}

// traceparentOf returns the traceparent testRecord puts on input i ("" for odd i).
func traceparentOf(i int) string {
	if i%2 == 1 {
		return ""
	}
	return fmt.Sprintf("00-%032x-%016x-01", i+1, i+7)
}

// testRecord returns tx as a tx.validated record keyed by its account, with a traceparent for
// even i.
func testRecord(t testing.TB, i int, tx *eventsv1.Transaction) kafka.Message {
	t.Helper()
	b, err := proto.Marshal(tx)
	if err != nil {
		t.Fatal(err)
	}
	m := kafka.Message{Topic: "tx.validated", Key: []byte(tx.GetAccountId()), Value: b, Offset: int64(i),
		Headers: []kafka.Header{{Key: kafkaio.HeaderContentType, Value: []byte(kafkaio.ContentTypeProtobuf)}}}
	if tp := traceparentOf(i); tp != "" {
		m.Headers = append(m.Headers, kafka.Header{Key: kafkaio.HeaderTraceparent, Value: []byte(tp)})
	}
	return m
}

// decodeFV decodes an output record's FeatureVector.
func decodeFV(t testing.TB, m kafka.Message) *eventsv1.FeatureVector {
	t.Helper()
	fv := &eventsv1.FeatureVector{}
	if err := proto.Unmarshal(m.Value, fv); err != nil {
		t.Fatalf("decode FeatureVector: %v", err)
	}
	return fv
}
