package lightgbm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLib opens LightGBM from MLOPS_TEST_LIGHTGBM_LIB, else from FindLibrary (LIGHTGBM_LIB or
// the project virtualenv); it skips (or fails under MLOPS_TEST_REQUIRE_STACK=1) when neither
// gives a library.
func testLib(tb testing.TB) *Library {
	tb.Helper()
	path := os.Getenv(stacktest.EnvLightGBMLib)
	if path == "" {
		if p, err := FindLibrary(os.Getenv); err == nil {
			path = p
		} else {
			path = stacktest.LightGBMLib(tb)
		}
	}
	lib, err := Open(path)
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	return lib
}

// testPython returns the venv python from MLOPS_TEST_PYTHON, else the project's .venv found
// above the working directory; it skips (or fails under MLOPS_TEST_REQUIRE_STACK=1) otherwise.
func testPython(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(stacktest.EnvPython); p != "" {
		return p
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, ".venv", "bin", "python")
			if _, err := os.Stat(p); err == nil {
				if exec.Command(p, "-c", "import lightgbm, sklearn").Run() == nil {
					return p
				}
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return stacktest.Python(tb)
}

// runPython runs testdata/parity.py with args and decodes its JSON output into out.
func runPython(tb testing.TB, python string, out any, args ...string) {
	tb.Helper()
	cmd := exec.Command(python, append([]string{filepath.Join("testdata", "parity.py")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("python parity.py %v: %v\n%s", args, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		tb.Fatalf("decode python output: %v", err)
	}
}

// readRowsCSV reads a CSV with a header of feature names and float rows.
func readRowsCSV(tb testing.TB, path string) (Matrix, []string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var names []string
	var m Matrix
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		fields := strings.Split(line, ",")
		if names == nil {
			names, m.Cols = fields, len(fields)
			continue
		}
		if len(fields) != m.Cols {
			tb.Fatalf("%s row %d: %d fields, want %d", path, m.Rows+1, len(fields), m.Cols)
		}
		for _, s := range fields {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				tb.Fatalf("%s row %d: %v", path, m.Rows+1, err)
			}
			m.Data = append(m.Data, v)
		}
		m.Rows++
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return m, names
}

// synthFraud makes a deterministic fraud-like binary classification table with cols >= 4
// features: a skewed amount, risk scores, a time gap, hour of day and noise columns, with
// NaNs in one column. About 8% of labels are 1.
func synthFraud(n, cols int, seed uint64) (Matrix, []float64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := Matrix{Data: make([]float64, n*cols), Rows: n, Cols: cols}
	y := make([]float64, n)
	for i := 0; i < n; i++ {
		row := m.Data[i*cols : (i+1)*cols]
		amount := math.Exp(3.5 + 1.2*r.NormFloat64())
		loc := r.Float64()
		device := r.Float64() * r.Float64()
		gap := r.ExpFloat64() * 3600
		row[0], row[1], row[2], row[3] = amount, loc, device, gap
		logit := -5.5 + 0.5*math.Log1p(amount) + 2.5*loc*loc + 4.0*device - 0.15*math.Log1p(gap) + 1.5*loc*device
		for j := 4; j < cols; j++ {
			v := r.Float64()
			row[j] = v
			if j%3 == 1 {
				logit += 1.2 * math.Sin(6*v)
			}
		}
		if r.Float64() < 0.03 {
			row[2] = math.NaN()
		}
		if r.Float64() < 1/(1+math.Exp(-logit)) {
			y[i] = 1
		}
	}
	return m, y
}

// auc is the area under the ROC curve (Mann-Whitney U with midranks for ties), as sklearn's
// roc_auc_score computes it.
func auc(scores, labels []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSumPos, nPos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // ranks i+1..j, averaged
		for k := i; k < j; k++ {
			if labels[idx[k]] == 1 {
				rankSumPos += mid
				nPos++
			}
		}
		i = j
	}
	nNeg := float64(len(scores)) - nPos
	return (rankSumPos - nPos*(nPos+1)/2) / (nPos * nNeg)
}

func writeF64(tb testing.TB, path string, v []float64) {
	tb.Helper()
	buf := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(x))
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// maxAbsDiff returns the largest |a[i]-b[i]| and its index; lengths must match.
func maxAbsDiff(tb testing.TB, what string, got, want []float64) (float64, int) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range got {
		d := math.Abs(got[i] - want[i])
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		if d > worst || at < 0 {
			worst, at = d, i
		}
	}
	return worst, at
}

// trainSmall trains a quick model for tests that need any trained booster.
func trainSmall(tb testing.TB, lib *Library, rounds int) *Booster {
	tb.Helper()
	m, y := synthFraud(2000, 5, 3)
	params := Params{"objective": "binary", "metric": "auc", "verbosity": "-1", "num_threads": "1", "deterministic": "true", "min_data_in_leaf": "5"}
	ds, err := lib.NewDataset(m, y, DatasetOptions{Params: params, FeatureNames: []string{"a", "b", "c", "d", "e"}})
	if err != nil {
		tb.Fatal(err)
	}
	defer ds.Close()
	b, err := Train(context.Background(), params, ds, TrainOptions{NumRounds: rounds})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}
