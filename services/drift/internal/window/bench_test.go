package window

import (
	"strconv"
	"testing"
)

// BenchmarkAddPrediction is the streaming update of one prediction (16 features and the
// score: bin search and quality counters per column, then the bottom-k sample) into a
// window that is already full, the steady state.
func BenchmarkAddPrediction(b *testing.B) {
	l, _, _, recs := fixture(b, 20000, 0, 3)
	// Widen to 16 features like fraud-v1.
	wide := &Layout{SampleSize: l.SampleSize, LabelledSize: l.LabelledSize, Score: l.Score}
	for range 16 {
		wide.Features = append(wide.Features, l.Features[0])
	}
	rows := make([][]float64, len(recs))
	hashes := make([]uint64, len(recs))
	for i, rc := range recs {
		row := make([]float64, 16)
		for j := range row {
			row[j] = rc.values[j%3]
		}
		rows[i] = row
		hashes[i] = Hash(rc.tx + strconv.Itoa(i))
	}
	s := NewState(wide)
	for i := range rows {
		s.AddPrediction(hashes[i], int64(i), "1", rows[i], recs[i].score, 0.8)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(rows)
		s.AddPrediction(hashes[k]^uint64(i), int64(i), "1", rows[k], recs[k].score, 0.8)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/17, "ns/column")
}
