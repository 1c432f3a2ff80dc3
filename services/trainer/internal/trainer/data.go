package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streaming-mlops/mlops/sim"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// minRows is the fewest rows a training run accepts: each of the three splits needs
// enough rows to train, stop early and evaluate on.
const minRows = 300

// Dataset is a labelled training set in event-time order.
type Dataset struct {
	// Spec describes the columns of X.
	Spec featurespec.Spec
	// X holds Rows()*Spec.Len() values, row-major.
	X []float64
	// Y is the target: 0/1 for binary tasks, the observed value for regression.
	Y []float64
	// EventTimes are the rows' event times, unix nanoseconds.
	EventTimes []int64
	// Amounts gives each row's amount for the cost model of binary tasks, or nil.
	Amounts []float64
	// Source describes where the rows came from (for the model card).
	Source string
}

// Rows is the number of rows.
func (d *Dataset) Rows() int { return len(d.Y) }

// DataQuery selects training data.
type DataQuery struct {
	// Spec is the feature layout wanted; Spec.Task says which use case.
	Spec featurespec.Spec
	// From and To bound the event time (To exclusive); zero means unbounded.
	From, To time.Time
	// MaxRows keeps the newest rows when > 0.
	MaxRows int
}

// DataSource yields labelled training rows. SimSource simulates them; ESSource, the
// production source, reads the logged feature vectors with their joined labels back from
// Elasticsearch (log-and-wait), so training sees exactly what serving saw.
type DataSource interface {
	Load(ctx context.Context, q DataQuery) (*Dataset, error)
}

// Values of Config.DataSource.
const (
	DataSourceSim = "sim"
	DataSourceES  = "es"
)

// NewDataSource returns the data source cfg.DataSource selects. Metrics of the
// Elasticsearch source are registered on reg.
func NewDataSource(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (DataSource, error) {
	switch cfg.DataSource {
	case DataSourceSim:
		return SimSource{Rows: cfg.SimRows, Seed: cfg.SimSeed, Accounts: cfg.SimAccounts}, nil
	case DataSourceES:
		return NewESSource(cfg.ES, nil, logger, reg), nil
	}
	return nil, fmt.Errorf("unknown data source %q", cfg.DataSource)
}

// ErrNoData means the query selected too few rows to train on.
var ErrNoData = errors.New("not enough training data")

// SimSource builds training sets from the transaction and session simulators in
// loadtest/sim: the same feature computation serving runs (featurespec.Step).
type SimSource struct {
	// Rows is how many rows to simulate (before the time filter and MaxRows).
	Rows int
	// Seed makes the data reproducible.
	Seed uint64
	// Accounts is the simulated fraud population.
	Accounts int
}

// Load simulates the rows of q.Spec's use case.
func (s SimSource) Load(ctx context.Context, q DataQuery) (*Dataset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := s.Rows
	if q.MaxRows > 0 && q.From.IsZero() && q.To.IsZero() {
		n = min(n, q.MaxRows) // no filter: simulate only what is kept
	}
	var d *Dataset
	switch q.Spec.Task {
	case featurespec.TaskBinary:
		sd, err := sim.FraudDataset(sim.Config{Seed: s.Seed, Accounts: s.Accounts, Warmup: 24 * time.Hour}, n)
		if err != nil {
			return nil, fmt.Errorf("simulate fraud data: %w", err)
		}
		amounts := make([]float64, sd.Rows())
		w := sd.Spec.Len()
		for i := range amounts {
			amounts[i] = sd.X[i*w+featurespec.FraudAmount]
		}
		d = &Dataset{Spec: sd.Spec, X: sd.X, Y: sd.Y, EventTimes: sd.EventTimes, Amounts: amounts,
			Source: fmt.Sprintf("transaction simulator (seed %d, %d accounts)", s.Seed, s.Accounts)}
	case featurespec.TaskRegression:
		sd, err := sim.PurchaseDataset(sim.SessionConfig{Seed: s.Seed}, n)
		if err != nil {
			return nil, fmt.Errorf("simulate purchase data: %w", err)
		}
		// Train on the observed outcome: the only target a real label stream carries.
		d = &Dataset{Spec: sd.Spec, X: sd.X, Y: sd.Outcome, EventTimes: sd.EventTimes,
			Source: fmt.Sprintf("session simulator (seed %d)", s.Seed)}
	default:
		return nil, fmt.Errorf("simulate data: unsupported task %q", q.Spec.Task)
	}
	if err := d.Spec.Check(q.Spec); err != nil {
		return nil, fmt.Errorf("simulated data: %w", err)
	}
	return d.filter(q), nil
}

// filter keeps the rows inside [q.From, q.To) and then the newest q.MaxRows of them.
func (d *Dataset) filter(q DataQuery) *Dataset {
	w := d.Spec.Len()
	keep := make([]int, 0, d.Rows())
	for i, t := range d.EventTimes {
		if (!q.From.IsZero() && t < q.From.UnixNano()) || (!q.To.IsZero() && t >= q.To.UnixNano()) {
			continue
		}
		keep = append(keep, i)
	}
	if q.MaxRows > 0 && len(keep) > q.MaxRows {
		// Rows are in event-time order: the newest are the last.
		keep = keep[len(keep)-q.MaxRows:]
	}
	if len(keep) == d.Rows() {
		return d
	}
	return d.subset(keep, w)
}

// subset returns the rows idx of d, in that order.
func (d *Dataset) subset(idx []int, w int) *Dataset {
	out := &Dataset{Spec: d.Spec, Source: d.Source, X: make([]float64, 0, len(idx)*w),
		Y: make([]float64, len(idx)), EventTimes: make([]int64, len(idx))}
	if d.Amounts != nil {
		out.Amounts = make([]float64, len(idx))
	}
	for k, i := range idx {
		out.X = append(out.X, d.X[i*w:(i+1)*w]...)
		out.Y[k] = d.Y[i]
		out.EventTimes[k] = d.EventTimes[i]
		if d.Amounts != nil {
			out.Amounts[k] = d.Amounts[i]
		}
	}
	return out
}
