package trainer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func TestMain(m *testing.M) {
	// kafka-go keeps idle connection goroutines for a while after Close.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).roundTrip"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

const testToken = "s3cret-test-token"

// stack is a trainer served over gRPC on a loopback port against the real stack.
type stack struct {
	client   trainerv1.TrainerServiceClient
	srv      *Server
	mlf      *mlflow.Client
	brokers  []string
	reg      *prometheus.Registry
	modelKey string
	// data is the server's data source; tests switch it to fail or shuffle labels.
	data *testSource
	// newServer returns another Server on the same MLflow, Kafka and data (a restarted
	// process or a second replica), with its own metrics; args are extra flags.
	newServer func(t *testing.T, args ...string) *Server
}

func startTrainer(t *testing.T, simRows int) *stack {
	t.Helper()
	brokers := []string{stacktest.KafkaBrokers(t)}
	mlfURL := stacktest.MLflowURL(t)
	lib, err := lightgbm.Open(stacktest.LightGBMLib(t))
	if err != nil {
		t.Fatal(err)
	}
	parse := func(t *testing.T, extra ...string) Config {
		cfg, err := ParseConfig(append([]string{"-admin.token", testToken, "-kafka.brokers", brokers[0], "-mlflow.url", mlfURL,
			"-train.num-iterations", "200", "-train.early-stopping", "20", "-lease.settle", "100ms"}, extra...), func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := parse(t)
	logger := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	producer, err := kafkaio.NewProducer(cfg.Kafka, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	audit := NewAuditLog(kafkaio.Config{Brokers: brokers}, topics.ModelEvents, producer, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := audit.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	mlf := mlflow.New(mlfURL)
	tr := &http.Transport{}
	mlf.HTTP = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	data := &testSource{inner: FileSource{Paths: []string{
		datasetfiletest.Simulate(t, "-n", strconv.Itoa(simRows), "-seed", "7", "-accounts", "1000", "-warmup", "24h", "-fraud-rate", "0.03"),
		datasetfiletest.Simulate(t, "-n", strconv.Itoa(simRows), "-seed", "7", "-scenario", "purchase"),
	}}}
	deps := Deps{Lib: lib, Data: data, MLflow: mlf, Audit: audit}
	srv := New(cfg, deps, logger, reg)
	g := grpc.NewServer()
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); g.Stop(); wg.Wait() })
	return &stack{client: trainerv1.NewTrainerServiceClient(conn), srv: srv, mlf: mlf, brokers: brokers, reg: reg,
		modelKey: fmt.Sprintf("test-fraud-%d", time.Now().UnixNano()), data: data,
		newServer: func(t *testing.T, args ...string) *Server {
			return New(parse(t, args...), deps, logger, prometheus.NewRegistry())
		}}
}

func admin(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken)
}

// readEvents reads model.events from the start and returns the events of model.
func readEvents(t *testing.T, brokers []string, model string) []*eventsv1.ModelEvent {
	t.Helper()
	conn, err := kafka.DialLeader(context.Background(), "tcp", brokers[0], topics.ModelEvents, 0)
	if err != nil {
		t.Fatal(err)
	}
	last, err := conn.ReadLastOffset()
	_ = conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topics.ModelEvents, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*eventsv1.ModelEvent
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read model.events: %v", err)
		}
		if string(m.Key) == model {
			e := &eventsv1.ModelEvent{}
			if err := proto.Unmarshal(m.Value, e); err != nil {
				t.Fatalf("decode model event: %v", err)
			}
			if ct, _ := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderContentType); string(ct) != kafkaio.ContentTypeProtobuf {
				t.Errorf("model event content-type = %q", ct)
			}
			out = append(out, e)
		}
		if m.Offset >= last-1 {
			return out
		}
	}
}

func TestTrainerLifecycle(t *testing.T) {
	st := startTrainer(t, 20000)
	model := st.modelKey
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Token enforcement on every admin RPC.
	if _, err := st.client.Retrain(ctx, &trainerv1.RetrainRequest{ModelName: model, Actor: "t"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Retrain without token = %v, want UNAUTHENTICATED", err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong")
	if _, err := st.client.Promote(bad, &trainerv1.PromoteRequest{ModelName: model, Version: "1", Actor: "t", Reason: "r"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Promote with wrong token = %v, want UNAUTHENTICATED", err)
	}
	if _, err := st.client.Rollback(ctx, &trainerv1.RollbackRequest{ModelName: model, Actor: "t", Reason: "r"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Rollback without token = %v, want UNAUTHENTICATED", err)
	}
	if _, err := st.client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "t", Params: map[string]string{"objective": "poisson"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Retrain with an unknown param = %v, want INVALID_ARGUMENT", err)
	}

	// v1: streamed, promoted as the first version. A concurrent retrain is ABORTED.
	stream, err := st.client.RetrainStream(admin(ctx), &trainerv1.RetrainStreamRequest{Request: &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "first"}})
	if err != nil {
		t.Fatal(err)
	}
	var v1 *trainerv1.RetrainResponse
	rounds, aborted := 0, false
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("RetrainStream: %v", err)
		}
		if msg.GetStage() == "train" {
			rounds++
			if !aborted {
				_, err := st.client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "t"})
				if status.Code(err) != codes.Aborted {
					t.Errorf("Retrain while one runs = %v, want ABORTED", err)
				}
				aborted = true
			}
		}
		if msg.GetResult() != nil {
			v1 = msg.GetResult()
		}
	}
	if v1 == nil || !v1.GetPromoted() || v1.GetModelVersion() == "" || rounds == 0 {
		t.Fatalf("first retrain = %v after %d progress rounds, want a promoted version", v1, rounds)
	}
	if auc := v1.GetMetrics()["auc"]; auc < 0.8 {
		t.Errorf("v1 holdout AUC = %.3f, want >= 0.8 on simulator data", auc)
	}
	t.Logf("v1: %s in %.1fs, best iteration %d, metrics %v", v1.GetDecision(), v1.GetDurationSeconds(), v1.GetBestIteration(), v1.GetMetrics())
	tAfterV1 := time.Now()

	// Metrics, model card and plots are readable through MLflow's API.
	run, err := st.mlf.GetRun(ctx, v1.GetRunId())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"auc", "pr_auc", "logloss", "precision", "recall", "f1", "cost", "best_threshold"} {
		if _, ok := run.Metrics[k]; !ok {
			t.Errorf("run metrics lack %q: %v", k, run.Metrics)
		}
	}
	if run.Params["lgbm_objective"] != "binary" || run.Status != mlflow.RunFinished {
		t.Errorf("run params/status = %v %v", run.Params["lgbm_objective"], run.Status)
	}
	card, err := st.mlf.DownloadArtifact(ctx, v1.GetSourceUri(), modelstore.FileModelCard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Model card: " + model, "| auc |", "## Feature importance", "plots/roc.png", "Intended use", "cost-minimising threshold"} {
		if !bytes.Contains(card, []byte(want)) {
			t.Errorf("model card lacks %q:\n%s", want, card)
		}
	}
	for _, p := range []string{PlotROC, PlotPR, PlotCalibration, PlotImportance} {
		b, err := st.mlf.DownloadArtifact(ctx, v1.GetSourceUri(), "plots/"+p)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("plot %s: %d bytes, %v; want a PNG", p, len(b), err)
		}
	}
	if _, err := st.mlf.DownloadArtifact(ctx, v1.GetSourceUri(), modelstore.FileReferenceProfile); err != nil {
		t.Errorf("reference profile: %v", err)
	}

	// v2: a deliberately weak model (one round, two leaves) is registered but not promoted.
	v2, err := st.client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "weak",
		Params: map[string]string{"num_iterations": "1", "num_leaves": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if v2.GetPromoted() || v2.GetChampionMetrics()["auc"] != v1.GetMetrics()["auc"] {
		t.Fatalf("weak retrain = %v, want not promoted and the champion scored on the same holdout (auc %v)", v2, v1.GetMetrics()["auc"])
	}
	t.Logf("v2: %s", v2.GetDecision())
	champ, err := st.mlf.GetVersionByAlias(ctx, model, "champion")
	if err != nil || champ.Version != v1.GetModelVersion() {
		t.Fatalf("champion after weak retrain = %v, %v; want %s", champ.Version, err, v1.GetModelVersion())
	}
	if got := testutil.ToFloat64(st.srv.m.retrains.WithLabelValues("manual", "rejected")); got != 1 {
		t.Errorf("rejected retrains = %v, want 1", got)
	}

	// Manual promote of v2, then rollback to v1.
	pr, err := st.client.Promote(admin(ctx), &trainerv1.PromoteRequest{ModelName: model, Version: v2.GetModelVersion(), Actor: "alice", Reason: "canary"})
	if err != nil {
		t.Fatal(err)
	}
	if pr.GetEvent().GetFromVersion() != v1.GetModelVersion() || pr.GetEvent().GetSha256() == "" || pr.GetEvent().GetActor() != "admin" {
		t.Errorf("promote event = %v", pr.GetEvent())
	}
	if _, err := st.client.Promote(admin(ctx), &trainerv1.PromoteRequest{ModelName: model, Version: v2.GetModelVersion(), Actor: "alice", Reason: "again"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("promoting the champion again = %v, want FAILED_PRECONDITION", err)
	}
	if _, err := st.client.Promote(admin(ctx), &trainerv1.PromoteRequest{ModelName: model, Version: "999", Actor: "alice", Reason: "x"}); status.Code(err) != codes.NotFound {
		t.Errorf("promoting a missing version = %v, want NOT_FOUND", err)
	}
	tAfterPromote := time.Now()
	rb, err := st.client.Rollback(admin(ctx), &trainerv1.RollbackRequest{ModelName: model, Actor: "bob", Reason: "regression in canary"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.GetEvent().GetToVersion() != v1.GetModelVersion() || rb.GetEvent().GetType() != eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK {
		t.Errorf("rollback event = %v", rb.GetEvent())
	}
	champ, err = st.mlf.GetVersionByAlias(ctx, model, "champion")
	if err != nil || champ.Version != v1.GetModelVersion() {
		t.Fatalf("champion after rollback = %v, %v; want %s", champ.Version, err, v1.GetModelVersion())
	}

	// The events are on Kafka, read back by an independent reader.
	events := readEvents(t, st.brokers, model)
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, fmt.Sprintf("%s:%s->%s", e.GetType().String()[len("MODEL_EVENT_TYPE_"):], e.GetFromVersion(), e.GetToVersion()))
	}
	want := []string{"REGISTERED:->1", "PROMOTED:->1", "REGISTERED:->2", "REJECTED:1->2", "PROMOTED:1->2", "ROLLED_BACK:2->1"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("events on model.events = %v, want %v", kinds, want)
	}

	// History and AsOf answer from the audit log.
	h, err := st.client.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: model, Alias: "champion"})
	if err != nil {
		t.Fatal(err)
	}
	// The request named "bob"; the audit records the authenticated caller, the holder of the
	// single admin token ("admin").
	if len(h.GetEvents()) != 3 || h.GetEvents()[0].GetActor() != "admin" || h.GetEvents()[0].GetReason() != "regression in canary" {
		t.Errorf("champion history = %v, want 3 changes, newest by admin", h.GetEvents())
	}
	for _, tc := range []struct {
		at    time.Time
		want  string
		found bool
	}{
		{at: time.Unix(0, 0), found: false},
		{at: tAfterV1, want: v1.GetModelVersion(), found: true},
		{at: tAfterPromote, want: v2.GetModelVersion(), found: true},
		{at: time.Now(), want: v1.GetModelVersion(), found: true},
	} {
		r, err := st.client.AsOf(ctx, &trainerv1.AsOfRequest{ModelName: model, Time: timestamppb.New(tc.at)})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetFound() != tc.found || r.GetVersion() != tc.want {
			t.Errorf("AsOf(%v) = %q found %v, want %q found %v", tc.at, r.GetVersion(), r.GetFound(), tc.want, tc.found)
		}
	}

	// ListModels shows both versions, the champion alias and the metrics.
	lm, err := st.client.ListModels(ctx, &trainerv1.ListModelsRequest{ModelName: model})
	if err != nil {
		t.Fatal(err)
	}
	if len(lm.GetVersions()) != 2 || lm.GetVersions()[1].GetVersion() != v1.GetModelVersion() || fmt.Sprint(lm.GetVersions()[1].GetAliases()) != "[champion]" ||
		lm.GetVersions()[1].GetMetrics()["auc"] == 0 || lm.GetVersions()[1].GetFeatureSpecName() != "fraud" {
		t.Errorf("ListModels = %v", lm.GetVersions())
	}
	if got := testutil.ToFloat64(st.srv.m.lastSuccess); got == 0 {
		t.Error("mlops_retrain_last_success_timestamp_seconds not set")
	}
}

// TestTrainerRegression trains the purchase (regression) model.
func TestTrainerRegression(t *testing.T) {
	st := startTrainer(t, 6000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	model := "test-purchase-" + st.modelKey
	r, err := st.client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Task: eventsv1.Task_TASK_REGRESSION})
	if err != nil {
		t.Fatal(err)
	}
	if !r.GetPromoted() || r.GetMetrics()["mse"] <= 0 || r.GetMetrics()["mse"] > 0.25 {
		t.Errorf("regression retrain = %v, want promoted with 0 < mse <= 0.25", r)
	}
}

// TestTrainerDriftEvent drives HandleDrift with real drift events: one retrains, a second
// inside the cooldown does not, an informational one does nothing.
func TestTrainerDriftEvent(t *testing.T) {
	st := startTrainer(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	model := "test-drift-" + st.modelKey
	rec := func(retrain bool) kafka.Message {
		b, err := proto.Marshal(&eventsv1.DriftEvent{EventId: eventid.New(), ModelName: model, Feature: "amount", Metric: eventsv1.DriftMetric_DRIFT_METRIC_PSI, Value: 0.3, Threshold: 0.1, Retrain: retrain})
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Topic: topics.DriftEvents, Key: []byte(model), Value: b}
	}
	for i, retrain := range []bool{false, true, true} {
		if _, err := st.srv.HandleDrift(ctx, rec(retrain)); err != nil {
			t.Fatalf("HandleDrift #%d: %v", i, err)
		}
	}
	if _, err := st.srv.HandleDrift(ctx, kafka.Message{Value: []byte{0xff, 0xff}}); !kafkaio.IsPermanent(err) {
		t.Errorf("HandleDrift(garbage) = %v, want a permanent error", err)
	}
	for action, want := range map[string]float64{"informational": 1, "retrained": 1, "cooldown": 1, "invalid": 1} {
		if got := testutil.ToFloat64(st.srv.m.driftEvents.WithLabelValues(action)); got != want {
			t.Errorf("drift events %s = %v, want %v", action, got, want)
		}
	}
	mvs, err := st.mlf.SearchModelVersions(ctx, model)
	if err != nil || len(mvs) != 1 {
		t.Fatalf("versions after drift = %d, %v; want 1", len(mvs), err)
	}
	run, err := st.mlf.GetRun(ctx, mvs[0].RunID)
	if err == nil && run.Tags[tagActor] != "drift" {
		t.Errorf("run actor tag = %q, want drift", run.Tags[tagActor])
	}
}

// tWriter sends log lines to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}
