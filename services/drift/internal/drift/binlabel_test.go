package drift

import (
	"math"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/profile"
)

// TestReportBinLabels: the report names each bin by the values it holds, the outer bins of a
// closed range by the reference's minimum and maximum, an older profile's open-ended end bins
// as before.
func TestReportBinLabels(t *testing.T) {
	t.Parallel()
	below := func(x float64) float64 { return math.Nextafter(x, math.Inf(-1)) }
	closed := []float64{below(0), 0.25, 0.5, 1}
	open := []float64{1.5, 2.5}
	for _, tt := range []struct {
		edges  []float64
		closed bool
		i      int
		want   string
	}{
		{closed, true, 0, "< 0"},
		{closed, true, 1, "[0, 0.25]"},
		{closed, true, 2, "(0.25, 0.5]"},
		{closed, true, 4, "> 1"},
		{open, false, 0, "≤ 1.5"},
		{open, false, 1, "(1.5, 2.5]"},
		{open, false, 2, "> 2.5"},
		{nil, false, 0, "all values"},
	} {
		if got := binRange(tt.edges, tt.i, tt.closed); got != tt.want {
			t.Errorf("binRange(%v, %d) = %q, want %q", tt.edges, tt.i, got, tt.want)
		}
	}
}

// TestReportClosedRange: a profile built now closes every column's range; one with
// open-ended end bins (written before) does not.
func TestReportClosedRange(t *testing.T) {
	t.Parallel()
	prof, err := profile.Build("fp", []string{"a", "b"}, []float64{1, 0, 2, 0, 3, 1, 4, 1}, []float64{0.1, 0.2, 0.3, 0.4}, profile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref := &Reference{Profile: prof}
	for i := range 3 {
		if !closedRange(ref, i) {
			t.Errorf("column %d of a new profile: range not closed", i)
		}
	}
	old := &Reference{Profile: &profile.Profile{Features: []profile.Distribution{{Edges: []float64{1.5, 2.5}, Min: 1, Max: 4}}}}
	if closedRange(old, 0) || closedRange(old, 1) || closedRange(&Reference{}, 0) {
		t.Error("an open-ended profile (or none) reads as closed")
	}
}
