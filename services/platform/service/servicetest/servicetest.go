// Package servicetest checks a service's realMain the way an orchestrator sees it: it starts,
// serves /healthz, /readyz and /metrics on its admin port, and returns nil once its context is
// cancelled (the in-process equivalent of SIGTERM).
package servicetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// RealMain is the signature every service's realMain has.
type RealMain func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// running is a RealMain started by startReady: its admin base URL and how to stop it.
type running struct {
	t       *testing.T
	service string
	base    string
	client  *http.Client
	cancel  context.CancelFunc
	done    chan error
}

// startReady runs main with args plus -admin.addr on a free port and waits (within timeout)
// until /readyz answers 200; main is cancelled when the test ends if stop was not called.
func startReady(t *testing.T, service string, main RealMain, args []string, getenv func(string) string, timeout time.Duration) *running {
	t.Helper()
	admin := FreeAddr(t)
	args = append([]string{"-admin.addr", admin, "-shutdown.timeout", "5s"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &running{t: t, service: service, base: "http://" + admin, client: &http.Client{Timeout: 3 * time.Second}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- main(ctx, args, getenv, io.Discard) }()
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := get(r.client, r.base+"/readyz")
		if err == nil && code == http.StatusOK {
			return r
		}
		select {
		case err := <-r.done:
			t.Fatalf("%s exited before it was ready: %v", service, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: last /readyz = %d %q %v", service, timeout, code, body, err)
		}
	}
}

// stop cancels main and requires it to return nil within wait.
func (r *running) stop(wait time.Duration) {
	r.t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Fatalf("%s returned %v after cancel, want nil", r.service, err)
		}
	case <-time.After(wait):
		r.t.Fatalf("%s did not stop within %v of cancel", r.service, wait)
	}
}

// CheckLifecycle runs main with args plus -admin.addr on a free port, waits (bounded) until
// /readyz answers 200, checks /healthz and that /metrics carries mlops_build_info for
// service, then cancels and requires main to return nil within the drain timeout.
func CheckLifecycle(t *testing.T, service string, main RealMain, args []string, getenv func(string) string) {
	t.Helper()
	r := startReady(t, service, main, args, getenv, 30*time.Second)
	if code, _, err := get(r.client, r.base+"/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz = %d, %v; want 200", code, err)
	}
	want := fmt.Sprintf(`mlops_build_info{service=%q`, service)
	if code, body, err := get(r.client, r.base+"/metrics"); err != nil || code != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("/metrics = %d, %v; want 200 with %s", code, err, want)
	}
	r.stop(10 * time.Second)
}

func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// CheckReadyThroughOutage runs main with args plus -admin.addr on a free port, waits (bounded)
// until /readyz answers 200, then closes every proxy (the service's dependencies go away),
// checks they refuse connections, and requires /readyz to stay 200: readiness means "started
// and able to work", and an outage after start shows as lag and retries, not as every replica
// leaving its Service. Finally it cancels main and requires it to return nil.
func CheckReadyThroughOutage(t *testing.T, service string, main RealMain, args []string, getenv func(string) string, proxies ...*Proxy) {
	t.Helper()
	r := startReady(t, service, main, args, getenv, 60*time.Second)
	for _, p := range proxies {
		p.Close()
		if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
			_ = c.Close()
			t.Fatalf("dependency address %s still accepts connections after the outage began", p.Addr())
		}
	}
	for i := range 3 {
		if code, body, err := get(r.client, r.base+"/readyz"); err != nil || code != http.StatusOK {
			t.Fatalf("%s: /readyz %d during the dependency outage = %d %q %v, want 200", service, i, code, body, err)
		}
	}
	r.stop(15 * time.Second)
}
