package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastRetry keeps unit tests quick while still exercising backoff.
var fastRetry = RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

// newFake starts an httptest server with handler h and returns a client for it. Both are
// closed when the test ends.
func newFake(t *testing.T, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	c := New(srv.URL)
	c.Retry = fastRetry
	t.Cleanup(func() {
		c.HTTP.CloseIdleConnections()
		srv.Close()
	})
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func mlflowError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "message": msg, "error_class": code})
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		body        string
		wantCode    string
		wantIs      []error
		wantIsNot   []error
		wantAttempt int32
	}{
		{
			name: "not found", status: 404,
			body:     `{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Run with id=x not found"}`,
			wantCode: CodeResourceDoesNotExist, wantIs: []error{ErrNotFound},
			wantIsNot: []error{ErrAlreadyExists, ErrUnavailable}, wantAttempt: 1,
		},
		{
			name: "already exists", status: 400,
			body:     `{"error_code":"RESOURCE_ALREADY_EXISTS","message":"exists"}`,
			wantCode: CodeResourceAlreadyExists, wantIs: []error{ErrAlreadyExists},
			wantIsNot: []error{ErrNotFound, ErrUnavailable}, wantAttempt: 1,
		},
		{
			name: "invalid parameter", status: 400,
			body:     `{"error_code":"INVALID_PARAMETER_VALUE","message":"bad"}`,
			wantCode: CodeInvalidParameterValue, wantIs: []error{ErrInvalidParameter},
			wantIsNot: []error{ErrNotFound, ErrUnavailable}, wantAttempt: 1,
		},
		{
			name: "internal error is retried", status: 500,
			body:     `{"error_code":"INTERNAL_ERROR","message":"db locked"}`,
			wantCode: CodeInternalError, wantIs: []error{ErrUnavailable},
			wantIsNot: []error{ErrNotFound}, wantAttempt: 3,
		},
		{
			name: "host check 403 is plain text", status: 403,
			body:     "Invalid Host header - possible DNS rebinding attack detected",
			wantCode: "", wantIsNot: []error{ErrNotFound, ErrUnavailable}, wantAttempt: 1,
		},
		{
			name: "429 is retried", status: 429, body: "slow down",
			wantIs: []error{ErrUnavailable}, wantAttempt: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			_, err := c.GetRun(t.Context(), "x")
			if err == nil {
				t.Fatal("GetRun() succeeded, want error")
			}
			if got := ErrorCode(err); got != tt.wantCode {
				t.Errorf("ErrorCode() = %q, want %q", got, tt.wantCode)
			}
			ae, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if ae.StatusCode != tt.status || ae.Path != "/api/2.0/mlflow/runs/get" || ae.Method != "GET" {
				t.Errorf("APIError = %+v, want status %d on GET runs/get", ae, tt.status)
			}
			if !strings.Contains(err.Error(), "get run x") {
				t.Errorf("error %q lacks context", err)
			}
			for _, target := range tt.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false, want true", err, target)
				}
			}
			for _, target := range tt.wantIsNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = true, want false", err, target)
				}
			}
			if got := calls.Load(); got != tt.wantAttempt {
				t.Errorf("server saw %d attempts, want %d", got, tt.wantAttempt)
			}
		})
	}
}

func TestRetryRecovers(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			mlflowError(w, 503, "TEMPORARILY_UNAVAILABLE", "busy")
			return
		}
		writeJSON(w, 200, map[string]any{"experiment": map[string]string{"experiment_id": "7", "lifecycle_stage": "active"}})
	}))
	id, err := c.EnsureExperiment(t.Context(), "e")
	if err != nil {
		t.Fatalf("EnsureExperiment() = %v, want success after retries", err)
	}
	if id != "7" || calls.Load() != 3 {
		t.Errorf("EnsureExperiment() = %q after %d calls, want \"7\" after 3", id, calls.Load())
	}
}

func TestConnectionRefusedIsUnavailable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	c := New("http://" + addr)
	c.Retry = fastRetry
	t.Cleanup(c.HTTP.CloseIdleConnections)
	_, err = c.GetModelVersion(t.Context(), "m", "1")
	if !IsUnavailable(err) {
		t.Fatalf("GetModelVersion() against a closed port = %v, want ErrUnavailable", err)
	}
	if ErrorCode(err) != "" {
		t.Errorf("ErrorCode() = %q, want empty for a transport error", ErrorCode(err))
	}
}

// blockingServer answers nothing until the request is abandoned by the client. It sends
// on started (when not full) as each request arrives.
func blockingServer(t *testing.T, calls *atomic.Int32, started chan<- struct{}) *Client {
	t.Helper()
	return newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
}

func TestPerCallDeadlineIsUnavailable(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := blockingServer(t, &calls, nil)
	c.Timeout = 50 * time.Millisecond
	start := time.Now()
	_, err := c.GetRun(t.Context(), "r")
	if !IsUnavailable(err) {
		t.Fatalf("GetRun() past its deadline = %v, want ErrUnavailable", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetRun() = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("GetRun() took %s, want it bounded by the 50ms deadline", d)
	}
}

func TestCallerCancelIsNotUnavailable(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	started := make(chan struct{}, 1)
	c := blockingServer(t, &calls, started)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.GetRun(ctx, "r")
		done <- err
	}()
	<-started
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("GetRun() after cancel = %v, want context.Canceled", err)
	}
	if IsUnavailable(err) {
		t.Errorf("GetRun() after cancel = %v matches ErrUnavailable; a caller cancel must not look like an outage", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("server saw %d attempts after cancel, want 1", got)
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{Attempts: 10, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{30, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			t.Parallel()
			for range 200 {
				if d := p.delay(tt.n); d < tt.min || d > tt.max {
					t.Fatalf("delay(%d) = %s, want in [%s, %s]", tt.n, d, tt.min, tt.max)
				}
			}
		})
	}
	if got := (RetryPolicy{}).withDefaults(); got.Attempts != DefaultRetryAttempts || got.MaxDelay != DefaultRetryMaxDelay {
		t.Errorf("zero RetryPolicy defaults to %+v", got)
	}
}

func TestNumberJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   float64
		wire string
	}{
		{0.25, `0.25`},
		{math.Inf(1), `"Infinity"`},
		{math.Inf(-1), `"-Infinity"`},
		{math.NaN(), `"NaN"`},
	}
	for _, tt := range tests {
		t.Run(tt.wire, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(number(tt.in))
			if err != nil || string(b) != tt.wire {
				t.Fatalf("Marshal(%v) = %s, %v; want %s", tt.in, b, err, tt.wire)
			}
			var back number
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !(float64(back) == tt.in || math.IsNaN(tt.in) && math.IsNaN(float64(back))) {
				t.Errorf("round trip of %v = %v", tt.in, float64(back))
			}
		})
	}
	var n number
	if err := json.Unmarshal([]byte(`"abc"`), &n); err == nil {
		t.Error(`Unmarshal("abc") succeeded, want error`)
	}
}

func TestCleanRel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want   string
		allowEmpty bool
		wantErr    bool
	}{
		{in: "model/model.txt", want: "model/model.txt"},
		{in: "plots/a b.png", want: "plots/a b.png"},
		{in: "model/", want: "model"},
		{in: "", wantErr: true},
		{in: "", allowEmpty: true, want: ""},
		{in: "/etc/passwd", wantErr: true},
		{in: "model/../../x", wantErr: true},
		{in: "./x", wantErr: true},
		{in: "a//b", wantErr: true},
		{in: `a\b`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := cleanRel(tt.in, tt.allowEmpty)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("cleanRel(%q) = %q, %v; want %q, err=%v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestProxyPath(t *testing.T) {
	t.Parallel()
	c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/2.0/mlflow/runs/get" {
			http.NotFound(w, r)
			return
		}
		switch r.URL.Query().Get("run_id") {
		case "abc":
			writeJSON(w, 200, map[string]any{"run": map[string]any{"info": map[string]string{"run_id": "abc", "artifact_uri": "mlflow-artifacts:/3/abc/artifacts"}}})
		case "s3":
			writeJSON(w, 200, map[string]any{"run": map[string]any{"info": map[string]string{"run_id": "s3", "artifact_uri": "s3://b/3/s3/artifacts"}}})
		default:
			mlflowError(w, 404, CodeResourceDoesNotExist, "no run")
		}
	}))
	tests := []struct {
		uri     string
		want    string
		wantErr error
	}{
		{uri: "mlflow-artifacts:/1/r/artifacts", want: "1/r/artifacts"},
		{uri: "mlflow-artifacts:/1/r/artifacts/model/", want: "1/r/artifacts/model"},
		{uri: "mlflow-artifacts://127.0.0.1:5000/1/r/artifacts", want: "1/r/artifacts"},
		{uri: "runs:/abc/model", want: "3/abc/artifacts/model"},
		{uri: "runs:/abc", want: "3/abc/artifacts"},
		{uri: "runs:/missing/model", wantErr: ErrNotFound},
		{uri: "runs:/s3/model", wantErr: ErrUnsupportedArtifactURI},
		{uri: "file:///tmp/mlruns/1", wantErr: ErrUnsupportedArtifactURI},
		{uri: "s3://bucket/x", wantErr: ErrUnsupportedArtifactURI},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			t.Parallel()
			got, err := c.proxyPath(t.Context(), tt.uri)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("proxyPath(%q) = %q, %v; want %v", tt.uri, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("proxyPath(%q) = %q, %v; want %q", tt.uri, got, err, tt.want)
			}
		})
	}
}

func TestArtifactRequests(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		store = map[string][]byte{}
	)
	c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		p, ok := strings.CutPrefix(r.URL.Path, "/api/2.0/mlflow-artifacts/artifacts/")
		switch {
		case ok && r.Method == http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			store[p] = b
		case ok && r.Method == http.MethodGet:
			b, found := store[p]
			if !found {
				mlflowError(w, 404, CodeResourceDoesNotExist, "No such artifact")
				return
			}
			_, _ = w.Write(b)
		case r.URL.Path == "/api/2.0/mlflow-artifacts/artifacts":
			dir := r.URL.Query().Get("path") + "/"
			var files []map[string]any
			for k, v := range store {
				if rest, ok := strings.CutPrefix(k, dir); ok && !strings.Contains(rest, "/") {
					files = append(files, map[string]any{"path": rest, "is_dir": false, "file_size": len(v)})
				}
			}
			writeJSON(w, 200, map[string]any{"files": files})
		default:
			http.NotFound(w, r)
		}
	}))
	ctx := t.Context()
	uri := "mlflow-artifacts:/1/r/artifacts"
	data := []byte("tree\x00\xff")
	if err := c.LogArtifact(ctx, uri, "model/a b.txt", data); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	_, stored := store["1/r/artifacts/model/a b.txt"]
	mu.Unlock()
	if !stored {
		t.Errorf("upload did not reach the proxy path 1/r/artifacts/model/a b.txt: %v", store)
	}
	got, err := c.DownloadArtifact(ctx, uri+"/model", "a b.txt")
	if err != nil || string(got) != string(data) {
		t.Errorf("DownloadArtifact() = %q, %v; want %q", got, err, data)
	}
	files, err := c.ListArtifacts(ctx, uri, "model")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]FileInfo{{Path: "model/a b.txt", Size: int64(len(data))}}, files); diff != "" {
		t.Errorf("ListArtifacts() mismatch (-want +got):\n%s", diff)
	}
	if _, err := c.DownloadArtifact(ctx, uri, "model/none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DownloadArtifact(missing) = %v, want ErrNotFound", err)
	}
	if err := c.LogArtifact(ctx, uri, "../escape", data); err == nil {
		t.Error("LogArtifact(../escape) succeeded, want error")
	}
	c.MaxDownloadBytes = 3
	if _, err := c.DownloadArtifact(ctx, uri+"/model", "a b.txt"); err == nil || IsUnavailable(err) {
		t.Errorf("DownloadArtifact() over MaxDownloadBytes = %v, want a permanent error", err)
	}
}

func TestLogBatchChunks(t *testing.T) {
	t.Parallel()
	type batch struct {
		RunID   string           `json:"run_id"`
		Params  []keyValue       `json:"params"`
		Metrics []map[string]any `json:"metrics"`
		Tags    []keyValue       `json:"tags"`
	}
	var (
		mu      sync.Mutex
		batches []batch
	)
	c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b batch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.URL.Path != "/api/2.0/mlflow/runs/log-batch" {
			mlflowError(w, 400, CodeInvalidParameterValue, "bad batch")
			return
		}
		mu.Lock()
		batches = append(batches, b)
		mu.Unlock()
		writeJSON(w, 200, map[string]any{})
	}))
	params := map[string]string{}
	for i := range 250 {
		params[fmt.Sprintf("p%03d", i)] = fmt.Sprint(i)
	}
	metrics := make([]Metric, 1500)
	for i := range metrics {
		metrics[i] = Metric{Key: "loss", Value: float64(i), Step: int64(i), Timestamp: time.UnixMilli(1_700_000_000_000)}
	}
	metrics[7].Value = math.NaN()
	if err := c.LogBatch(t.Context(), "run1", params, metrics, map[string]string{"t": "v"}); err != nil {
		t.Fatal(err)
	}
	seenParams, seenMetrics := map[string]bool{}, 0
	for _, b := range batches {
		if b.RunID != "run1" || len(b.Params) > maxBatchParams || len(b.Tags) > maxBatchTags || len(b.Params)+len(b.Tags)+len(b.Metrics) > maxBatchMetrics {
			t.Errorf("batch over MLflow's limits: run %q, %d params, %d tags, %d metrics", b.RunID, len(b.Params), len(b.Tags), len(b.Metrics))
		}
		for _, p := range b.Params {
			seenParams[p.Key] = true
		}
		for _, m := range b.Metrics {
			if m["step"].(float64) == 7 && m["value"] != "NaN" {
				t.Errorf("NaN metric sent as %v, want \"NaN\"", m["value"])
			}
			if m["timestamp"].(float64) != 1_700_000_000_000 {
				t.Errorf("metric timestamp = %v, want 1700000000000", m["timestamp"])
			}
		}
		seenMetrics += len(b.Metrics)
	}
	if len(seenParams) != 250 || seenMetrics != 1500 {
		t.Errorf("server saw %d params and %d metrics, want 250 and 1500", len(seenParams), seenMetrics)
	}
	n := len(batches)
	if err := c.LogBatch(t.Context(), "run1", nil, nil, nil); err != nil || len(batches) != n {
		t.Errorf("empty LogBatch() = %v and sent %d requests, want nil and none", err, len(batches)-n)
	}
}

func TestGetVersionByAliasMissing(t *testing.T) {
	t.Parallel()
	c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/2.0/mlflow/registered-models/alias":
			if r.URL.Query().Get("alias") == "champion" {
				writeJSON(w, 200, map[string]any{"model_version": map[string]any{"name": "m", "version": "4", "status": "READY", "aliases": []string{"champion"}}})
				return
			}
			// What MLflow 3.17 answers for an alias that is not set.
			mlflowError(w, 400, CodeInvalidParameterValue, "Registered model alias challenger not found.")
		case "/api/2.0/mlflow/registered-models/get":
			writeJSON(w, 200, map[string]any{"registered_model": map[string]any{"name": "m", "aliases": []map[string]string{{"alias": "champion", "version": "4"}}}})
		default:
			http.NotFound(w, r)
		}
	}))
	mv, err := c.GetVersionByAlias(t.Context(), "m", "champion")
	if err != nil || mv.Version != "4" || mv.Number != 4 {
		t.Errorf("GetVersionByAlias(champion) = %+v, %v; want version 4", mv, err)
	}
	_, err = c.GetVersionByAlias(t.Context(), "m", "challenger")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVersionByAlias(challenger) = %v, want ErrNotFound", err)
	}
	if _, ok := errors.AsType[*AliasNotFoundError](err); !ok {
		t.Errorf("GetVersionByAlias(challenger) = %T, want *AliasNotFoundError", err)
	}
}

func TestCreateModelVersionWaits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		statuses   []string // returned by create, then by each get
		wait       time.Duration
		wantErr    error
		wantStatus string
	}{
		{name: "ready at once", statuses: []string{VersionReady}, wantStatus: VersionReady},
		{name: "pending then ready", statuses: []string{VersionPendingRegistration, VersionPendingRegistration, VersionReady}, wantStatus: VersionReady},
		{name: "failed", statuses: []string{VersionPendingRegistration, VersionFailedRegistration}, wantErr: ErrRegistrationFailed},
		{name: "never ready", statuses: []string{VersionPendingRegistration}, wait: 300 * time.Millisecond, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := min(int(calls.Add(1))-1, len(tt.statuses)-1)
				writeJSON(w, 200, map[string]any{"model_version": map[string]any{"name": "m", "version": "1", "status": tt.statuses[i], "status_message": "boom"}})
			}))
			c.RegisterWait = tt.wait
			mv, err := c.CreateModelVersion(t.Context(), "m", "mlflow-artifacts:/1/r/artifacts/model", "r", nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("CreateModelVersion() = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || mv.Status != tt.wantStatus {
				t.Errorf("CreateModelVersion() = %+v, %v; want status %s", mv, err, tt.wantStatus)
			}
		})
	}
}

func TestDeleteAliasSendsJSONBody(t *testing.T) {
	t.Parallel()
	var got map[string]string
	c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete {
			mlflowError(w, 405, "", "method")
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			mlflowError(w, 400, CodeInvalidParameterValue, "Missing value for required parameter 'name'.")
			return
		}
		writeJSON(w, 200, map[string]any{})
	}))
	if err := c.DeleteAlias(t.Context(), "m", "champion"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"name": "m", "alias": "champion"}, got); diff != "" {
		t.Errorf("DELETE body mismatch (-want +got):\n%s", diff)
	}
}

func TestEnsureExperimentCreateRace(t *testing.T) {
	t.Parallel()
	var lookups atomic.Int32
	c := newFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/2.0/mlflow/experiments/get-by-name":
			if lookups.Add(1) == 1 {
				mlflowError(w, 404, CodeResourceDoesNotExist, "no such experiment")
				return
			}
			writeJSON(w, 200, map[string]any{"experiment": map[string]string{"experiment_id": "9", "lifecycle_stage": "active"}})
		case "/api/2.0/mlflow/experiments/create":
			// Another replica created it between our lookup and create.
			mlflowError(w, 400, CodeResourceAlreadyExists, "exists")
		}
	}))
	id, err := c.EnsureExperiment(t.Context(), "e")
	if err != nil || id != "9" {
		t.Errorf("EnsureExperiment() = %q, %v; want \"9\"", id, err)
	}
}
