package ingest

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// benchBatch returns n distinct tx.raw records in the given encoding.
func benchBatch(b *testing.B, n int, json bool) []kafka.Message {
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		tx := validTx()
		tx.TransactionId = fmt.Sprintf("tx-%08d", i)
		var v []byte
		var err error
		ct := topics.ContentTypeProtobuf
		if json {
			v, err = protojson.Marshal(tx)
			ct = topics.ContentTypeJSON
		} else {
			v, err = proto.Marshal(tx)
		}
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: "raw", Partition: 0, Offset: int64(i), Key: []byte(tx.AccountId), Value: v,
			Headers: []kafka.Header{{Key: topics.HeaderContentType, Value: []byte(ct)}}}
	}
	return msgs
}

// BenchmarkRawHandler measures the tx.raw handler per record (batches of 500, as the
// consumer loop hands them over): decode, validate, dedup, stamp, encode, build the output.
func BenchmarkRawHandler(b *testing.B) {
	for _, json := range []bool{true, false} {
		name := "protobuf"
		if json {
			name = "json"
		}
		b.Run(name, func(b *testing.B) {
			s := newTestServer(b, testConfig(b, []string{"127.0.0.1:1"}, "raw", "validated", "dlq"), nil)
			s.dedup = NewDedup(0, 0) // the same records go round again: measure without dedup hits
			h := s.RawHandler()
			batch := benchBatch(b, 500, json)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(batch) {
				res, err := h(context.Background(), batch)
				if err != nil || res[0].Err != nil {
					b.Fatal(err, res[0].Err)
				}
			}
		})
	}
}

// BenchmarkDecodeValidate compares this package's JSON decoder with protojson, each
// followed by validation.
func BenchmarkDecodeValidate(b *testing.B) {
	data, err := protojson.Marshal(validTx())
	if err != nil {
		b.Fatal(err)
	}
	v := NewValidator(DefaultLimits(), fixedClock)
	b.Run("DecodeJSON", func(b *testing.B) {
		d := NewDecoder(RejectUnknown)
		tx := &eventsv1.Transaction{}
		var errs []FieldError
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := d.DecodeJSON(data, tx); err != nil {
				b.Fatal(err)
			}
			if errs = v.Validate(tx, errs[:0]); len(errs) > 0 {
				b.Fatal(errs)
			}
		}
	})
	b.Run("protojson", func(b *testing.B) {
		tx := &eventsv1.Transaction{}
		var errs []FieldError
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := protojson.Unmarshal(data, tx); err != nil {
				b.Fatal(err)
			}
			if errs = v.Validate(tx, errs[:0]); len(errs) > 0 {
				b.Fatal(errs)
			}
		}
	})
}

// BenchmarkDedupObserve measures one dedup lookup and insertion in a full table.
func BenchmarkDedupObserve(b *testing.B) {
	d := NewDedup(testNow.Sub(testNow.Add(-1e15)), 1<<20)
	ids := make([]string, 1<<21)
	for i := range ids {
		ids[i] = fmt.Sprintf("tx-%09d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Observe(ids[i&(len(ids)-1)], Sighting{Content: uint64(i + 1)}, testNow)
		i++
	}
}

// BenchmarkRawConsumer measures ingestion's whole tx.raw path on the real broker (the
// stack's, eval "$(scripts/stack.sh env)"): a backlog of b.N protobuf records (one JSON in
// four) on 6 partitions, consumed by the service's consumer actor with its default settings
// (the KAFKA_* variables apply): fetch, decode, validate, dedup, encode, write tx.validated
// with acks=all, commit. Besides ns/op and allocs/op (the whole process: kafka-go included)
// it reports the process's CPU per record.
func BenchmarkRawConsumer(b *testing.B) {
	brokers := strings.Split(stacktest.KafkaBrokers(b), ",")
	raw, validated, dlq := kafkaiotest.UniqueName("bench-raw"), kafkaiotest.UniqueName("bench-validated"), kafkaiotest.UniqueName("bench-dlq")
	kafkaiotest.CreateTopics(b, brokers, 6, raw, validated, dlq)
	kafkaiotest.DeleteTopicsOnCleanup(b, brokers, raw, validated, dlq)
	const chunk = 5000
	for start := 0; start < b.N; start += chunk {
		msgs := make([]kafka.Message, 0, chunk)
		for i := start; i < min(b.N, start+chunk); i++ {
			tx := validTx()
			tx.EventId = ""
			tx.TransactionId = fmt.Sprintf("tx-%09d", i)
			tx.AccountId = fmt.Sprintf("acc-%d", i%2000)
			v, ct := []byte(nil), topics.ContentTypeProtobuf
			var err error
			if i%4 == 3 {
				v, err = protojson.Marshal(tx)
				ct = topics.ContentTypeJSON
			} else {
				v, err = proto.Marshal(tx)
			}
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, kafka.Message{Topic: raw, Key: []byte(tx.AccountId), Value: v,
				Headers: []kafka.Header{{Key: topics.HeaderContentType, Value: []byte(ct)}}})
		}
		kafkaiotest.Produce(b, brokers, msgs...)
	}
	cfg, err := ParseConfig([]string{"-kafka.brokers", strings.Join(brokers, ","), "-kafka.topics", raw, "-kafka.dlq-topic", dlq,
		"-kafka.group", kafkaiotest.UniqueName("bench"), "-ingest.validated-topic", validated}, func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := newTestServer(b, cfg, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	go func() { done <- s.ConsumerActor().Run(ctx) }()
	kafkaiotest.WaitFor(b, 10*time.Minute, "all records consumed", func() (bool, error) {
		return kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": raw}) >= float64(b.N), nil
	})
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if got := kafkaiotest.MetricValue(reg, "mlops_kafka_messages_produced_total", map[string]string{"topic": validated}); got != float64(b.N) {
		b.Fatalf("%v records on %s, want %d (all valid)", got, validated, b.N)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/msg")
}

// cpuTime returns the user+system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
