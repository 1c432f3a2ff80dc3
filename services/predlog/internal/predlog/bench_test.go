package predlog_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// BenchmarkHandler measures documents per second written into the real Elasticsearch through
// the batch handler, in batches of the consumer's default size (500): predictions alone, and
// labels arriving after their predictions (lookup + conditional update).
func BenchmarkHandler(b *testing.B) {
	const batch = 500
	te := newTestES(b)
	w, _ := te.writer(b)
	h := w.Handler(predTopic, labelTopic)
	b.Run("predictions", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			msgs := make([]kafka.Message, batch)
			for k := range msgs {
				tx := fmt.Sprintf("tx-bench-%d", n)
				msgs[k] = record(b, predTopic, tx, prediction(tx, n), int64(n))
				n++
			}
			handleOK(b, h, msgs...)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "docs/s")
	})
	b.Run("labels_after_predictions", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			b.StopTimer()
			preds := make([]kafka.Message, batch)
			labels := make([]kafka.Message, batch)
			for k := range preds {
				tx := fmt.Sprintf("tx-benchl-%d", n)
				preds[k] = record(b, predTopic, tx, prediction(tx, n), int64(n))
				labels[k] = record(b, labelTopic, tx, label(tx, float64(n%2), time.Hour), int64(n))
				n++
			}
			handleOK(b, h, preds...)
			b.StartTimer()
			handleOK(b, h, labels...)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "docs/s")
	})
}
