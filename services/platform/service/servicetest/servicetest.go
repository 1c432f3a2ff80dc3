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

// CheckLifecycle runs main with args plus -admin.addr on a free port, waits (bounded) until
// /readyz answers 200, checks /healthz and that /metrics carries mlops_build_info for
// service, then cancels and requires main to return nil within the drain timeout.
func CheckLifecycle(t *testing.T, service string, main RealMain, args []string, getenv func(string) string) {
	t.Helper()
	admin := FreeAddr(t)
	args = append([]string{"-admin.addr", admin, "-shutdown.timeout", "5s"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- main(ctx, args, getenv, io.Discard) }()

	client := &http.Client{Timeout: 2 * time.Second}
	base := "http://" + admin
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := get(client, base+"/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("%s exited before it was ready: %v", service, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s: last /readyz = %d %q %v", service, code, body, err)
		}
	}
	if code, _, err := get(client, base+"/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz = %d, %v; want 200", code, err)
	}
	want := fmt.Sprintf(`mlops_build_info{service=%q`, service)
	if code, body, err := get(client, base+"/metrics"); err != nil || code != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("/metrics = %d, %v; want 200 with %s", code, err, want)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s returned %v after cancel, want nil", service, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not stop within 10s of cancel", service)
	}
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
	admin := FreeAddr(t)
	args = append([]string{"-admin.addr", admin, "-shutdown.timeout", "5s"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- main(ctx, args, getenv, io.Discard) }()

	client := &http.Client{Timeout: 3 * time.Second}
	base := "http://" + admin
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, err := get(client, base+"/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("%s exited before it was ready: %v", service, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60s", service)
		}
	}
	for _, p := range proxies {
		p.Close()
		if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
			_ = c.Close()
			t.Fatalf("dependency address %s still accepts connections after the outage began", p.Addr())
		}
	}
	for i := range 3 {
		if code, body, err := get(client, base+"/readyz"); err != nil || code != http.StatusOK {
			t.Fatalf("%s: /readyz %d during the dependency outage = %d %q %v, want 200", service, i, code, body, err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s returned %v after cancel during the outage, want nil", service, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop within 15s of cancel during the outage", service)
	}
}
