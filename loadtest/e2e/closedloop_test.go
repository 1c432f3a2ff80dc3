package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
)

// loopStack is the real stack and the names of one closed-loop scenario: its topics, model,
// drift topic and prediction indices, every service binary built.
type loopStack struct {
	brokers, esURL, id, model, driftTopic, indexPrefix string
	tp                                                 e2eTopics
	bins                                               map[string]string
	env                                                []string
}

// newLoopStack names a scenario's resources (model modelPrefix-<id>), builds the binaries and
// creates the drift topic.
func newLoopStack(t *testing.T, ctx context.Context, modelPrefix string) *loopStack {
	t.Helper()
	s := &loopStack{brokers: stacktest.KafkaBrokers(t), esURL: strings.TrimRight(stacktest.ElasticsearchURL(t), "/")}
	s.id = strings.ToLower(strings.TrimPrefix(kafkaiotest.UniqueName(""), "-"))
	s.tp = newTopics(s.id)
	s.driftTopic, s.model, s.indexPrefix = "e2e-"+s.id+".drift", modelPrefix+"-"+s.id, "e2e-"+s.id+"-predictions"
	t.Cleanup(func() { deleteIndices(s.esURL, s.indexPrefix+"*") })
	s.bins = buildAll(t, "trainer", "ingestion", "features", "scoring", "predlog", "drift")
	s.env = []string{"KAFKA_BROKERS=" + s.brokers, "ES_URL=" + s.esURL, "REDIS_ADDR=" + stacktest.RedisAddr(t),
		"MLFLOW_URL=" + stacktest.MLflowURL(t), "LIGHTGBM_LIB=" + stacktest.LightGBMLib(t), "LOG_LEVEL=info"}
	if err := kafkaio.EnsureTopics(ctx, []string{s.brokers}, []kafkaio.TopicSpec{{Name: s.driftTopic, Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// common are the flags every service of the scenario gets: its consumer group and the DLQ.
func (s *loopStack) common(group string) []string {
	return []string{"-kafka.group", "e2e-" + group + "-" + s.id, "-kafka.dlq-topic", s.tp.dlq}
}

// startTrainer starts the trainer as the scenario runs it: drift-triggered retrains on the
// logged predictions in Elasticsearch, waiting for labels, a 2000-prediction shadow period
// (shadow flags may be overridden by extra, which comes last).
func (s *loopStack) startTrainer(t *testing.T, window int, extra ...string) *proc {
	t.Helper()
	args := append(s.common("trainer"), "-topic.model-events", s.tp.modelEvents, "-topic.drift", s.driftTopic, "-kafka.topics", s.driftTopic,
		"-data.source", "es", "-es.index", s.indexPrefix+"*", "-drift.label-wait", "8m", "-data.poll", "2s", "-drift.window", fmt.Sprint(window),
		"-train.num-iterations", "300", "-shadow.predictions", "2000", "-shadow.min-labelled", "300", "-shadow.label-wait", "1m",
		"-shadow.timeout", "6m", "-topic.predictions", s.tp.predictions, "-topic.labels", s.tp.labels)
	return start(t, "trainer", s.bins["trainer"], true, s.env, append(args, extra...)...)
}

// startPipeline starts ingestion and features (events may be up to 50 days old: the scenarios
// replay compressed history).
func (s *loopStack) startPipeline(t *testing.T) (features *proc) {
	t.Helper()
	start(t, "ingestion", s.bins["ingestion"], true, s.env, append(s.common("ingestion"),
		"-kafka.topics", s.tp.raw, "-ingest.validated-topic", s.tp.validated, "-ingest.max-age", "1200h")...)
	return start(t, "features", s.bins["features"], true, s.env, append(s.common("features"),
		"-kafka.topics", s.tp.validated, "-features.topic", s.tp.features, "-redis.prefix", "e2e:"+s.id+":")...)
}

// scoringArgs are the flags of a scoring deployment serving the scenario's model with its
// challenger in shadow, publishing to predictions.
func (s *loopStack) scoringArgs(t *testing.T, group string, features *proc, predictions string, extra ...string) []string {
	return append(append(s.common(group), "-kafka.topics", s.tp.features, "-topic.predictions", predictions, "-topic.model-events", s.tp.modelEvents,
		"-model.name", s.model, "-model.cache-dir", t.TempDir(), "-features.addr", features.grpc, "-model.poll-interval", "5s", "-challenger.enabled"), extra...)
}

// startMonitoring starts predlog (labels parked up to 100 days: compressed history) and the
// drift service with windows of window predictions.
func (s *loopStack) startMonitoring(t *testing.T, window int) (drift *proc) {
	t.Helper()
	start(t, "predlog", s.bins["predlog"], false, s.env, append(s.common("predlog"),
		"-kafka.topics", s.tp.predictions+","+s.tp.labels, "-predictions.topic", s.tp.predictions,
		"-labels.topic", s.tp.labels, "-es.index-prefix", s.indexPrefix, "-es.pending-index", s.indexPrefix+"-pending",
		"-label.pending-max-age", "2400h")...)
	return start(t, "drift", s.bins["drift"], true, s.env, append(s.common("drift"),
		"-kafka.topics", s.tp.predictions+","+s.tp.labels, "-topic.drift", s.driftTopic, "-topic.model-events", s.tp.modelEvents,
		"-models", s.model, "-window.count", fmt.Sprint(window), "-window.min-count", "500", "-window.min-labels", "100",
		"-window.duration", "10000h", "-alarm.cooldown", "2000h", "-reference.refresh", "2s")...)
}

// closedLoop is what the two closed-loop scenarios (fraud and purchase) share: the model,
// its services and how the test publishes the changed traffic.
type closedLoop struct {
	model, v1, brokers, driftTopic string
	window, maxDrift               int
	tc                             trainerv1.TrainerServiceClient
	dc                             driftv1.DriftServiceClient
	trainer, drift, scoring        *proc
	// publish sends n more changed events (and their due labels); sent counts every event
	// published so far and scored the prediction documents of the model.
	publish func(n int)
	sent    func() int
	scored  func() int
}

func (c *closedLoop) windows(ctx context.Context) int {
	ws, err := c.dc.ListWindows(ctx, &driftv1.ListWindowsRequest{ModelName: c.model, Limit: 200})
	if err != nil {
		return 0
	}
	return len(ws.GetWindows())
}

// clean waits until the clean traffic (everything sent so far) is scored and at least
// windows windows are judged, and fails on any drift event.
func (c *closedLoop) clean(t *testing.T, ctx context.Context, windows int, timeout time.Duration) {
	t.Helper()
	want := c.sent()
	waitFor(t, ctx, timeout, fmt.Sprintf("the clean traffic scored and %d windows judged", windows), func() (bool, string) {
		n, w := c.scored(), c.windows(ctx)
		return n >= want && w >= windows, fmt.Sprintf("scored %d/%d, windows %d\n%s", n, want, w, c.drift.tail())
	})
	if events := readDriftEvents(t, c.brokers, c.driftTopic); len(events) > 0 {
		t.Fatalf("%d drift events on clean traffic, first: %s", len(events), events[0].GetMessage())
	}
}

// untilPromoted publishes the changed traffic window by window until the trainer promoted a
// version other than v1, and returns it. The trainer waits for the labels of the changed
// traffic: after maxDrift events the test stops sending and gives it 5 minutes; while a
// challenger is in its shadow period it keeps sending (the shadow needs live traffic). It
// checks that the first drift event recommending a retrain came within 2 windows of the
// change (+1 in flight), that exactly one did, and that the promotion names the shadow
// period's verdict.
func (c *closedLoop) untilPromoted(t *testing.T, ctx context.Context) string {
	t.Helper()
	closedBefore := c.windows(ctx)
	var firstEventWindow int
	var v2 string
	waitUntil := time.Time{}
	for published := 0; v2 == ""; {
		if published >= c.maxDrift && waitUntil.IsZero() {
			waitUntil = time.Now().Add(5 * time.Minute)
		}
		if !waitUntil.IsZero() && time.Now().After(waitUntil) {
			t.Fatalf("no new champion 5 minutes after %d changed events; model history:\n%s\n%s\n%s", published,
				modelHistory(ctx, c.tc, c.model), c.trainer.tail(), c.drift.tail())
		}
		if shadowing := inShadow(ctx, c.tc, c.model); waitUntil.IsZero() || shadowing {
			n := c.window
			if shadowing {
				n = 500
				waitUntil = time.Now().Add(5 * time.Minute)
			}
			c.publish(n)
			published += n
			want := c.sent()
			waitFor(t, ctx, 2*time.Minute, "the changed traffic scored", func() (bool, string) {
				n := c.scored()
				return n >= want, fmt.Sprintf("scored %d/%d\n%s", n, want, c.scoring.tail())
			})
		} else {
			time.Sleep(2 * time.Second) // waiting on the trainer, an external process
		}
		if firstEventWindow == 0 {
			for _, ev := range readDriftEvents(t, c.brokers, c.driftTopic) {
				if ev.GetRetrain() {
					firstEventWindow = c.windows(ctx) - closedBefore
					t.Logf("drift event after %d changed windows: %s", firstEventWindow, ev.GetMessage())
				}
			}
		}
		if h, err := c.tc.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: c.model, Alias: "champion"}); err == nil {
			for _, e := range h.GetEvents() {
				if e.GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED && e.GetToVersion() != c.v1 {
					v2 = e.GetToVersion()
					t.Logf("promoted version %s: %s", v2, e.GetReason())
					if !strings.Contains(e.GetReason(), "shadow passed") {
						t.Errorf("promotion reason %q: want the shadow period's verdict", e.GetReason())
					}
				}
			}
		}
	}
	if firstEventWindow == 0 || firstEventWindow > 3 { // the window that crossed, plus the one confirming it, plus one in flight
		t.Errorf("drift flagged %d windows after the change, want within 2 (+1 in flight)", firstEventWindow)
	}
	retrains := 0
	for _, ev := range readDriftEvents(t, c.brokers, c.driftTopic) {
		if ev.GetRetrain() {
			retrains++
		}
	}
	if retrains != 1 {
		t.Errorf("%d drift events recommended retraining, want exactly 1", retrains)
	}
	waitFor(t, ctx, time.Minute, "scoring to serve the new champion", func() (bool, string) {
		for line := range strings.Lines(scrapeText(c.scoring.admin)) {
			if strings.HasPrefix(line, "mlops_scoring_model_info{") && strings.Contains(line, `alias="champion"`) && strings.Contains(line, `model_version="`+v2+`"`) {
				return true, ""
			}
		}
		return false, c.scoring.tail()
	})
	return v2
}

// untilLabelled waits until every event sent is a prediction document with its label; labels
// are joined more slowly than predictions are written (a lookup and an update each), so it
// waits while the count keeps growing.
func (c *closedLoop) untilLabelled(t *testing.T, ctx context.Context, esURL, index string) {
	t.Helper()
	q := fmt.Sprintf(`{"query":{"bool":{"filter":[{"term":{"model_name":%q}},{"exists":{"field":"actual"}}]}}}`, c.model)
	for most, stalled := -1, time.Now(); ; {
		n, sent := c.scored(), c.sent()
		l, _ := esCount(esURL, index, q)
		if n == sent && l >= sent {
			return
		}
		if l > most {
			most, stalled = l, time.Now()
		}
		if time.Since(stalled) > time.Minute || ctx.Err() != nil {
			t.Fatalf("scored %d/%d, labelled %d/%d, no progress for a minute", n, sent, l, sent)
		}
		time.Sleep(time.Second) // polling Elasticsearch, an external system
	}
}
