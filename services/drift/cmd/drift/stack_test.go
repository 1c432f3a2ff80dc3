package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/profile"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/sim"
)

// score is a fixed stand-in model for the reference and the published predictions.
func score(row []float64) float64 {
	z := -4 + 1.5*row[featurespec.FraudDeviceRiskScore] + 0.3*math.Log1p(row[featurespec.FraudAmount]/100)
	return 1 / (1 + math.Exp(-z))
}

// TestDriftOnRealStack runs the drift binary's realMain against the real Kafka and MLflow:
// it loads the champion's reference profile from the registry, consumes predictions, and
// when amounts double it publishes a drift event on the drift topic, reports drifting over
// gRPC and shows the shift in the HTML report.
func TestDriftOnRealStack(t *testing.T) {
	brokers := stacktest.KafkaBrokers(t)
	mlflowURL := stacktest.MLflowURL(t)
	ctx := t.Context()
	const window, refN = 1000, 30000
	base := sim.Config{Seed: 17, Accounts: 1000, Warmup: 7 * 24 * time.Hour}
	d0, err := sim.FraudDataset(base, refN+8*window)
	if err != nil {
		t.Fatal(err)
	}
	shifted := base
	shifted.Drifts = []sim.Drift{{At: time.Unix(0, d0.EventTimes[refN+4*window]), AmountScale: 2}}
	d, err := sim.FraudDataset(shifted, refN+8*window)
	if err != nil {
		t.Fatal(err)
	}

	// The champion: a registered version whose artifacts carry the reference profile.
	w := d.Spec.Len()
	scores := make([]float64, refN)
	for i := range refN {
		scores[i] = score(d.Row(i))
	}
	prof, err := profile.Build(d.Spec.Fingerprint(), d.Spec.Names(), d.X[:refN*w], scores, profile.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := prof.Calibrate(d.X[:refN*w], scores, profile.CalibrateOptions{WindowSize: window, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	profJSON, err := prof.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	model := "drift-stack-" + suffix
	ml := mlflow.New(mlflowURL)
	expID, err := ml.EnsureExperiment(ctx, "test-"+model)
	if err != nil {
		t.Fatal(err)
	}
	run, err := ml.CreateRun(ctx, expID, "drift-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	man, source, err := modelstore.Publish(ctx, ml, run, modelstore.Bundle{ModelName: model, ModelText: []byte("stand-in model"),
		Spec: d.Spec, Threshold: 0.8, LightGBMVersion: "4.7.0", ReferenceProfile: profJSON})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := modelstore.Register(ctx, ml, man, source, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&modelstore.Store{Client: ml}).Promote(ctx, model, modelstore.AliasChampion, mv.Version, d.Spec.Fingerprint()); err != nil {
		t.Fatal(err)
	}

	preds, labels, driftTopic, modelEvents := "drift-test-pred-"+suffix, "drift-test-labels-"+suffix, "drift-test-events-"+suffix, "drift-test-model-"+suffix
	if err := kafkaio.EnsureTopics(ctx, []string{brokers}, []kafkaio.TopicSpec{
		// One partition: the windows then follow the publishing order (with several, a window
		// interleaves whatever each partition's fetch returned).
		{Name: preds, Partitions: 1}, {Name: labels, Partitions: 1}, {Name: driftTopic, Partitions: 1}, {Name: modelEvents, Partitions: 1}, {Name: "tx.dlq", Partitions: 1},
	}); err != nil {
		t.Fatal(err)
	}
	grpcAddr, adminAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	args := []string{"-grpc.addr", grpcAddr, "-admin.addr", adminAddr, "-kafka.brokers", brokers, "-kafka.group", "drift-test-" + suffix,
		"-kafka.topics", preds + "," + labels, "-topic.drift", driftTopic, "-topic.model-events", modelEvents, "-mlflow.url", mlflowURL,
		"-models", model, "-window.count", strconv.Itoa(window), "-window.min-count", "200", "-window.duration", "10000h", "-reference.refresh", "1s"}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- realMain(runCtx, args, func(string) string { return "" }, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("realMain: %v", err)
		}
	})

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := driftv1.NewDriftServiceClient(conn)
	kafkaiotest.WaitFor(t, 60*time.Second, "the reference to load", func() (bool, error) {
		st, err := client.GetStatus(ctx, &driftv1.GetStatusRequest{ModelName: model})
		return err == nil && st.GetModelVersion() == mv.Version, err
	})

	producer, err := kafkaio.NewProducer(kafkaio.Config{Brokers: []string{brokers}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var recs []kafka.Message
	for i := refN; i < refN+8*window; i++ {
		tx := "tx-" + suffix + "-" + strconv.Itoa(i)
		p := &eventsv1.Prediction{EventId: "p-" + tx, EventTime: timestamppb.New(time.Unix(0, d.EventTimes[i])), TransactionId: tx,
			ModelName: model, ModelVersion: mv.Version, Score: score(d.Row(i)), Threshold: 0.8,
			Features: &eventsv1.FeatureVector{TransactionId: tx, SpecFingerprint: d.Spec.Fingerprint(), Values: d.Row(i), Amount: d.Row(i)[featurespec.FraudAmount]}}
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafkaio.NewRecord(preds, []byte(tx), b, kafkaio.ContentTypeProtobuf, nil))
	}
	recs = append(recs, kafkaio.NewRecord(preds, []byte("bad"), []byte("\xffnot a prediction"), kafkaio.ContentTypeProtobuf, nil))
	if err := producer.WriteMessages(ctx, recs...); err != nil {
		t.Fatal(err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: driftTopic, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	readCtx, readCancel := context.WithTimeout(ctx, 90*time.Second)
	defer readCancel()
	var amountEvent *eventsv1.DriftEvent
	for amountEvent == nil {
		m, err := r.ReadMessage(readCtx)
		if err != nil {
			t.Fatalf("no drift event naming amount on %s: %v", driftTopic, err)
		}
		ev := new(eventsv1.DriftEvent)
		if err := proto.Unmarshal(m.Value, ev); err != nil {
			t.Fatal(err)
		}
		if ev.GetModelName() != model || string(m.Key) != model {
			t.Errorf("event for %q keyed %q, want model %q", ev.GetModelName(), m.Key, model)
		}
		if strings.HasPrefix(ev.GetFeature(), "amount") {
			amountEvent = ev
		}
	}
	if amountEvent.GetModelVersion() != mv.Version || amountEvent.GetReferenceRunId() != run.ID || amountEvent.GetChangeStart() == nil {
		t.Errorf("event %v: want version %s, run %s and a change start", amountEvent, mv.Version, run.ID)
	}
	st, err := client.GetStatus(ctx, &driftv1.GetStatusRequest{ModelName: model})
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetDrifting() || st.GetLastEventTime() == nil {
		t.Errorf("status after the shift: %v, want drifting with a last event", st)
	}
	ws, err := client.ListWindows(ctx, &driftv1.ListWindowsRequest{ModelName: model})
	if err != nil {
		t.Fatal(err)
	}
	if len(ws.GetWindows()) < 5 {
		t.Errorf("%d closed windows listed, want at least 5", len(ws.GetWindows()))
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/drift/%s", adminAddr, model))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "amount") {
		t.Errorf("GET /drift/%s: %d, body mentions amount: %v", model, resp.StatusCode, strings.Contains(string(body), "amount"))
	}
	t.Logf("drift event: %s", amountEvent.GetMessage())
}
