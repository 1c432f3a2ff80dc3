package window

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/profile"
)

type record struct {
	tx     string
	time   int64
	values []float64
	score  float64
	label  float64
}

// fixture builds a layout and reference from a reference sample, and a stream of records
// (predictions with labels) whose first feature is shifted by shift.
func fixture(t testing.TB, n int, shift float64, seed uint64) (*Layout, *Reference, []string, []record) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	const cols = 3
	names := []string{"a", "b", "c"}
	refRows := 20000
	matrix := make([]float64, refRows*cols)
	scores := make([]float64, refRows)
	for i := range refRows {
		for j := range cols {
			matrix[i*cols+j] = r.NormFloat64() + float64(j)
		}
		scores[i] = 1 / (1 + math.Exp(-matrix[i*cols]))
	}
	prof, err := profile.Build("fp", names, matrix, scores, profile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := prof.Calibrate(matrix, scores, profile.CalibrateOptions{WindowSize: 2000, Resamples: 200}); err != nil {
		t.Fatal(err)
	}
	l := &Layout{SampleSize: 2000, LabelledSize: 5000}
	ref := &Reference{Threshold: 0.8, MinCount: 100, MinLabels: 50, ReviewCost: 5, ReferenceAUC: 0.9, ReferenceMSE: math.NaN()}
	iso := driftstat.FitIsotonic(scores[:2000], func() []bool {
		b := make([]bool, 2000)
		for i := range b {
			b[i] = r.Float64() < scores[i]
		}
		return b
	}())
	ref.Calibration = &iso
	for j := range cols {
		d := &prof.Features[j]
		l.Features = append(l.Features, Column{Name: names[j], Edges: d.Edges, Min: -10, Max: 10})
		ref.Features = append(ref.Features, RefColumn{Fractions: d.Fractions, Sample: d.Sample, PSI: d.Alarm.PSI, KS: d.Alarm.KS, JS: d.Alarm.JS, CalibratedAt: d.Alarm.WindowSize})
	}
	l.Score = Column{Name: "score", Edges: prof.Score.Edges, Max: 1}
	ref.Score = RefColumn{Fractions: prof.Score.Fractions, Sample: prof.Score.Sample}
	recs := make([]record, n)
	for i := range recs {
		v := []float64{r.NormFloat64() + shift, r.NormFloat64() + 1, r.NormFloat64() + 2}
		switch i % 97 {
		case 3:
			v[1] = math.NaN()
		case 5:
			v[2] = math.Inf(1)
		case 7:
			v[2] = 50 // out of range
		}
		s := 1 / (1 + math.Exp(-v[0]))
		lab := 0.0
		if r.Float64() < s {
			lab = 1
		}
		recs[i] = record{tx: "tx-" + strconv.Itoa(i), time: int64(i) * 1e9, values: v, score: s, label: lab}
	}
	return l, ref, names, recs
}

func feed(s *State, recs []record) {
	for _, rc := range recs {
		h := Hash(rc.tx)
		s.AddPrediction(h, rc.time, "1", rc.values, rc.score, 0.8)
		if rc.time%3 == 0 {
			s.AddLabel(h, rc.score, rc.label, 10, 0.8, 1)
		}
	}
}

// TestStatesMergeExactly: one replica and three replicas (each with the records of
// its share of partitions, in a different order) produce identical window statistics once
// the three states are merged.
func TestStatesMergeExactly(t *testing.T) {
	t.Parallel()
	for _, shift := range []float64{0, 0.5} {
		t.Run("shift="+strconv.FormatFloat(shift, 'g', -1, 64), func(t *testing.T) {
			t.Parallel()
			l, ref, names, recs := fixture(t, 6000, shift, 7)
			one := NewState(l)
			feed(one, recs)

			parts := make([][]record, 3)
			for _, rc := range recs {
				p := Hash(rc.tx) % 3 // partition by key, like Kafka's hash partitioner
				parts[p] = append(parts[p], rc)
			}
			replicas := make([]*State, 3)
			for i, part := range parts {
				rand.New(rand.NewPCG(uint64(i), 9)).Shuffle(len(part), func(a, b int) { part[a], part[b] = part[b], part[a] })
				replicas[i] = NewState(l)
				feed(replicas[i], part)
			}
			merged := NewState(l)
			for _, r := range []int{2, 0, 1} {
				merged.Merge(replicas[r])
			}

			want := Evaluate(one, names, ref)
			got := Evaluate(merged, names, ref)
			if diff := cmp.Diff(want, got, cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("merged three replicas differ from one replica (-one +merged):\n%s", diff)
			}
			if shift > 0 && !want.Features[0].Drifted {
				t.Errorf("feature a shifted by %g not flagged: %+v", shift, want.Features[0])
			}
			if want.Features[1].Drifted || want.Features[2].Drifted {
				t.Errorf("unshifted features flagged: b %+v, c %+v", want.Features[1], want.Features[2])
			}
			if want.Features[1].MissingRate == 0 || want.Features[2].NonFiniteRate == 0 || want.Features[2].OutOfRange == 0 {
				t.Errorf("data-quality rates not counted: b missing %g, c non-finite %g, out of range %g",
					want.Features[1].MissingRate, want.Features[2].NonFiniteRate, want.Features[2].OutOfRange)
			}
		})
	}
}

func TestSampleBottomK(t *testing.T) {
	t.Parallel()
	s := NewSample(3, 1)
	for _, h := range []uint64{50, 10, 40, 10, 30, 20} {
		s.Offer(h, []float64{float64(h)})
	}
	hashes, rows := s.Rows()
	if diff := cmp.Diff([]uint64{10, 20, 30}, hashes); diff != "" {
		t.Errorf("kept hashes (-want +got):\n%s", diff)
	}
	if rows[2][0] != 30 {
		t.Errorf("row of hash 30 = %v", rows[2])
	}
	if got := s.Column(0); !cmp.Equal(got, []float64{10, 20, 30}) {
		t.Errorf("Column(0) = %v", got)
	}
}

func TestAUCStdErr(t *testing.T) {
	t.Parallel()
	// Hanley–McNeil by hand: a = 0.5, 100 positives and 100 negatives: Q1 = Q2 = 1/3,
	// SE² = (0.25 + 99(1/3−0.25)·2) / 10⁴.
	want := math.Sqrt((0.25 + 2*99*(1.0/3-0.25)) / 1e4)
	if got := AUCStdErr(0.5, 100, 100); math.Abs(got-want) > 1e-12 {
		t.Errorf("AUCStdErr(0.5, 100, 100) = %v, want %v", got, want)
	}
	if few, many := AUCStdErr(0.9, 20, 1000), AUCStdErr(0.9, 200, 10000); !(few > many) {
		t.Errorf("SE with 20 positives %v not above SE with 200 %v", few, many)
	}
	if !math.IsNaN(AUCStdErr(0.9, 0, 10)) {
		t.Error("SE without positives is not NaN")
	}
}
