package features_test

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
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

// processCPU is the CPU time (user and system) the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandleBatch measures the stream handler against the real Redis: one op is one
// record (decode, two pipelined round trips per batch, compute, encode); cpu-µs/record is the
// whole process's CPU time (the Redis client and the GC included) per record. "replay" hands
// every batch in twice and times only the second, all-replay pass.
func BenchmarkHandleBatch(b *testing.B) {
	for _, bc := range []struct {
		name     string
		batch    int
		accounts int
		replay   bool
	}{
		{"batch=1", 1, 10000, false},
		{"batch=10", 10, 10000, false},
		{"batch=20/accounts=1000", 20, 1000, false},
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
			start, cpu0 := time.Now(), processCPU(b)
			for from := 0; from < len(msgs); from += bc.batch {
				run(msgs[from:min(from+bc.batch, len(msgs))])
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/record")
		})
	}
}

// BenchmarkGetOnlineFeatures measures the sync read (record=false) against the real Redis on
// accounts the stream gave a history, next to the floors it cannot beat, each in the same
// run: "redis-hmget" is a go-redis HMGET of the same key (v, s), "grpc-health" a health Check
// through the same loopback gRPC connection (the transport alone), "direct" the handler
// without gRPC and "grpc" the whole call (client and server in this process). "/c8" runs eight
// callers at once. Besides ns/op it reports the median and 99th percentile latency in µs and
// the process's CPU time per call.
func BenchmarkGetOnlineFeatures(b *testing.B) {
	rdb, prefix := testRedis(b)
	s := features.New(testConfig(outTopic, prefix), rdb, testLogger(b), prometheus.NewRegistry())
	ctx := context.Background()
	const accounts = 1000
	hist := benchRecords(b, 20*accounts, accounts)
	for from := 0; from < len(hist); from += 500 {
		batch := hist[from:min(from+500, len(hist))]
		if res, err := s.HandleBatch(ctx, batch); err != nil || len(res) != len(batch) {
			b.Fatalf("HandleBatch: %d results, %v", len(res), err)
		}
	}
	reqs := make([]*featuresv1.GetOnlineFeaturesRequest, accounts)
	keys := make([]string, accounts)
	for i := range reqs {
		var tx eventsv1.Transaction
		if err := proto.Unmarshal(hist[i].Value, &tx); err != nil {
			b.Fatal(err)
		}
		tx.TransactionId, tx.EventId = "probe-"+strconv.Itoa(i), "probe-"+strconv.Itoa(i)
		tx.EventTime = timestamppb.New(baseTime.Add(time.Duration(len(hist)+i) * time.Second))
		reqs[i] = &featuresv1.GetOnlineFeaturesRequest{Transaction: &tx}
		keys[i] = prefix + "acct:{" + tx.GetAccountId() + "}"
	}
	client, conn := serveBench(b, s)
	health := healthpb.NewHealthClient(conn)

	ops := map[string]func(i int) error{
		"redis-hmget": func(i int) error { return rdb.HMGet(ctx, keys[i%accounts], "v", "s").Err() },
		"grpc-health": func(int) error {
			_, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		},
		"direct": func(i int) error {
			_, err := s.GetOnlineFeatures(ctx, reqs[i%accounts])
			return err
		},
		"grpc": func(i int) error {
			_, err := client.GetOnlineFeatures(ctx, reqs[i%accounts])
			return err
		},
	}
	for _, conc := range []int{1, 8} {
		for _, name := range []string{"redis-hmget", "grpc-health", "direct", "grpc"} {
			op := ops[name]
			b.Run(name+"/c"+strconv.Itoa(conc), func(b *testing.B) {
				b.ReportAllocs()
				lat := make([][]time.Duration, conc)
				var wg sync.WaitGroup
				var next atomic.Int64
				b.ResetTimer()
				cpu0 := processCPU(b)
				for w := range conc {
					wg.Go(func() {
						l := make([]time.Duration, 0, b.N/conc+1)
						for {
							i := int(next.Add(1)) - 1
							if i >= b.N {
								break
							}
							t0 := time.Now()
							if err := op(i); err != nil {
								b.Error(err)
								return
							}
							l = append(l, time.Since(t0))
						}
						lat[w] = l
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
				all := slices.Concat(lat...)
				slices.Sort(all)
				if len(all) > 0 {
					b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "p50-µs")
					b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, "p99-µs")
				}
			})
		}
	}
}

// serveBench runs s on a loopback gRPC server with the service's options for the benchmark.
func serveBench(b *testing.B, s *features.Server) (featuresv1.FeatureServiceClient, *grpc.ClientConn) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer(features.ServerOptions()...)
	s.Register(g)
	healthpb.RegisterHealthServer(g, health.NewServer())
	go func() { _ = g.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		g.Stop()
	})
	return featuresv1.NewFeatureServiceClient(conn), conn
}
