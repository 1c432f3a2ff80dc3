package kafkaio_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// benchBrokers returns the shared stack's brokers when its environment is set
// (eval "$(scripts/stack.sh env)"), which is what the numbers in BENCHMARKS.md and the issues
// are about, and otherwise an in-process kfake broker (whose own CPU then dominates).
func benchBrokers(b *testing.B) []string {
	b.Helper()
	if v := os.Getenv(stacktest.EnvKafkaBrokers); v != "" {
		return strings.Split(v, ",")
	}
	return kafkaiotest.StartBroker(b)
}

// benchInput creates an input and an output topic of 3 partitions and fills the input with
// n records of 100 bytes.
func benchInput(b *testing.B, brokers []string, n int) (in, out string) {
	b.Helper()
	in, out = kafkaiotest.UniqueName("bench-in"), kafkaiotest.UniqueName("bench-out")
	kafkaiotest.CreateTopics(b, brokers, 3, in, out)
	kafkaiotest.DeleteTopicsOnCleanup(b, brokers, in, out)
	value := make([]byte, 100)
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		msgs := make([]kafka.Message, 0, chunk)
		for i := start; i < min(n, start+chunk); i++ {
			msgs = append(msgs, kafka.Message{Topic: in, Key: []byte("acct-" + strconv.Itoa(i%1000)), Value: value})
		}
		kafkaiotest.Produce(b, brokers, msgs...)
	}
	return in, out
}

// BenchmarkConsumeProduce measures the consumer loop end to end on a backlog (see
// benchBrokers): fetch, handle (copy each record to an output topic), write with acks=all,
// commit.
func BenchmarkConsumeProduce(b *testing.B) {
	brokers := benchBrokers(b)
	in, out := benchInput(b, brokers, b.N)
	h := func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
		return []kafka.Message{{Topic: out, Key: m.Key, Value: m.Value, Headers: m.Headers}}, nil
	}
	cfg := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("bench"), in)
	reg := prometheus.NewRegistry()
	c, err := kafkaio.NewConsumer(cfg, kafkaio.PerMessage(h), discardLogger(), reg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() { done <- c.Run(ctx) }()
	kafkaiotest.WaitFor(b, 10*time.Minute, "all records consumed", func() (bool, error) {
		return kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in}) >= float64(b.N), nil
	})
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkPlainKafkaGoLoop is the baseline: the at-least-once loop written directly with
// kafka-go, one record at a time (FetchMessage, WriteMessages with acks=all, CommitMessages).
func BenchmarkPlainKafkaGoLoop(b *testing.B) {
	brokers := benchBrokers(b)
	in, out := benchInput(b, brokers, b.N)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: kafkaiotest.UniqueName("plain"), GroupTopics: []string{in},
		MaxWait: 50 * time.Millisecond, HeartbeatInterval: 250 * time.Millisecond, SessionTimeout: 6 * time.Second,
		StartOffset: kafka.FirstOffset,
	})
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Microsecond, Transport: tr}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.WriteMessages(ctx, kafka.Message{Topic: out, Key: m.Key, Value: m.Value, Headers: m.Headers}); err != nil {
			b.Fatal(err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Error(err)
	}
	if err := r.Close(); err != nil {
		b.Error(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkPlainKafkaGoConsume is the ceiling: kafka-go fetching alone, with asynchronous
// commits every second and nothing produced.
func BenchmarkPlainKafkaGoConsume(b *testing.B) {
	brokers := benchBrokers(b)
	in, _ := benchInput(b, brokers, b.N)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: kafkaiotest.UniqueName("plain"), GroupTopics: []string{in},
		MaxWait: 50 * time.Millisecond, HeartbeatInterval: 250 * time.Millisecond, SessionTimeout: 6 * time.Second,
		StartOffset: kafka.FirstOffset, CommitInterval: time.Second, QueueCapacity: 500,
	})
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := r.Close(); err != nil {
		b.Error(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkConsumeProducePaced measures the consumer loop with the services' settings
// (kafkaio.Config's defaults, and the KAFKA_* variables the services read) at a steady input
// rate, as in the stream benchmark, rather than on a backlog: another process publishes
// 2,000 records a second (TestHelperPacedProducer) and the handler copies each to an output
// topic with NewRecord (content type and trace headers, as the services do). It reports this
// process's CPU per record (user+system: the consumer loop, kafka-go and the handler) and the
// p50/p99 of the time from a record's produce time to the handler's call (fetch waits, and
// batches waiting behind the previous batch's write and commit). Run it with -benchtime
// 6000x or so: b.N records take b.N/2000 seconds.
func BenchmarkConsumeProducePaced(b *testing.B) {
	brokers := benchBrokers(b)
	in, out := kafkaiotest.UniqueName("bench-in"), kafkaiotest.UniqueName("bench-out")
	kafkaiotest.CreateTopics(b, brokers, 6, in, out)
	kafkaiotest.DeleteTopicsOnCleanup(b, brokers, in, out)

	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var pendingLat []time.Duration
	h := func(_ context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
		res := make([]kafkaio.Result, len(msgs))
		now := time.Now()
		pendingLat = pendingLat[:0]
		for i := range msgs {
			m := &msgs[i]
			res[i].Output = []kafka.Message{kafkaio.NewRecord(out, m.Key, m.Value, kafkaio.ContentTypeProtobuf, m.Headers)}
			pendingLat = append(pendingLat, now.Sub(m.Time))
		}
		mu.Lock()
		lat = append(lat, pendingLat...)
		mu.Unlock()
		return res, nil
	}
	// The services' settings: the defaults, overridden by the KAFKA_* environment variables
	// the services read (KAFKA_MIN_BYTES=65536 KAFKA_COMPRESSION=lz4 ... go test -bench ...).
	cfg := kafkaio.Config{GroupID: kafkaiotest.UniqueName("bench"), Topics: []string{in}, DLQTopic: kafkaiotest.UniqueName("bench-dlq")}
	kafkaiotest.DeleteTopicsOnCleanup(b, brokers, cfg.DLQTopic) // the consumer creates it
	fs := flag.NewFlagSet("kafkaio-bench", flag.ContinueOnError)
	cfg.RegisterFlags(fs, os.Getenv)
	if err := flagenv.Parse(fs, nil); err != nil {
		b.Fatal(err)
	}
	cfg.Brokers = brokers
	reg := prometheus.NewRegistry()
	c, err := kafkaio.NewConsumer(cfg, h, discardLogger(), reg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Wait for the group to own the partitions: one record goes round first.
	kafkaiotest.Produce(b, brokers, pacedRecord(in, 0))
	consumed := func() float64 {
		return kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in})
	}
	kafkaiotest.WaitFor(b, time.Minute, "the first record consumed", func() (bool, error) { return consumed() >= 1, nil })
	mu.Lock()
	lat = lat[:0]
	mu.Unlock()

	// The input comes from another process (this test binary running
	// TestHelperPacedProducer), so the CPU measured here is the consumer's alone.
	producer := exec.Command(os.Args[0], "-test.run", "^TestHelperPacedProducer$")
	producer.Env = append(os.Environ(), pacedEnv+"="+strings.Join([]string{strings.Join(brokers, ","), in, strconv.Itoa(b.N)}, ";"))
	producer.Stderr = os.Stderr
	b.ResetTimer()
	cpu0, start := cpuTime(b), time.Now()
	if err := producer.Start(); err != nil {
		b.Fatal(err)
	}
	if err := producer.Wait(); err != nil {
		b.Fatalf("paced producer: %v", err)
	}
	kafkaiotest.WaitFor(b, 2*time.Minute, "all records consumed", func() (bool, error) { return consumed() >= float64(b.N+1), nil })
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/msg")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// cpuTime returns the user+system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pacedEnv tells TestHelperPacedProducer what to publish: "brokers;topic;count".
const pacedEnv = "KAFKAIO_BENCH_PACED_PRODUCER"

// pacedRecord is the i-th input record of BenchmarkConsumeProducePaced: 150 bytes, 2,000
// keys, a content type and a trace context, as tx.raw records carry.
func pacedRecord(topic string, i int) kafka.Message {
	m := kafkaio.NewRecord(topic, []byte("acct-"+strconv.Itoa(i%2000)), make([]byte, 150), kafkaio.ContentTypeProtobuf, nil)
	return m
}

// TestHelperPacedProducer is BenchmarkConsumeProducePaced's input, run as a child process:
// it publishes count records to topic at 2,000 a second (acks=all), every 5ms what the rate
// owes by then, so a slow acknowledgement is made up by the next call and the average rate
// holds on a busy machine. Without its environment variable it has nothing to do.
func TestHelperPacedProducer(t *testing.T) {
	const rate = 2000
	spec := os.Getenv(pacedEnv)
	if spec == "" {
		t.Skip("runs only as BenchmarkConsumeProducePaced's child process")
	}
	parts := strings.Split(spec, ";")
	if len(parts) != 3 {
		t.Fatalf("%s=%q: want brokers;topic;count", pacedEnv, spec)
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(strings.Split(parts[0], ",")...), Balancer: kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: tr}
	defer func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < n; {
		<-tick.C
		owed := min(n, int(time.Since(start).Seconds()*rate)+1)
		batch := make([]kafka.Message, 0, owed-sent)
		for ; sent < owed; sent++ {
			batch = append(batch, pacedRecord(parts[1], sent+1))
		}
		if err := w.WriteMessages(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkConsumeProduceCompression is BenchmarkConsumeProduce with each producer codec
// (the input written with it too, so the consumer pays for decompressing): a backlog of
// protobuf-like 180-byte records, 6 partitions. It reports the process's CPU per record,
// which is what the codec costs on the services' side; on one machine the network it saves
// is a loopback copy.
func BenchmarkConsumeProduceCompression(b *testing.B) {
	for _, codec := range []string{"none", "lz4", "snappy", "zstd", "gzip"} {
		b.Run(codec, func(b *testing.B) {
			brokers := benchBrokers(b)
			in, out := kafkaiotest.UniqueName("bench-in"), kafkaiotest.UniqueName("bench-out")
			kafkaiotest.CreateTopics(b, brokers, 6, in, out)
			kafkaiotest.DeleteTopicsOnCleanup(b, brokers, in, out)
			p, err := kafkaio.NewProducer(kafkaio.Config{Brokers: brokers, Compression: codec, BatchTimeout: time.Millisecond}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			const chunk = 5000
			for start := 0; start < b.N; start += chunk {
				msgs := make([]kafka.Message, 0, chunk)
				for i := start; i < min(b.N, start+chunk); i++ {
					v := fmt.Appendf(nil, "\n$%08x-2c4e-4b7a-9f10-%012d\x12\x0btx-%08d\x1a\x08acc-%04d!fffff&`@*\x03EUR2\x05m-%03d:\x045732B\x07dev-%03dJ\x0b203.0.113.7R\x02DE", i, i, i, i%2000, i%977, i%313)
					msgs = append(msgs, kafkaio.NewRecord(in, []byte("acc-"+strconv.Itoa(i%2000)), v, kafkaio.ContentTypeProtobuf, nil))
				}
				if err := p.WriteMessages(context.Background(), msgs...); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			h := func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
				return []kafka.Message{kafkaio.NewRecord(out, m.Key, m.Value, kafkaio.ContentTypeProtobuf, m.Headers)}, nil
			}
			cfg := kafkaio.Config{Brokers: brokers, GroupID: kafkaiotest.UniqueName("bench"), Topics: []string{in},
				DLQTopic: kafkaiotest.UniqueName("bench-dlq"), Compression: codec}
			kafkaiotest.DeleteTopicsOnCleanup(b, brokers, cfg.DLQTopic)
			reg := prometheus.NewRegistry()
			c, err := kafkaio.NewConsumer(cfg, kafkaio.PerMessage(h), discardLogger(), reg)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, start := cpuTime(b), time.Now()
			go func() { done <- c.Run(ctx) }()
			kafkaiotest.WaitFor(b, 10*time.Minute, "all records consumed", func() (bool, error) {
				return kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in}) >= float64(b.N), nil
			})
			elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/msg")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
