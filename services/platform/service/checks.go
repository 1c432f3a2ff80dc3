package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/streaming-mlops/mlops/services/platform/telemetry"
)

// DialCheck is a readiness check that passes when at least one of addrs accepts a TCP
// connection (a Kafka bootstrap list, a Redis address).
func DialCheck(addrs ...string) telemetry.ReadyCheck {
	return func(ctx context.Context) error {
		var errs []error
		var d net.Dialer
		for _, a := range addrs {
			c, err := d.DialContext(ctx, "tcp", a)
			if err == nil {
				return c.Close()
			}
			errs = append(errs, err)
		}
		return fmt.Errorf("none of %v reachable: %w", addrs, errors.Join(errs...))
	}
}

// HTTPCheck is a readiness check that passes when GET url answers with a 2xx status
// (Elasticsearch's root, MLflow's /health).
func HTTPCheck(client *http.Client, url string) telemetry.ReadyCheck {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// Latch is a readiness check that fails until c passes once and passes from then on. It
// answers "has the service reached its dependency since it started", not "is the dependency
// up right now": a dependency outage after start shows as back-pressure, retries and consumer
// lag in the metrics instead of taking every replica out of its Service at the same moment
// (which would turn a blip of Kafka or Redis into a full outage of the gRPC API, and on a
// rolling update stall the rollout). Safe for concurrent use.
func Latch(c telemetry.ReadyCheck) telemetry.ReadyCheck {
	var reached atomic.Bool
	return func(ctx context.Context) error {
		if reached.Load() {
			return nil
		}
		if err := c(ctx); err != nil {
			return fmt.Errorf("not reached since start: %w", err)
		}
		reached.Store(true)
		return nil
	}
}
