package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/datasetfile"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

func TestRealMain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name      string
		args      []string
		wantLines int
		keyed     bool
		labels    string // file expected to hold wantLines labels
		wantErr   string
	}{
		{name: "plain", args: []string{"-n", "50", "-accounts", "100"}, wantLines: 50},
		{name: "keyed with labels file", args: []string{"-n", "50", "-accounts", "100", "-key", "-labels", filepath.Join(dir, "l.jsonl")}, wantLines: 50, keyed: true,
			labels: filepath.Join(dir, "l.jsonl")},
		{name: "interleaved labels", args: []string{"-n", "20", "-accounts", "100", "-labels", "-"}, wantLines: 40},
		{name: "purchase", args: []string{"-n", "30", "-scenario", "purchase", "-accounts", "100"}, wantLines: 30},
		{name: "drift pattern", args: []string{"-n", "10", "-drift-after", "1h", "-drift-pattern", "bust_out"}, wantLines: 10},
		{name: "drift scenario", args: []string{"-n", "10", "-drift-after", "1h", "-drift", "new-pattern"}, wantLines: 10},
		{name: "purchase drift scenario", args: []string{"-n", "10", "-scenario", "purchase", "-drift", "season"}, wantLines: 10},
		{name: "bad scenario", args: []string{"-scenario", "x"}, wantErr: "unknown -scenario"},
		{name: "bad drift scenario", args: []string{"-drift", "x"}, wantErr: "unknown drift scenario"},
		{name: "bad pattern", args: []string{"-drift-after", "1h", "-drift-pattern", "x"}, wantErr: "unknown fraud pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := realMain(context.Background(), tt.args, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("realMain() = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != tt.wantLines {
				t.Fatalf("%d lines, want %d", len(lines), tt.wantLines)
			}
			for _, l := range lines {
				doc := l
				if tt.keyed {
					key, rest, ok := strings.Cut(l, "\t")
					if !ok || !strings.HasPrefix(key, "acct-") {
						t.Fatalf("line not keyed by account: %q", l)
					}
					doc = rest
				}
				if !json.Valid([]byte(doc)) {
					t.Fatalf("invalid JSON line %q", doc)
				}
			}
			if tt.labels != "" {
				b, err := os.ReadFile(tt.labels)
				if err != nil {
					t.Fatal(err)
				}
				if n := strings.Count(string(b), "\n"); n != tt.wantLines {
					t.Errorf("labels file has %d lines, want %d (one per transaction after drain)", n, tt.wantLines)
				}
			}
		})
	}
}

func TestDataset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		spec featurespec.Spec
	}{
		{name: "fraud", args: []string{"-accounts", "200", "-warmup", "24h"}, spec: featurespec.Fraud()},
		{name: "purchase", args: []string{"-scenario", "purchase", "-accounts", "200"}, spec: featurespec.Purchase()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "rows.csv.gz")
			var out bytes.Buffer
			if err := realMain(context.Background(), append(tt.args, "-n", "500", "-dataset", path), &out); err != nil {
				t.Fatal(err)
			}
			rows, err := datasetfile.ReadFile(path, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if rows.Len() != 500 || out.Len() != 0 {
				t.Errorf("%d rows in the file and %d bytes on stdout, want 500 and none", rows.Len(), out.Len())
			}
		})
	}
}
