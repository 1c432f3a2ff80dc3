package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
)

// driftFlags are the flags every drift command shares.
type driftFlags struct {
	addr, admin, model string
	tls                tlsconf.Client
	timeout            time.Duration
}

func (f *driftFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	flagenv.StringVar(fs, getenv, &f.addr, "drift.addr", "DRIFT_ADDR", "127.0.0.1:50055", "drift service gRPC address")
	flagenv.StringVar(fs, getenv, &f.admin, "drift.admin", "DRIFT_ADMIN_ADDR", "127.0.0.1:8085", "drift service admin address (serves the HTML report at /drift)")
	flagenv.StringVar(fs, getenv, &f.model, "model", "MLOPS_MODEL", "", "monitored model name (default: the only monitored model)")
	flagenv.DurationVar(fs, getenv, &f.timeout, "timeout", "MLOPSCTL_TIMEOUT", 10*time.Second, "deadline of the call")
	f.tls.RegisterFlags(fs, getenv, "tls", "MLOPS_TLS")
}

// dial connects to the drift service; the returned context carries the deadline.
func (f *driftFlags) dial(ctx context.Context) (driftv1.DriftServiceClient, context.Context, func(), error) {
	creds, err := grpcserve.DialCredentials(f.tls)
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := grpc.NewClient(f.addr, creds)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("drift address %q: %w", f.addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	return driftv1.NewDriftServiceClient(conn), ctx, func() { cancel(); _ = conn.Close() }, nil
}

// explain turns a gRPC error of the drift service into a message for a person.
func (f *driftFlags) explain(op string, err error) error {
	st, ok := grpcstatus.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("%s: drift service at %s is unreachable or not ready (no reference profile loaded yet?): %s", op, f.addr, msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: no answer within %v; raise -timeout (%s)", op, f.timeout, msg)
	case codes.NotFound:
		return fmt.Errorf("%s: not found: %s", op, msg)
	case codes.InvalidArgument:
		return fmt.Errorf("%s: invalid request: %s", op, msg)
	case codes.Canceled:
		return fmt.Errorf("%s: cancelled", op)
	default:
		return fmt.Errorf("%s: drift service error (%s): %s", op, st.Code(), msg)
	}
}

// reportURL is where the drift service's admin port serves the HTML report of model.
func (f *driftFlags) reportURL(model, window string) string {
	u := "http://" + f.admin + "/drift"
	if model != "" {
		u += "/" + url.PathEscape(model)
	}
	if window != "" {
		u += "?window=" + url.QueryEscape(window)
	}
	return u
}

// drift runs `mlopsctl drift <status|windows|report>`.
func drift(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := errors.New("usage: mlopsctl drift status | windows [-limit n] | report [-window open|latest|<id>] [-feature f,...]")
	if len(args) == 0 {
		return fmt.Errorf("%w: %w", ErrUsage, usage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("drift "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f driftFlags
	f.register(fs, getenv)
	limit := fs.Int("limit", 0, "windows: most windows to list, newest first (default: the server's, 20)")
	win := fs.String("window", "", "report: open (the window being filled), latest (the last closed one) or a closed window's id (default open)")
	features := fs.String("feature", "", "report: only these features (comma-separated; default all)")
	events := fs.Int("events", 0, "report: most recent events to show (default: the server's, 20)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	switch sub {
	case "status", "windows", "report":
	default:
		return fmt.Errorf("unknown drift command %q: %w", sub, usage)
	}
	if len(pos) != 0 {
		return fmt.Errorf("drift %s takes no arguments, got %q: %w", sub, pos, usage)
	}
	var windowID int64 = -1 // -1: the open window
	switch *win {
	case "", "open":
	case "latest":
		windowID = 0
	default:
		id, err := strconv.ParseInt(*win, 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("drift report: -window %q: want open, latest or a window id (mlopsctl drift windows lists them)", *win)
		}
		windowID = id
	}
	client, cctx, done, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	op := "drift " + sub
	switch sub {
	case "status":
		resp, err := client.GetStatus(cctx, &driftv1.GetStatusRequest{ModelName: f.model})
		if err != nil {
			return f.explain(op, err)
		}
		printDriftStatus(stdout, resp, f.reportURL(resp.GetModelName(), ""))
	case "windows":
		resp, err := client.ListWindows(cctx, &driftv1.ListWindowsRequest{ModelName: f.model, Limit: int32(*limit)})
		if err != nil {
			return f.explain(op, err)
		}
		if len(resp.GetWindows()) == 0 {
			fmt.Fprintf(stdout, "no closed window of %s yet\n", resp.GetModelName())
			return nil
		}
		printWindows(stdout, resp.GetWindows())
		fmt.Fprintf(stdout, "\nHTML report: %s\n", f.reportURL(resp.GetModelName(), ""))
	case "report":
		var only []string
		if *features != "" {
			only = strings.Split(*features, ",")
		}
		if windowID < 0 {
			resp, err := client.GetReport(cctx, &driftv1.GetReportRequest{ModelName: f.model, Features: only, LastEventsLimit: int32(*events)})
			if err != nil {
				return f.explain(op, err)
			}
			printReport(stdout, "open window (not closed yet)", nil, resp, f.reportURL(resp.GetModelName(), "open"))
			return nil
		}
		resp, err := client.GetWindow(cctx, &driftv1.GetWindowRequest{ModelName: f.model, Id: windowID})
		if err != nil {
			return f.explain(op, err)
		}
		rep, sum := resp.GetReport(), resp.GetSummary()
		if len(only) > 0 { // GetWindow has no feature filter
			var kept []*driftv1.DistributionDrift
			for _, d := range rep.GetFeatures() {
				for _, o := range only {
					if d.GetFeature() == o {
						kept = append(kept, d)
					}
				}
			}
			rep.Features = kept
		}
		id := strconv.FormatInt(sum.GetId(), 10)
		printReport(stdout, "window #"+id, sum, rep, f.reportURL(rep.GetModelName(), id))
	}
	return nil
}

func printDriftStatus(w io.Writer, s *driftv1.GetStatusResponse, report string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	drifting := "no"
	if s.GetDrifting() {
		drifting = "YES (" + severity(s.GetMaxSeverity()) + ")"
	}
	fmt.Fprintf(tw, "model\t%s\nchampion version\t%s\nreference run\t%s\ndrifting\t%s\nopen window\t%s\nlabelled\t%d\nlast event\t%s\nlast retrain\t%s\ncooldown until\t%s\nHTML report\t%s\n",
		s.GetModelName(), cmp.Or(s.GetModelVersion(), "- (no reference loaded yet)"), cmp.Or(s.GetReferenceRunId(), "-"), drifting,
		windowText(s.GetWindow()), s.GetLabelledCount(), tsText(s.GetLastEventTime()), tsText(s.GetLastRetrainTime()),
		tsText(s.GetCooldownUntil()), report)
	_ = tw.Flush()
}

func printWindows(w io.Writer, ws []*driftv1.WindowSummary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEND\tCOUNT\tVERSION\tMAX PSI\tDRIFTED\tAUC\tEST AUC\tMSE\tCOVERAGE\tEVENTS")
	for _, s := range ws {
		p := s.GetPerformance()
		maxPSI := "-"
		if s.GetMaxPsiFeature() != "" {
			maxPSI = fmt.Sprintf("%.4f %s", s.GetMaxPsi(), s.GetMaxPsiFeature())
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f%%\t%d\n", s.GetId(), tsText(s.GetWindow().GetEnd()), s.GetWindow().GetCount(),
			cmp.Or(s.GetModelVersion(), "-"), maxPSI, cmp.Or(strings.Join(s.GetDriftedFeatures(), ","), "-"), opt(p.Auc), opt(p.EstimatedAuc),
			opt(p.Mse), 100*p.GetLabelCoverage(), s.GetEventsEmitted())
	}
	_ = tw.Flush()
}

func printReport(w io.Writer, title string, sum *driftv1.WindowSummary, r *driftv1.GetReportResponse, report string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\nchampion version\t%s\nreference run\t%s\nwindow\t%s: %s\n", r.GetModelName(), r.GetModelVersion(),
		cmp.Or(r.GetReferenceRunId(), "-"), title, windowText(r.GetWindow()))
	if sum != nil {
		fmt.Fprintf(tw, "events raised\t%d\n", sum.GetEventsEmitted())
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tCOUNT\tPSI\tPSI THR\tKS\tKS P\tKS THR\tJS\tJS THR\tMISSING\tOUT OF RANGE\tDRIFTED")
	cols := r.GetFeatures()
	if r.GetScore() != nil {
		cols = append(cols[:len(cols):len(cols)], r.GetScore())
	}
	drifted := 0
	for _, d := range cols {
		mark := "no"
		if d.GetDrifted() {
			drifted++
			mark = "YES"
			if d.GetSeverity() == eventsv1.Severity_SEVERITY_CRITICAL {
				mark = "YES (critical)"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f%%\t%.2f%%\t%s\n", d.GetFeature(), d.GetCount(),
			stat(d.GetPsi()), stat(d.GetPsiThreshold()), stat(d.GetKsStatistic()), pvalue(d.GetKsPValue()), stat(d.GetKsThreshold()),
			stat(d.GetJsDistance()), stat(d.GetJsThreshold()), 100*d.GetMissingRate(), 100*d.GetOutOfRangeRate(), mark)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d of %d columns drifted\n\n", drifted, len(cols))

	if p := r.GetPerformance(); p != nil {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PERFORMANCE\tVALUE")
		fmt.Fprintf(tw, "predictions\t%d\nlabelled\t%d (coverage %.1f%%)\nalert rate\t%.2f%% (reference %.2f%%)\n",
			p.GetPredictions(), p.GetLabelledCount(), 100*p.GetLabelCoverage(), 100*p.GetAlertRate(), 100*p.GetReferenceAlertRate())
		for _, m := range []struct {
			name string
			v    *float64
		}{
			{"auc (realized)", p.Auc}, {"auc (estimated)", p.EstimatedAuc}, {"auc (estimated, labelled rows)", p.EstimatedAucLabelled},
			{"auc (reference)", p.ReferenceAuc}, {"precision", p.Precision}, {"recall", p.Recall},
			{"precision (estimated)", p.EstimatedPrecision}, {"recall (estimated)", p.EstimatedRecall}, {"log loss", p.LogLoss},
			{"mse", p.Mse}, {"mae", p.Mae}, {"mse (reference)", p.ReferenceMse},
		} {
			if m.v != nil {
				fmt.Fprintf(tw, "%s\t%.4f\n", m.name, *m.v)
			}
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if evs := r.GetLastEvents(); len(evs) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tSEVERITY\tRETRAIN\tMESSAGE")
		for _, e := range evs {
			retrain := "-"
			if e.GetRetrain() {
				retrain = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", tsText(e.GetEventTime()), severity(e.GetSeverity()), retrain, e.GetMessage())
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "HTML report: %s\n", report)
}

func windowText(win *eventsv1.Window) string {
	if win == nil {
		return "-"
	}
	return fmt.Sprintf("%d predictions, %s to %s", win.GetCount(), tsText(win.GetStart()), tsText(win.GetEnd()))
}

func tsText(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func severity(s eventsv1.Severity) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SEVERITY_"))
}

func stat(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

func pvalue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v < 1e-4:
		return "<0.0001"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

func opt(v *float64) string {
	if v == nil || math.IsNaN(*v) {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 4, 64)
}
