package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streaming-mlops/mlops/services/platform/run"
)

// ReadyCheck reports whether one dependency of the service is ready; a nil error means ready.
type ReadyCheck func(ctx context.Context) error

// Admin is the admin HTTP server of a service: /metrics from the process registry, /healthz
// (the process is alive), /readyz (every readiness check passes and the service is not
// draining) and, only after EnablePprof, /debug/pprof. Its methods are safe for concurrent
// use.
type Admin struct {
	addr     string
	gatherer prometheus.Gatherer
	logger   *slog.Logger

	mu       sync.Mutex
	checks   map[string]ReadyCheck
	routes   map[string]http.Handler
	pprof    bool
	draining atomic.Bool
	listener net.Listener
	bound    chan struct{}
}

// NewAdmin returns an admin server for addr that serves the metrics gathered by g.
func NewAdmin(addr string, g prometheus.Gatherer, logger *slog.Logger) *Admin {
	return &Admin{addr: addr, gatherer: g, logger: logger, checks: map[string]ReadyCheck{}, bound: make(chan struct{})}
}

// AddReadyCheck registers a named readiness check, replacing one of the same name.
func (a *Admin) AddReadyCheck(name string, c ReadyCheck) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks[name] = c
}

// Handle adds a service-specific page (for example drift's HTML report) to the admin mux.
// Call it before the admin actor starts; later calls have no effect on a running server.
func (a *Admin) Handle(pattern string, h http.Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.routes == nil {
		a.routes = map[string]http.Handler{}
	}
	a.routes[pattern] = h
}

// EnablePprof adds the net/http/pprof handlers under /debug/pprof/. They are off by default:
// they reveal the command line (flags may carry secrets), heap contents and goroutine
// stacks, and a CPU profile or trace costs the service while it runs, so a service enables
// them only on request (-admin.pprof). Call it before the admin actor starts.
func (a *Admin) EnablePprof() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pprof = true
}

// Addr blocks until the server is listening (or ctx is done) and returns its address; useful
// when the configured address has port 0.
func (a *Admin) Addr(ctx context.Context) (string, error) {
	select {
	case <-a.bound:
		return a.listener.Addr().String(), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Handler returns the admin mux.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", a.serveReady)
	a.mu.Lock()
	for pattern, h := range a.routes {
		mux.Handle(pattern, h)
	}
	withPprof := a.pprof
	a.mu.Unlock()
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func (a *Admin) serveReady(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	a.mu.Lock()
	names := make([]string, 0, len(a.checks))
	for n := range a.checks {
		names = append(names, n)
	}
	checks := make(map[string]ReadyCheck, len(a.checks))
	for n, c := range a.checks {
		checks[n] = c
	}
	a.mu.Unlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var failed []error
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", n, err))
		}
	}
	if err := errors.Join(failed...); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Actor serves the admin endpoints until ctx is done. /readyz turns false as soon as ctx is
// cancelled; in-flight requests (a scrape) then get up to shutdownTimeout to finish.
func (a *Admin) Actor(shutdownTimeout time.Duration) run.Actor {
	return run.Actor{Name: "admin", Run: func(ctx context.Context) error {
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			return fmt.Errorf("listen admin %s: %w", a.addr, err)
		}
		a.listener = ln
		close(a.bound)
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		a.logger.Info("admin server listening", "addr", ln.Addr().String())
		select {
		case err := <-errc:
			return fmt.Errorf("serve admin: %w", err)
		case <-ctx.Done():
		}
		a.draining.Store(true)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		err = srv.Shutdown(sctx)
		if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	}}
}
