package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// RunStatus is the lifecycle state of a run.
type RunStatus string

// Run states as MLflow names them.
const (
	RunRunning   RunStatus = "RUNNING"
	RunScheduled RunStatus = "SCHEDULED"
	RunFinished  RunStatus = "FINISHED"
	RunFailed    RunStatus = "FAILED"
	RunKilled    RunStatus = "KILLED"
)

// Run is a tracking run.
type Run struct {
	ID           string
	ExperimentID string
	Name         string
	Status       RunStatus
	// ArtifactURI is the root of the run's artifacts, e.g.
	// "mlflow-artifacts:/1/<run id>/artifacts"; pass it to LogArtifact and DownloadArtifact.
	ArtifactURI string
	StartTime   time.Time
	EndTime     time.Time // zero while running
	Params      map[string]string
	// Metrics holds the latest value of each metric.
	Metrics map[string]Metric
	Tags    map[string]string
}

// Metric is one metric observation.
type Metric struct {
	Key   string
	Value float64 // NaN and ±Inf are allowed (the SQL store clamps ±Inf to ±MaxFloat64)
	// Timestamp of the observation; zero means "now" when logging.
	Timestamp time.Time
	Step      int64
}

// number is a float64 that encodes NaN and ±Inf the way MLflow's protobuf JSON does
// ("NaN", "Infinity", "-Infinity") and decodes both forms.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Infinity"`), nil
	}
	return json.Marshal(f)
}

func (n *number) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		switch s {
		case "NaN":
			*n = number(math.NaN())
		case "Infinity":
			*n = number(math.Inf(1))
		case "-Infinity":
			*n = number(math.Inf(-1))
		default:
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("decode number %q: %w", s, err)
			}
			*n = number(f)
		}
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("decode number: %w", err)
	}
	*n = number(f)
	return nil
}

// millis is an int64 that also decodes from a JSON string (proto3 JSON writes int64 as a
// string; MLflow's server writes numbers, but be liberal).
type millis int64

func (m *millis) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("decode int64 %q: %w", s, err)
		}
		*m = millis(v)
		return nil
	}
	var v int64
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("decode int64: %w", err)
	}
	*m = millis(v)
	return nil
}

func (m millis) time() time.Time {
	if m == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(m))
}

func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return time.Now().UnixMilli()
	}
	return t.UnixMilli()
}

type keyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func keyValues(m map[string]string) []keyValue {
	if len(m) == 0 {
		return nil
	}
	out := make([]keyValue, 0, len(m))
	for k, v := range m {
		out = append(out, keyValue{Key: k, Value: v})
	}
	return out
}

func kvMap(kvs []keyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

type wireMetric struct {
	Key       string `json:"key"`
	Value     number `json:"value"`
	Timestamp millis `json:"timestamp"`
	Step      millis `json:"step"`
}

type wireRun struct {
	Info struct {
		RunID          string    `json:"run_id"`
		ExperimentID   string    `json:"experiment_id"`
		RunName        string    `json:"run_name"`
		Status         RunStatus `json:"status"`
		StartTime      millis    `json:"start_time"`
		EndTime        millis    `json:"end_time"`
		ArtifactURI    string    `json:"artifact_uri"`
		LifecycleStage string    `json:"lifecycle_stage"`
	} `json:"info"`
	Data struct {
		Metrics []wireMetric `json:"metrics"`
		Params  []keyValue   `json:"params"`
		Tags    []keyValue   `json:"tags"`
	} `json:"data"`
}

func (w wireRun) run() Run {
	r := Run{
		ID:           w.Info.RunID,
		ExperimentID: w.Info.ExperimentID,
		Name:         w.Info.RunName,
		Status:       w.Info.Status,
		ArtifactURI:  w.Info.ArtifactURI,
		StartTime:    w.Info.StartTime.time(),
		EndTime:      w.Info.EndTime.time(),
		Params:       kvMap(w.Data.Params),
		Tags:         kvMap(w.Data.Tags),
		Metrics:      make(map[string]Metric, len(w.Data.Metrics)),
	}
	for _, m := range w.Data.Metrics {
		r.Metrics[m.Key] = Metric{Key: m.Key, Value: float64(m.Value), Timestamp: m.Timestamp.time(), Step: int64(m.Step)}
	}
	return r
}

// EnsureExperiment returns the ID of the experiment called name, creating it when it
// does not exist. It is safe against a concurrent creator (a lost create race is
// resolved by looking the name up again).
func (c *Client) EnsureExperiment(ctx context.Context, name string) (string, error) {
	id, err := c.experimentIDByName(ctx, name)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("look up experiment %q: %w", name, err)
	}
	var created struct {
		ExperimentID string `json:"experiment_id"`
	}
	err = c.post(ctx, "experiments/create", map[string]string{"name": name}, &created)
	switch {
	case err == nil:
		return created.ExperimentID, nil
	case errors.Is(err, ErrAlreadyExists):
		id, err := c.experimentIDByName(ctx, name)
		if err != nil {
			return "", fmt.Errorf("look up experiment %q after create race: %w", name, err)
		}
		return id, nil
	default:
		return "", fmt.Errorf("create experiment %q: %w", name, err)
	}
}

func (c *Client) experimentIDByName(ctx context.Context, name string) (string, error) {
	var resp struct {
		Experiment struct {
			ExperimentID   string `json:"experiment_id"`
			LifecycleStage string `json:"lifecycle_stage"`
		} `json:"experiment"`
	}
	if err := c.get(ctx, "experiments/get-by-name", url.Values{"experiment_name": {name}}, &resp); err != nil {
		return "", err
	}
	if resp.Experiment.LifecycleStage == "deleted" {
		// A deleted experiment keeps its name; creating runs in it fails later with a
		// less clear message.
		return "", fmt.Errorf("experiment %q (id %s) is deleted; restore it or pick another name", name, resp.Experiment.ExperimentID)
	}
	return resp.Experiment.ExperimentID, nil
}

// CreateRun starts a run in experiment expID, named runName, with the given tags.
func (c *Client) CreateRun(ctx context.Context, expID, runName string, tags map[string]string) (Run, error) {
	body := struct {
		ExperimentID string     `json:"experiment_id"`
		RunName      string     `json:"run_name,omitempty"`
		StartTime    int64      `json:"start_time"`
		Tags         []keyValue `json:"tags,omitempty"`
	}{ExperimentID: expID, RunName: runName, StartTime: time.Now().UnixMilli(), Tags: keyValues(tags)}
	var resp struct {
		Run wireRun `json:"run"`
	}
	if err := c.post(ctx, "runs/create", body, &resp); err != nil {
		return Run{}, fmt.Errorf("create run %q in experiment %s: %w", runName, expID, err)
	}
	return resp.Run.run(), nil
}

// GetRun returns a run with its params, latest metrics and tags.
func (c *Client) GetRun(ctx context.Context, runID string) (Run, error) {
	var resp struct {
		Run wireRun `json:"run"`
	}
	if err := c.get(ctx, "runs/get", url.Values{"run_id": {runID}}, &resp); err != nil {
		return Run{}, fmt.Errorf("get run %s: %w", runID, err)
	}
	return resp.Run.run(), nil
}

// MLflow's limits for one runs/log-batch request.
const (
	maxBatchParams  = 100
	maxBatchTags    = 100
	maxBatchMetrics = 1000
)

// LogBatch logs params, metrics and tags on a run, splitting them into as many
// runs/log-batch requests as MLflow's per-request limits need. A param, once logged,
// cannot change its value (MLflow answers INVALID_PARAMETER_VALUE); logging the same
// value again is fine. Metrics with a zero Timestamp are stamped with the current time.
func (c *Client) LogBatch(ctx context.Context, runID string, params map[string]string, metrics []Metric, tags map[string]string) error {
	ps, ts := keyValues(params), keyValues(tags)
	ms := make([]wireMetric, len(metrics))
	for i, m := range metrics {
		ms[i] = wireMetric{Key: m.Key, Value: number(m.Value), Timestamp: millis(toMillis(m.Timestamp)), Step: millis(m.Step)}
	}
	type batch struct {
		RunID   string       `json:"run_id"`
		Params  []keyValue   `json:"params,omitempty"`
		Metrics []wireMetric `json:"metrics,omitempty"`
		Tags    []keyValue   `json:"tags,omitempty"`
	}
	for first := true; first || len(ps)+len(ts)+len(ms) > 0; first = false {
		b := batch{RunID: runID}
		n := min(len(ps), maxBatchParams)
		b.Params, ps = ps[:n], ps[n:]
		n = min(len(ts), maxBatchTags)
		b.Tags, ts = ts[:n], ts[n:]
		n = min(len(ms), maxBatchMetrics-len(b.Params)-len(b.Tags))
		b.Metrics, ms = ms[:n], ms[n:]
		if first && len(b.Params)+len(b.Tags)+len(b.Metrics) == 0 {
			return nil
		}
		if err := c.post(ctx, "runs/log-batch", b, nil); err != nil {
			return fmt.Errorf("log batch on run %s: %w", runID, err)
		}
	}
	return nil
}

// LogParam logs one param on a run.
func (c *Client) LogParam(ctx context.Context, runID, key, value string) error {
	body := map[string]string{"run_id": runID, "key": key, "value": value}
	if err := c.post(ctx, "runs/log-parameter", body, nil); err != nil {
		return fmt.Errorf("log param %q on run %s: %w", key, runID, err)
	}
	return nil
}

// FinishRun sets a run's terminal status (RunFinished, RunFailed, RunKilled) and end time.
func (c *Client) FinishRun(ctx context.Context, runID string, status RunStatus) error {
	body := struct {
		RunID   string    `json:"run_id"`
		Status  RunStatus `json:"status"`
		EndTime int64     `json:"end_time"`
	}{RunID: runID, Status: status, EndTime: time.Now().UnixMilli()}
	if err := c.post(ctx, "runs/update", body, nil); err != nil {
		return fmt.Errorf("finish run %s as %s: %w", runID, status, err)
	}
	return nil
}
