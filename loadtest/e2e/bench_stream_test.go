package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/streaming-mlops/mlops/loadtest/grpcload"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/sim"
)

// The stream runs' simulation: enough accounts that a long ramp stays within ingestion's
// 30 days of sim time.
const (
	streamSeed     = 7
	streamAccounts = 20000
	streamPause    = 6 * time.Second // between ramp steps, to drain
)

var benchServices = []string{"ingestion", "features", "scoring", "predlog"}

// benchStack are the stack components whose CPU per transaction the stream part reports.
var benchStack = []string{"kafka", "es", "redis"}

type streamReport struct {
	// LoadgenMaxTxPerS is loadgen -rate 0 alone, into a topic nobody reads.
	LoadgenMaxTxPerS float64      `json:"loadgen_max_tx_per_s"`
	Steps            []streamStep `json:"steps"`
	Hop              []hopStep    `json:"kafka_hop"`
	KneeTxPerS       float64      `json:"knee_tx_per_s"`
	SustainedTxPerS  float64      `json:"sustained_tx_per_s"`
	Stopped          string       `json:"stopped"`
}

type streamStep struct {
	Rate          float64            `json:"rate"`
	Published     int                `json:"published"`
	Achieved      float64            `json:"achieved_tx_per_s"`
	PredictedPerS float64            `json:"predicted_tx_per_s"`
	IndexedPerS   float64            `json:"indexed_tx_per_s"`
	PredP50ms     float64            `json:"publish_to_prediction_p50_ms"`
	PredP99ms     float64            `json:"publish_to_prediction_p99_ms"`
	IdxP50ms      float64            `json:"publish_to_indexed_p50_ms"`
	IdxP99ms      float64            `json:"publish_to_indexed_p99_ms"`
	Bounded       bool               `json:"bounded"`
	Why           string             `json:"why,omitempty"`
	CPUPer1000    map[string]float64 `json:"cpu_seconds_per_1000_tx"`
	start, end    time.Time
}

type hopStep struct {
	Rate  float64 `json:"rate"`
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
}

type serviceRow struct {
	Service    string  `json:"service"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	CPUPer1000 float64 `json:"cpu_seconds_per_1000_tx"`
}

type featuresRow struct {
	Concurrency int               `json:"concurrency"`
	Features    loadSummary       `json:"get_online_features"`
	Redis       loadSummary       `json:"redis_hmget"`
	RedisHits   float64           `json:"redis_hit_ratio"`
	Raw         []grpcload.Result `json:"-"`
}

// sample is one reading of the stream sampler.
type streamSample struct {
	at   time.Time
	docs float64
	cpu  map[string]float64
}

func (b *bench) stream(t *testing.T, ctx context.Context) {
	t.Helper()
	sr := &streamReport{}
	b.rep.Stream = sr
	brokers := []string{b.p.brokers}

	// The load generator alone, into a topic nobody reads.
	lgTopic := "bench-" + b.p.id + ".loadgen"
	kafkaiotest.CreateTopics(t, brokers, 6, lgTopic)
	began := time.Now()
	out, err := exec.CommandContext(ctx, b.loadgenBin, "-kafka.brokers", b.p.brokers, "-tx-topic", lgTopic, "-labels=false",
		"-rate", "0", "-n", "100000", "-accounts", strconv.Itoa(streamAccounts), "-seed", "3", "-duration", "3m").CombinedOutput()
	if err != nil {
		t.Fatalf("loadgen alone: %v\n%s", err, out)
	}
	sr.LoadgenMaxTxPerS = 100000 / time.Since(began).Seconds()

	steps := b.runRamp(t, ctx, sr)
	sr.Steps = steps

	// One plain kafka-go hop at the same rates, on the same broker.
	var rates []float64
	for _, s := range steps {
		rates = append(rates, s.Rate)
	}
	sr.Hop = kafkaHop(t, ctx, brokers, "bench-"+b.p.id+".hop", rates, 6*time.Second)

	f := b.rep.Fields
	f["stream_knee_tx_per_s"] = sr.KneeTxPerS
	f["stream_sustained_tx_per_s"] = sr.SustainedTxPerS
	f["loadgen_max_tx_per_s"] = sr.LoadgenMaxTxPerS
	// p99 against one hop, at the knee (the highest bounded step).
	for i, s := range steps {
		if s.Rate == sr.KneeTxPerS && i < len(sr.Hop) && sr.Hop[i].P99ms > 0 {
			f["stream_p99_ratio_vs_kafka_hop"] = s.PredP99ms / sr.Hop[i].P99ms
			f["stream_indexed_p99_ratio_vs_kafka_hop"] = s.IdxP99ms / sr.Hop[i].P99ms
			f["stream_prediction_p50_ms"], f["stream_prediction_p99_ms"] = s.PredP50ms, s.PredP99ms
			f["stream_indexed_p50_ms"], f["stream_indexed_p99_ms"] = s.IdxP50ms, s.IdxP99ms
			f["kafka_hop_p50_ms"], f["kafka_hop_p99_ms"] = sr.Hop[i].P50ms, sr.Hop[i].P99ms
		}
	}
	if _, ok := f["stream_p99_ratio_vs_kafka_hop"]; !ok && len(steps) > 0 && len(sr.Hop) > 0 {
		// No bounded step: compare at the lowest rate, and say so.
		f["stream_p99_ratio_vs_kafka_hop"] = steps[0].PredP99ms / sr.Hop[0].P99ms
		b.rep.Notes = append(b.rep.Notes, "no ramp step was bounded: the stream p99 ratio is taken at the lowest rate")
	}
}

// runRamp drives the pipeline with loadgen -ramp, stops it after the first step the pipeline
// did not keep up with, and measures every step that ran.
func (b *bench) runRamp(t *testing.T, ctx context.Context, sr *streamReport) []streamStep {
	t.Helper()
	pids := map[string]int{}
	for _, s := range benchServices {
		pids[s] = b.p.procs[s].cmd.Process.Pid
	}
	// The stack's processes too (pid files of scripts/stack.sh's default instance): their CPU
	// per transaction is most of the pipeline's, though on a shared stack it includes anyone
	// else's use of the same broker and node.
	for _, c := range benchStack {
		raw, err := os.ReadFile(filepath.Join(repoRoot(t), ".cache", "run", c, "pid"))
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && perr == nil {
			pids[c] = pid
		} else {
			b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("no CPU of %s: its pid file is unreadable (%v)", c, err))
		}
	}
	predlog := b.p.procs["predlog"]
	docsPrefix := `mlops_predlog_docs_written_total{kind="prediction"`
	client := &http.Client{Timeout: 2 * time.Second}
	base, err := scrapeCounter(client, predlog.admin, docsPrefix)
	if err != nil {
		t.Fatal(err)
	}

	// The sampler: predlog's acknowledged documents and each service's CPU every 50ms.
	var (
		mu      sync.Mutex
		samples []streamSample
	)
	sampleOnce := func() {
		d, err := scrapeCounter(client, predlog.admin, docsPrefix)
		if err != nil {
			return
		}
		s := streamSample{at: time.Now(), docs: d - base, cpu: map[string]float64{}}
		for n, pid := range pids {
			s.cpu[n], _ = grpcload.ProcCPUSeconds(pid)
		}
		mu.Lock()
		samples = append(samples, s)
		mu.Unlock()
	}
	sctx, stopSampler := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			sampleOnce()
			select {
			case <-sctx.Done():
				return
			case <-tk.C:
			}
		}
	})
	docsNow := func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(samples) == 0 {
			return 0
		}
		return samples[len(samples)-1].docs
	}

	lg := exec.CommandContext(ctx, b.loadgenBin, "-kafka.brokers", b.p.brokers, "-tx-topic", b.p.tp.raw, "-labels=false",
		"-ramp", b.cfg.ramp, "-ramp-pause", streamPause.String(), "-accounts", strconv.Itoa(streamAccounts),
		"-seed", strconv.Itoa(streamSeed), "-duration", "15m")
	lgOut, err := lg.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Start(); err != nil {
		t.Fatal(err)
	}
	type stepLine struct {
		Step         int     `json:"step"`
		Rate         float64 `json:"rate"`
		Transactions int     `json:"transactions"`
		Start        int64   `json:"start_unix_ms"`
		End          int64   `json:"end_unix_ms"`
	}
	var (
		lines     []stepLine
		published int
		final     string
		stoppedAt = -1
	)
	sc := bufio.NewScanner(lgOut)
	for sc.Scan() {
		line := sc.Text()
		var sl stepLine
		if strings.HasPrefix(line, `{"step"`) && json.Unmarshal([]byte(line), &sl) == nil {
			lines = append(lines, sl)
			published += sl.Transactions
			// The line comes when the step's last transaction is out; loadgen then pauses.
			// Had the pipeline indexed everything of this step by the end of the pause?
			time.Sleep(time.Until(time.UnixMilli(sl.End).Add(streamPause - 200*time.Millisecond)))
			if d := docsNow(); d < 0.995*float64(published) && stoppedAt < 0 {
				stoppedAt = sl.Step
				sr.Stopped = fmt.Sprintf("after the %g tx/s step: %d of %d transactions indexed %v after its end", sl.Rate, int(d), published, streamPause)
				_ = lg.Process.Signal(syscall.SIGTERM)
			}
			continue
		}
		if strings.HasPrefix(line, `{"transactions"`) {
			final = line
		}
	}
	lgErr := lg.Wait()
	var lgStats struct {
		Transactions int `json:"transactions"`
	}
	if err := json.Unmarshal([]byte(final), &lgStats); err != nil {
		t.Fatalf("loadgen's last line %q: %v (%v)", final, err, lgErr)
	}
	if lgErr != nil && stoppedAt < 0 {
		t.Fatalf("loadgen: %v (last line %s)", lgErr, final)
	}
	if sr.Stopped == "" {
		sr.Stopped = "every step was bounded: the ramp ended below the knee"
	}
	// Drain: everything published is indexed (or 2 minutes pass).
	deadline := time.Now().Add(2 * time.Minute)
	for docsNow() < float64(lgStats.Transactions) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	stopSampler()
	wg.Wait()
	if got := docsNow(); got < float64(lgStats.Transactions) {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("stream: %d of %d transactions indexed 2 minutes after the ramp", int(got), lgStats.Transactions))
	}

	// Publish and prediction times of every transaction, from the records' timestamps.
	raw := map[string]time.Time{}
	var rawTimes []time.Time
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer rcancel()
	if err := kafkaio.ReadTopic(rctx, []string{b.p.brokers}, b.p.tp.raw, func(m kafka.Message) error {
		id, acct, err := rawTx(m)
		if err != nil {
			return err
		}
		raw[id] = m.Time
		if len(b.accounts) < 1000 {
			b.accounts = append(b.accounts, acct)
		}
		rawTimes = append(rawTimes, m.Time)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pred := map[string]time.Time{}
	if err := kafkaio.ReadTopic(rctx, []string{b.p.brokers}, b.p.tp.predictions, func(m kafka.Message) error {
		var p eventsv1.Prediction
		if err := proto.Unmarshal(m.Value, &p); err != nil {
			return err
		}
		if _, seen := pred[p.GetTransactionId()]; !seen && p.GetPath() == eventsv1.ScoringPath_SCORING_PATH_STREAM {
			pred[p.GetTransactionId()] = m.Time
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rawTimes, func(a, b time.Time) int { return a.Compare(b) })
	if f, err := os.Create(filepath.Join(b.cfg.out, "stream-samples.csv")); err == nil {
		fmt.Fprintln(f, "unix_ms,indexed")
		for _, s := range samples {
			fmt.Fprintf(f, "%d,%.0f\n", s.at.UnixMilli(), s.docs)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("stream: %d samples, loadgen published %d, %d raw records, %d stream predictions", len(samples), lgStats.Transactions, len(raw), len(pred))
	// Indexed time of the k-th transaction (in publish order): when predlog's acknowledged
	// count first reached k+1 (FIFO approximation, 50ms resolution).
	indexedAt := func(k int) (time.Time, bool) {
		i := sort.Search(len(samples), func(i int) bool { return samples[i].docs >= float64(k+1) })
		if i == len(samples) {
			return time.Time{}, false
		}
		return samples[i].at, true
	}
	cpuAt := func(at time.Time) map[string]float64 {
		i := sort.Search(len(samples), func(i int) bool { return !samples[i].at.Before(at) })
		i = min(i, len(samples)-1)
		return samples[i].cpu
	}
	docsAt := func(at time.Time) float64 {
		i := sort.Search(len(samples), func(i int) bool { return !samples[i].at.Before(at) })
		i = min(i, len(samples)-1)
		return samples[i].docs
	}
	var steps []streamStep
	cum := 0
	for _, sl := range lines {
		st := streamStep{Rate: sl.Rate, start: time.UnixMilli(sl.Start), end: time.UnixMilli(sl.End), CPUPer1000: map[string]float64{}}
		winEnd := st.end.Add(streamPause)
		var predLat, idxLat []float64
		lo := sort.Search(len(rawTimes), func(i int) bool { return !rawTimes[i].Before(st.start.Add(-time.Millisecond)) })
		hi := sort.Search(len(rawTimes), func(i int) bool { return !rawTimes[i].Before(winEnd) })
		st.Published = hi - lo
		for k := lo; k < hi; k++ {
			if at, ok := indexedAt(k); ok {
				idxLat = append(idxLat, float64(at.Sub(rawTimes[k]).Microseconds())/1000)
			}
		}
		for id, at := range raw {
			if at.Before(st.start.Add(-time.Millisecond)) || !at.Before(winEnd) {
				continue
			}
			if p, ok := pred[id]; ok {
				predLat = append(predLat, float64(p.Sub(at).Microseconds())/1000)
			}
		}
		predicted := 0
		for _, p := range pred {
			if !p.Before(st.start) && p.Before(st.end) {
				predicted++
			}
		}
		dur := st.end.Sub(st.start).Seconds()
		st.Achieved = float64(st.Published) / dur
		st.PredictedPerS = float64(predicted) / dur
		st.IndexedPerS = (docsAt(st.end) - docsAt(st.start)) / dur
		slices.Sort(predLat)
		slices.Sort(idxLat)
		st.PredP50ms, st.PredP99ms = grpcload.Quantile(predLat, 0.5), grpcload.Quantile(predLat, 0.99)
		st.IdxP50ms, st.IdxP99ms = grpcload.Quantile(idxLat, 0.5), grpcload.Quantile(idxLat, 0.99)
		c0, c1 := cpuAt(st.start), cpuAt(winEnd)
		for _, s := range append(slices.Clone(benchServices), benchStack...) {
			if _, ok := c1[s]; ok && st.Published > 0 {
				st.CPUPer1000[s] = (c1[s] - c0[s]) / float64(st.Published) * 1000
			}
		}
		cum += st.Published
		var why []string
		if st.Achieved < 0.9*st.Rate {
			why = append(why, fmt.Sprintf("published %.0f/s of %g/s", st.Achieved, st.Rate))
		}
		if len(idxLat) < st.Published || docsAt(winEnd) < 0.995*float64(cum) {
			why = append(why, "not all indexed before the next step")
		}
		if st.PredP99ms > 1000 || math.IsNaN(st.PredP99ms) {
			why = append(why, fmt.Sprintf("publish->prediction p99 %.0f ms > 1 s", st.PredP99ms))
		}
		if st.IdxP99ms > 3000 || math.IsNaN(st.IdxP99ms) {
			why = append(why, fmt.Sprintf("publish->indexed p99 %.0f ms > 3 s", st.IdxP99ms))
		}
		st.Bounded, st.Why = len(why) == 0, strings.Join(why, "; ")
		steps = append(steps, st)
	}
	// The knee: the highest bounded step (the first step also carries the cold start of the
	// services' consumers, so an unbounded first step does not end the search).
	for _, st := range steps {
		if st.Bounded {
			sr.KneeTxPerS = max(sr.KneeTxPerS, st.Rate)
		}
	}
	// Sustained: the highest indexed rate over any 5-second window of the run.
	for i, j := 0, 0; i < len(samples); i++ {
		for j < len(samples) && samples[j].at.Sub(samples[i].at) < 5*time.Second {
			j++
		}
		if j < len(samples) {
			sr.SustainedTxPerS = max(sr.SustainedTxPerS, (samples[j].docs-samples[i].docs)/samples[j].at.Sub(samples[i].at).Seconds())
		}
	}
	return steps
}

// rawTx reads the transaction and account ids of a tx.raw record (JSON or protobuf).
func rawTx(m kafka.Message) (id, account string, err error) {
	ct, _ := kafkaio.HeaderValue(m.Headers, topics.HeaderContentType)
	if string(ct) == topics.ContentTypeProtobuf {
		var tx eventsv1.Transaction
		if err := proto.Unmarshal(m.Value, &tx); err != nil {
			return "", "", err
		}
		return tx.GetTransactionId(), tx.GetAccountId(), nil
	}
	var tx struct {
		ID      string `json:"transaction_id"`
		Account string `json:"account_id"`
	}
	if err := json.Unmarshal(m.Value, &tx); err != nil {
		return "", "", fmt.Errorf("raw record at offset %d: %w", m.Offset, err)
	}
	return tx.ID, tx.Account, nil
}

// kafkaHop measures one plain kafka-go produce->consume hop (acks=all, the services' linger and
// fetch settings) at each rate for d, on a topic of its own: the latency from the record's
// timestamp (set when the producer encodes its batch, as for the pipeline's records) to the
// consumer's FetchMessage return.
func kafkaHop(t *testing.T, ctx context.Context, brokers []string, topic string, rates []float64, d time.Duration) []hopStep {
	t.Helper()
	kafkaiotest.CreateTopics(t, brokers, 6, topic)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: kafka.Murmur2Balancer{}, BatchTimeout: kafkaio.DefaultBatchTimeout,
		BatchSize: kafkaio.DefaultBatchSize, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, GroupID: topic + "-reader", MinBytes: kafkaio.DefaultMinBytes,
		MaxBytes: kafkaio.DefaultMaxBytes, MaxWait: kafkaio.DefaultMaxWait, StartOffset: kafka.FirstOffset})
	defer r.Close()
	value := make([]byte, 300) // about a JSON transaction
	lat := make([][]float64, len(rates))
	total := 0
	for _, rate := range rates {
		total += int(rate * d.Seconds())
	}
	rctx, rcancel := context.WithTimeout(ctx, time.Duration(len(rates))*(d+20*time.Second))
	defer rcancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ready := make(chan struct{})
	warmed := 0
	wg.Go(func() {
		for got := 0; got < total; {
			m, err := r.FetchMessage(rctx)
			if err != nil {
				return
			}
			if strings.HasPrefix(string(m.Key), "warmup-") {
				if warmed++; warmed == 300 {
					close(ready)
				}
				continue
			}
			got++
			l := float64(time.Since(m.Time).Microseconds()) / 1000
			i, _ := strconv.Atoi(string(m.Key[:strings.IndexByte(string(m.Key), '/')]))
			mu.Lock()
			lat[i] = append(lat[i], l)
			mu.Unlock()
		}
	})
	// The consumer has joined its group and fetches from every partition, and the producer
	// has connections to every leader, before the first measured record.
	warm := make([]kafka.Message, 300)
	for i := range warm {
		warm[i] = kafka.Message{Key: fmt.Appendf(nil, "warmup-%d", i), Value: value}
	}
	if err := w.WriteMessages(rctx, warm...); err != nil {
		t.Fatalf("kafka hop warm-up: %v", err)
	}
	select {
	case <-ready:
	case <-rctx.Done():
		t.Fatal("kafka hop: the consumer did not get the warm-up records")
	}
	time.Sleep(time.Second) // the hop is measured from a settled state, like the pipeline's second step
	for i, rate := range rates {
		n := int(rate * d.Seconds())
		queue := make(chan kafka.Message, 1<<16)
		var pw sync.WaitGroup
		pw.Go(func() {
			batch := make([]kafka.Message, 0, 1000)
			for m := range queue {
				batch = append(batch[:0], m)
			more:
				for len(batch) < 1000 {
					select {
					case m, ok := <-queue:
						if !ok {
							break more
						}
						batch = append(batch, m)
					default:
						break more
					}
				}
				if err := w.WriteMessages(rctx, batch...); err != nil {
					t.Errorf("kafka hop produce: %v", err)
					for range queue {
					}
					return
				}
			}
		})
		start := time.Now()
		for k := range n {
			due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
			if ahead := time.Until(due); ahead > time.Millisecond {
				time.Sleep(ahead)
			}
			queue <- kafka.Message{Key: fmt.Appendf(nil, "%d/%d", i, k), Value: value}
		}
		close(queue)
		pw.Wait()
		time.Sleep(2 * time.Second) // let the consumer catch the tail before the next rate
	}
	wg.Wait()
	out := make([]hopStep, len(rates))
	for i, rate := range rates {
		slices.Sort(lat[i])
		out[i] = hopStep{Rate: rate, N: len(lat[i]), P50ms: grpcload.Quantile(lat[i], 0.5), P99ms: grpcload.Quantile(lat[i], 0.99)}
	}
	return out
}

// featuresVsRedis compares GetOnlineFeatures (record=false: compute, don't store) with a raw
// Redis HMGET of the same account's state key, closed loop, same concurrency, same run.
func (b *bench) featuresVsRedis(t *testing.T, ctx context.Context) {
	t.Helper()
	features := b.p.procs["features"]
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Accounts = streamSeed, streamAccounts
	cfg.Start = time.Now().Add(-time.Hour)
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.accounts) == 0 {
		t.Fatal("the stream published no transactions to probe the online features with")
	}
	var reqs [][]byte
	var keys []string
	for i := range 1000 {
		tx, _ := s.Next()
		tx.AccountID = b.accounts[i%len(b.accounts)] // an account the stream gave state
		pb := tx.Proto()
		pb.TransactionId, pb.EventId = fmt.Sprintf("probe-%d", i), fmt.Sprintf("probe-%d", i)
		pb.EventTime = timestamppb.Now()
		req, err := proto.Marshal(&featuresv1.GetOnlineFeaturesRequest{Transaction: pb})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req)
		keys = append(keys, "bench:"+b.p.id+":acct:{"+tx.AccountID+"}")
	}
	redisAddr := stacktest.RedisAddr(t)
	for _, c := range []int{1, 8} {
		row := featuresRow{Concurrency: c}
		var fr, rr []grpcload.Result
		for range b.cfg.reps {
			fr = append(fr, b.load(t, ctx, features.grpc, "/mlops.features.v1.FeatureService/GetOnlineFeatures", reqs, c, 0, features.cmd.Process.Pid))
			r, hits := redisLoad(t, ctx, redisAddr, keys, c, b.cfg.dur)
			rr = append(rr, r)
			row.RedisHits = hits
		}
		row.Features, row.Redis = summarize(fr), summarize(rr)
		b.rep.Features = append(b.rep.Features, row)
		b.rep.Fields[fmt.Sprintf("online_features_p99_ratio_vs_redis_c%d", c)] = row.Features.P99us / row.Redis.P99us
	}
	b.rep.Fields["online_features_p99_ratio_vs_redis"] = b.rep.Features[0].Features.P99us / b.rep.Features[0].Redis.P99us
	b.rep.Fields["online_features_p50_ratio_vs_redis"] = b.rep.Features[0].Features.P50us / b.rep.Features[0].Redis.P50us
	if b.rep.Features[0].RedisHits < 0.5 {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("online features: only %.0f%% of the probed accounts had state in Redis", 100*b.rep.Features[0].RedisHits))
	}
}

// redisLoad sends HMGET key v s over conc connections in closed loop for d, speaking RESP
// directly (no client library between the timer and the socket). It returns the latencies and
// the share of replies that found the key.
func redisLoad(t *testing.T, ctx context.Context, addr string, keys []string, conc int, d time.Duration) (grpcload.Result, float64) {
	t.Helper()
	cmds := make([][]byte, len(keys))
	for i, k := range keys {
		cmds[i] = fmt.Appendf(nil, "*4\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n$1\r\nv\r\n$1\r\ns\r\n", len(k), k)
	}
	var (
		mu         sync.Mutex
		lat        []float64
		hits, reqs int
		firstErr   error
		wg         sync.WaitGroup
	)
	end := time.Now().Add(d)
	for w := range conc {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			defer conn.Close()
			rd := bufio.NewReader(conn)
			var local []float64
			h, n := 0, 0
			for i := w; time.Now().Before(end) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				if _, err := conn.Write(cmds[i%len(cmds)]); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					break
				}
				found, err := readHMGET(rd)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					break
				}
				local = append(local, float64(time.Since(t0).Nanoseconds())/1000)
				n++
				if found {
					h++
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			hits += h
			reqs += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil || reqs == 0 {
		t.Fatalf("redis load: %v (%d replies)", firstErr, reqs)
	}
	slices.Sort(lat)
	return grpcload.Result{Method: "HMGET", Mode: "closed", Concurrency: conc, Requests: int64(reqs), Seconds: d.Seconds(),
		RPS: float64(reqs) / d.Seconds(), P50us: grpcload.Quantile(lat, 0.5), P90us: grpcload.Quantile(lat, 0.9),
		P99us: grpcload.Quantile(lat, 0.99), P999us: grpcload.Quantile(lat, 0.999), MaxUs: lat[len(lat)-1]}, float64(hits) / float64(reqs)
}

var bulkLen = regexp.MustCompile(`^\$(-?\d+)\r\n$`)

// readHMGET reads a two-element RESP array reply; found when its first element is not nil.
func readHMGET(rd *bufio.Reader) (bool, error) {
	head, err := rd.ReadString('\n')
	if err != nil {
		return false, err
	}
	if head != "*2\r\n" {
		return false, fmt.Errorf("redis: unexpected reply %q", head)
	}
	found := false
	for i := range 2 {
		l, err := rd.ReadString('\n')
		if err != nil {
			return false, err
		}
		m := bulkLen.FindStringSubmatch(l)
		if m == nil {
			return false, fmt.Errorf("redis: unexpected element %q", l)
		}
		n, _ := strconv.Atoi(m[1])
		if n < 0 {
			continue
		}
		if i == 0 {
			found = true
		}
		if _, err := rd.Discard(n + 2); err != nil {
			return false, err
		}
	}
	return found, nil
}

// services records each service's peak RSS and its CPU per 1,000 transactions at the knee.
func (b *bench) services(t *testing.T) {
	t.Helper()
	// CPU at the knee, or at the lowest step when none was bounded.
	var knee *streamStep
	for i := range b.rep.Stream.Steps {
		if s := &b.rep.Stream.Steps[i]; s.Rate == b.rep.Stream.KneeTxPerS || (i == 0 && b.rep.Stream.KneeTxPerS == 0) {
			knee = s
		}
	}
	maxRSS := 0.0
	for _, s := range benchServices {
		rss, err := grpcload.ProcPeakRSSMiB(b.p.procs[s].cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		row := serviceRow{Service: s, PeakRSSMiB: rss}
		if knee != nil {
			row.CPUPer1000 = knee.CPUPer1000[s]
			b.rep.Fields["cpu_seconds_per_1000_tx_"+s] = row.CPUPer1000
		}
		b.rep.Fields["peak_rss_mib_"+s] = rss
		maxRSS = max(maxRSS, rss)
		b.rep.Services = append(b.rep.Services, row)
	}
	b.rep.Fields["max_service_rss_mib"] = maxRSS
	if knee != nil {
		for _, c := range benchStack {
			if v, ok := knee.CPUPer1000[c]; ok {
				b.rep.Fields["cpu_seconds_per_1000_tx_"+c] = v
			}
		}
	}
}

// unlinkRedisPrefix deletes every key matching prefix* (a Lua loop of SCAN and UNLINK, sent as
// raw RESP like the reads above), so that a bench run leaves no account states behind. A
// failure is logged: the measurements do not depend on it.
func unlinkRedisPrefix(t *testing.T, addr, prefix string) {
	const script = `local c, n = '0', 0
repeat
  local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000)
  c = r[1]
  for _, k in ipairs(r[2]) do redis.call('UNLINK', k); n = n + 1 end
until c == '0'
return n`
	args := []string{"EVAL", script, "0", prefix + "*"}
	cmd := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		cmd = fmt.Appendf(cmd, "$%d\r\n%s\r\n", len(a), a)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Logf("delete redis keys %s*: %v", prefix, err)
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := conn.Write(cmd); err != nil {
		t.Logf("delete redis keys %s*: %v", prefix, err)
		return
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(reply, ":") {
		t.Logf("delete redis keys %s*: reply %q, %v", prefix, reply, err)
	}
}
