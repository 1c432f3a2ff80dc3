package datasetfile_test

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/streaming-mlops/mlops/services/platform/datasetfile"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

func sample() *datasetfile.Rows {
	spec := featurespec.Fraud()
	r := &datasetfile.Rows{Spec: spec, Y: []float64{0, 1}, EventTimes: []int64{1767225600123456789, 1767225601000000000},
		LabelTimes: []int64{1767830400123456789, 1767400000000000000}}
	for i := range 2 * spec.Len() {
		r.X = append(r.X, math.Pi*float64(i)/7)
	}
	r.X[3] = math.NaN()
	return r
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"rows.csv", "rows.csv.gz"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), name)
			want := sample()
			if err := datasetfile.WriteFile(path, want); err != nil {
				t.Fatal(err)
			}
			got, err := datasetfile.ReadFile(path, featurespec.Fraud())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateNaNs(), cmpopts.IgnoreFields(datasetfile.Rows{}, "Spec")); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadRejectsOtherSpec(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := datasetfile.Write(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	if id, err := datasetfile.SpecID(bytes.NewReader(buf.Bytes())); err != nil || id != "fraud-v1" {
		t.Errorf("SpecID = %q, %v; want fraud-v1", id, err)
	}
	if _, err := datasetfile.Read(bytes.NewReader(buf.Bytes()), featurespec.Purchase()); err == nil || !strings.Contains(err.Error(), "purchase") {
		t.Errorf("Read with the purchase spec = %v, want a spec mismatch", err)
	}
}
