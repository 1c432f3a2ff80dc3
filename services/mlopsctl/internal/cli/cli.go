// Package cli implements mlopsctl's subcommands.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/esauth"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
)

// ErrUsage is returned for an unknown or missing subcommand.
var ErrUsage = errors.New("usage: mlopsctl <command> [flags]; commands: status, train, models (list|describe|promote|rollback|history|asof), drift (status|windows|report), dlq (list|show|redrive), topics (ensure|list)")

// Run executes one mlopsctl command line.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return ErrUsage
	}
	switch args[0] {
	case "status":
		return status(ctx, args[1:], getenv, stdout, stderr)
	case "train":
		return train(ctx, args[1:], getenv, stdout, stderr)
	case "models":
		return models(ctx, args[1:], getenv, stdout, stderr)
	case "drift":
		return drift(ctx, args[1:], getenv, stdout, stderr)
	case "dlq":
		return dlq(ctx, args[1:], getenv, stdout, stderr)
	case "topics":
		return topicsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, ErrUsage.Error())
		return nil
	default:
		return fmt.Errorf("unknown command %q: %w", args[0], ErrUsage)
	}
}

// probe is one thing status checks.
type probe struct {
	name  string
	kind  string // tcp, http, or es (http plus the cluster health's status)
	addr  string
	state string
	// client, when set, replaces the shared client (Elasticsearch's credentials and TLS).
	client *http.Client
}

func status(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kafka := flagenv.String(fs, getenv, "kafka.brokers", "KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap broker")
	es := flagenv.String(fs, getenv, "es.url", "ES_URL", "http://127.0.0.1:9200", "Elasticsearch URL")
	var esAuth esauth.Config
	esAuth.RegisterFlags(fs, getenv)
	redis := flagenv.String(fs, getenv, "redis.addr", "REDIS_ADDR", "127.0.0.1:6379", "Redis address")
	mlflow := flagenv.String(fs, getenv, "mlflow.url", "MLFLOW_URL", "http://127.0.0.1:5000", "MLflow URL")
	prom := flagenv.String(fs, getenv, "prometheus.url", "PROMETHEUS_URL", "http://127.0.0.1:9090", "Prometheus URL")
	// The services whose admin /readyz status checks, with their default admin ports (each
	// service's -admin.addr default; scripts/services.sh uses the same).
	services := []struct{ name, port string }{
		{"ingestion", "8081"}, {"features", "8082"}, {"scoring", "8083"},
		{"predlog", "8084"}, {"drift", "8085"}, {"trainer", "8086"}, {"scoring-purchase", "8087"},
	}
	host := flagenv.String(fs, getenv, "services.host", "SERVICES_HOST", "127.0.0.1", "host of the services' admin addresses that name no host")
	admins := make([]*string, len(services))
	for i, s := range services {
		admins[i] = flagenv.String(fs, getenv, s.name+".admin", strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))+"_ADMIN_ADDR", "",
			fmt.Sprintf("%s admin address, host:port or URL (default <services.host>:%s; a bare :port takes services.host)", s.name, s.port))
	}
	timeout := flagenv.Duration(fs, getenv, "timeout", "MLOPSCTL_TIMEOUT", 2*time.Second, "per-check timeout")
	if err := flagenv.Parse(fs, args); err != nil {
		return err
	}
	esClient, err := esAuth.Client()
	if err != nil {
		return err
	}
	esClient.Timeout = *timeout
	probes := []*probe{
		{name: "kafka", kind: "tcp", addr: strings.Split(*kafka, ",")[0]},
		// GET / needs Elasticsearch's rest-root module, which the jar-based local stack lacks
		// (405 Method Not Allowed while healthy); _cluster/health answers everywhere.
		{name: "elasticsearch", kind: "es", addr: strings.TrimRight(*es, "/") + "/_cluster/health", client: esClient},
		{name: "redis", kind: "tcp", addr: *redis},
		{name: "mlflow", kind: "http", addr: strings.TrimRight(*mlflow, "/") + "/health"},
		{name: "prometheus", kind: "http", addr: strings.TrimRight(*prom, "/") + "/-/ready"},
	}
	for i, s := range services {
		probes = append(probes, &probe{name: s.name, kind: "http", addr: readyURL(*admins[i], *host, s.port)})
	}
	client := &http.Client{Timeout: *timeout}
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			p.state = check(cctx, client, p)
		}()
	}
	wg.Wait()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tADDRESS\tSTATE")
	down := 0
	for _, p := range probes {
		if p.state != "up" {
			down++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.name, p.addr, p.state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if down > 0 {
		return fmt.Errorf("%d of %d components are not up", down, len(probes))
	}
	return nil
}

// readyURL is the /readyz URL of an admin address given as host:port, :port (host from
// defHost), a URL, or empty (defHost and defPort).
func readyURL(addr, defHost, defPort string) string {
	if addr == "" {
		addr = net.JoinHostPort(defHost, defPort)
	}
	if !strings.Contains(addr, "://") {
		if h, p, err := net.SplitHostPort(addr); err == nil && h == "" {
			addr = net.JoinHostPort(defHost, p)
		}
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/") + "/readyz"
}

func check(ctx context.Context, client *http.Client, p *probe) string {
	switch p.kind {
	case "tcp":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return "down: " + err.Error()
		}
		_ = c.Close()
		return "up"
	default:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.addr, nil)
		if err != nil {
			return "bad address: " + err.Error()
		}
		if p.client != nil {
			client = p.client
		}
		resp, err := client.Do(req)
		if err != nil {
			return "down: " + err.Error()
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return "not ready: " + resp.Status
		}
		if p.kind == "es" {
			var health struct {
				Status string `json:"status"`
			}
			if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&health); err != nil {
				return "not ready: cluster health: " + err.Error()
			}
			if health.Status != "green" && health.Status != "yellow" {
				return "not ready: cluster status " + health.Status
			}
		}
		return "up"
	}
}
