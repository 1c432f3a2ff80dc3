package driftstat_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// writeNPY writes xs to path as a NumPy .npy file (format 1.0, little-endian float64, 1-D),
// so numpy.load reads exactly the bits the Go side used.
func writeNPY(t testing.TB, path string, xs []float64) {
	t.Helper()
	header := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': (%d,), }", len(xs))
	// Magic (6) + version (2) + header length (2) + header, padded with spaces and ending in a
	// newline so the data starts on a 64-byte boundary.
	total := 10 + len(header) + 1
	header += string(bytes.Repeat([]byte{' '}, (64-total%64)%64)) + "\n"
	var buf bytes.Buffer
	buf.Grow(10 + len(header) + 8*len(xs))
	buf.WriteString("\x93NUMPY\x01\x00")
	_ = binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	b := make([]byte, 8*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	buf.Write(b)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// runPython runs the script file with the project virtualenv's python, passing args, and
// decodes its standard output as JSON into out.
func runPython(t testing.TB, python, script string, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", python, filepath.Base(script), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("decode output of %s: %v\nstdout:\n%.2000s\nstderr:\n%s", filepath.Base(script), err, stdout.String(), stderr.String())
	}
}

// writeScript writes an inline Python script into dir and returns its path.
func writeScript(t testing.TB, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

// writeJSON writes v as JSON to dir/name and returns the path.
func writeJSON(t testing.TB, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %s: %v", name, err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

// pyFloat decodes a JSON number or one of the strings "nan", "inf", "-inf" (Python's
// json.dumps writes NaN and Infinity, which encoding/json rejects, so the scripts quote them).
type pyFloat float64

func (f *pyFloat) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		switch s {
		case "nan":
			*f = pyFloat(math.NaN())
		case "inf":
			*f = pyFloat(math.Inf(1))
		case "-inf":
			*f = pyFloat(math.Inf(-1))
		default:
			return fmt.Errorf("unexpected float string %q", s)
		}
		return nil
	}
	var x float64
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*f = pyFloat(x)
	return nil
}

// pyFloatHelpers is the Python side of pyFloat: fl(x) turns non-finite floats into strings.
const pyFloatHelpers = `
import math
def fl(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x
def fls(xs):
    return [fl(x) for x in xs]
`

// closeTo reports whether got is within tol of want (absolute), treating two NaNs as equal.
func closeTo(got, want, tol float64) bool {
	if math.IsNaN(got) || math.IsNaN(want) {
		return math.IsNaN(got) && math.IsNaN(want)
	}
	return math.Abs(got-want) <= tol
}

// relClose reports whether got is within rel·max(1, |want|) of want, NaNs equal.
func relClose(got, want, rel float64) bool {
	return closeTo(got, want, rel*math.Max(1, math.Abs(want)))
}
