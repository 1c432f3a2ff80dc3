package scripts_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repo is a throwaway git repository shaped like this one: proto/buf.yaml, one schema, and
// proto/scripts/buf-breaking.sh, committed on branch "work".
type repo struct {
	dir  string
	bin  string // holds a fake go that prints its arguments instead of running buf
	head string
}

func newRepo(t *testing.T, withSchema bool) *repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is required: %v", err)
	}
	r := &repo{dir: t.TempDir(), bin: t.TempDir()}
	script, err := os.ReadFile("buf-breaking.sh")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"proto/buf.yaml":                "version: v2\n",
		"proto/scripts/buf-breaking.sh": string(script),
	}
	if withSchema {
		files["proto/mlops/x/v1/x.proto"] = "syntax = \"proto3\";\npackage mlops.x.v1;\n"
	}
	for name, content := range files {
		p := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fakeGo := "#!/bin/sh\necho \"go $*\"\n"
	if err := os.WriteFile(filepath.Join(r.bin, "go"), []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	r.git(t, "init", "-q", "-b", "work")
	r.git(t, "add", ".")
	r.git(t, "commit", "-q", "-m", "first")
	r.head = r.git(t, "rev-parse", "HEAD")
	return r
}

func (r *repo) git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = cleanEnv(nil)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// cleanEnv is the test's environment without git and buf-breaking settings, plus extra.
func cleanEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GIT_") || strings.HasPrefix(kv, "BUF_BREAKING_AGAINST=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// run runs the repository's buf-breaking.sh with BUF_BREAKING_AGAINST=against (unset when
// empty) and returns its exit code and combined output.
func (r *repo) run(t *testing.T, against string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(r.dir, "proto/scripts/buf-breaking.sh"))
	cmd.Dir = t.TempDir() // "run from any directory"
	extra := []string{"PATH=" + r.bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	if against != "" {
		extra = append(extra, "BUF_BREAKING_AGAINST="+against)
	}
	cmd.Env = cleanEnv(extra)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run buf-breaking.sh: %v", err)
	}
	return code, out.String()
}

// The breaking check must never pass by comparing against nothing: a base that does not
// exist fails loudly. The default base is main, or origin/main in a clone that has only the
// remote-tracking branch (CI checking out another branch); naming the current commit
// (BUF_BREAKING_AGAINST=HEAD) is the explicit way to compare against itself.
func TestBufBreakingBase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		withSchema bool
		setup      func(t *testing.T, r *repo)
		against    string
		wantCode   int
		wantOut    string // substring of the output; "REF" stands for the base's commit
	}{
		{name: "no main anywhere", withSchema: true, wantCode: 1, wantOut: "no base to compare against"},
		{name: "explicit ref missing", withSchema: true, against: "v9.9.9", wantCode: 1, wantOut: "'v9.9.9' does not exist"},
		{name: "explicitly the same commit", withSchema: true, against: "HEAD", wantOut: "--against REPO#ref=REF,subdir=proto"},
		{name: "local main", withSchema: true, setup: func(t *testing.T, r *repo) { r.git(t, "branch", "main") },
			wantOut: "--against REPO#ref=REF,subdir=proto"},
		{name: "only origin/main", withSchema: true, setup: func(t *testing.T, r *repo) {
			r.git(t, "update-ref", "refs/remotes/origin/main", "HEAD")
		}, wantOut: "--against REPO#ref=REF,subdir=proto"},
		{name: "base without schemas yet", setup: func(t *testing.T, r *repo) { r.git(t, "branch", "main") },
			wantOut: "skipped: 'main' has no schemas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRepo(t, tt.withSchema)
			if tt.setup != nil {
				tt.setup(t, r)
			}
			code, out := r.run(t, tt.against)
			gitDir := r.git(t, "rev-parse", "--path-format=absolute", "--git-common-dir")
			want := strings.NewReplacer("REF", r.head, "REPO", gitDir).Replace(tt.wantOut)
			if code != tt.wantCode || !strings.Contains(out, want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and output containing %q", code, out, tt.wantCode, want)
			}
		})
	}
}
