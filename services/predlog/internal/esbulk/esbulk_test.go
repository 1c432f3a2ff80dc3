package esbulk_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
)

// silentServer accepts TCP connections and never says a word, like a host whose Elasticsearch
// hangs while connecting (TLS never completes). It returns an https URL to it.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "https://" + l.Addr().String()
}

// Connecting (TCP connect and TLS handshake) is bounded by the dial timeout, so a hung
// Elasticsearch fails a request as unavailable (a transient error the consumer retries)
// instead of blocking the handler without a deadline.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []esbulk.Option
		want time.Duration // the dial timeout in effect
	}{
		{name: "default", want: esbulk.DefaultDialTimeout},
		{name: "configured", opts: []esbulk.Option{esbulk.WithDialTimeout(200 * time.Millisecond)}, want: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := esbulk.New(silentServer(t), time.Minute, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			// The caller's context has a far deadline (the consumer loop's has none).
			ctx, cancel := context.WithTimeout(context.Background(), tt.want+20*time.Second)
			defer cancel()
			start := time.Now()
			_, err = c.Bulk(ctx, []esbulk.Op{{Action: esbulk.ActionDelete, Index: "i", ID: "1"}})
			took := time.Since(start)
			if !errors.Is(err, esbulk.ErrUnavailable) {
				t.Errorf("Bulk() error = %v, want one wrapping ErrUnavailable", err)
			}
			if ctx.Err() != nil || took > tt.want+3*time.Second {
				t.Errorf("Bulk() took %v, want about the dial timeout %v", took, tt.want)
			}
		})
	}
}
