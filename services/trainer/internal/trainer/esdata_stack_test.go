package trainer

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// esTestMappings are the mappings predlog's index template gives prediction documents
// (services/predlog/internal/predlog/mapping.go), for the fields these documents carry.
func esTestMappings() map[string]any {
	kw, dbl, date := map[string]any{"type": "keyword"}, map[string]any{"type": "double"}, map[string]any{"type": "date"}
	features := map[string]any{}
	for _, n := range featurespec.Fraud().Names() {
		features[n] = dbl
	}
	return map[string]any{
		"dynamic": "strict",
		"properties": map[string]any{
			"@timestamp": date, "event_id": kw, "transaction_id": kw, "account_id": kw, "model_name": kw, "model_version": kw,
			"task": kw, "score": dbl, "decision": kw, "threshold": dbl, "amount": dbl, "currency": kw, "feature_spec": kw,
			"features":  map[string]any{"type": "object", "dynamic": true, "properties": features},
			"scored_at": date, "path": kw, "actual": dbl, "labelled_at": date, "label_kind": kw, "label_source": kw, "label_event_id": kw,
		},
	}
}

// esCall sends a JSON request to Elasticsearch and fails the test on a non-2xx answer.
func esCall(t *testing.T, client *http.Client, method, url, contentType string, body []byte) []byte {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: status %d: %.500s", method, url, resp.StatusCode, out)
	}
	return out
}

// TestTrainerElasticsearchSource indexes a few thousand prediction documents shaped like
// predlog's (features from the transaction simulator, labels joined, some not yet labelled,
// some of an older feature spec) into a fresh index of the real Elasticsearch, reads them back
// through ESSource (the exact matrix, labels and event times of the labelled rows in range)
// and then runs a full Retrain through the trainer's gRPC server with -data.source=es against
// the real MLflow: the version is registered and trained on exactly those rows; a window with
// too few labelled rows fails with FAILED_PRECONDITION.
func TestTrainerElasticsearchSource(t *testing.T) {
	esURL := strings.TrimRight(stacktest.ElasticsearchURL(t), "/")
	brokers := []string{stacktest.KafkaBrokers(t)}
	mlfURL := stacktest.MLflowURL(t)
	lib, err := lightgbm.Open(stacktest.LightGBMLib(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tr := &http.Transport{}
	httpc := &http.Client{Transport: tr, Timeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)

	// The data: simulated transactions of ten days ago, fraud rate raised so the holdout has
	// enough positives.
	spec := featurespec.Fraud()
	start := time.Now().Add(-10 * 24 * time.Hour).UTC().Truncate(time.Hour)
	ds := datasetfiletest.Read(t, spec, "-n", "5000", "-seed", "11", "-accounts", "800", "-warmup", "24h",
		"-start", start.Format(time.RFC3339), "-fraud-rate", "0.05")
	index := fmt.Sprintf("trainer-es-test-%d", time.Now().UnixNano())
	mapping, err := json.Marshal(map[string]any{
		"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": 0}, "mappings": esTestMappings(),
	})
	if err != nil {
		t.Fatal(err)
	}
	esCall(t, httpc, http.MethodPut, esURL+"/"+index, "application/json", mapping)
	t.Cleanup(func() { esCall(t, httpc, http.MethodDelete, esURL+"/"+index, "", nil) })

	unlabelled := func(i int) bool { return i%10 == 9 } // the label has not arrived yet
	oldSpec := func(i int) bool { return i%50 == 25 }   // logged under an older spec version
	w := spec.Len()
	dropped := spec.Index("device_risk_score") // absent from every 37th document
	for i := 0; i < ds.Len(); i += 37 {
		ds.X[i*w+dropped] = math.NaN()
	}
	txID := func(i int) string { return fmt.Sprintf("tx-%05d", i) }
	var bulk bytes.Buffer
	nanFeatures := 0
	for i := range ds.Len() {
		at := time.Unix(0, ds.EventTimes[i]).UTC()
		feats := map[string]float64{}
		for k, n := range spec.Names() {
			if v := ds.X[i*w+k]; !math.IsNaN(v) { // predlog leaves missing values out
				feats[n] = v
			} else {
				nanFeatures++
			}
		}
		doc := map[string]any{
			"@timestamp": at.Format(time.RFC3339Nano), "event_id": "ev-" + txID(i), "transaction_id": txID(i),
			"account_id": "acct-" + strconv.Itoa(i%800), "model_name": "fraud", "model_version": "1", "task": "binary_classification",
			"score": 0.01, "decision": "pass", "threshold": 0.8, "amount": ds.X[i*w+featurespec.FraudAmount], "currency": "SGD",
			"feature_spec": spec.ID(), "features": feats, "path": "stream", "scored_at": at.Add(5 * time.Millisecond).Format(time.RFC3339Nano),
		}
		if oldSpec(i) {
			doc["feature_spec"] = "fraud-v0"
		}
		if !unlabelled(i) {
			doc["actual"] = ds.Y[i]
			doc["labelled_at"] = time.Unix(0, ds.LabelTimes[i]).UTC().Format(time.RFC3339Nano)
			doc["label_kind"], doc["label_source"], doc["label_event_id"] = "fraud", "simulator", "label-"+txID(i)
		}
		action, _ := json.Marshal(map[string]any{"index": map[string]any{"_index": index, "_id": txID(i)}})
		src, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		bulk.Write(action)
		bulk.WriteByte('\n')
		bulk.Write(src)
		bulk.WriteByte('\n')
	}
	var bres struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(esCall(t, httpc, http.MethodPost, esURL+"/_bulk?refresh=wait_for", "application/x-ndjson", bulk.Bytes()), &bres); err != nil {
		t.Fatal(err)
	}
	if bres.Errors || len(bres.Items) != ds.Len() {
		t.Fatalf("bulk: errors=%v, %d items for %d documents (first: %v)", bres.Errors, len(bres.Items), ds.Len(), bres.Items[0])
	}

	// The window: whole seconds, so the millisecond resolution of @timestamp does not matter.
	from := time.Unix(0, ds.EventTimes[400]).Truncate(time.Second)
	to := time.Unix(0, ds.EventTimes[4600]).Truncate(time.Second)
	var want []int
	positives := 0
	for i, ts := range ds.EventTimes {
		if ts >= from.UnixNano() && ts < to.UnixNano() && !unlabelled(i) && !oldSpec(i) {
			want = append(want, i)
			positives += int(ds.Y[i])
		}
	}
	// Elasticsearch orders by millisecond, then transaction id.
	slices.SortStableFunc(want, func(a, b int) int {
		return cmp.Or(cmp.Compare(ds.EventTimes[a]/1e6, ds.EventTimes[b]/1e6), strings.Compare(txID(a), txID(b)))
	})
	t.Logf("%d documents, %d labelled in [%s, %s) with spec %s (%d positive), %d missing values in all",
		ds.Len(), len(want), from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), spec.ID(), positives, nanFeatures)
	if len(want) < 3000 || positives < 50 {
		t.Fatalf("bad test data: %d rows, %d positive", len(want), positives)
	}

	cfg, err := ParseConfig([]string{"-admin.token", testToken, "-kafka.brokers", brokers[0], "-mlflow.url", mlfURL,
		"-train.num-iterations", "200", "-train.early-stopping", "20",
		"-data.source", "es", "-es.url", esURL, "-es.index", index, "-es.page-size", "700"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	data, err := NewDataSource(cfg, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	es, ok := data.(*ESSource)
	if !ok {
		t.Fatalf("-data.source=es gave a %T", data)
	}
	t.Cleanup(es.CloseIdleConnections)

	// 1. The source alone: exactly the labelled rows in range, in order, values as logged.
	got, err := es.Load(ctx, DataQuery{Spec: spec, From: from, To: to})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Rows() != len(want) {
		t.Fatalf("Load returned %d rows, want %d (labelled, %s, in range)", got.Rows(), len(want), spec.ID())
	}
	for r, i := range want {
		if got.Y[r] != ds.Y[i] || got.EventTimes[r] != ds.EventTimes[i] || got.Amounts[r] != ds.X[i*w+featurespec.FraudAmount] {
			t.Fatalf("row %d (%s): label %v time %d amount %v, want %v %d %v", r, txID(i), got.Y[r], got.EventTimes[r], got.Amounts[r],
				ds.Y[i], ds.EventTimes[i], ds.X[i*w+featurespec.FraudAmount])
		}
		for k := range w {
			g, e := got.X[r*w+k], ds.X[i*w+k]
			if g != e && !(math.IsNaN(g) && math.IsNaN(e)) {
				t.Fatalf("row %d (%s) feature %s = %v, want %v", r, txID(i), spec.Features[k].Name, g, e)
			}
		}
	}
	skipped := 0
	for i, ts := range ds.EventTimes {
		if ts >= from.UnixNano() && ts < to.UnixNano() && !unlabelled(i) && oldSpec(i) {
			skipped++
		}
	}
	missing := 0
	for _, i := range want {
		if math.IsNaN(ds.X[i*w+dropped]) {
			missing++
		}
	}
	if !strings.Contains(got.Source, fmt.Sprintf("%d skipped (other feature spec)", skipped)) || !strings.Contains(got.Source, fmt.Sprintf("%d missing values", missing)) {
		t.Errorf("Source = %q, want %d skipped for the other feature spec and %d missing values", got.Source, skipped, missing)
	}
	if missing == 0 || skipped == 0 {
		t.Fatalf("bad test data: %d missing values, %d skipped documents in range", missing, skipped)
	}
	// max_rows keeps the newest.
	newest, err := es.Load(ctx, DataQuery{Spec: spec, From: from, To: to, MaxRows: 1500})
	if err != nil {
		t.Fatalf("Load with max rows: %v", err)
	}
	if newest.Rows() != 1500 || newest.EventTimes[0] != ds.EventTimes[want[len(want)-1500]] || newest.EventTimes[1499] != ds.EventTimes[want[len(want)-1]] {
		t.Fatalf("Load with max rows 1500: %d rows, first %d last %d; want the newest 1500", newest.Rows(), newest.EventTimes[0], newest.EventTimes[newest.Rows()-1])
	}

	// 2. A full retrain through the gRPC server.
	producer, err := kafkaio.NewProducer(cfg.Kafka, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	audit := NewAuditLog(kafkaio.Config{Brokers: brokers}, topics.ModelEvents, producer, 20*time.Second)
	if err := audit.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	mlf := mlflow.New(mlfURL)
	mtr := &http.Transport{}
	mlf.HTTP = &http.Client{Transport: mtr}
	t.Cleanup(mtr.CloseIdleConnections)
	srv := New(cfg, Deps{Lib: lib, Data: data, MLflow: mlf, Audit: audit}, logger, reg)
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
	client := trainerv1.NewTrainerServiceClient(conn)
	model := fmt.Sprintf("test-es-fraud-%d", time.Now().UnixNano())

	// Too few labelled rows in the window: FAILED_PRECONDITION, nothing trained.
	narrowTo := time.Unix(0, ds.EventTimes[900]).Truncate(time.Second)
	_, err = client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "too little data",
		DataFrom: timestamppb.New(from), DataTo: timestamppb.New(narrowTo)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "-data.min-rows") {
		t.Fatalf("Retrain on a window with < 1000 labelled rows = %v, want FAILED_PRECONDITION naming -data.min-rows", err)
	}
	// The registered model exists (it carries the retraining lease tag) but has no version.
	if mvs, err := mlf.SearchModelVersions(ctx, model); err != nil || len(mvs) != 0 {
		t.Fatalf("model %q: %d versions, %v after a skipped retrain; want none", model, len(mvs), err)
	}

	resp, err := client.Retrain(admin(ctx), &trainerv1.RetrainRequest{ModelName: model, Actor: "tester", Reason: "log-and-wait",
		DataFrom: timestamppb.New(from), DataTo: timestamppb.New(to)})
	if err != nil {
		t.Fatalf("Retrain with -data.source=es: %v", err)
	}
	wantTrain := int64(float64(len(want)) * TrainFraction) // SplitByTime's cut
	if resp.GetModelVersion() == "" || resp.GetTrainingRows() != wantTrain {
		t.Fatalf("Retrain = version %q, training_rows %d; want a version trained on %d of the %d labelled rows",
			resp.GetModelVersion(), resp.GetTrainingRows(), wantTrain, len(want))
	}
	mv, err := mlf.GetModelVersion(ctx, model, resp.GetModelVersion())
	if err != nil {
		t.Fatalf("registered version %s: %v", resp.GetModelVersion(), err)
	}
	run, err := mlf.GetRun(ctx, mv.RunID)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, k := range []string{"rows_train", "rows_valid", "rows_holdout"} {
		n, err := strconv.Atoi(run.Params[k])
		if err != nil {
			t.Fatalf("run param %s = %q", k, run.Params[k])
		}
		total += n
	}
	if total != len(want) || !strings.Contains(run.Params["data_source"], "elasticsearch "+index) {
		t.Errorf("run trained on %d rows from %q, want %d rows from elasticsearch %s", total, run.Params["data_source"], len(want), index)
	}
	if auc := resp.GetMetrics()["auc"]; auc < 0.75 {
		t.Errorf("holdout AUC %.3f, want >= 0.75: the logged features should be learnable", auc)
	}
	t.Logf("version %s: %d training rows, holdout auc %.3f, decision %q, source %q", resp.GetModelVersion(), resp.GetTrainingRows(),
		resp.GetMetrics()["auc"], resp.GetDecision(), run.Params["data_source"])
}
