package cli_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/mlopsctl/internal/cli"
)

// fakeDrift is a drift service with canned answers for model "fraud"; it records the
// requests it got.
type fakeDrift struct {
	driftv1.UnimplementedDriftServiceServer
	mu   sync.Mutex
	reqs []proto.Message
}

func (f *fakeDrift) record(m proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, m)
}

func (f *fakeDrift) last() proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func cannedWindow(count int64) *eventsv1.Window {
	return &eventsv1.Window{Start: timestamppb.New(t0), End: timestamppb.New(t0.Add(5 * time.Second)), Count: count}
}

func cannedReport() *driftv1.GetReportResponse {
	return &driftv1.GetReportResponse{ModelName: "fraud", ModelVersion: "3", ReferenceRunId: "run-abc", Window: cannedWindow(500),
		Features: []*driftv1.DistributionDrift{
			{Feature: "amount", Count: 500, Psi: 1.2203, PsiThreshold: 0.1, KsStatistic: 0.526, KsPValue: 1e-30, KsThreshold: 0.0446,
				JsDistance: 0.4487, JsThreshold: 0.0785, Drifted: true, Severity: eventsv1.Severity_SEVERITY_CRITICAL},
			{Feature: "location_score", Count: 498, Psi: 0.0129, PsiThreshold: 0.1, KsStatistic: 0.0254, KsPValue: 0.9251, KsThreshold: 0.09,
				JsDistance: 0.0482, JsThreshold: 0.089, MissingRate: 0.004},
			{Feature: "geo_velocity_kmh", Count: 0, Psi: math.NaN(), PsiThreshold: 0.1, KsStatistic: math.NaN(), KsPValue: math.NaN(), JsDistance: math.NaN()},
		},
		Score: &driftv1.DistributionDrift{Feature: "score", Count: 500, Psi: 0.03, PsiThreshold: 0.1, KsStatistic: 0.0276, KsPValue: 0.87,
			KsThreshold: 0.083, JsDistance: 0.073, JsThreshold: 0.087},
		Performance: &driftv1.Performance{Predictions: 500, LabelledCount: 303, LabelCoverage: 0.606, Auc: proto.Float64(0.7078),
			EstimatedAuc: proto.Float64(0.7674), ReferenceAuc: proto.Float64(0.7615), AlertRate: 0.008, ReferenceAlertRate: 0.005},
		LastEvents: []*eventsv1.DriftEvent{{EventTime: timestamppb.New(t0), Severity: eventsv1.Severity_SEVERITY_CRITICAL, Retrain: true,
			Message: "amount PSI 1.028 > 0.1 for 2 windows; retraining recommended"}},
	}
}

func (f *fakeDrift) GetStatus(_ context.Context, r *driftv1.GetStatusRequest) (*driftv1.GetStatusResponse, error) {
	f.record(r)
	if err := f.check(r.GetModelName()); err != nil {
		return nil, err
	}
	return &driftv1.GetStatusResponse{ModelName: "fraud", ModelVersion: "3", ReferenceRunId: "run-abc", Drifting: true,
		MaxSeverity: eventsv1.Severity_SEVERITY_CRITICAL, Window: cannedWindow(180), LabelledCount: 90,
		LastEventTime: timestamppb.New(t0), LastRetrainTime: timestamppb.New(t0), CooldownUntil: timestamppb.New(t0.Add(time.Hour))}, nil
}

func (f *fakeDrift) GetReport(_ context.Context, r *driftv1.GetReportRequest) (*driftv1.GetReportResponse, error) {
	f.record(r)
	if err := f.check(r.GetModelName()); err != nil {
		return nil, err
	}
	return cannedReport(), nil
}

func (f *fakeDrift) ListWindows(_ context.Context, r *driftv1.ListWindowsRequest) (*driftv1.ListWindowsResponse, error) {
	f.record(r)
	if err := f.check(r.GetModelName()); err != nil {
		return nil, err
	}
	return &driftv1.ListWindowsResponse{ModelName: "fraud", Windows: []*driftv1.WindowSummary{
		{Id: 10, Window: cannedWindow(500), ModelVersion: "3", DriftedFeatures: []string{"amount", "hour_of_day"}, MaxPsi: 1.2203,
			MaxPsiFeature: "amount", EventsEmitted: 3, Performance: &driftv1.Performance{Auc: proto.Float64(0.7078), EstimatedAuc: proto.Float64(0.7674), LabelCoverage: 0.606}},
		{Id: 9, Window: cannedWindow(500), ModelVersion: "3", MaxPsi: 0.0301, MaxPsiFeature: "tx_count_24h",
			Performance: &driftv1.Performance{EstimatedAuc: proto.Float64(0.75)}},
	}}, nil
}

func (f *fakeDrift) GetWindow(_ context.Context, r *driftv1.GetWindowRequest) (*driftv1.GetWindowResponse, error) {
	f.record(r)
	if err := f.check(r.GetModelName()); err != nil {
		return nil, err
	}
	id := r.GetId()
	if id == 0 {
		id = 10
	}
	if id > 10 {
		return nil, status.Errorf(codes.NotFound, "window %d of \"fraud\" is not kept (windows 1 to 10 are)", id)
	}
	return &driftv1.GetWindowResponse{Summary: &driftv1.WindowSummary{Id: id, Window: cannedWindow(500), EventsEmitted: 1}, Report: cannedReport()}, nil
}

func (f *fakeDrift) check(model string) error {
	switch model {
	case "", "fraud":
		return nil
	case "purchase":
		return status.Error(codes.Unavailable, `no reference profile loaded for "purchase" yet`)
	}
	return status.Errorf(codes.NotFound, "model %q is not monitored (monitored: [fraud purchase])", model)
}

// startDrift serves fakeDrift on a loopback port and returns it with its address.
func startDrift(t *testing.T) (*fakeDrift, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDrift{}
	srv := grpc.NewServer()
	driftv1.RegisterDriftServiceServer(srv, f)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("serve: %v", err)
		}
	})
	return f, ln.Addr().String()
}

func TestDriftCommands(t *testing.T) {
	t.Parallel()
	f, addr := startDrift(t)
	env := map[string]string{"DRIFT_ADDR": addr, "DRIFT_ADMIN_ADDR": "drift.example:8085"}
	tests := []struct {
		name    string
		args    []string
		want    []string // substrings of stdout
		wantReq proto.Message
	}{
		{name: "status", args: []string{"drift", "status"},
			want: []string{"model             fraud", "champion version  3", "reference run     run-abc", "drifting          YES (critical)",
				"open window       180 predictions, 2026-03-01T12:00:00Z to 2026-03-01T12:00:05Z", "labelled          90",
				"cooldown until    2026-03-01T13:00:00Z", "HTML report       http://drift.example:8085/drift/fraud"},
			wantReq: &driftv1.GetStatusRequest{}},
		{name: "windows", args: []string{"drift", "windows", "-limit", "2", "-model", "fraud"},
			want: []string{"ID  END", "10  2026-03-01T12:00:05Z  500    3        1.2203 amount", "amount,hour_of_day  0.7078  0.7674  -    60.6%     3",
				"9   2026-03-01T12:00:05Z  500    3        0.0301 tx_count_24h  -", "HTML report: http://drift.example:8085/drift/fraud"},
			wantReq: &driftv1.ListWindowsRequest{ModelName: "fraud", Limit: 2}},
		{name: "report of the open window", args: []string{"drift", "report", "-events", "5"},
			want: []string{"window            open window (not closed yet): 500 predictions",
				"FEATURE           COUNT  PSI     PSI THR  KS      KS P     KS THR  JS      JS THR  MISSING  OUT OF RANGE  DRIFTED",
				"amount            500    1.2203  0.1000   0.5260  <0.0001  0.0446  0.4487  0.0785  0.00%    0.00%         YES (critical)",
				"location_score    498    0.0129  0.1000   0.0254  0.9251   0.0900  0.0482  0.0890  0.40%    0.00%         no",
				"geo_velocity_kmh  0      -       0.1000   -       -", "score             500    0.0300",
				"1 of 4 columns drifted", "auc (realized)         0.7078", "auc (estimated)        0.7674", "labelled               303 (coverage 60.6%)",
				"critical  yes      amount PSI 1.028 > 0.1 for 2 windows; retraining recommended",
				"HTML report: http://drift.example:8085/drift/fraud?window=open"},
			wantReq: &driftv1.GetReportRequest{LastEventsLimit: 5}},
		{name: "report of a closed window", args: []string{"drift", "report", "-window", "7", "-feature", "amount"},
			want:    []string{"window            window #7: 500 predictions", "events raised     1", "1 of 2 columns drifted", "HTML report: http://drift.example:8085/drift/fraud?window=7"},
			wantReq: &driftv1.GetWindowRequest{Id: 7}},
		{name: "report of the latest window", args: []string{"drift", "report", "-window", "latest"},
			want: []string{"window #10"}, wantReq: &driftv1.GetWindowRequest{Id: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case checks the request it made last.
			var out, errOut bytes.Buffer
			if err := cli.Run(context.Background(), tt.args, func(k string) string { return env[k] }, &out, &errOut); err != nil {
				t.Fatalf("mlopsctl %s: %v\n%s", strings.Join(tt.args, " "), err, errOut.String())
			}
			// Columns are aligned with spaces; compare with runs of spaces squashed.
			for _, w := range tt.want {
				if !strings.Contains(squash(out.String()), squash(w)) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if got := f.last(); !proto.Equal(got, tt.wantReq) {
				t.Errorf("request = %v, want %v", got, tt.wantReq)
			}
			if strings.Contains(out.String(), "NaN") {
				t.Errorf("output shows NaN:\n%s", out.String())
			}
		})
	}
	// The feature filter reaches the server for the open window.
	var out bytes.Buffer
	if err := cli.Run(context.Background(), []string{"drift", "report", "-feature", "amount,score"}, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatal(err)
	}
	if got := f.last().(*driftv1.GetReportRequest).GetFeatures(); strings.Join(got, ",") != "amount,score" {
		t.Errorf("features sent = %q, want [amount score]", got)
	}
}

func TestDriftCommandErrors(t *testing.T) {
	t.Parallel()
	_, addr := startDrift(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name      string
		args      []string
		addr      string
		want      string
		wantUsage bool
	}{
		{name: "no subcommand", args: []string{"drift"}, addr: addr, want: "usage: mlopsctl drift", wantUsage: true},
		{name: "unknown subcommand", args: []string{"drift", "frob"}, addr: addr, want: `unknown drift command "frob"`},
		{name: "unknown model", args: []string{"drift", "status", "-model", "nope"}, addr: addr, want: `drift status: not found: model "nope" is not monitored`},
		{name: "no reference yet", args: []string{"drift", "report", "-model", "purchase"}, addr: addr, want: "not ready (no reference profile loaded yet?)"},
		{name: "window not kept", args: []string{"drift", "report", "-window", "99"}, addr: addr, want: "window 99 of \"fraud\" is not kept"},
		{name: "bad window", args: []string{"drift", "report", "-window", "x"}, addr: addr, want: `-window "x": want open, latest or a window id`},
		{name: "service down", args: []string{"drift", "status", "-timeout", "2s"}, addr: closed, want: "drift service at " + closed + " is unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := cli.Run(context.Background(), tt.args, func(k string) string {
				if k == "DRIFT_ADDR" {
					return tt.addr
				}
				return ""
			}, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("mlopsctl %s = %v, want an error with %q", strings.Join(tt.args, " "), err, tt.want)
			}
			if tt.wantUsage && !errors.Is(err, cli.ErrUsage) {
				t.Errorf("error %v is not ErrUsage", err)
			}
		})
	}
}

func squash(s string) string { return regexp.MustCompile(` +`).ReplaceAllString(s, " ") }
