package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
)

// trainerFlags are the flags every trainer command shares.
type trainerFlags struct {
	addr, actor, model string
	token              flagenv.Secret
	tls                tlsconf.Client
	timeout            time.Duration
}

func (f *trainerFlags) register(fs *flag.FlagSet, getenv func(string) string, defTimeout time.Duration) {
	flagenv.StringVar(fs, getenv, &f.addr, "trainer.addr", "TRAINER_ADDR", "127.0.0.1:50056", "trainer gRPC address")
	flagenv.SecretVar(fs, getenv, &f.token, "token", "MLOPS_ADMIN_TOKEN", "admin bearer token for train, promote and rollback")
	f.tls.RegisterFlags(fs, getenv, "tls", "MLOPS_TLS")
	flagenv.StringVar(fs, getenv, &f.actor, "actor", "USER", osUser(), "who makes the change (default: $USER, else the OS account)")
	flagenv.StringVar(fs, getenv, &f.model, "model", "MLOPS_MODEL", "", "registered model name (default: the trainer's default model)")
	flagenv.DurationVar(fs, getenv, &f.timeout, "timeout", "MLOPSCTL_TIMEOUT", defTimeout, "deadline of the call")
}

// osUser names the OS account running mlopsctl, for the audit's "who" when $USER is unset
// (containers, CI); empty when it cannot be found.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// parseInterspersed parses fs allowing flags after positional arguments
// ("models promote 3 -reason x") and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := flagenv.Parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// dial connects to the trainer; the returned context carries the deadline and the token.
func (f *trainerFlags) dial(ctx context.Context) (trainerv1.TrainerServiceClient, context.Context, func(), error) {
	creds, err := grpcserve.DialCredentials(f.tls)
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := grpc.NewClient(f.addr, creds)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("trainer address %q: %w", f.addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	if f.token.IsSet() {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.token.Reveal())
	}
	return trainerv1.NewTrainerServiceClient(conn), ctx, func() { cancel(); _ = conn.Close() }, nil
}

// explain turns a gRPC error into a message for a person.
func (f *trainerFlags) explain(op string, err error) error {
	st, ok := grpcstatus.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unauthenticated:
		return fmt.Errorf("%s: not authorized: pass the trainer's admin token with -token or MLOPS_ADMIN_TOKEN (%s)", op, msg)
	case codes.Aborted:
		return fmt.Errorf("%s: a retrain is already running for this model; wait for it to finish (%s)", op, msg)
	case codes.Unavailable:
		return fmt.Errorf("%s: trainer at %s is unreachable or one of its dependencies is down; is it running? (%s)", op, f.addr, msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: no answer within %v; raise -timeout (%s)", op, f.timeout, msg)
	case codes.NotFound:
		return fmt.Errorf("%s: not found: %s", op, msg)
	case codes.InvalidArgument:
		return fmt.Errorf("%s: invalid request: %s", op, msg)
	case codes.FailedPrecondition:
		return fmt.Errorf("%s: not possible now: %s", op, msg)
	case codes.Canceled:
		return fmt.Errorf("%s: cancelled", op)
	default:
		return fmt.Errorf("%s: trainer error (%s): %s", op, st.Code(), msg)
	}
}

// paramFlag collects repeated -param key=value flags.
type paramFlag map[string]string

func (p paramFlag) String() string { return fmt.Sprint(map[string]string(p)) }

func (p paramFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = v
	return nil
}

func parseTask(s string) (eventsv1.Task, error) {
	switch s {
	case "":
		return eventsv1.Task_TASK_UNSPECIFIED, nil
	case "binary":
		return eventsv1.Task_TASK_BINARY_CLASSIFICATION, nil
	case "regression":
		return eventsv1.Task_TASK_REGRESSION, nil
	}
	return 0, fmt.Errorf("task %q: want binary or regression", s)
}

// train runs `mlopsctl train`: RetrainStream with a progress bar on stderr.
func train(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f trainerFlags
	f.register(fs, getenv, 30*time.Minute)
	reason := fs.String("reason", "manual", "why the model is retrained")
	task := fs.String("task", "", "task of a new model: binary or regression (default: the trainer's choice for the name)")
	maxRows := fs.Int64("max-rows", 0, "cap on training rows, newest kept (0: no cap)")
	skip := fs.Bool("skip-promotion", false, "register the challenger but never promote it")
	quiet := fs.Bool("quiet", false, "no progress bar")
	params := paramFlag{}
	fs.Var(params, "param", "LightGBM parameter override key=value (repeatable), e.g. -param num_leaves=63")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	tk, err := parseTask(*task)
	if err != nil {
		return err
	}
	if f.actor == "" {
		return errors.New("train: -actor is empty: set -actor or $USER")
	}
	client, cctx, done, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	stream, err := client.RetrainStream(cctx, &trainerv1.RetrainStreamRequest{Request: &trainerv1.RetrainRequest{
		ModelName: f.model, Reason: *reason, Actor: f.actor, Params: params, MaxRows: *maxRows, SkipPromotion: *skip, Task: tk,
	}})
	if err != nil {
		return f.explain("train", err)
	}
	bar := &progressBar{w: stderr, quiet: *quiet}
	var result *trainerv1.RetrainResponse
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			bar.finish()
			return f.explain("train", err)
		}
		bar.update(msg)
		if msg.GetResult() != nil {
			result = msg.GetResult()
		}
	}
	bar.finish()
	if result == nil {
		return errors.New("train: the trainer closed the stream without a result")
	}
	printResult(stdout, result)
	return nil
}

// progressBar draws training progress on one terminal line.
type progressBar struct {
	w     io.Writer
	quiet bool
	drawn bool
}

func (b *progressBar) update(m *trainerv1.RetrainStreamResponse) {
	if b.quiet {
		return
	}
	if m.GetStage() == "train" && m.GetMaxIterations() > 0 {
		const width = 30
		n := min(int(m.GetIteration())*width/int(m.GetMaxIterations()), width)
		fmt.Fprintf(b.w, "\rtrain [%s%s] %d/%d %s=%.5g   ", strings.Repeat("#", n), strings.Repeat(".", width-n),
			m.GetIteration(), m.GetMaxIterations(), m.GetValidMetricName(), m.GetValidMetric())
		b.drawn = true
		return
	}
	b.finish()
	if m.GetMessage() != "" {
		fmt.Fprintf(b.w, "%s: %s\n", m.GetStage(), m.GetMessage())
	}
}

func (b *progressBar) finish() {
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

func printResult(w io.Writer, r *trainerv1.RetrainResponse) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\nversion\t%s\npromoted\t%v\ndecision\t%s\nrun\t%s\nrows (train)\t%d\nbest iteration\t%d\nduration\t%.1fs\nsource\t%s\n",
		r.GetModelName(), r.GetModelVersion(), r.GetPromoted(), r.GetDecision(), r.GetRunId(), r.GetTrainingRows(),
		r.GetBestIteration(), r.GetDurationSeconds(), r.GetSourceUri())
	_ = tw.Flush()
	printMetrics(w, r.GetMetrics(), r.GetChampionMetrics())
}

func printMetrics(w io.Writer, m, champ map[string]float64) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(champ) > 0 {
		fmt.Fprintln(tw, "METRIC\tMODEL\tCHAMPION")
	} else {
		fmt.Fprintln(tw, "METRIC\tVALUE")
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if len(champ) > 0 {
			fmt.Fprintf(tw, "%s\t%.6g\t%.6g\n", k, m[k], champ[k])
		} else {
			fmt.Fprintf(tw, "%s\t%.6g\n", k, m[k])
		}
	}
	_ = tw.Flush()
}

// models runs `mlopsctl models <list|describe|promote|rollback|history|asof>`.
func models(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := errors.New("usage: mlopsctl models list | describe <version> | promote <version> | rollback [-to v] | history | asof <RFC3339>")
	if len(args) == 0 {
		return fmt.Errorf("%w: %w", ErrUsage, usage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("models "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f trainerFlags
	f.register(fs, getenv, 30*time.Second)
	reason := fs.String("reason", "", "why the change is made (promote, rollback; required)")
	alias := fs.String("alias", "", "alias (default champion)")
	to := fs.String("to", "", "rollback: version to roll back to (default: the previous champion)")
	limit := fs.Int("limit", 0, "history: most events to show (default 100)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	wantArgs := map[string]int{"list": 0, "describe": 1, "promote": 1, "rollback": 0, "history": 0, "asof": 1}
	n, ok := wantArgs[sub]
	if !ok {
		return fmt.Errorf("unknown models command %q: %w", sub, usage)
	}
	if len(pos) != n {
		return fmt.Errorf("models %s takes %d argument(s), got %d: %w", sub, n, len(pos), usage)
	}
	if (sub == "promote" || sub == "rollback") && (*reason == "" || f.actor == "") {
		return fmt.Errorf("models %s: -reason and -actor (or $USER) are required", sub)
	}
	client, cctx, done, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	op := "models " + sub
	switch sub {
	case "list", "describe":
		resp, err := client.ListModels(cctx, &trainerv1.ListModelsRequest{ModelName: f.model})
		if err != nil {
			return f.explain(op, err)
		}
		if sub == "list" {
			printVersions(stdout, resp.GetVersions())
			return nil
		}
		for _, v := range resp.GetVersions() {
			if v.GetVersion() == pos[0] {
				describe(stdout, v)
				return nil
			}
		}
		return fmt.Errorf("%s: version %s of model %q not found", op, pos[0], cmp.Or(f.model, "(default)"))
	case "promote":
		resp, err := client.Promote(cctx, &trainerv1.PromoteRequest{ModelName: f.model, Version: pos[0], Alias: *alias, Actor: f.actor, Reason: *reason})
		if err != nil {
			return f.explain(op, err)
		}
		printEvents(stdout, []*eventsv1.ModelEvent{resp.GetEvent()})
	case "rollback":
		resp, err := client.Rollback(cctx, &trainerv1.RollbackRequest{ModelName: f.model, ToVersion: *to, Actor: f.actor, Reason: *reason})
		if err != nil {
			return f.explain(op, err)
		}
		printEvents(stdout, []*eventsv1.ModelEvent{resp.GetEvent()})
	case "history":
		resp, err := client.GetHistory(cctx, &trainerv1.GetHistoryRequest{ModelName: f.model, Alias: *alias, Limit: int32(*limit)})
		if err != nil {
			return f.explain(op, err)
		}
		printEvents(stdout, resp.GetEvents())
	case "asof":
		t, err := time.Parse(time.RFC3339Nano, pos[0])
		if err != nil {
			return fmt.Errorf("%s: time %q: want RFC 3339, e.g. 2026-03-01T12:00:00Z", op, pos[0])
		}
		resp, err := client.AsOf(cctx, &trainerv1.AsOfRequest{ModelName: f.model, Alias: *alias, Time: timestamppb.New(t)})
		if err != nil {
			return f.explain(op, err)
		}
		if !resp.GetFound() {
			fmt.Fprintf(stdout, "no version held %s at %s\n", cmp.Or(*alias, "champion"), t.Format(time.RFC3339))
			return nil
		}
		fmt.Fprintf(stdout, "version %s held %s at %s\n", resp.GetVersion(), cmp.Or(*alias, "champion"), t.Format(time.RFC3339))
		printEvents(stdout, []*eventsv1.ModelEvent{resp.GetSinceEvent()})
		if resp.GetUntilEvent() != nil {
			fmt.Fprintln(stdout, "until:")
			printEvents(stdout, []*eventsv1.ModelEvent{resp.GetUntilEvent()})
		}
	}
	return nil
}

func printVersions(w io.Writer, vs []*trainerv1.ModelVersion) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tALIASES\tCREATED\tPRIMARY\tRUN")
	for _, v := range vs {
		primary := "-"
		if m, ok := v.GetMetrics()["auc"]; ok {
			primary = fmt.Sprintf("auc=%.4f", m)
		} else if m, ok := v.GetMetrics()["mse"]; ok {
			primary = fmt.Sprintf("mse=%.5f", m)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.GetModelName(), v.GetVersion(), cmp.Or(strings.Join(v.GetAliases(), ","), "-"),
			v.GetCreatedAt().AsTime().UTC().Format(time.RFC3339), primary, v.GetRunId())
	}
	_ = tw.Flush()
}

func describe(w io.Writer, v *trainerv1.ModelVersion) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\nversion\t%s\naliases\t%s\ntask\t%s\nfeature spec\t%s v%s\ncreated\t%s\nrun\t%s\nsha256\t%s\nsource\t%s\nmodel card\t%s/model_card.md\n",
		v.GetModelName(), v.GetVersion(), cmp.Or(strings.Join(v.GetAliases(), ","), "-"), v.GetTask(), v.GetFeatureSpecName(),
		v.GetFeatureSpecVersion(), v.GetCreatedAt().AsTime().UTC().Format(time.RFC3339), v.GetRunId(), v.GetSha256(), v.GetSourceUri(), v.GetSourceUri())
	_ = tw.Flush()
	printMetrics(w, v.GetMetrics(), nil)
}

func printEvents(w io.Writer, evs []*eventsv1.ModelEvent) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tMODEL\tTYPE\tALIAS\tFROM\tTO\tACTOR\tREASON")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.GetEventTime().AsTime().UTC().Format(time.RFC3339Nano), e.GetModelName(),
			strings.TrimPrefix(e.GetType().String(), "MODEL_EVENT_TYPE_"), cmp.Or(e.GetAlias(), "-"), cmp.Or(e.GetFromVersion(), "-"),
			cmp.Or(e.GetToVersion(), "-"), e.GetActor(), e.GetReason())
	}
	_ = tw.Flush()
}
