// Package mlflow is a small client for the MLflow tracking server's REST API: experiments,
// runs (params, metrics, tags), artifacts through the server's artifact proxy
// (--serve-artifacts, URIs "mlflow-artifacts:/..."), and the model registry (registered
// models, model versions, aliases, tags).
//
// Every call takes a context and runs under a per-call deadline (Client.Timeout). Transient
// failures (connection errors, 5xx, 429) are retried with capped, jittered exponential
// backoff a bounded number of times (Client.Retry). Failures are returned as *APIError,
// which carries MLflow's error_code and matches the sentinels ErrNotFound,
// ErrAlreadyExists, ErrInvalidParameter and ErrUnavailable with errors.Is.
//
// The API version is /api/2.0 as served by MLflow 3.x. See docs/mlflow.md for the artifact
// layout of a model version and the server flags this client expects.
package mlflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults used when the corresponding Client field is zero.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxDownloadBytes = 512 << 20
	DefaultRegisterWait     = 2 * time.Minute
)

const (
	apiPrefix      = "/api/2.0/mlflow/"
	artifactPrefix = "/api/2.0/mlflow-artifacts/artifacts"
	maxErrorBody   = 64 << 10
)

// RetryPolicy bounds retries of transient failures. The zero value means the defaults
// below; RetryPolicy{Attempts: 1} disables retries.
type RetryPolicy struct {
	// Attempts is the total number of tries, first one included.
	Attempts int
	// BaseDelay is the delay before the first retry; it doubles each retry.
	BaseDelay time.Duration
	// MaxDelay caps one delay.
	MaxDelay time.Duration
}

// Defaults of RetryPolicy: 4 attempts, 200ms doubling up to 2s, jittered to [d/2, d]
// (at most 1.4s of waiting in total).
const (
	DefaultRetryAttempts  = 4
	DefaultRetryBaseDelay = 200 * time.Millisecond
	DefaultRetryMaxDelay  = 2 * time.Second
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p == (RetryPolicy{}) {
		return RetryPolicy{Attempts: DefaultRetryAttempts, BaseDelay: DefaultRetryBaseDelay, MaxDelay: DefaultRetryMaxDelay}
	}
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultRetryBaseDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p
}

// delay returns the jittered wait before retry number n (n >= 1).
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	// Full jitter in [d/2, d]: spreads retries of many replicas without ever waiting 0.
	return d/2 + rand.N(d/2+1)
}

// Client talks to one MLflow tracking server. Set BaseURL; every other field has a
// default. A Client is safe for concurrent use; do not change its fields once in use.
type Client struct {
	// BaseURL is the server root, e.g. "http://127.0.0.1:5000" (no /api suffix).
	BaseURL string
	// HTTP sends the requests. Default: a client with its own transport and no overall
	// timeout (Timeout below bounds each call).
	HTTP *http.Client
	// Timeout is the deadline of one call including its retries, applied unless ctx
	// already ends sooner. Default: 30s.
	Timeout time.Duration
	// Retry bounds retries of transient failures. Default: 4 attempts, 200ms..2s backoff.
	Retry RetryPolicy
	// MaxDownloadBytes caps the size of one downloaded artifact. Default: 512 MiB.
	MaxDownloadBytes int64
	// RegisterWait bounds how long CreateModelVersion polls for READY. Default: 2m.
	RegisterWait time.Duration
	// Logger receives a Debug record per retry. Default: discard.
	Logger *slog.Logger
}

// New returns a Client for baseURL with default settings.
func New(baseURL string) *Client {
	return &Client{BaseURL: baseURL, HTTP: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// request describes one REST call.
type request struct {
	method string
	path   string     // absolute path beginning with "/api/"
	query  url.Values // GET parameters
	body   any        // JSON-encoded for POST/PATCH/DELETE when non-nil
	raw    []byte     // sent as-is (artifact upload) when non-nil
	// out receives the decoded JSON response when non-nil.
	out any
	// rawOut receives the response body bytes when non-nil (artifact download).
	rawOut *[]byte
}

// withDeadline derives the per-call context.
func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

// do sends r, retrying transient failures, and decodes the response.
func (c *Client) do(parent context.Context, r request) error {
	if c.BaseURL == "" {
		return errors.New("mlflow: client has no BaseURL")
	}
	ctx, cancel := c.withDeadline(parent)
	defer cancel()

	var payload []byte
	switch {
	case r.raw != nil:
		payload = r.raw
	case r.body != nil:
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("mlflow %s %s: encode request: %w", r.method, r.path, err)
		}
		payload = b
	}
	u := strings.TrimSuffix(c.BaseURL, "/") + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}

	policy := c.Retry.withDefaults()
	var lastErr error
	for attempt := 1; ; attempt++ {
		lastErr = c.once(ctx, r, u, payload)
		if lastErr == nil {
			return nil
		}
		if err := parent.Err(); err != nil {
			// The caller gave up: report that, not a server problem (lastErr is not
			// wrapped so that this never matches ErrUnavailable).
			return fmt.Errorf("mlflow %s %s: %w (last error: %v)", r.method, r.path, err, lastErr) //nolint:errorlint // lastErr must not match ErrUnavailable
		}
		if !IsUnavailable(lastErr) || attempt >= policy.Attempts || ctx.Err() != nil {
			return lastErr
		}
		wait := policy.delay(attempt)
		c.logger().DebugContext(ctx, "mlflow request retry", "method", r.method, "path", r.path, "attempt", attempt, "wait", wait, "err", lastErr)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if err := parent.Err(); err != nil {
				return fmt.Errorf("mlflow %s %s: %w (last error: %v)", r.method, r.path, err, lastErr) //nolint:errorlint // lastErr must not match ErrUnavailable
			}
			return lastErr // per-call deadline: lastErr already says unavailable
		case <-t.C:
		}
	}
}

// transportError wraps a failure to get any response; it matches ErrUnavailable.
type transportError struct {
	method, path string
	err          error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("mlflow %s %s: %v", e.method, e.path, e.err)
}
func (e *transportError) Unwrap() error        { return e.err }
func (e *transportError) Is(target error) bool { return target == ErrUnavailable }

// once makes a single attempt.
func (c *Client) once(ctx context.Context, r request, u string, payload []byte) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return fmt.Errorf("mlflow %s %s: build request: %w", r.method, r.path, err)
	}
	if payload != nil {
		if r.raw != nil {
			req.Header.Set("Content-Type", "application/octet-stream")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return &transportError{method: r.method, path: r.path, err: err}
	}
	defer func() { _ = resp.Body.Close() }()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeAPIError(r.method, r.path, resp)
	}
	switch {
	case r.rawOut != nil:
		limit := c.MaxDownloadBytes
		if limit <= 0 {
			limit = DefaultMaxDownloadBytes
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return &transportError{method: r.method, path: r.path, err: fmt.Errorf("read body: %w", err)}
		}
		if int64(len(b)) > limit {
			return fmt.Errorf("mlflow %s %s: artifact larger than %d bytes", r.method, r.path, limit)
		}
		if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
			return &transportError{method: r.method, path: r.path, err: fmt.Errorf("short body: %d of %d bytes", len(b), resp.ContentLength)}
		}
		*r.rawOut = b
	case r.out != nil:
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return &transportError{method: r.method, path: r.path, err: fmt.Errorf("read body: %w", err)}
		}
		if err := json.Unmarshal(b, r.out); err != nil {
			return fmt.Errorf("mlflow %s %s: decode response: %w", r.method, r.path, err)
		}
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	}
	return nil
}

// decodeAPIError turns a non-2xx response into an *APIError.
func decodeAPIError(method, path string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Method: method, Path: path, StatusCode: resp.StatusCode}
	var doc struct {
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(b, &doc) == nil && doc.ErrorCode != "" {
		e.Code, e.Message = doc.ErrorCode, doc.Message
	} else {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		e.Message = msg
	}
	return e
}

// get is a GET under /api/2.0/mlflow/.
func (c *Client) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	return c.do(ctx, request{method: http.MethodGet, path: apiPrefix + endpoint, query: q, out: out})
}

// post is a POST of a JSON body under /api/2.0/mlflow/.
func (c *Client) post(ctx context.Context, endpoint string, body, out any) error {
	return c.do(ctx, request{method: http.MethodPost, path: apiPrefix + endpoint, body: body, out: out})
}
