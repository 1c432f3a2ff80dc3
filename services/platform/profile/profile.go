// Package profile is the reference profile of a model's training data: per-feature quantile
// bins, summary statistics and a bounded sorted sample, plus the same for the model's scores.
// The trainer builds it and logs it to MLflow next to the model; the drift detector reads it
// to compare live windows against (PSI over the quantile bins, KS over the sample).
package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

// Version of the JSON format written by Marshal. Version 2 adds alarm thresholds,
// calibration and the champion's reference performance; Unmarshal still reads version 1
// (those fields are then absent and the drift detector uses its defaults).
const Version = 2

// Defaults of Calibrate.
const (
	DefaultAlarmWindow    = 5000
	DefaultAlarmResamples = 500
	// DefaultAlarmQuantile is the quantile of the reference's own window-to-window
	// variation taken as the threshold: 1 takes the largest value any window of the
	// reference showed, so an alarm means "the live data differs from the reference more
	// than the reference ever differed from itself" (see docs/drift.md).
	DefaultAlarmQuantile = 1.0
)

// Default sizes used by Build.
const (
	DefaultBins       = 10
	DefaultSampleSize = 5000
)

// Distribution profiles one column: a feature or the score.
type Distribution struct {
	Name string `json:"name"`
	// Edges are the bin edges, strictly increasing. Bin i holds values x with
	// Edges[i-1] < x <= Edges[i]; bin 0 is (-inf, Edges[0]] and the last bin
	// (Edges[len-1], +inf). Build closes the reference's range (driftstat.ReferenceBins):
	// Edges[0] is just below Min and the last edge is Max, so the two outer bins hold only
	// values outside the reference's range, and between them lie the quantile edges (Bins
	// evenly spaced levels plus driftstat.TailQuantiles). Ties in the data can leave fewer
	// bins. Profiles written before that change have open-ended end bins (the interior
	// quantiles only); they load and are compared on their own edges as before.
	Edges []float64 `json:"edges"`
	// Fractions are the reference's share per bin; they sum to 1. The outer bins of a
	// closed range get the weight of one value each (see driftstat.ReferenceBins).
	Fractions []float64 `json:"fractions"`
	// Count is the number of non-missing values; Missing the number of NaN values.
	Count   int64   `json:"count"`
	Missing int64   `json:"missing"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
	Std     float64 `json:"std"`
	// Sample is a uniform random sample of the non-missing values, sorted ascending, for
	// two-sample tests (KS). It holds every value when there are at most SampleSize.
	Sample []float64 `json:"sample"`
	// Alarm holds thresholds calibrated by resampling the reference against itself; nil
	// when the profile was not calibrated.
	Alarm *Alarm `json:"alarm,omitempty"`
}

// Alarm is one column's alarm thresholds: the AlarmQuantile of each statistic over windows
// of WindowSize values drawn from the reference itself (see driftstat.NullQuantiles).
type Alarm struct {
	WindowSize int     `json:"window_size"`
	Quantile   float64 `json:"quantile"`
	Resamples  int     `json:"resamples"`
	// Method is MethodBlocks (windows of consecutive reference rows, which keeps the
	// reference's temporal structure) or MethodIID (independent draws, when the reference is
	// too short for blocks).
	Method string  `json:"method"`
	PSI    float64 `json:"psi"`
	KS     float64 `json:"ks"`
	JS     float64 `json:"js"`
}

// Profile is the reference profile of one model version.
type Profile struct {
	Version         int            `json:"version"`
	SpecFingerprint string         `json:"spec_fingerprint"`
	Rows            int64          `json:"rows"`
	Features        []Distribution `json:"features"`
	Score           *Distribution  `json:"score,omitempty"`
	// Task is "binary" or "regression" (featurespec.Task's names); empty in version 1.
	Task string `json:"task,omitempty"`
	// Threshold is the decision threshold the model serves with.
	Threshold float64 `json:"threshold,omitempty"`
	// AlertRate is the share of reference scores at or above Threshold.
	AlertRate float64 `json:"alert_rate,omitempty"`
	// Calibration maps a score to a calibrated probability of the positive label, fitted on
	// the training holdout (binary only), for performance estimation before labels.
	Calibration *driftstat.Isotonic `json:"calibration,omitempty"`
	// Platt is a logistic calibration fitted on the same holdout. Performance estimation uses
	// it when present: being strictly increasing it keeps the model's ranking, where the
	// isotonic map's flat steps bias an estimate of AUC low.
	Platt *driftstat.Platt `json:"platt,omitempty"`
	// Holdout are the model's metrics on its training holdout (evaluate's names: auc, mse…).
	Holdout map[string]float64 `json:"holdout,omitempty"`
	// EstimatedAUC is the confidence-based estimate of AUC (Calibration applied to the
	// holdout scores, driftstat.EstimatePerformance) — what the drift service's estimate reads
	// on traffic like the holdout. Isotonic calibration has flat steps, inside which the
	// estimate sees no discrimination, so it sits below the realized AUC; live estimates are
	// compared with this, not with the realized holdout AUC. Zero when not computed.
	EstimatedAUC float64 `json:"estimated_auc,omitempty"`
	// EstimatedAUCFloor is the lowest estimate of AUC that windows of the drift window size of
	// consecutive holdout rows gave: how far a window's estimate wanders on unshifted data
	// (rare positives make it noisy). Zero when the holdout is too short to tell.
	EstimatedAUCFloor float64 `json:"estimated_auc_floor,omitempty"`
}

// Calibration methods (Alarm.Method).
const (
	MethodBlocks = "blocks"
	MethodIID    = "iid"
	// minBlocksFactor is how many windows long a reference column must be for blocks.
	minBlocksFactor = 4
)

// CalibrateOptions tune Calibrate. Zero values take the defaults.
type CalibrateOptions struct {
	WindowSize int
	Resamples  int
	Quantile   float64
	Seed       uint64
}

// Calibrate sets every column's Alarm from the same matrix and scores Build profiled, whose
// rows must be in time order: for each column it takes Resamples windows of WindowSize
// consecutive reference values at random offsets (driftstat.NullQuantilesBlocks; independent
// draws when the column is shorter than four windows) and keeps the Quantile of PSI, KS and
// JS against the profile. With quantile q, an
// unshifted column crosses each threshold in a fraction 1−q of windows; docs/drift.md turns
// that into the expected false-alarm rate of the detector.
func (p *Profile) Calibrate(matrix, scores []float64, opts CalibrateOptions) error {
	if opts.WindowSize <= 0 {
		opts.WindowSize = DefaultAlarmWindow
	}
	if opts.Resamples <= 0 {
		opts.Resamples = DefaultAlarmResamples
	}
	if opts.Quantile <= 0 || opts.Quantile > 1 {
		opts.Quantile = DefaultAlarmQuantile
	}
	cols := len(p.Features)
	if cols == 0 || len(matrix) != cols*int(p.Rows) {
		return fmt.Errorf("profile: calibrate with %d values for %d rows of %d features", len(matrix), p.Rows, cols)
	}
	col := make([]float64, 0, p.Rows)
	calibrate := func(d *Distribution, values []float64, stream uint64) {
		if d.Count == 0 || len(values) == 0 {
			return
		}
		null, method := driftstat.NullQuantiles, MethodIID
		if len(values) >= minBlocksFactor*opts.WindowSize {
			null, method = driftstat.NullQuantilesBlocks, MethodBlocks
		}
		psi, ks, js := null(values, d.Edges, d.Fractions, d.Sample, opts.WindowSize, opts.Resamples, opts.Quantile, opts.Seed^stream)
		if math.IsNaN(psi) || math.IsNaN(ks) || math.IsNaN(js) {
			return
		}
		d.Alarm = &Alarm{WindowSize: opts.WindowSize, Quantile: opts.Quantile, Resamples: opts.Resamples, Method: method, PSI: psi, KS: ks, JS: js}
	}
	for j := range p.Features {
		col = col[:0]
		for i := range int(p.Rows) {
			if v := matrix[i*cols+j]; !math.IsNaN(v) && !math.IsInf(v, 0) {
				col = append(col, v)
			}
		}
		calibrate(&p.Features[j], col, uint64(j))
	}
	if p.Score != nil && len(scores) == int(p.Rows) {
		col = col[:0]
		for _, v := range scores {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				col = append(col, v)
			}
		}
		calibrate(p.Score, col, uint64(cols))
	}
	return nil
}

// Options tune Build. Zero values take the defaults.
type Options struct {
	Bins       int
	SampleSize int
	Seed       uint64
}

// Build profiles a row-major matrix with len(names) columns and, when scores is non-nil,
// the model's scores on the same rows. It copies what it keeps; the inputs are not modified.
func Build(specFingerprint string, names []string, matrix []float64, scores []float64, opts Options) (*Profile, error) {
	cols := len(names)
	if cols == 0 {
		return nil, errors.New("profile: no feature names")
	}
	if len(matrix)%cols != 0 {
		return nil, fmt.Errorf("profile: matrix length %d is not a multiple of %d columns", len(matrix), cols)
	}
	rows := len(matrix) / cols
	if rows == 0 {
		return nil, errors.New("profile: no rows")
	}
	if scores != nil && len(scores) != rows {
		return nil, fmt.Errorf("profile: %d scores for %d rows", len(scores), rows)
	}
	if opts.Bins <= 1 {
		opts.Bins = DefaultBins
	}
	if opts.SampleSize <= 0 {
		opts.SampleSize = DefaultSampleSize
	}
	p := &Profile{Version: Version, SpecFingerprint: specFingerprint, Rows: int64(rows)}
	col := make([]float64, rows)
	for j, name := range names {
		for i := range rows {
			col[i] = matrix[i*cols+j]
		}
		p.Features = append(p.Features, describe(name, col, opts, uint64(j)))
	}
	if scores != nil {
		d := describe("score", slices.Clone(scores), opts, uint64(cols))
		p.Score = &d
	}
	return p, nil
}

// describe profiles values; it reorders (sorts) values in place.
func describe(name string, values []float64, opts Options, stream uint64) Distribution {
	d := Distribution{Name: name}
	finite := values[:0]
	for _, v := range values {
		if math.IsNaN(v) {
			d.Missing++
			continue
		}
		finite = append(finite, v)
	}
	d.Count = int64(len(finite))
	if len(finite) == 0 {
		d.Fractions = []float64{1}
		return d
	}
	sort.Float64s(finite)
	d.Min, d.Max = finite[0], finite[len(finite)-1]
	var mean, m2 float64
	for i, v := range finite {
		delta := v - mean
		mean += delta / float64(i+1)
		m2 += delta * (v - mean)
	}
	d.Mean = mean
	if len(finite) > 1 {
		d.Std = math.Sqrt(m2 / float64(len(finite)-1))
	}
	d.Edges, d.Fractions = driftstat.ReferenceBins(finite, opts.Bins)
	d.Sample = sample(finite, opts.SampleSize, opts.Seed, stream)
	return d
}

// sample returns a sorted uniform sample of at most n of the sorted values.
func sample(sorted []float64, n int, seed, stream uint64) []float64 {
	if len(sorted) <= n {
		return slices.Clone(sorted)
	}
	r := rand.New(rand.NewPCG(seed, stream))
	idx := r.Perm(len(sorted))[:n]
	out := make([]float64, n)
	for i, k := range idx {
		out[i] = sorted[k]
	}
	sort.Float64s(out)
	return out
}

// Bin returns the index of the bin x falls in (see Edges). NaN has no bin: Bin returns -1.
func (d *Distribution) Bin(x float64) int {
	if math.IsNaN(x) {
		return -1
	}
	// First edge >= x: x belongs to that bin (edges are inclusive upper bounds).
	return sort.SearchFloat64s(d.Edges, x)
}

// Feature returns the distribution of the named feature, or nil.
func (p *Profile) Feature(name string) *Distribution {
	for i := range p.Features {
		if p.Features[i].Name == name {
			return &p.Features[i]
		}
	}
	return nil
}

// Marshal encodes the profile as JSON.
func (p *Profile) Marshal() ([]byte, error) { return json.Marshal(p) }

// Unmarshal decodes and validates a profile written by Marshal.
func Unmarshal(b []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode profile: %w", err)
	}
	if p.Version != Version && p.Version != 1 {
		return nil, fmt.Errorf("profile format version %d, want 1 or %d", p.Version, Version)
	}
	ds := p.Features
	if p.Score != nil {
		ds = append(slices.Clone(ds), *p.Score)
	}
	for _, d := range ds {
		if len(d.Fractions) != len(d.Edges)+1 {
			return nil, fmt.Errorf("profile feature %q: %d fractions for %d edges", d.Name, len(d.Fractions), len(d.Edges))
		}
		if !sort.Float64sAreSorted(d.Edges) {
			return nil, fmt.Errorf("profile feature %q: edges not sorted", d.Name)
		}
	}
	return &p, nil
}
