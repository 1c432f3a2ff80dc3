// Package datasetfiletest gives tests simulated training sets as dataset files, written by
// the simulator's command (loadtest/cmd/simulate -dataset). Tests get simulated data this
// way, without importing the simulator's module, so the services' go.mod files need not
// require it.
package datasetfiletest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/datasetfile"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

var (
	buildMu  sync.Mutex
	simulate string // path of the built command, once built
)

// Simulate runs loadtest/cmd/simulate with args (e.g. "-n", "20000", "-accounts", "1000",
// "-warmup", "24h"; "-scenario", "purchase" for sessions) and "-dataset <file>", and returns
// the path of the file (in t.TempDir()). The command is built once per test process, from
// the repository that contains the working directory (the one with go.work).
func Simulate(t testing.TB, args ...string) string {
	t.Helper()
	bin := build(t)
	path := filepath.Join(t.TempDir(), "simulated.csv.gz")
	cmd := exec.Command(bin, append(append([]string(nil), args...), "-dataset", path)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("simulate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return path
}

// Read runs Simulate and reads the file back with spec.
func Read(t testing.TB, spec featurespec.Spec, args ...string) *datasetfile.Rows {
	t.Helper()
	rows, err := datasetfile.ReadFile(Simulate(t, args...), spec)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func build(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if simulate != "" {
		return simulate
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "datasetfiletest-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "simulate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/simulate")
	cmd.Dir = filepath.Join(root, "loadtest")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build loadtest/cmd/simulate: %v\n%s", err, out)
	}
	simulate = bin
	return bin
}

// repoRoot is the nearest directory above the working directory that holds go.work.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run the tests inside the repository")
		}
		dir = parent
	}
}
