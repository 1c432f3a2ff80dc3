package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
)

// repoRoot finds the directory holding go.work above the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the test directory")
		}
		dir = parent
	}
}

// buildAll builds the named service binaries (and mlopsctl) once into a temporary directory.
func buildAll(t *testing.T, names ...string) map[string]string {
	t.Helper()
	root := repoRoot(t)
	out := t.TempDir()
	bins := map[string]string{}
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		bin := filepath.Join(out, n)
		bins[n] = bin
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", "build", "-o", bin, "./services/"+n+"/cmd/"+n)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %s: %v\n%s", n, err, b)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return bins
}

// logDir returns the directory of the test's service logs, made on first use: removed after
// a test that passed, kept (and named in the output) after one that failed, so the whole
// logs of every service are there to read and not only the tails the failures quote.
func logDir(t *testing.T) string {
	t.Helper()
	logDirs.Lock()
	defer logDirs.Unlock()
	if d, ok := logDirs.m[t]; ok {
		return d
	}
	d, err := os.MkdirTemp("", "e2e-logs-")
	if err != nil {
		t.Fatal(err)
	}
	logDirs.m[t] = d
	t.Cleanup(func() {
		logDirs.Lock()
		delete(logDirs.m, t)
		logDirs.Unlock()
		if t.Failed() {
			t.Logf("service logs kept for inspection: %s", d)
			return
		}
		os.RemoveAll(d)
	})
	return d
}

var logDirs = struct {
	sync.Mutex
	m map[*testing.T]string
}{m: map[*testing.T]string{}}

// proc is one service process started by the test.
type proc struct {
	name  string
	bin   string
	env   []string
	args  []string // including the admin and gRPC addresses, so a restart keeps them
	cmd   *exec.Cmd
	admin string
	grpc  string
	log   string
	done  chan error
}

// start runs bin with args plus its own admin (and gRPC) address, waits until /readyz is 200,
// and registers a cleanup that stops it with SIGTERM and requires a clean exit.
func start(t *testing.T, name, bin string, grpc bool, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, bin: bin, env: env, admin: servicetest.FreeAddr(t), log: filepath.Join(logDir(t), name+".log")}
	p.args = append([]string{"-admin.addr", p.admin}, args...)
	if grpc {
		p.grpc = servicetest.FreeAddr(t)
		p.args = append(p.args, "-grpc.addr", p.grpc)
	}
	p.launch(t)
	return p
}

// launch starts the process (again) with the same arguments, appending to its log.
func (p *proc) launch(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.done = make(chan error, 1)
	p.cmd = exec.Command(p.bin, p.args...)
	// Local test processes run in development mode (the trainer refuses to start without an
	// admin credential otherwise); p.env comes later and may set a credential.
	p.cmd.Env = append(append(os.Environ(), "MLOPS_DEV=1"), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := p.done
	go func() { done <- p.cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { p.stop(t) })
	p.waitReady(t, 2*time.Minute)
}

func (p *proc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + p.admin + "/readyz")
		if err == nil {
			b := make([]byte, 512)
			n, _ := resp.Body.Read(b)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = strings.TrimSpace(string(b[:n]))
		} else {
			last = err.Error()
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited before ready: %v\n%s", p.name, err, p.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s not ready after %v (last /readyz: %s)\n%s", p.name, timeout, last, p.tail())
}

// stop sends SIGTERM and requires exit status 0 within 30s.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return // already gone; the test that killed it checked what it needed
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, p.tail())
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("%s ignored SIGTERM for 30s\n%s", p.name, p.tail())
	}
}

// kill9 kills the process with SIGKILL, as a crash would: no draining, no final commit.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- fmt.Errorf("killed: %v", err)
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return p.name + " log:\n" + strings.Join(lines, "\n")
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	t.Fatalf("timed out after %v waiting for %s (last: %s)", timeout, what, last)
}
