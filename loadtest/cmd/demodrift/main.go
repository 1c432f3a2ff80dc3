// Command demodrift plays the platform's closed loop on the local stack and narrates it as
// it unfolds: a bank's clean traffic, a shift in the world (a new fraud pattern and larger
// amounts), the drift service noticing it, the trainer retraining on what was served, the
// shadow period and the promotion decision with its reasons, and scoring swapping to the new
// version without dropping a request. It is what `make demo-drift` runs (after `make up` and
// `make build`); it starts its own service processes from bin/ on free ports, with topics,
// model name, Redis prefix and indices of its own, so it does not disturb `make demo`, and
// stops them at the end. Simulated time is compressed: about two weeks of a 1200-account
// bank in a few minutes.
//
// Progress bars animate only on a terminal; in a log every step is one line.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/sim"
)

// The story's sizes: the drift window, the bank, and how much traffic each act publishes.
const (
	window    = 1000
	accounts  = 1200
	clean     = 12 * window
	maxDrift  = 24 * window
	afterSwap = 5 * window
)

type options struct {
	bin, dir                                  string
	brokers, esURL, redisAddr, mlflow, lgbLib string
	seed                                      uint64
	timeout                                   time.Duration
}

func main() {
	var o options
	fs := flag.NewFlagSet("demodrift", flag.ExitOnError)
	fs.StringVar(&o.bin, "bin", "bin", "directory of the service binaries (make build)")
	fs.StringVar(&o.dir, "dir", ".cache/run/demo-drift", "directory of the processes' logs and the v1 dataset")
	fs.StringVar(&o.brokers, "kafka.brokers", envOr("KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap server")
	fs.StringVar(&o.esURL, "es.url", envOr("ES_URL", "http://127.0.0.1:9200"), "Elasticsearch URL")
	fs.StringVar(&o.redisAddr, "redis.addr", envOr("REDIS_ADDR", "127.0.0.1:6379"), "Redis address")
	fs.StringVar(&o.mlflow, "mlflow.url", envOr("MLFLOW_URL", "http://127.0.0.1:5000"), "MLflow URL")
	fs.StringVar(&o.lgbLib, "lightgbm.lib", os.Getenv("LIGHTGBM_LIB"), "path of lib_lightgbm.so (empty: the services look for it)")
	fs.Uint64Var(&o.seed, "seed", 101, "seed of the simulated bank")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	n := newNarrator(os.Stdout)
	d := &demo{o: o, n: n, id: fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)}
	err := d.run(ctx)
	d.stopAll()
	if err != nil {
		n.say("demo stopped: %v", err)
		n.say("logs: %s", d.logDir)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// demo is one run of the story.
type demo struct {
	o      options
	n      *narrator
	id     string
	logDir string
	procs  []*proc

	topics struct{ raw, validated, features, predictions, warm, labels, drift, events, dlq string }
	model  string
	sim    *sim.Sim
	cfg    sim.Config
	next   sim.Transaction
	due    []sim.Label
	phase  map[string]string
	sent   int
}

func (d *demo) run(ctx context.Context) error {
	o, n := d.o, d.n
	d.logDir = filepath.Join(o.dir, d.id)
	if err := os.MkdirAll(d.logDir, 0o755); err != nil {
		return err
	}
	prefix := "demo-drift-" + d.id
	tp := &d.topics
	tp.raw, tp.validated, tp.features = prefix+".tx.raw", prefix+".tx.validated", prefix+".features"
	tp.predictions, tp.warm, tp.labels = prefix+".predictions", prefix+".warmup-predictions", prefix+".labels"
	tp.drift, tp.events, tp.dlq = prefix+".drift", prefix+".model-events", prefix+".dlq"
	d.model = "fraud-demo-" + d.id
	index := prefix + "-predictions"
	var specs []kafkaio.TopicSpec
	for _, t := range []string{tp.raw, tp.validated, tp.features, tp.predictions, tp.warm, tp.labels, tp.dlq} {
		specs = append(specs, kafkaio.TopicSpec{Name: t, Partitions: 3})
	}
	specs = append(specs, kafkaio.TopicSpec{Name: tp.drift, Partitions: 1}, kafkaio.TopicSpec{Name: tp.events, Partitions: 1})
	if err := kafkaio.EnsureTopics(ctx, []string{o.brokers}, specs); err != nil {
		return fmt.Errorf("create the demo's topics (is the stack up? make up): %w", err)
	}
	n.say("The bank: %d accounts, about 3,600 payments a simulated day, chargebacks 30 min to 6 h after the fact.", accounts)
	n.say("Run %s: model %q, topics %s.*, logs in %s", d.id, d.model, prefix, d.logDir)

	// Act 1: version 1 learns from the bank's previous month.
	liveStart := time.Now().Add(-14 * 24 * time.Hour).Truncate(time.Second)
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Accounts, cfg.FraudRate, cfg.Warmup = o.seed, accounts, 0.02, 360*time.Hour // centred on the live stretch's account age
	cfg.Start = liveStart.Add(-30 * 24 * time.Hour)
	cfg.StreamSeed = o.seed + 1000 // the same bank, other transactions than the live ones
	n.say("Act 1 — version 1 learns from last month: simulating 60,000 labelled payments")
	hist, err := sim.FraudDataset(cfg, 60000)
	if err != nil {
		return err
	}
	v1File := filepath.Join(d.logDir, "fraud-v1.csv.gz")
	if err := datasetfile.WriteFile(v1File, hist.Labelled()); err != nil {
		return err
	}
	boot, err := d.start(ctx, "trainer-bootstrap", "trainer", true, "-model.fraud", d.model, "-topic.model-events", tp.events,
		"-drift.consume=false", "-data.source", "file", "-data.file", v1File, "-drift.window", fmt.Sprint(window), "-kafka.group", prefix+"-boot")
	if err != nil {
		return err
	}
	v1, err := d.train(ctx, boot.grpc)
	if err != nil {
		return err
	}
	boot.stop()
	n.say("Version %s serves: %s", v1.GetModelVersion(), metricLine(v1.GetMetrics()))

	// The services, as a deployment would run them (shadow period on, drift windows of 1000).
	common := func(group string) []string {
		return []string{"-kafka.group", prefix + "-" + group, "-kafka.dlq-topic", tp.dlq}
	}
	trainer, err := d.start(ctx, "trainer", "trainer", true, append(common("trainer"),
		"-model.fraud", d.model, "-topic.model-events", tp.events, "-topic.drift", tp.drift, "-kafka.topics", tp.drift,
		"-data.source", "es", "-es.index", index+"*", "-data.min-rows", "30000", "-data.min-positives", "500",
		"-drift.pre-change", "240h", "-drift.label-wait", "8m", "-data.poll", "2s", "-drift.window", fmt.Sprint(window),
		"-train.num-iterations", "300", "-shadow.predictions", "2000", "-shadow.min-labelled", "300", "-shadow.label-wait", "1m",
		"-shadow.timeout", "6m", "-topic.predictions", tp.predictions, "-topic.labels", tp.labels)...)
	if err != nil {
		return err
	}
	if _, err := d.start(ctx, "ingestion", "ingestion", true, append(common("ingestion"),
		"-kafka.topics", tp.raw, "-ingest.validated-topic", tp.validated, "-ingest.max-age", "1200h")...); err != nil {
		return err
	}
	features, err := d.start(ctx, "features", "features", true, append(common("features"),
		"-kafka.topics", tp.validated, "-features.topic", tp.features, "-redis.prefix", prefix+":")...)
	if err != nil {
		return err
	}
	scoringArgs := func(predictions string) []string {
		return append(common("scoring"), "-kafka.topics", tp.features, "-topic.predictions", predictions, "-topic.model-events", tp.events,
			"-model.name", d.model, "-model.cache-dir", filepath.Join(d.logDir, "models"), "-features.addr", features.grpc,
			"-model.poll-interval", "5s", "-challenger.enabled")
	}
	scoringWarm, err := d.start(ctx, "scoring-warmup", "scoring", true, scoringArgs(tp.warm)...)
	if err != nil {
		return err
	}
	if _, err := d.start(ctx, "predlog", "predlog", false, append(common("predlog"),
		"-kafka.topics", tp.predictions+","+tp.labels, "-predictions.topic", tp.predictions, "-labels.topic", tp.labels,
		"-es.index-prefix", index, "-es.pending-index", index+"-pending", "-label.pending-max-age", "2400h")...); err != nil {
		return err
	}
	driftProc, err := d.start(ctx, "drift", "drift", true, append(common("drift"),
		"-kafka.topics", tp.predictions+","+tp.labels, "-topic.drift", tp.drift, "-topic.model-events", tp.events,
		"-models", d.model, "-window.count", fmt.Sprint(window), "-window.min-count", "500", "-window.min-labels", "100",
		"-window.duration", "10000h", "-alarm.cooldown", "2000h", "-reference.refresh", "2s")...)
	if err != nil {
		return err
	}
	dc := driftv1.NewDriftServiceClient(mustDial(driftProc.grpc))
	tc := trainerv1.NewTrainerServiceClient(mustDial(trainer.grpc))
	n.say("Services up: ingestion, features, scoring (challenger shadow on), predlog, drift, trainer")

	// The live bank, with the change planned after the clean stretch.
	cfg.Start, cfg.StreamSeed, cfg.Warmup = liveStart, 0, 504*time.Hour
	cfg.LabelDelayMin, cfg.LabelDelayMax = 30*time.Minute, 6*time.Hour
	d.cfg = cfg
	change, err := changeTime(cfg)
	if err != nil {
		return err
	}
	pattern, err := sim.ScenarioDrift(sim.ScenarioNewPattern, change)
	if err != nil {
		return err
	}
	cfg.Drifts = []sim.Drift{pattern, {At: change, AmountScale: 1.5}}
	if d.sim, err = sim.New(cfg); err != nil {
		return err
	}
	d.phase = map[string]string{}
	d.next, d.due = d.sim.Next()

	// Act 2: warm-up (account histories) scored to a side topic, then clean monitored traffic.
	n.say("Act 2 — three weeks of account history stream through the pipeline (not monitored)")
	if err := d.publish(ctx, 0, "warmup"); err != nil {
		return err
	}
	if err := d.waitFor(ctx, 3*time.Minute, "the warm-up scored", func() bool {
		ends, err := kafkaio.EndOffsets(ctx, []string{o.brokers}, tp.warm)
		var total int64
		for _, e := range ends {
			total += e
		}
		n.progress("warm-up scored", int(total), d.countPhase("warmup"))
		return err == nil && total >= int64(d.countPhase("warmup"))
	}); err != nil {
		return err
	}
	scoringWarm.stop()
	scoring, err := d.start(ctx, "scoring", "scoring", true, scoringArgs(tp.predictions)...)
	if err != nil {
		return err
	}
	w := &windowWatch{dc: dc, model: d.model, n: n}
	n.say("Clean traffic: %d windows of %d payments; the drift service judges each against version %s's reference profile", clean/window, window, v1.GetModelVersion())
	for range clean / window {
		if err := d.publish(ctx, window, "before"); err != nil {
			return err
		}
		if err := d.waitScored(ctx, index); err != nil {
			return err
		}
		w.report(ctx)
	}

	// Act 3: the world changes.
	n.say("Act 3 — the world changes at %s (sim time): a fraud pattern version %s never saw (bust-out) and amounts x1.5", change.Format("Jan 2 15:04"), v1.GetModelVersion())
	events := &eventWatch{tc: tc, model: d.model, n: n, driftTopic: tp.drift, brokers: o.brokers}
	logs := &logWatch{path: trainer.log, n: n}
	var v2 string
	var waitUntil time.Time
	for published := 0; v2 == ""; {
		if published >= maxDrift && waitUntil.IsZero() {
			waitUntil = time.Now().Add(5 * time.Minute)
		}
		if !waitUntil.IsZero() && time.Now().After(waitUntil) {
			return fmt.Errorf("no new champion 5 minutes after %d changed payments (see %s)", published, trainer.log)
		}
		shadow := events.inShadow(ctx)
		if waitUntil.IsZero() || shadow {
			size := window
			if shadow {
				size, waitUntil = 500, time.Now().Add(5*time.Minute)
			}
			if err := d.publish(ctx, size, "after-change"); err != nil {
				return err
			}
			published += size
			if err := d.waitScored(ctx, index); err != nil {
				return err
			}
		} else {
			time.Sleep(2 * time.Second) // waiting on the trainer, another process
		}
		w.report(ctx)
		events.driftEvents(ctx)
		logs.report()
		v2 = events.report(ctx, v1.GetModelVersion())
	}
	if err := d.waitFor(ctx, time.Minute, "scoring to serve the new champion", func() bool {
		return servesVersion(scrape(scoring.admin), v2)
	}); err != nil {
		return err
	}
	n.say("Scoring swapped to version %s between two requests; none was refused (%v rejected)", v2, metricSum(scrape(scoring.admin), "mlops_scoring_rejected_total"))

	// Act 4: the new champion on the changed world.
	n.say("Act 4 — %d more payments scored by version %s", afterSwap, v2)
	for range afterSwap / window {
		if err := d.publish(ctx, window, "after-swap"); err != nil {
			return err
		}
		if err := d.waitScored(ctx, index); err != nil {
			return err
		}
		w.report(ctx)
	}
	n.say("The loop closed: drift noticed, version %s retrained on served traffic, proven on a holdout and in shadow, promoted, serving.", v2)
	n.say("Model %s's versions and aliases stay in MLflow (%s); the processes stop now, their logs stay in %s", d.model, o.mlflow, d.logDir)
	return nil
}

// changeTime is the sim time of the clean-th monitored transaction, found on a dry run of the
// same stream.
func changeTime(cfg sim.Config) (time.Time, error) {
	dry, err := sim.New(cfg)
	if err != nil {
		return time.Time{}, err
	}
	for i := 0; ; {
		tx, _ := dry.Next()
		if !tx.EventTime.Before(cfg.Start) {
			if i++; i > clean {
				return tx.EventTime, nil
			}
		}
	}
}

// publish sends the next n transactions (the whole warm-up when tag is "warmup") and the
// labels that fell due for monitored ones.
func (d *demo) publish(ctx context.Context, n int, tag string) error {
	var raw, labels []kafka.Message
	for k := 0; tag == "warmup" && d.next.EventTime.Before(d.cfg.Start) || tag != "warmup" && k < n; k++ {
		tx, due := d.next, slices.Clone(d.due)
		d.next, d.due = d.sim.Next()
		d.phase[tx.TransactionID] = tag
		b, err := proto.Marshal(tx.Proto())
		if err != nil {
			return err
		}
		raw = append(raw, kafkaio.NewRecord(d.topics.raw, []byte(tx.AccountID), b, topics.ContentTypeProtobuf, nil))
		for i := range due {
			if p := d.phase[due[i].TransactionID]; p == "" || p == "warmup" {
				continue
			}
			lb, err := proto.Marshal(due[i].Proto())
			if err != nil {
				return err
			}
			labels = append(labels, kafkaio.NewRecord(d.topics.labels, []byte(due[i].TransactionID), lb, topics.ContentTypeProtobuf, nil))
		}
	}
	w := &kafka.Writer{Addr: kafka.TCP(d.o.brokers), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchSize: 1000,
		BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	for _, batch := range [][]kafka.Message{raw, labels} {
		for start := 0; start < len(batch); start += 5000 {
			end := min(start+5000, len(batch))
			if err := w.WriteMessages(ctx, batch[start:end]...); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			if tag == "warmup" && len(batch) == len(raw) {
				d.n.progress("warm-up published", end, len(raw))
			}
		}
	}
	if tag != "warmup" {
		d.sent += len(raw)
	}
	return nil
}

func (d *demo) countPhase(tag string) int {
	c := 0
	for _, p := range d.phase {
		if p == tag {
			c++
		}
	}
	return c
}

// waitScored waits until every monitored transaction sent is a prediction document.
func (d *demo) waitScored(ctx context.Context, index string) error {
	q := fmt.Sprintf(`{"query":{"term":{"model_name":%q}}}`, d.model)
	return d.waitFor(ctx, 2*time.Minute, "the traffic scored and logged", func() bool {
		c, err := esCount(d.o.esURL, index+"*", q)
		return err == nil && c >= d.sent
	})
}

func (d *demo) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// train runs version 1's training through RetrainStream, with a progress bar.
func (d *demo) train(ctx context.Context, addr string) (*trainerv1.RetrainResponse, error) {
	stream, err := trainerv1.NewTrainerServiceClient(mustDial(addr)).RetrainStream(ctx, &trainerv1.RetrainStreamRequest{
		Request: &trainerv1.RetrainRequest{ModelName: d.model, Actor: "demo-drift", Reason: "demo: version 1 from last month"}})
	if err != nil {
		return nil, err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("training version 1: %w", err)
		}
		if r := m.GetResult(); r != nil {
			if !r.GetPromoted() {
				return nil, fmt.Errorf("version 1 was not promoted: %s", r.GetDecision())
			}
			return r, nil
		}
		if m.GetMaxIterations() > 0 {
			d.n.progress("boosting rounds", int(m.GetIteration()), int(m.GetMaxIterations()))
		} else if m.GetMessage() != "" {
			d.n.say("  %s: %s", m.GetStage(), m.GetMessage())
		}
	}
}
