package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/streaming-mlops/mlops/loadtest/grpcload"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/sim"
)

// TestBenchPeers is the harness behind make bench-peers, not a test of behaviour: it deploys
// the platform on the real stack (as the end-to-end tests do), measures it side by side with
// its peers in one run and writes the numbers to $MLOPS_BENCH_PEERS_OUT/stack.json, from which
// scripts/bench-peers.sh writes BENCHMARKS.md and loadtest/results/latest.json. It runs only
// when MLOPS_BENCH_PEERS_OUT is set (the script sets it; it takes minutes and needs the peers'
// virtualenv); it fails when any measurement cannot be made.
//
//  1. sync Score vs MLServer's LightGBM runtime (V2 gRPC), same model file and feature vectors,
//     closed loop at 1, 8, 32, 128 and open loop; vs a bare gRPC echo server (transport alone)
//  2. in-service inference time vs LightGBM's C API fast predict on the same model file
//  3. GetOnlineFeatures vs a raw Redis HMGET of the same key
//  4. the stream path (loadgen -ramp) vs one plain kafka-go produce->consume hop, and the knee
//  5. peak RSS and CPU per 1,000 transactions per service
func TestBenchPeers(t *testing.T) {
	outDir := os.Getenv("MLOPS_BENCH_PEERS_OUT")
	if outDir == "" {
		t.Skip("the make bench-peers harness: set MLOPS_BENCH_PEERS_OUT (scripts/bench-peers.sh does)")
	}
	mlserverBin := os.Getenv("MLOPS_BENCH_MLSERVER")
	if mlserverBin == "" {
		t.Fatal("MLOPS_BENCH_MLSERVER must name the mlserver executable of the peers' virtualenv")
	}
	cfg := benchConfig{reps: benchEnvInt("MLOPS_BENCH_REPS", 3), dur: benchEnvDur("MLOPS_BENCH_DURATION", 3*time.Second),
		ramp:  benchEnvStr("MLOPS_BENCH_RAMP", "250/10s,500/10s,1000/10s,2000/10s,4000/10s,8000/10s,10000/10s,12000/10s,16000/10s"),
		concs: []int{1, 8, 32, 128}, mlserver: mlserverBin, out: outDir}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	began := time.Now()
	b := &bench{cfg: cfg, rep: benchReport{Started: began.UTC().Format(time.RFC3339), Fields: map[string]float64{}}}
	b.p = startBenchPipeline(t, ctx)
	if v := os.Getenv("MLOPS_BENCH_SERVICE_ENV"); v != "" {
		b.rep.Notes = append(b.rep.Notes, "the services ran with MLOPS_BENCH_SERVICE_ENV="+v)
	}
	b.loadgenBin, b.echoBin = buildLoadtestBins(t)
	b.prepareModelAndVectors(t, ctx)
	// The stream first, on a quiet pipeline; then the online features (on the state the stream
	// left in Redis) and each service's peak memory. Predlog is stopped before the sync runs:
	// indexing the predictions Score logs (thousands a second) would otherwise compete with
	// Score for the two cores while it is measured; MLServer logs nothing.
	// MLOPS_BENCH_PARTS runs a subset while working on one part (stream, features, sync,
	// predict; features needs stream); make bench-peers runs them all.
	parts := benchParts(t, benchEnvStr("MLOPS_BENCH_PARTS", "stream,features,sync,predict"))
	if parts["stream"] {
		b.stream(t, ctx)
	}
	if parts["features"] {
		b.featuresVsRedis(t, ctx)
	}
	if parts["stream"] {
		b.services(t)
	}
	b.p.procs["predlog"].stop(t)
	if parts["sync"] {
		b.syncScoring(t, ctx)
	}
	if parts["predict"] {
		b.predictVsCAPI(t, ctx)
	}
	b.rep.Seconds = time.Since(began).Seconds()
	out, err := json.MarshalIndent(b.rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outDir, "stack.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// benchParts parses MLOPS_BENCH_PARTS, a comma-separated subset of the harness's parts.
func benchParts(t *testing.T, v string) map[string]bool {
	t.Helper()
	parts := map[string]bool{}
	for p := range strings.SplitSeq(v, ",") {
		switch p = strings.TrimSpace(p); p {
		case "stream", "features", "sync", "predict":
			parts[p] = true
		default:
			t.Fatalf("MLOPS_BENCH_PARTS: unknown part %q (stream, features, sync, predict)", p)
		}
	}
	if parts["features"] && !parts["stream"] {
		t.Fatal("MLOPS_BENCH_PARTS: features probes the accounts the stream part gave state; add stream")
	}
	return parts
}

type benchConfig struct {
	reps     int
	dur      time.Duration
	ramp     string
	concs    []int
	mlserver string
	out      string
}

type bench struct {
	cfg                 benchConfig
	p                   *pipeline
	rep                 benchReport
	loadgenBin, echoBin string
	accounts            []string // accounts the stream published for, in publish order
	modelDir, modelFile string
	rowsCSV             string
	threshold           float64
	vectors             map[string][][]float64 // variant -> rows
}

// report is stack.json: Fields are the flat numbers of latest.json, the rest the detail
// BENCHMARKS.md is written from.
type benchReport struct {
	Started  string             `json:"started"`
	Seconds  float64            `json:"seconds"`
	Fields   map[string]float64 `json:"fields"`
	Model    map[string]any     `json:"model"`
	Sync     *syncReport        `json:"sync"`
	Predict  map[string]float64 `json:"predict"`
	Features []featuresRow      `json:"features"`
	Stream   *streamReport      `json:"stream"`
	Services []serviceRow       `json:"services"`
	Notes    []string           `json:"notes"`
}

// loadSummary is the median over repetitions of one server at one setting.
type loadSummary struct {
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	CPUus    float64 `json:"cpu_per_request_us"`
	ClientUs float64 `json:"client_cpu_per_request_us"`
	Errors   int64   `json:"errors"`
	Runs     []grpcload.Result
}

func summarize(rs []grpcload.Result) loadSummary {
	med := func(f func(grpcload.Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return benchMedian(v)
	}
	s := loadSummary{Runs: rs,
		RPS:   med(func(r grpcload.Result) float64 { return r.RPS }),
		P50us: med(func(r grpcload.Result) float64 { return r.P50us }),
		P99us: med(func(r grpcload.Result) float64 { return r.P99us }),
		CPUus: med(func(r grpcload.Result) float64 { return r.CPUPerRequestUs }),
		ClientUs: med(func(r grpcload.Result) float64 {
			if r.Requests == 0 {
				return 0
			}
			return r.ClientCPUSeconds / float64(r.Requests) * 1e6
		})}
	for _, r := range rs {
		s.Errors += r.Errors
	}
	return s
}

func benchMedian(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func benchEnvInt(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return d
}

func benchEnvDur(k string, d time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return d
}

func benchEnvStr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// startBenchPipeline is startPipeline with the services' production defaults (no raised
// explanation sample rate).
func startBenchPipeline(t *testing.T, ctx context.Context) *pipeline {
	t.Helper()
	p := &pipeline{brokers: stacktest.KafkaBrokers(t), esURL: strings.TrimRight(stacktest.ElasticsearchURL(t), "/"), procs: map[string]*proc{}}
	redisAddr := stacktest.RedisAddr(t)
	mlflowURL := stacktest.MLflowURL(t)
	lib := stacktest.LightGBMLib(t)
	p.id = strings.ToLower(strings.TrimPrefix(kafkaiotest.UniqueName(""), "-"))
	p.tp = newTopics(p.id)
	p.model = "bench-fraud-" + p.id
	p.indexPrefix = "bench-" + p.id + "-predictions"
	t.Cleanup(func() { deleteIndices(p.esURL, p.indexPrefix+"*") })
	t.Cleanup(func() { kafkaiotest.DeleteTopicsWithPrefix(t, []string{p.brokers}, "e2e-"+p.id+".") })
	t.Cleanup(func() { unlinkRedisPrefix(t, redisAddr, "bench:"+p.id+":") })
	bins := buildAll(t, "trainer", "ingestion", "features", "scoring", "predlog")
	env := []string{"KAFKA_BROKERS=" + p.brokers, "ES_URL=" + p.esURL, "REDIS_ADDR=" + redisAddr,
		"MLFLOW_URL=" + mlflowURL, "LIGHTGBM_LIB=" + lib, "LOG_LEVEL=warn"}
	// MLOPS_BENCH_SERVICE_ENV tries the services' own knobs without a code change:
	// "KAFKA_BATCH_WAIT=5ms predlog:ES_REFRESH_INTERVAL=10s" (a "service:" prefix limits one).
	extra := map[string][]string{}
	for kv := range strings.FieldsSeq(os.Getenv("MLOPS_BENCH_SERVICE_ENV")) {
		svc, setting, ok := strings.Cut(kv, ":")
		if !ok || strings.Contains(svc, "=") {
			svc, setting = "", kv
		}
		if !strings.Contains(setting, "=") {
			t.Fatalf("MLOPS_BENCH_SERVICE_ENV: %q is not [service:]NAME=VALUE", kv)
		}
		extra[svc] = append(extra[svc], setting)
	}
	envOf := func(svc string) []string { return slices.Concat(env, extra[""], extra[svc]) }
	trainer := start(t, "trainer", bins["trainer"], true, env,
		"-model.fraud", p.model, "-topic.model-events", p.tp.modelEvents, "-drift.consume=false",
		"-data.source", "file", "-data.file", datasetfiletest.Simulate(t, "-n", "20000", "-accounts", "500", "-warmup", "24h"),
		"-kafka.group", "bench-trainer-"+p.id)
	p.procs["trainer"] = trainer
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
	retrain, err := trainerv1.NewTrainerServiceClient(dial(t, trainer.grpc)).Retrain(rctx, &trainerv1.RetrainRequest{
		ModelName: p.model, Reason: "bench-peers", Actor: "bench"})
	rcancel()
	if err != nil || !retrain.GetPromoted() {
		t.Fatalf("Retrain: %v (%v)\n%s", err, retrain.GetDecision(), trainer.tail())
	}
	p.version = retrain.GetModelVersion()
	trainer.stop(t) // not part of the measured path
	common := func(group string) []string {
		return []string{"-kafka.group", "bench-" + group + "-" + p.id, "-kafka.dlq-topic", p.tp.dlq}
	}
	p.procs["ingestion"] = start(t, "ingestion", bins["ingestion"], true, envOf("ingestion"), append(common("ingestion"),
		"-kafka.topics", p.tp.raw, "-ingest.validated-topic", p.tp.validated)...)
	p.procs["features"] = start(t, "features", bins["features"], true, envOf("features"), append(common("features"),
		"-kafka.topics", p.tp.validated, "-features.topic", p.tp.features, "-redis.prefix", "bench:"+p.id+":")...)
	p.procs["scoring"] = start(t, "scoring", bins["scoring"], true, envOf("scoring"), append(common("scoring"),
		"-kafka.topics", p.tp.features, "-topic.predictions", p.tp.predictions, "-topic.model-events", p.tp.modelEvents,
		"-model.name", p.model, "-model.cache-dir", t.TempDir(), "-features.addr", p.procs["features"].grpc)...)
	p.procs["predlog"] = start(t, "predlog", bins["predlog"], false, envOf("predlog"), append(common("predlog"),
		"-kafka.topics", p.tp.predictions+","+p.tp.labels, "-predictions.topic", p.tp.predictions,
		"-labels.topic", p.tp.labels, "-es.index-prefix", p.indexPrefix, "-es.pending-index", p.indexPrefix+"-pending")...)
	return p
}

func buildLoadtestBins(t *testing.T) (loadgen, echo string) {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	for _, n := range []string{"loadgen", "grpcecho"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, n), "./cmd/"+n)
		cmd.Dir = filepath.Join(root, "loadtest")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", n, err, out)
		}
	}
	return filepath.Join(dir, "loadgen"), filepath.Join(dir, "grpcecho")
}

// prepareModelAndVectors fetches the champion's model file from the registry (the file
// scoring serves, and MLServer gets) and builds the vector sets: "logged", 4096 feature
// vectors of simulated transactions computed by the serving feature code (featurespec, through
// sim.FraudDataset) in arrival order; "alerts25", the same with every fourth replaced by one
// that crosses the alert threshold.
func (b *bench) prepareModelAndVectors(t *testing.T, ctx context.Context) {
	t.Helper()
	spec := featurespec.Fraud()
	st := &modelstore.Store{Client: mlflow.New(stacktest.MLflowURL(t))}
	ld, err := st.Load(ctx, b.p.model, b.p.version, spec.Fingerprint())
	if err != nil {
		t.Fatalf("load model %s v%s: %v", b.p.model, b.p.version, err)
	}
	b.threshold = ld.Manifest.Threshold
	b.modelDir = filepath.Join(t.TempDir(), "mlserver-model")
	if err := os.MkdirAll(b.modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.modelFile = filepath.Join(b.modelDir, "model.txt")
	if err := os.WriteFile(b.modelFile, ld.ModelText, 0o644); err != nil {
		t.Fatal(err)
	}
	lib, err := lightgbm.Open(stacktest.LightGBMLib(t))
	if err != nil {
		t.Fatal(err)
	}
	bst, err := lib.LoadModelString(string(ld.ModelText))
	if err != nil {
		t.Fatal(err)
	}
	defer bst.Close()
	scfg := sim.DefaultConfig()
	scfg.Seed, scfg.Accounts = 11, 2000
	const n = 20000
	ds, err := sim.FraudDataset(scfg, n)
	if err != nil {
		t.Fatal(err)
	}
	cols := ds.Spec.Len()
	scores := make([]float64, n)
	if _, err := bst.PredictInto(scores, lightgbm.Matrix{Data: ds.X, Rows: n, Cols: cols}, lightgbm.PredictNormal, lightgbm.PredictOptions{}); err != nil {
		t.Fatal(err)
	}
	row := func(i int) []float64 { return ds.X[i*cols : (i+1)*cols] }
	var logged, alerts, calm [][]float64
	for i := range n {
		if i < 4096 {
			logged = append(logged, row(i))
		}
		if scores[i] >= b.threshold {
			alerts = append(alerts, row(i))
		} else {
			calm = append(calm, row(i))
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("none of %d simulated vectors crosses the threshold %v", n, b.threshold)
	}
	mixed := make([][]float64, 4096)
	for i := range mixed {
		if i%4 == 0 {
			mixed[i] = alerts[(i/4)%len(alerts)]
		} else {
			mixed[i] = calm[i]
		}
	}
	b.vectors = map[string][][]float64{"logged": logged, "alerts25": mixed}
	naturalAlerts := 0
	for i := range 4096 {
		if scores[i] >= b.threshold {
			naturalAlerts++
		}
	}
	b.rowsCSV = filepath.Join(b.cfg.out, "vectors-logged.csv")
	f, err := os.Create(b.rowsCSV)
	if err != nil {
		t.Fatal(err)
	}
	if err := grpcload.WriteVectorsCSV(f, spec, logged); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	trees := strings.Count(string(ld.ModelText), "Tree=")
	b.rep.Model = map[string]any{"name": b.p.model, "version": b.p.version, "features": cols, "trees": trees,
		"threshold": b.threshold, "bytes": len(ld.ModelText), "distinct_alert_vectors": len(alerts),
		"alert_share_logged": float64(naturalAlerts) / 4096}
}

// syncReport holds the sync-scoring comparison: per variant and concurrency, the medians of
// each server.
type syncReport struct {
	PeerSetting string                                       `json:"peer_setting"`
	Probe       map[string]float64                           `json:"probe_rps"`
	Closed      map[string]map[string]map[string]loadSummary `json:"closed"` // variant -> conc -> server
	Open        map[string]loadSummary                       `json:"open"`   // server -> loadSummary
	OpenRate    float64                                      `json:"open_rate"`
	ScoresAgree float64                                      `json:"max_abs_score_diff"`
	ReqBytes    map[string]int                               `json:"request_bytes"`
	RespBytes   map[string]int                               `json:"response_bytes"`
	InferenceUs map[string]float64                           `json:"in_service_inference_mean_us"`
	InferCPUUs  map[string]float64                           `json:"in_service_inference_cpu_mean_us"`
	// Evaluators: evaluator (forest, lightgbm) -> concurrency -> in-service numbers.
	Evaluators map[string]map[string]evaluatorRun `json:"evaluators"`
}

func (b *bench) syncScoring(t *testing.T, ctx context.Context) {
	t.Helper()
	spec := featurespec.Fraud()
	scoring := b.p.procs["scoring"]
	sr := &syncReport{Probe: map[string]float64{}, Closed: map[string]map[string]map[string]loadSummary{},
		Open: map[string]loadSummary{}, ReqBytes: map[string]int{}, RespBytes: map[string]int{}, InferenceUs: map[string]float64{}, InferCPUUs: map[string]float64{}}
	b.rep.Sync = sr
	reqs := map[string]map[string][][]byte{"score": {}, "mlserver": {}}
	for v, rows := range b.vectors {
		var err error
		if reqs["score"][v], err = grpcload.EncodeScoreRequests(spec, rows, false); err != nil {
			t.Fatal(err)
		}
		reqs["mlserver"][v] = grpcload.EncodeV2Requests("fraud", rows)
	}
	sr.ReqBytes["score"], sr.ReqBytes["mlserver"] = len(reqs["score"]["logged"][1]), len(reqs["mlserver"]["logged"][1])

	// MLServer, both settings; the better one is the peer.
	settings := []struct {
		name    string
		workers int
	}{{"parallel_workers=0", 0}, {"parallel_workers=1 (uvloop 0.21)", 1}}
	best, bestRPS := -1, 0.0
	for i, s := range settings {
		ms := startMLServer(t, ctx, b.cfg.mlserver, b.modelDir, s.workers)
		rps := 0.0
		for _, c := range []int{8, 32} {
			r := b.load(t, ctx, ms.addr, grpcload.V2ModelInfer, reqs["mlserver"]["logged"], c, 0, ms.pid())
			rps += r.RPS
		}
		sr.Probe[s.name] = rps / 2
		if rps/2 > bestRPS {
			best, bestRPS = i, rps/2
		}
		ms.stop(t)
	}
	sr.PeerSetting = settings[best].name
	ms := startMLServer(t, ctx, b.cfg.mlserver, b.modelDir, settings[best].workers)
	defer ms.stop(t)

	// The two servers agree on the scores of the same vectors.
	sconn := dial(t, scoring.grpc)
	mconn, err := grpc.NewClient(ms.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(grpcload.RawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer mconn.Close()
	var scoreReply []byte
	for i := range 100 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var sresp []byte
		err := sconn.Invoke(cctx, grpcload.ScoreMethod, &reqs["score"]["logged"][i], &sresp, grpc.ForceCodec(grpcload.RawCodec{}))
		var mresp []byte
		if err == nil {
			err = mconn.Invoke(cctx, grpcload.V2ModelInfer, &reqs["mlserver"]["logged"][i], &mresp)
		}
		cancel()
		if err != nil {
			t.Fatalf("score row %d: %v\n%s", i, err, scoring.tail())
		}
		var sr2 scoringv1.ScoreResponse
		if err := proto.Unmarshal(sresp, &sr2); err != nil {
			t.Fatal(err)
		}
		theirs, err := grpcload.DecodeV2Score(mresp)
		if err != nil {
			t.Fatalf("MLServer response: %v", err)
		}
		sr.ScoresAgree = max(sr.ScoresAgree, math.Abs(sr2.GetScore()-theirs))
		if i == 1 {
			scoreReply = sresp
			sr.RespBytes["score"], sr.RespBytes["mlserver"] = len(sresp), len(mresp)
		}
	}
	if sr.ScoresAgree > 1e-6 {
		t.Errorf("Score and MLServer disagree on the same vectors by up to %g", sr.ScoresAgree)
	}

	// The echo server answers with a real Score response's bytes.
	replyFile := filepath.Join(t.TempDir(), "reply.bin")
	if err := os.WriteFile(replyFile, scoreReply, 0o644); err != nil {
		t.Fatal(err)
	}
	echoAddr := servicetest.FreeAddr(t)
	echo := startBackground(t, "grpcecho", b.echoBin, "-addr", echoAddr, "-reply-file", replyFile)
	defer echo.stop(t)
	waitTCP(t, echoAddr)

	runs := map[string][]grpcload.Result{} // variant/conc/server -> runs
	key := func(v string, c int, s string) string { return fmt.Sprintf("%s/%d/%s", v, c, s) }
	inf, infCPU := map[int][]float64{}, map[int][]float64{}
	for range b.cfg.reps {
		for _, c := range b.cfg.concs {
			for _, v := range []string{"logged", "alerts25"} {
				before := scrapeInference(t, scoring.admin)
				r := b.load(t, ctx, scoring.grpc, grpcload.ScoreMethod, reqs["score"][v], c, 0, scoring.cmd.Process.Pid)
				if v == "logged" {
					after := scrapeInference(t, scoring.admin)
					if n := after[1] - before[1]; n > 0 {
						inf[c] = append(inf[c], (after[0]-before[0])/n*1e6)
					}
					if n := after[3] - before[3]; n > 0 {
						infCPU[c] = append(infCPU[c], (after[2]-before[2])/n*1e6)
					}
				}
				runs[key(v, c, "score")] = append(runs[key(v, c, "score")], r)
				r = b.load(t, ctx, ms.addr, grpcload.V2ModelInfer, reqs["mlserver"][v], c, 0, ms.pid())
				runs[key(v, c, "mlserver")] = append(runs[key(v, c, "mlserver")], r)
			}
			r := b.load(t, ctx, echoAddr, grpcload.ScoreMethod, reqs["score"]["logged"], c, 0, echo.cmd.Process.Pid)
			runs[key("logged", c, "echo")] = append(runs[key("logged", c, "echo")], r)
		}
	}
	for _, v := range []string{"logged", "alerts25"} {
		sr.Closed[v] = map[string]map[string]loadSummary{}
		for _, c := range b.cfg.concs {
			m := map[string]loadSummary{}
			for _, s := range []string{"score", "mlserver", "echo"} {
				if rs := runs[key(v, c, s)]; len(rs) > 0 {
					m[s] = summarize(rs)
				}
			}
			sr.Closed[v][strconv.Itoa(c)] = m
		}
	}
	for c, v := range inf {
		sr.InferenceUs[strconv.Itoa(c)] = benchMedian(v)
	}
	for c, v := range infCPU {
		sr.InferCPUUs[strconv.Itoa(c)] = benchMedian(v)
	}

	b.evaluatorAB(t, ctx, reqs["score"]["logged"])

	// Open loop at half of MLServer's best closed-loop throughput: a rate both sustain.
	theirBest := 0.0
	for _, c := range b.cfg.concs {
		theirBest = max(theirBest, sr.Closed["logged"][strconv.Itoa(c)]["mlserver"].RPS)
	}
	sr.OpenRate = math.Round(theirBest / 2)
	var openScore, openML []grpcload.Result
	for range b.cfg.reps {
		openScore = append(openScore, b.load(t, ctx, scoring.grpc, grpcload.ScoreMethod, reqs["score"]["logged"], 64, sr.OpenRate, scoring.cmd.Process.Pid))
		openML = append(openML, b.load(t, ctx, ms.addr, grpcload.V2ModelInfer, reqs["mlserver"]["logged"], 64, sr.OpenRate, ms.pid()))
	}
	sr.Open["score"], sr.Open["mlserver"] = summarize(openScore), summarize(openML)

	// Flat fields: ours over theirs at each concurrency, at each server's best, and echo.
	f := b.rep.Fields
	bestOf := func(v, s string) loadSummary {
		var out loadSummary
		for _, c := range b.cfg.concs {
			if x := sr.Closed[v][strconv.Itoa(c)][s]; x.RPS > out.RPS {
				out = x
			}
		}
		return out
	}
	for _, v := range []string{"logged", "alerts25"} {
		suffix := ""
		if v != "logged" {
			suffix = "_" + v
		}
		for _, c := range b.cfg.concs {
			m := sr.Closed[v][strconv.Itoa(c)]
			f[fmt.Sprintf("score_rps_ratio_vs_mlserver%s_c%d", suffix, c)] = m["score"].RPS / m["mlserver"].RPS
			f[fmt.Sprintf("score_p99_ratio_vs_mlserver%s_c%d", suffix, c)] = m["score"].P99us / m["mlserver"].P99us
			f[fmt.Sprintf("score_cpu_per_request_ratio_vs_mlserver%s_c%d", suffix, c)] = m["score"].CPUus / m["mlserver"].CPUus
		}
		ours, theirs := bestOf(v, "score"), bestOf(v, "mlserver")
		f["score_rps_ratio_vs_mlserver"+suffix] = ours.RPS / theirs.RPS
		f["score_p99_ratio_vs_mlserver"+suffix] = ours.P99us / theirs.P99us
		f["score_cpu_per_request_ratio_vs_mlserver"+suffix] = ours.CPUus / theirs.CPUus
		f["score_best_rps"+suffix], f["mlserver_best_rps"+suffix] = ours.RPS, theirs.RPS
	}
	if rss, err := grpcload.ProcPeakRSSMiB(scoring.cmd.Process.Pid); err == nil {
		f["peak_rss_mib_scoring_after_sync"] = rss
	}
	f["score_open_loop_p99_ratio_vs_mlserver"] = sr.Open["score"].P99us / sr.Open["mlserver"].P99us
	f["score_open_loop_rate"] = sr.OpenRate
}

// load runs one closed-loop (rate 0) or open-loop measurement with a short warm-up.
func (b *bench) load(t *testing.T, ctx context.Context, addr, method string, reqs [][]byte, conc int, rate float64, pid int) grpcload.Result {
	t.Helper()
	r, err := grpcload.Run(ctx, grpcload.Config{Addr: addr, Method: method, Requests: reqs, Conns: 4, Concurrency: conc,
		Rate: rate, Duration: b.cfg.dur, Warmup: 500 * time.Millisecond, Timeout: 10 * time.Second, ServerPID: pid})
	if err != nil {
		t.Fatalf("load %s %s: %v", addr, method, err)
	}
	if r.Requests == 0 || r.Errors > r.Requests/100 {
		t.Fatalf("load %s %s at concurrency %d: %d ok, %d errors (%s)", addr, method, conc, r.Requests, r.Errors, r.FirstError)
	}
	return r
}

// scrapeInference returns the sums and counts of scoring's inference histograms: wall clock
// (duration) and the sampled thread CPU.
// evaluatorAB measures the model's evaluators inside the service under the same load: a
// second scoring process (sync only, same model) scores with LightGBM's own single-row
// predict (-model.evaluator=lightgbm) beside the first, which scores with the compact
// evaluator (the default), the two driven in turn at concurrency 1 and 32.
func (b *bench) evaluatorAB(t *testing.T, ctx context.Context, reqs [][]byte) {
	t.Helper()
	forest := b.p.procs["scoring"]
	var args []string
	for i := 0; i < len(forest.args); i++ {
		switch forest.args[i] {
		case "-admin.addr", "-grpc.addr", "-model.cache-dir", "-kafka.group":
			i++ // start gives the new process its own addresses; its own cache and group follow
		default:
			args = append(args, forest.args[i])
		}
	}
	args = append(args, "-model.cache-dir", t.TempDir(), "-kafka.group", "bench-scoring-lightgbm-"+b.p.id,
		"-features.consume=false", "-model.evaluator=lightgbm")
	lg := start(t, "scoring-lightgbm", forest.bin, true, forest.env, args...)
	defer lg.stop(t)
	sr := b.rep.Sync
	sr.Evaluators = map[string]map[string]evaluatorRun{}
	type acc struct{ wall, cpu, reqCPU []float64 }
	accs := map[string]*acc{}
	for range b.cfg.reps {
		for _, c := range []int{1, 32} {
			for _, srv := range []struct {
				name string
				p    *proc
			}{{"forest", forest}, {"lightgbm", lg}} {
				before := scrapeInference(t, srv.p.admin)
				r := b.load(t, ctx, srv.p.grpc, grpcload.ScoreMethod, reqs, c, 0, srv.p.cmd.Process.Pid)
				after := scrapeInference(t, srv.p.admin)
				k := srv.name + "/" + strconv.Itoa(c)
				if accs[k] == nil {
					accs[k] = &acc{}
				}
				a := accs[k]
				if n := after[1] - before[1]; n > 0 {
					a.wall = append(a.wall, (after[0]-before[0])/n*1e9)
				}
				if n := after[3] - before[3]; n > 0 {
					a.cpu = append(a.cpu, (after[2]-before[2])/n*1e9)
				}
				a.reqCPU = append(a.reqCPU, r.CPUPerRequestUs)
			}
		}
	}
	for k, a := range accs {
		name, c, _ := strings.Cut(k, "/")
		if sr.Evaluators[name] == nil {
			sr.Evaluators[name] = map[string]evaluatorRun{}
		}
		sr.Evaluators[name][c] = evaluatorRun{PredictNs: benchMedian(a.wall), PredictCPUNs: benchMedian(a.cpu), ServerCPUus: benchMedian(a.reqCPU)}
	}
	f := b.rep.Fields
	for _, c := range []string{"1", "32"} {
		fo, lgb := sr.Evaluators["forest"][c], sr.Evaluators["lightgbm"][c]
		f["predict_in_service_forest_vs_lightgbm_c"+c] = fo.PredictNs / lgb.PredictNs
		f["predict_in_service_forest_vs_lightgbm_cpu_c"+c] = fo.PredictCPUNs / lgb.PredictCPUNs
		f["score_cpu_forest_vs_lightgbm_c"+c] = fo.ServerCPUus / lgb.ServerCPUus
	}
}

// evaluatorRun is one evaluator's in-service numbers at one concurrency (medians of reps).
type evaluatorRun struct {
	PredictNs    float64 `json:"predict_ns"`
	PredictCPUNs float64 `json:"predict_cpu_ns"`
	ServerCPUus  float64 `json:"server_cpu_per_request_us"`
}

func scrapeInference(t *testing.T, admin string) [4]float64 {
	t.Helper()
	text := scrape(t, admin)
	return [4]float64{metricSum(text, "mlops_scoring_inference_duration_seconds_sum"),
		metricSum(text, "mlops_scoring_inference_duration_seconds_count"),
		metricSum(text, "mlops_scoring_inference_cpu_seconds_sum"),
		metricSum(text, "mlops_scoring_inference_cpu_seconds_count")}
}

// scrapeCounter reads one metric (summed over its label sets, prefix match) without failing
// the test: the stream sampler calls it from its own goroutine.
func scrapeCounter(client *http.Client, admin, prefix string) (float64, error) {
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return metricSum(string(b), prefix), nil
}

// background is a peer process the harness started (MLServer, the echo server, loadgen).
type background struct {
	name string
	cmd  *exec.Cmd
	log  string
	addr string
	done chan error
}

func startBackground(t *testing.T, name, bin string, args ...string) *background {
	t.Helper()
	bg := &background{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan error, 1)}
	logf, err := os.Create(bg.log)
	if err != nil {
		t.Fatal(err)
	}
	bg.cmd = exec.Command(bin, args...)
	bg.cmd.Stdout, bg.cmd.Stderr = logf, logf
	bg.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers stop with it
	if err := bg.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { bg.done <- bg.cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { bg.stop(t) })
	return bg
}

func (bg *background) pid() int { return bg.cmd.Process.Pid }

func (bg *background) stop(t *testing.T) {
	t.Helper()
	select {
	case err := <-bg.done:
		bg.done <- err
		return
	default:
	}
	_ = syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-bg.done:
		bg.done <- err
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGKILL)
		bg.done <- <-bg.done
	}
}

func (bg *background) tail() string {
	b, _ := os.ReadFile(bg.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return bg.name + " log:\n" + strings.Join(lines, "\n")
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	kafkaiotest.WaitFor(t, 30*time.Second, "listening on "+addr, func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err
		}
		return true, c.Close()
	})
}

// startMLServer serves modelDir's model.txt with MLServer's LightGBM runtime on loopback
// ports, with the given parallel_workers, and waits until the model is ready over V2 gRPC.
func startMLServer(t *testing.T, ctx context.Context, bin, modelDir string, workers int) *background {
	t.Helper()
	root := t.TempDir()
	grpcAddr, httpAddr, metricsAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	settings := fmt.Sprintf(`{"host": "127.0.0.1", "grpc_port": %s, "http_port": %s, "metrics_port": %s, "parallel_workers": %d, "debug": false}`,
		port(grpcAddr), port(httpAddr), port(metricsAddr), workers)
	model := fmt.Sprintf(`{"name": "fraud", "implementation": "mlserver_lightgbm.LightGBMModel", "parameters": {"uri": %q, "version": "v1"}}`,
		filepath.Join(modelDir, "model.txt"))
	if err := os.WriteFile(filepath.Join(root, "settings.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "fraud"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "fraud", "model-settings.json"), []byte(model), 0o644); err != nil {
		t.Fatal(err)
	}
	ms := startBackground(t, "mlserver", bin, "start", root)
	ms.addr = grpcAddr
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(grpcload.RawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(2 * time.Minute)
	req := grpcload.EncodeV2Ready("fraud")
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var resp []byte
		err := conn.Invoke(cctx, grpcload.V2ModelReady, &req, &resp)
		cancel()
		if err == nil {
			if ok, _ := grpcload.DecodeV2Ready(resp); ok {
				return ms
			}
		}
		select {
		case e := <-ms.done:
			ms.done <- e
			t.Fatalf("mlserver exited: %v\n%s", e, ms.tail())
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mlserver not ready after 2m: %v\n%s", err, ms.tail())
		}
	}
}

// predictVsCAPI runs LightGBM's C loop and the binding on the same model file and vectors
// (platform/lightgbm BenchmarkPredictModelFile) and sets them against scoring's in-service
// inference time at concurrency 1.
func (b *bench) predictVsCAPI(t *testing.T, ctx context.Context) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkPredictModelFile(ColdCache)?$", "-benchtime", "1s", "-count", strconv.Itoa(max(b.cfg.reps, 3)), "./lightgbm/")
	cmd.Dir = filepath.Join(repoRoot(t), "services", "platform")
	cmd.Env = append(os.Environ(), "MLOPS_BENCH_MODEL="+b.modelFile, "MLOPS_BENCH_ROWS="+b.rowsCSV)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("BenchmarkPredictModelFile: %v\n%s", err, out)
	}
	// Each line: name, N, then value/unit pairs (ns/op, and cpu-ns/op: the thread CPU time;
	// the cold-cache runs report the prediction alone as predict-ns and predict-cpu-ns).
	ns, cpuNs := map[string][]float64{}, map[string][]float64{}
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkPredictModelFile") {
			continue
		}
		name := strings.TrimPrefix(f[0], "BenchmarkPredictModelFile/")
		cold := strings.HasPrefix(name, "BenchmarkPredictModelFileColdCache/")
		name = strings.Replace(name, "BenchmarkPredictModelFileColdCache/", "cold/", 1)
		if i := strings.LastIndexByte(name, '-'); i > 0 && strings.Trim(name[i+1:], "0123456789") == "" {
			name = name[:i]
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch unit := f[i+1]; {
			case unit == "ns/op" && !cold, unit == "predict-ns" && cold:
				ns[name] = append(ns[name], v)
			case unit == "cpu-ns/op" && !cold, unit == "predict-cpu-ns" && cold:
				cpuNs[name] = append(cpuNs[name], v)
			}
		}
	}
	direct, binding := benchMedian(ns["direct-c"]), benchMedian(ns["binding"])
	directCPU, bindingCPU := benchMedian(cpuNs["direct-c"]), benchMedian(cpuNs["binding"])
	if math.IsNaN(direct) || math.IsNaN(binding) || math.IsNaN(directCPU) || math.IsNaN(bindingCPU) {
		t.Fatalf("no BenchmarkPredictModelFile results (ns/op and cpu-ns/op of direct-c and binding) in:\n%s", out)
	}
	// The wall-clock baseline is LightGBM's fast predict at its best: the C loop, or the
	// binding's one cgo call per row when that came out faster (in wall clock it can: the loop's
	// thread waits for a core as often; in thread CPU the two cost the same).
	capi, capiCPU := min(direct, binding), min(directCPU, bindingCPU)
	inService := b.rep.Sync.InferenceUs["1"] * 1000
	inServiceCPU := b.rep.Sync.InferCPUUs["1"] * 1000
	b.rep.Predict = map[string]float64{"c_api_direct_ns": direct, "binding_ns": binding, "c_api_baseline_ns": capi,
		"c_api_direct_cpu_ns": directCPU, "binding_cpu_ns": bindingCPU, "c_api_baseline_cpu_ns": capiCPU,
		"in_service_c1_ns": inService, "in_service_c32_ns": b.rep.Sync.InferenceUs["32"] * 1000,
		"in_service_cpu_c1_ns": inServiceCPU, "in_service_cpu_c32_ns": b.rep.Sync.InferCPUUs["32"] * 1000}
	// The compact evaluator the service scores with, on the same rows, hot and with the
	// caches evicted between predictions.
	for name := range ns {
		if name == "forest" || name == "forest-c" || strings.HasPrefix(name, "cold/") {
			key := strings.NewReplacer("/", "_", "=", "_", "-", "_").Replace(name)
			b.rep.Predict[key+"_ns"] = benchMedian(ns[name])
			b.rep.Predict[key+"_cpu_ns"] = benchMedian(cpuNs[name])
		}
	}
	f := b.rep.Fields
	f["predict_ratio_vs_c_api"] = inService / capi
	f["predict_forest_cpu_ratio_vs_c_api"] = benchMedian(cpuNs["forest"]) / capiCPU
	f["predict_cpu_ratio_vs_c_api"] = inServiceCPU / capiCPU
	f["predict_binding_ratio_vs_c_api_loop"] = binding / direct
	f["predict_binding_cpu_ratio_vs_c_api_loop"] = bindingCPU / directCPU
	// Score's server CPU per request (from /proc) over the transport's (echo's, from /proc)
	// plus one prediction's CPU (the C API's thread CPU: CPU against CPU).
	m := b.rep.Sync.Closed["logged"]
	var ratios []float64
	for _, c := range b.cfg.concs {
		x := m[strconv.Itoa(c)]
		r := x["score"].CPUus / (x["echo"].CPUus + capiCPU/1000)
		f[fmt.Sprintf("score_cpu_ratio_vs_echo_plus_predict_c%d", c)] = r
		ratios = append(ratios, r)
	}
	f["score_cpu_ratio_vs_echo_plus_predict"] = benchMedian(ratios)
}
