package ingest

import (
	"context"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
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
