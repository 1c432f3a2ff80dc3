package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// pipeline is one private deployment of the platform on the real stack: its own topics,
// consumer groups, Redis prefix, Elasticsearch indices and model name, with version 1 of the
// model trained and promoted, and the five services running as separate processes.
type pipeline struct {
	id, brokers, esURL, indexPrefix, model, version string
	tp                                              e2eTopics
	procs                                           map[string]*proc
}

func startPipeline(t *testing.T, ctx context.Context) *pipeline {
	t.Helper()
	return startPipelineWith(t, ctx, pipelineOpts{})
}

// pipelineOpts vary startPipeline for the outage and scaling tests.
type pipelineOpts struct {
	// brokers, esURL and redisAddr replace the shared stack's (a private instance); empty
	// means the shared one. MLflow is always the shared stack's.
	brokers, esURL, redisAddr string
	// partitions, when positive, creates the pipeline's data topics (raw, validated, features,
	// predictions, labels, dlq) with that many partitions before any service starts.
	partitions int
	// extra flags for the four stream services (ingestion, features, scoring, predlog).
	extra []string
	// depsReady, when set, is called after the binaries are built and before anything talks
	// to Kafka, Redis or Elasticsearch (a private stack still starting meanwhile).
	depsReady func()
}

func startPipelineWith(t *testing.T, ctx context.Context, o pipelineOpts) *pipeline {
	t.Helper()
	if o.brokers == "" {
		o.brokers, o.esURL, o.redisAddr = stacktest.KafkaBrokers(t), stacktest.ElasticsearchURL(t), stacktest.RedisAddr(t)
	}
	p := &pipeline{brokers: o.brokers, esURL: strings.TrimRight(o.esURL, "/"), procs: map[string]*proc{}}
	redisAddr := o.redisAddr
	mlflowURL := stacktest.MLflowURL(t)
	lib := stacktest.LightGBMLib(t)
	stacktest.Binary(t, "kcat")
	p.id = strings.ToLower(strings.TrimPrefix(kafkaiotest.UniqueName(""), "-"))
	p.tp = newTopics(p.id)
	p.model = "e2e-fraud-" + p.id
	p.indexPrefix = "e2e-" + p.id + "-predictions"
	// Registered before any process starts, so they run after they all stopped. A failed
	// test keeps its topics and indices to inspect (kcat, Kibana).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept for inspection: topics e2e-%s.*, indices %s*", p.id, p.indexPrefix)
			return
		}
		deleteIndices(p.esURL, p.indexPrefix+"*")
		kafkaiotest.DeleteTopicsWithPrefix(t, []string{p.brokers}, "e2e-"+p.id+".")
	})

	bins := buildAll(t, "trainer", "ingestion", "features", "scoring", "predlog")
	if o.depsReady != nil {
		o.depsReady()
	}
	if o.partitions > 0 {
		kafkaiotest.CreateTopics(t, []string{p.brokers}, o.partitions,
			p.tp.raw, p.tp.validated, p.tp.features, p.tp.predictions, p.tp.labels, p.tp.dlq)
	}
	env := []string{"KAFKA_BROKERS=" + p.brokers, "ES_URL=" + p.esURL, "REDIS_ADDR=" + redisAddr,
		"MLFLOW_URL=" + mlflowURL, "LIGHTGBM_LIB=" + lib, "LOG_LEVEL=info"}

	// Model lifecycle: the trainer trains version 1 and makes it champion.
	trainer := start(t, "trainer", bins["trainer"], true, env,
		"-model.fraud", p.model, "-topic.model-events", p.tp.modelEvents, "-drift.consume=false",
		"-data.source", "file", "-data.file", datasetfiletest.Simulate(t, "-n", "20000", "-accounts", "500", "-warmup", "24h"),
		"-kafka.group", "e2e-trainer-"+p.id)
	p.procs["trainer"] = trainer
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
	retrain, err := trainerv1.NewTrainerServiceClient(dial(t, trainer.grpc)).Retrain(rctx, &trainerv1.RetrainRequest{
		ModelName: p.model, Reason: "e2e: first version", Actor: "e2e"})
	rcancel()
	if err != nil {
		t.Fatalf("Retrain: %v\n%s", err, trainer.tail())
	}
	if !retrain.GetPromoted() {
		t.Fatalf("first version %s was not promoted: %s", retrain.GetModelVersion(), retrain.GetDecision())
	}
	p.version = retrain.GetModelVersion()

	common := func(group string) []string {
		return append([]string{"-kafka.group", "e2e-" + group + "-" + p.id, "-kafka.dlq-topic", p.tp.dlq}, o.extra...)
	}
	p.procs["ingestion"] = start(t, "ingestion", bins["ingestion"], true, env, append(common("ingestion"),
		"-kafka.topics", p.tp.raw, "-ingest.validated-topic", p.tp.validated)...)
	p.procs["features"] = start(t, "features", bins["features"], true, env, append(common("features"),
		"-kafka.topics", p.tp.validated, "-features.topic", p.tp.features, "-redis.prefix", "e2e:"+p.id+":")...)
	// Scoring's spill file of unpublished sync predictions goes to the test's own directory
	// (its default is relative to the working directory, and one process locks it).
	p.procs["scoring"] = start(t, "scoring", bins["scoring"], true, append(env, "SYNC_SPILL_DIR="+t.TempDir()), append(common("scoring"),
		"-kafka.topics", p.tp.features, "-topic.predictions", p.tp.predictions, "-topic.model-events", p.tp.modelEvents,
		"-model.name", p.model, "-model.cache-dir", t.TempDir(), "-features.addr", p.procs["features"].grpc,
		"-explain.sample-rate", "0.2")...)
	p.procs["predlog"] = start(t, "predlog", bins["predlog"], false, env, append(common("predlog"),
		"-kafka.topics", p.tp.predictions+","+p.tp.labels, "-predictions.topic", p.tp.predictions,
		"-labels.topic", p.tp.labels, "-es.index-prefix", p.indexPrefix, "-es.pending-index", p.indexPrefix+"-pending")...)
	return p
}
