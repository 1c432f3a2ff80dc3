package drift

import (
	"context"
	"math"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/drift/internal/window"
)

const defaultListLimit = 20

// GetStatus summarises a model's drift: the open window, the last judged window's verdict,
// the last events and the cooldown.
func (s *Server) GetStatus(_ context.Context, req *driftv1.GetStatusRequest) (*driftv1.GetStatusResponse, error) {
	mo, err := s.monitor(req.GetModelName())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	snap := mo.snapshot(true)
	resp := &driftv1.GetStatusResponse{ModelName: mo.model}
	if snap.Ref != nil {
		resp.ModelVersion, resp.ReferenceRunId = snap.Ref.Version, snap.Ref.RunID
	}
	if snap.Current != nil {
		resp.Window = windowProto(snap.Current)
		resp.LabelledCount = snap.Current.Perf.Labelled
	}
	for i := len(snap.History) - 1; i >= 0; i-- {
		if c := snap.History[i]; c.Stats.Perf.Judged {
			resp.Drifting = c.Crossings > 0
			break
		}
	}
	for i := len(snap.Events) - 1; i >= 0; i-- {
		if ev := snap.Events[i]; ev.GetSeverity() > resp.MaxSeverity && ev.GetModelVersion() == resp.ModelVersion {
			resp.MaxSeverity = ev.GetSeverity()
		}
	}
	if !resp.Drifting {
		resp.MaxSeverity = eventsv1.Severity_SEVERITY_UNSPECIFIED
	}
	resp.LastEventTime = ts(orMin(snap.Det.LastEvent))
	resp.LastRetrainTime = ts(orMin(snap.Det.LastRetrain))
	if snap.Current != nil && snap.Current.End < snap.Det.CooldownUntil {
		resp.CooldownUntil = ts(snap.Det.CooldownUntil)
	}
	return resp, nil
}

// GetReport returns the open window's statistics against the reference.
func (s *Server) GetReport(_ context.Context, req *driftv1.GetReportRequest) (*driftv1.GetReportResponse, error) {
	mo, err := s.monitor(req.GetModelName())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	snap := mo.snapshot(true)
	if snap.Ref == nil {
		return nil, status.Errorf(codes.Unavailable, "no reference profile loaded for %q yet", mo.model)
	}
	resp := reportProto(mo.model, snap.Ref, snap.Current, req.GetFeatures())
	limit := int(req.GetLastEventsLimit())
	if limit <= 0 {
		limit = defaultListLimit
	}
	for i := len(snap.Events) - 1; i >= 0 && len(resp.LastEvents) < limit; i-- {
		resp.LastEvents = append(resp.LastEvents, snap.Events[i])
	}
	return resp, nil
}

// ListWindows lists the most recent closed windows, newest first.
func (s *Server) ListWindows(_ context.Context, req *driftv1.ListWindowsRequest) (*driftv1.ListWindowsResponse, error) {
	mo, err := s.monitor(req.GetModelName())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	limit := int(req.GetLimit())
	if limit <= 0 {
		limit = defaultListLimit
	}
	snap := mo.snapshot(false)
	resp := &driftv1.ListWindowsResponse{ModelName: mo.model}
	for i := len(snap.History) - 1; i >= 0 && len(resp.Windows) < limit; i-- {
		resp.Windows = append(resp.Windows, summaryProto(snap.History[i]))
	}
	return resp, nil
}

// GetWindow returns one closed window in detail (id 0: the latest).
func (s *Server) GetWindow(_ context.Context, req *driftv1.GetWindowRequest) (*driftv1.GetWindowResponse, error) {
	mo, err := s.monitor(req.GetModelName())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	snap := mo.snapshot(false)
	if len(snap.History) == 0 {
		return nil, status.Errorf(codes.NotFound, "no closed window of %q yet", mo.model)
	}
	c := snap.History[len(snap.History)-1]
	if id := req.GetId(); id != 0 {
		i := slices.IndexFunc(snap.History, func(c *Closed) bool { return c.ID == id })
		if i < 0 {
			return nil, status.Errorf(codes.NotFound, "window %d of %q is not kept (windows %d to %d are)", id, mo.model, snap.History[0].ID, c.ID)
		}
		c = snap.History[i]
	}
	rep := reportProto(mo.model, c.Ref, &c.Stats, nil)
	rep.LastEvents = c.Events
	return &driftv1.GetWindowResponse{Summary: summaryProto(c), Report: rep}, nil
}

func summaryProto(c *Closed) *driftv1.WindowSummary {
	w := &driftv1.WindowSummary{Id: c.ID, Window: windowProto(&c.Stats), ModelVersion: c.Version,
		Performance: performanceProto(&c.Stats.Perf), EventsEmitted: int32(len(c.Events))}
	for _, col := range append(c.Stats.Features[:len(c.Stats.Features):len(c.Stats.Features)], c.Stats.Score) {
		if col.Drifted {
			w.DriftedFeatures = append(w.DriftedFeatures, col.Name)
		}
		if !math.IsNaN(col.PSI) && col.PSI >= w.MaxPsi && col.Name != "score" {
			w.MaxPsi, w.MaxPsiFeature = col.PSI, col.Name
		}
	}
	return w
}

func reportProto(model string, ref *Reference, st *window.Stats, only []string) *driftv1.GetReportResponse {
	resp := &driftv1.GetReportResponse{ModelName: model, ModelVersion: ref.Version, ReferenceRunId: ref.RunID, GeneratedAt: timestamppb.Now()}
	if st == nil {
		return resp
	}
	resp.Window = windowProto(st)
	for i := range st.Features {
		if len(only) == 0 || slices.Contains(only, st.Features[i].Name) {
			resp.Features = append(resp.Features, columnProto(&st.Features[i]))
		}
	}
	resp.Score = columnProto(&st.Score)
	resp.Performance = performanceProto(&st.Perf)
	return resp
}

func windowProto(st *window.Stats) *eventsv1.Window {
	kind := eventsv1.WindowKind(st.Kind)
	if kind == eventsv1.WindowKind_WINDOW_KIND_UNSPECIFIED {
		kind = eventsv1.WindowKind_WINDOW_KIND_COUNT
	}
	return &eventsv1.Window{Start: ts(st.Start), End: ts(st.End), Count: st.Predictions, Kind: kind}
}

func columnProto(c *window.ColumnStats) *driftv1.DistributionDrift {
	d := &driftv1.DistributionDrift{Feature: c.Name, Count: c.Count, Psi: c.PSI, KsStatistic: c.KS, KsPValue: c.KSPValue, JsDistance: c.JS,
		MissingRate: c.MissingRate, OutOfRangeRate: c.OutOfRange, NonFiniteRate: c.NonFiniteRate, PsiThreshold: c.PSIThreshold,
		KsThreshold: c.KSThreshold, JsThreshold: c.JSThreshold, Drifted: c.Drifted, KsSampleSize: int64(c.KSSampleSize)}
	if c.Drifted {
		d.Severity = eventsv1.Severity_SEVERITY_WARNING
		if c.PSI > window.CriticalPSI {
			d.Severity = eventsv1.Severity_SEVERITY_CRITICAL
		}
	}
	return d
}

func performanceProto(p *window.Performance) *driftv1.Performance {
	opt := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		return proto.Float64(v)
	}
	out := &driftv1.Performance{LabelledCount: p.Labelled, DecisionThreshold: nanToZero(p.Threshold), LabelCoverage: p.LabelCoverage,
		AlertRate: p.AlertRate, ReferenceAlertRate: p.ReferenceAlertRate, Predictions: p.Predictions,
		EstimatedAuc: opt(p.EstAUC), EstimatedPrecision: opt(p.EstPrecision), EstimatedRecall: opt(p.EstRecall),
		EstimatedAucLabelled: opt(p.EstAUCLabelled), ReferenceAuc: opt(p.ReferenceAUC), ReferenceMse: opt(p.ReferenceMSE)}
	if p.Labelled > 0 {
		out.Auc, out.Precision, out.Recall, out.LogLoss = opt(p.AUC), opt(p.Precision), opt(p.Recall), opt(p.LogLoss)
		out.FraudAmountCaught, out.FraudAmountMissed, out.FalsePositiveCost = opt(p.FraudCaught), opt(p.FraudMissed), opt(p.FalsePosCost)
		out.Mse, out.Mae = opt(p.MSE), opt(p.MAE)
	}
	return out
}

func nanToZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func orMin(ns int64) int64 {
	if ns == 0 {
		return math.MinInt64
	}
	return ns
}
