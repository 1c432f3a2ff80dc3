// Package datasetfile reads and writes labelled training sets as files: feature vectors of
// one featurespec.Spec with their labels and times, in event-time order. The simulator's
// command (loadtest/cmd/simulate -dataset) writes them; the trainer reads them with
// -data.source=file, so neither the trainer nor the services' tests link the simulator.
//
// The layout is CSV (RFC 4180), gzip-compressed when the file name ends in ".gz":
//
//	# featurespec fraud-v1 <fingerprint>
//	event_time_unix_nano,label_time_unix_nano,label,amount,location_score,...
//	1767225600123456789,1767830400123456789,0,42.5,0.01,...
//
// The first line names the spec (ID and fingerprint); the header lists its features in
// order after the three fixed columns. Numbers are written so that they read back bit for
// bit; NaN marks a missing value.
package datasetfile

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// Rows is a labelled training set in event-time order.
type Rows struct {
	// Spec describes the columns of X.
	Spec featurespec.Spec
	// X holds Len()*Spec.Len() values, row-major.
	X []float64
	// Y is the observed label: 0/1 for binary tasks, the outcome for regression.
	Y []float64
	// EventTimes and LabelTimes are when each row happened and when its label became
	// known, unix nanoseconds.
	EventTimes, LabelTimes []int64
}

// Len is the number of rows.
func (r *Rows) Len() int { return len(r.Y) }

// fixed are the columns before the features.
var fixed = []string{"event_time_unix_nano", "label_time_unix_nano", "label"}

// Write writes rows to w in the file layout (uncompressed).
func Write(w io.Writer, rows *Rows) error {
	n, width := rows.Len(), rows.Spec.Len()
	if len(rows.X) != n*width || len(rows.EventTimes) != n || len(rows.LabelTimes) != n {
		return fmt.Errorf("write dataset: %d labels, %d event times, %d label times and %d values for %d features",
			n, len(rows.EventTimes), len(rows.LabelTimes), len(rows.X), width)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := fmt.Fprintf(bw, "# featurespec %s %s\n", rows.Spec.ID(), rows.Spec.Fingerprint()); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	// A bufio.Writer's error is sticky: the WriteByte checked at the end of each row reports
	// any earlier failed write.
	_, _ = bw.WriteString(strings.Join(append(append([]string(nil), fixed...), rows.Spec.Names()...), ","))
	_ = bw.WriteByte('\n')
	buf := make([]byte, 0, 64)
	for i := range n {
		buf = strconv.AppendInt(buf[:0], rows.EventTimes[i], 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, rows.LabelTimes[i], 10)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, rows.Y[i], 'g', -1, 64)
		_, _ = bw.Write(buf)
		for _, v := range rows.X[i*width : (i+1)*width] {
			buf = append(buf[:0], ',')
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
			_, _ = bw.Write(buf)
		}
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("write dataset: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	return nil
}

// WriteFile writes rows to the file at path, gzip-compressed if path ends in ".gz".
func WriteFile(path string, rows *Rows) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create dataset file: %w", err)
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	if !strings.HasSuffix(path, ".gz") {
		return Write(f, rows)
	}
	zw := gzip.NewWriter(f)
	if err := Write(zw, rows); err != nil {
		return err
	}
	return zw.Close()
}

// SpecID returns the spec ID ("fraud-v1") named by the first line of the file layout in r.
func SpecID(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read dataset header: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "#" || f[1] != "featurespec" {
		return "", fmt.Errorf("not a dataset file: first line %q", strings.TrimSpace(line))
	}
	return f[2], nil
}

// Read reads a dataset in the file layout (uncompressed) whose spec must be want: same ID,
// same fingerprint, same feature names in the same order.
func Read(r io.Reader, want featurespec.Spec) (*Rows, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	first, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("read dataset header: %w", err)
	}
	if got, exp := strings.TrimSpace(first), fmt.Sprintf("# featurespec %s %s", want.ID(), want.Fingerprint()); got != exp {
		return nil, fmt.Errorf("dataset is for %q, want %q", got, exp)
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	width := want.Len()
	cr.FieldsPerRecord = len(fixed) + width
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read dataset columns: %w", err)
	}
	if got, exp := strings.Join(header, ","), strings.Join(append(append([]string(nil), fixed...), want.Names()...), ","); got != exp {
		return nil, fmt.Errorf("dataset columns %q, want %q", got, exp)
	}
	rows := &Rows{Spec: want}
	for line := 3; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read dataset: %w", err)
		}
		et, err1 := strconv.ParseInt(rec[0], 10, 64)
		lt, err2 := strconv.ParseInt(rec[1], 10, 64)
		y, err3 := strconv.ParseFloat(rec[2], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("dataset line %d: %w", line, err)
		}
		for j, s := range rec[len(fixed):] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("dataset line %d, feature %s: %w", line, want.Features[j].Name, err)
			}
			rows.X = append(rows.X, v)
		}
		rows.EventTimes = append(rows.EventTimes, et)
		rows.LabelTimes = append(rows.LabelTimes, lt)
		rows.Y = append(rows.Y, y)
	}
}

// ReadFile reads the dataset file at path (gunzipped if path ends in ".gz"); see Read.
func ReadFile(path string, want featurespec.Spec) (_ *Rows, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open dataset file: %w", err)
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("open dataset file %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	rows, err := Read(r, want)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rows, nil
}
