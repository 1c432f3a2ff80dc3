// Package telemetry gives every service the same observability: a JSON slog logger, one
// Prometheus registry per process and the admin HTTP server (/metrics, /healthz, /readyz,
// and /debug/pprof when enabled).
package telemetry

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
)

// Config holds the settings every service shares for logging and the admin server.
type Config struct {
	// LogLevel is debug, info, warn or error. Default: info.
	LogLevel string
	// AdminAddr is the listen address of the admin HTTP server (/metrics, /healthz, /readyz).
	AdminAddr string
	// Pprof serves /debug/pprof on the admin server (-admin.pprof, ADMIN_PPROF). Default:
	// false; see Admin.EnablePprof.
	Pprof bool
}

// RegisterFlags registers -log.level (LOG_LEVEL), -admin.addr (ADMIN_ADDR) and -admin.pprof
// (ADMIN_PPROF) on fs.
// defaultAdmin is the service's default admin address, e.g. "127.0.0.1:8081".
func (c *Config) RegisterFlags(fs *flag.FlagSet, getenv func(string) string, defaultAdmin string) {
	flagenv.StringVar(fs, getenv, &c.LogLevel, "log.level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	flagenv.StringVar(fs, getenv, &c.AdminAddr, "admin.addr", "ADMIN_ADDR", defaultAdmin, "admin HTTP listen address (/metrics /healthz /readyz)")
	flagenv.BoolVar(fs, getenv, &c.Pprof, "admin.pprof", "ADMIN_PPROF", false, "serve /debug/pprof on the admin address (exposes command line, heap and stacks)")
}

// Validate reports a bad log level or an empty admin address.
func (c Config) Validate() error {
	if _, err := ParseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.AdminAddr == "" {
		return fmt.Errorf("admin address is empty")
	}
	return nil
}

// ParseLevel maps debug, info, warn and error (case-insensitive) to a slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns a JSON logger writing to w at the given level. An unknown level falls
// back to info; validate it earlier with Config.Validate.
func NewLogger(w io.Writer, level string) *slog.Logger {
	l, err := ParseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// NewRegistry returns a fresh registry with the Go runtime and process collectors and a
// mlops_build_info{service,version} gauge set to 1.
func NewRegistry(service, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
		Name: "mlops_build_info",
		Help: "Build information of the running service; always 1.",
	}, []string{"service", "version"}).WithLabelValues(service, version).Set(1)
	return reg
}
