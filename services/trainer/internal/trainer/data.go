package trainer

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streaming-mlops/mlops/services/platform/datasetfile"
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

// DataSource yields labelled training rows. ESSource, the production source, reads the
// logged feature vectors with their joined labels back from Elasticsearch (log-and-wait), so
// training sees exactly what serving saw. FileSource reads dataset files, such as the
// simulated ones loadtest/cmd/simulate -dataset writes (for the demo and tests; the trainer
// does not link the simulator).
type DataSource interface {
	Load(ctx context.Context, q DataQuery) (*Dataset, error)
}

// Values of Config.DataSource.
const (
	DataSourceES   = "es"
	DataSourceFile = "file"
	// dataSourceSim is the removed in-process simulator source, named in its error.
	dataSourceSim = "sim"
)

// NewDataSource returns the data source cfg.DataSource selects. Metrics of the
// Elasticsearch source are registered on reg.
func NewDataSource(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (DataSource, error) {
	switch cfg.DataSource {
	case DataSourceES:
		client, err := cfg.ES.Auth.Client() // credentials and TLS of the cluster
		if err != nil {
			return nil, err
		}
		return NewESSource(cfg.ES, client, logger, reg), nil
	case DataSourceFile:
		return FileSource{Paths: cfg.DataFiles}, nil
	}
	return nil, fmt.Errorf("unknown data source %q", cfg.DataSource)
}

// ErrNoData means the query selected too few rows to train on.
var ErrNoData = errors.New("not enough training data")

// NotEnoughDataError says the selected labelled rows are fewer than a training run needs
// (Config.MinLabelledRows, Config.MinPositives). It matches ErrNoData.
type NotEnoughDataError struct {
	// Rows and Positives are what the query selected (Positives: binary tasks only).
	Rows, Positives int
	// MinRows and MinPositives are the minimums; MinPositives is 0 for regression.
	MinRows, MinPositives int
	// Detail says where the rows came from, e.g. the index and window.
	Detail string
}

// Error reads "not enough labelled data: 450 rows (need 1000), 12 positives (need 30); ...".
func (e *NotEnoughDataError) Error() string {
	msg := fmt.Sprintf("not enough labelled data: %d rows (need %d)", e.Rows, e.MinRows)
	if e.MinPositives > 0 {
		msg += fmt.Sprintf(", %d positives (need %d)", e.Positives, e.MinPositives)
	}
	if e.Detail != "" {
		msg += "; " + e.Detail
	}
	return msg
}

// Is matches ErrNoData.
func (e *NotEnoughDataError) Is(target error) bool { return target == ErrNoData }

// Positives counts the rows labelled 1.
func (d *Dataset) Positives() int {
	n := 0
	for _, y := range d.Y {
		if y == 1 {
			n++
		}
	}
	return n
}

// FileSource reads training sets from dataset files (see datasetfile): one file per use
// case, the one whose spec is the query's. The files are read on every Load, so they can be
// replaced between retrains.
type FileSource struct {
	// Paths are the dataset files, e.g. a fraud and a purchase set.
	Paths []string
}

// Load reads the file of q.Spec's spec and applies q's time range and row limit.
func (s FileSource) Load(ctx context.Context, q DataQuery) (*Dataset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := s.pathFor(q.Spec)
	if err != nil {
		return nil, err
	}
	rows, err := datasetfile.ReadFile(path, q.Spec)
	if err != nil {
		return nil, fmt.Errorf("read training data: %w", err)
	}
	d := &Dataset{Spec: rows.Spec, X: rows.X, Y: rows.Y, EventTimes: rows.EventTimes, Source: "file " + path}
	if i := rows.Spec.Index("amount"); i >= 0 && q.Spec.Task == featurespec.TaskBinary {
		w := rows.Spec.Len()
		d.Amounts = make([]float64, rows.Len())
		for r := range d.Amounts {
			d.Amounts[r] = rows.X[r*w+i]
		}
	}
	return d.filter(q), nil
}

// pathFor returns the file whose first line names spec.
func (s FileSource) pathFor(spec featurespec.Spec) (string, error) {
	var seen []string
	for _, p := range s.Paths {
		id, err := fileSpecID(p)
		if err != nil {
			return "", fmt.Errorf("read training data: %w", err)
		}
		if id == spec.ID() {
			return p, nil
		}
		seen = append(seen, p+" ("+id+")")
	}
	return "", fmt.Errorf("%w: no dataset file for spec %s among %v", ErrNoData, spec.ID(), seen)
}

func fileSpecID(path string) (_ string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open dataset file: %w", err)
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("open dataset file %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	id, err := datasetfile.SpecID(r)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
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
