// Package window holds the drift service's per-window statistics in a mergeable form: exact
// counts on the reference's fixed bin edges (merge = add), bottom-k hash samples for the
// two-sample KS test and the performance estimates (merge = union), and exact integer
// counters for data quality. Two replicas that each see part of a window's records and
// merge their States hold exactly the State one replica would have built from all of them;
// Evaluate turns a State into the window's statistics against the reference.
package window

import (
	"math"
	"sort"
)

// Column is one monitored variable: a feature or the model's score.
type Column struct {
	Name string
	// Edges are the reference's bin edges (right-closed bins, see
	// profile.Distribution.Bin).
	Edges []float64
	// Min and Max bound valid values (from the feature spec); values outside are counted
	// as out of range and not binned. Both zero means unbounded.
	Min, Max float64
}

// Layout fixes what a window measures for one model. Every State merged together must
// share one Layout.
type Layout struct {
	// Features in spec order; the score is column len(Features) of the sample.
	Features []Column
	Score    Column
	// SampleSize is k of the bottom-k sample the KS test and the estimates use.
	SampleSize int
	// LabelledSize is k of the bottom-k sample of labelled predictions.
	LabelledSize int
}

// Hist counts one column's values on its bins plus its data-quality counters.
type Hist struct {
	Bins       []int64
	Missing    int64 // NaN
	NonFinite  int64 // ±Inf
	OutOfRange int64 // finite and outside [Min, Max]
}

func (h *Hist) add(c *Column, v float64) {
	switch {
	case math.IsNaN(v):
		h.Missing++
		return
	case math.IsInf(v, 0):
		h.NonFinite++
		return
	}
	if (c.Min != 0 || c.Max != 0) && (v < c.Min || v > c.Max) {
		// Invalid by the spec: a data-quality matter with its own rate and tolerance
		// (-alarm.quality), like NaN and ±Inf, not part of the distribution PSI and JS
		// compare (whose outer bins would otherwise read a few invalid values as drift).
		h.OutOfRange++
		return
	}
	h.Bins[sort.SearchFloat64s(c.Edges, v)]++
}

func (h *Hist) merge(o *Hist) {
	for i := range h.Bins {
		h.Bins[i] += o.Bins[i]
	}
	h.Missing += o.Missing
	h.NonFinite += o.NonFinite
	h.OutOfRange += o.OutOfRange
}

// Finite is the number of values that fell in a bin.
func (h *Hist) Finite() int64 {
	var n int64
	for _, b := range h.Bins {
		n += b
	}
	return n
}

// Labelled-sample row layout.
const (
	lScore = iota
	lLabel
	lAmount
	lThreshold
	lVersion // the model version that scored the prediction (NaN when not a number)
	labelledWidth
)

// State is the statistics of one window of one model so far. It is not safe for concurrent
// use.
type State struct {
	layout *Layout
	// Start and End are the earliest and latest prediction event times, Unix nanoseconds.
	Start, End int64
	// Predictions counts predictions (and feature vectors: one per prediction).
	Predictions int64
	// Alerts counts predictions at or above their decision threshold.
	Alerts   int64
	Features []Hist
	Score    Hist
	// Rows is a bottom-k sample of prediction rows: the feature values then the score.
	Rows *Sample
	// Labelled is a bottom-k sample of labelled predictions (score, label, amount, threshold).
	Labelled *Sample
	// Labels counts labels joined in this window (the labelled sample may hold fewer).
	Labels int64
	// Versions counts predictions per model version.
	Versions map[string]int64

	row []float64
}

// NewState returns an empty window for l. l must not change while States use it.
func NewState(l *Layout) *State {
	s := &State{
		layout:   l,
		Start:    math.MaxInt64,
		End:      math.MinInt64,
		Features: make([]Hist, len(l.Features)),
		Score:    Hist{Bins: make([]int64, len(l.Score.Edges)+1)},
		Rows:     NewSample(l.SampleSize, len(l.Features)+1),
		Labelled: NewSample(l.LabelledSize, labelledWidth),
		Versions: map[string]int64{},
		row:      make([]float64, len(l.Features)+1),
	}
	for i, c := range l.Features {
		s.Features[i].Bins = make([]int64, len(c.Edges)+1)
	}
	return s
}

// Layout returns the layout the State was built with.
func (s *State) Layout() *Layout { return s.layout }

// Empty reports whether nothing was added.
func (s *State) Empty() bool { return s.Predictions == 0 && s.Labels == 0 }

// AddPrediction records one prediction: values are the feature vector as scored (len must
// equal the layout's features; the caller checks), hash is Hash(transaction id).
func (s *State) AddPrediction(hash uint64, eventTime int64, version string, values []float64, score, threshold float64) {
	s.Predictions++
	s.Start = min(s.Start, eventTime)
	s.End = max(s.End, eventTime)
	s.Versions[version]++
	for i := range s.layout.Features {
		s.Features[i].add(&s.layout.Features[i], values[i])
	}
	s.Score.add(&s.layout.Score, score)
	if score >= threshold {
		s.Alerts++
	}
	n := copy(s.row, values)
	s.row[n] = score
	s.Rows.Offer(hash, s.row)
}

// AddLabel records a label joined to its prediction's score, decision threshold, amount and
// the version of the model that scored it.
func (s *State) AddLabel(hash uint64, score, label, amount, threshold, version float64) {
	s.Labels++
	s.Labelled.Offer(hash, []float64{lScore: score, lLabel: label, lAmount: amount, lThreshold: threshold, lVersion: version})
}

// VersionPerformance is the realized performance of one model version's predictions among
// a window's labelled ones: AUC for a binary model, MSE for a regression model.
type VersionPerformance struct {
	Metric float64
	Labels int
}

// RealizedByVersion splits the labelled sample by the version that scored each prediction.
func (s *State) RealizedByVersion(regression bool) map[float64]VersionPerformance {
	_, rows := s.Labelled.Rows()
	scores := map[float64][]float64{}
	targets := map[float64][]float64{}
	for _, r := range rows {
		v := r[lVersion]
		if math.IsNaN(v) {
			continue
		}
		scores[v] = append(scores[v], r[lScore])
		targets[v] = append(targets[v], r[lLabel])
	}
	out := make(map[float64]VersionPerformance, len(scores))
	for v, sc := range scores {
		out[v] = VersionPerformance{Metric: realized(sc, targets[v], regression), Labels: len(sc)}
	}
	return out
}

// Merge adds o (a State of the same Layout) into s.
func (s *State) Merge(o *State) {
	s.Start = min(s.Start, o.Start)
	s.End = max(s.End, o.End)
	s.Predictions += o.Predictions
	s.Alerts += o.Alerts
	for i := range s.Features {
		s.Features[i].merge(&o.Features[i])
	}
	s.Score.merge(&o.Score)
	s.Rows.Merge(o.Rows)
	s.Labelled.Merge(o.Labelled)
	s.Labels += o.Labels
	for v, n := range o.Versions {
		s.Versions[v] += n
	}
}

// Bytes is the memory a State of l holds at most: bins, counters and both samples at
// capacity.
func (l *Layout) Bytes() int64 {
	var n int64
	for _, c := range l.Features {
		n += int64(8 * (len(c.Edges) + 1 + 3))
	}
	n += int64(8 * (len(l.Score.Edges) + 1 + 3))
	n += NewSample(l.SampleSize, len(l.Features)+1).Bytes()
	n += NewSample(l.LabelledSize, labelledWidth).Bytes()
	return n
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
