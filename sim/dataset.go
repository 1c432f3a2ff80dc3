package sim

import (
	"fmt"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/datasetfile"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// Dataset is a training set: a row-major feature matrix with one target
// per row, in event-time order.
type Dataset struct {
	// Spec describes the columns of X.
	Spec featurespec.Spec
	// X holds Rows()*Spec.Len() values, row-major.
	X []float64
	// Y is the target: the reported fraud label (0/1, with unreported and
	// friendly fraud) or the purchase probability.
	Y []float64
	// Truth is the ground truth of the fraud scenario (1 for fraud,
	// reported or not); nil for the purchase scenario.
	Truth []float64
	// Outcome is the observed outcome for the purchase scenario (0/1,
	// drawn from Y); nil for fraud, where Y is already the outcome.
	Outcome []float64
	// EventTimes are the rows' event times and LabelTimes the times their
	// labels become known, unix nanoseconds (for time-ordered splits that
	// respect label delay).
	EventTimes []int64
	LabelTimes []int64
	// Patterns is the fraud pattern of each row (fraud scenario only).
	Patterns []Pattern
}

// Rows is the number of rows.
func (d *Dataset) Rows() int { return len(d.Y) }

// Row returns row i of X (a view, not a copy).
func (d *Dataset) Row(i int) []float64 {
	n := d.Spec.Len()
	return d.X[i*n : (i+1)*n : (i+1)*n]
}

// FraudDataset runs the simulator for n transactions after the warm-up and
// returns their fraud features, computed by replaying every transaction
// (warm-up included) through a featurespec.AccountState per account with
// featurespec.Step: exactly the serving computation. The rows are the same
// transactions, in the same order, as New(cfg).Next would return after the
// warm-up.
func FraudDataset(cfg Config, n int) (*Dataset, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	spec := featurespec.Fraud()
	width := spec.Len()
	d := &Dataset{
		Spec:       spec,
		X:          make([]float64, n*width),
		Y:          make([]float64, n),
		EventTimes: make([]int64, n),
		LabelTimes: make([]int64, n),
		Patterns:   make([]Pattern, n),
		Truth:      make([]float64, n),
	}
	states := make([]featurespec.AccountState, len(s.w.accounts))
	start := s.cfg.Start.UnixNano()
	warm := make([]float64, width)
	for row := 0; row < n; {
		t := s.step()
		in := s.input(t)
		out := warm
		if t.at >= start {
			out = d.X[row*width : (row+1)*width]
		}
		if err := featurespec.Step(&states[t.acct], in, out); err != nil {
			return nil, fmt.Errorf("features of simulated transaction %d: %w", s.txCount, err)
		}
		if t.at < start {
			continue
		}
		d.Y[row] = t.label
		if t.pattern != PatternNone {
			d.Truth[row] = 1
		}
		d.EventTimes[row] = t.at
		d.LabelTimes[row] = t.labelAt
		d.Patterns[row] = t.pattern
		row++
	}
	return d, nil
}

// Input converts a simulated transaction into the featurespec input, the
// same conversion the feature service applies to a tx.validated record.
func Input(tx *Transaction) featurespec.Input {
	return featurespec.Input{
		Amount:     tx.Amount,
		Time:       tx.EventTime,
		Latitude:   tx.Latitude,
		Longitude:  tx.Longitude,
		Country:    tx.Country,
		MerchantID: tx.MerchantID,
		DeviceID:   tx.DeviceID,
	}
}

func (s *Sim) input(t txn) featurespec.Input {
	return featurespec.Input{
		Amount:     t.amount,
		Time:       time.Unix(0, t.at),
		Latitude:   t.lat,
		Longitude:  t.lon,
		Country:    cities[t.city].country,
		MerchantID: s.w.merchants[t.merchant].id,
		DeviceID:   t.device,
	}
}

// Labelled returns the rows as a training set file's content (see datasetfile): the
// observed label, Y for fraud and Outcome for the purchase scenario, with the event and
// label times. The slices are shared with d.
func (d *Dataset) Labelled() *datasetfile.Rows {
	y := d.Y
	if d.Outcome != nil {
		y = d.Outcome
	}
	return &datasetfile.Rows{Spec: d.Spec, X: d.X, Y: y, EventTimes: d.EventTimes, LabelTimes: d.LabelTimes}
}
