package scoring

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

// restartableBroker is an in-process Kafka broker on a fixed loopback port that keeps its
// log in a directory, so it can be stopped (connections refused, like a dead broker) and
// started again with the records it had.
type restartableBroker struct {
	t    *testing.T
	port int
	dir  string
	c    *kfake.Cluster
}

func startRestartableBroker(t *testing.T) *restartableBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b := &restartableBroker{t: t, port: port, dir: t.TempDir()}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *restartableBroker) start() {
	b.t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(b.port), kfake.DataDir(b.dir), kfake.DefaultNumPartitions(2))
	if err != nil {
		b.t.Fatalf("start kfake on port %d: %v", b.port, err)
	}
	b.c = c
}

func (b *restartableBroker) stop() {
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}

func (b *restartableBroker) addrs() []string { return []string{fmt.Sprintf("127.0.0.1:%d", b.port)} }

// TestScoreDuringKafkaOutage: while the broker is gone, sync Score keeps answering within a
// small bound (nothing waits for the prediction log); the predictions that could not be
// published are spilled, and once the broker is back every prediction is in the topic
// exactly once, alerts with their explanation, and none is counted as lost.
func TestScoreDuringKafkaOutage(t *testing.T) {
	t.Parallel()
	l := lib(t)
	d := scoringtest.FraudData(t)
	text := scoringtest.TrainModel(t, l, 20)
	broker := startRestartableBroker(t)
	topic := kafkaiotest.UniqueName("predictions-outage")
	kafkaiotest.CreateTopics(t, broker.addrs(), 2, topic)

	cfg := testConfig(t)
	cfg.PredictionsTopic = topic
	cfg.Kafka.Brokers = broker.addrs()
	cfg.SyncLogBuffer = 4 // fills at once while the broker is gone
	cfg.SyncLogRetryInterval = 100 * time.Millisecond
	cfg.ExplainQueue = 4
	producer, err := kafkaio.NewProducer(cfg.Kafka, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, reg := newTestServer(t, cfg, Deps{Producer: producer}, localModel(t, l, text, "1", 0.3))
	runActor(t, "sync log", s.SyncLogActor().Run)

	const bound = time.Second // generous for -race on 2 shared cores; the caller's deadline is 5s
	var ids []string
	alerts := map[string]bool{}
	score := func(phase string, n int) {
		t.Helper()
		for i := range n {
			fv := vector(d, i, phase)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			start := time.Now()
			resp, err := s.Score(ctx, &scoringv1.ScoreRequest{Features: fv})
			took := time.Since(start)
			cancel()
			if err != nil {
				t.Fatalf("%s: Score(%s) = %v after %v", phase, fv.TransactionId, err, took)
			}
			if took > bound {
				t.Fatalf("%s: Score(%s) took %v, want at most %v: the answer waits for the prediction log", phase, fv.TransactionId, took, bound)
			}
			ids = append(ids, fv.TransactionId)
			alerts[fv.TransactionId] = resp.Decision == eventsv1.Decision_DECISION_ALERT
		}
	}

	score("before", 20)
	broker.stop()
	score("outage", 200)
	kafkaiotest.WaitFor(t, 20*time.Second, "predictions spilled during the outage", func() (bool, error) {
		return testutil.ToFloat64(s.m.syncLogSpilled) > 0, nil
	})
	broker.start()
	score("after", 20)

	var got map[string][]*eventsv1.Prediction
	kafkaiotest.WaitFor(t, 60*time.Second, "every sync prediction on the topic", func() (bool, error) {
		got = map[string][]*eventsv1.Prediction{}
		for _, m := range kafkaiotest.ReadTopic(t, broker.addrs(), topic) {
			var p eventsv1.Prediction
			if err := proto.Unmarshal(m.Value, &p); err != nil {
				return false, err
			}
			got[string(m.Key)] = append(got[string(m.Key)], &p)
		}
		return len(got) >= len(ids), nil
	})
	nAlerts := 0
	for _, id := range ids {
		ps := got[id]
		if len(ps) != 1 {
			t.Errorf("transaction %s: %d predictions on the topic, want exactly 1", id, len(ps))
			continue
		}
		if ps[0].Path != eventsv1.ScoringPath_SCORING_PATH_SYNC || ps[0].TransactionId != id {
			t.Errorf("transaction %s: logged %v", id, ps[0])
		}
		if alerts[id] {
			nAlerts++
			if ps[0].Explanation == nil || len(ps[0].Explanation.Contributions) != cfg.ExplainTopK {
				t.Errorf("alert %s logged without its explanation: %v", id, ps[0].Explanation)
			}
		}
	}
	if len(got) != len(ids) {
		t.Errorf("%d transactions on the topic, want %d", len(got), len(ids))
	}
	if nAlerts == 0 {
		t.Error("no alert among the scored vectors: the explanation path was not exercised")
	}
	if v := kafkaiotest.MetricValue(reg, "mlops_scoring_sync_log_dropped_total", nil); v != 0 {
		t.Errorf("mlops_scoring_sync_log_dropped_total = %v, want 0", v)
	}
	if sp, rp := testutil.ToFloat64(s.m.syncLogSpilled), testutil.ToFloat64(s.m.syncLogReplayed); rp != sp || sp == 0 {
		t.Errorf("spilled %v, replayed %v: want every spilled prediction replayed", sp, rp)
	}
}

// TestSyncLogLossIsCounted: without a spill directory, a prediction that cannot be published
// is counted as lost (and logged), never silently gone.
func TestSyncLogLossIsCounted(t *testing.T) {
	t.Parallel()
	l := lib(t)
	d := scoringtest.FraudData(t)
	cfg := testConfig(t)
	cfg.SpillDir = ""
	cfg.SyncLogBuffer = 1
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // nobody listens
	producer, err := kafkaio.NewProducer(cfg.Kafka, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestServer(t, cfg, Deps{Producer: producer}, localModel(t, l, scoringtest.TrainModel(t, l, 20), "1", 0.8))
	runActor(t, "sync log", s.SyncLogActor().Run)
	for i := range 10 {
		if _, err := s.Score(t.Context(), &scoringv1.ScoreRequest{Features: vector(d, i, "lost")}); err != nil {
			t.Fatal(err)
		}
	}
	kafkaiotest.WaitFor(t, 20*time.Second, "all 10 predictions counted as lost", func() (bool, error) {
		return testutil.ToFloat64(s.m.syncLogDropped) == 10, nil
	})
}

func testRecord(i int) kafka.Message {
	return kafka.Message{Key: fmt.Appendf(nil, "tx-%d", i), Value: fmt.Appendf(nil, "value-%d-%s", i, string(make([]byte, i%7))),
		Headers: []kafka.Header{{Key: kafkaio.HeaderTraceparent, Value: fmt.Appendf(nil, "tp-%d", i)}}}
}

func checkRecords(t *testing.T, got []kafka.Message, from int) {
	t.Helper()
	for j, m := range got {
		want := testRecord(from + j)
		if string(m.Key) != string(want.Key) || string(m.Value) != string(want.Value) || len(m.Headers) != 1 ||
			m.Headers[0].Key != want.Headers[0].Key || string(m.Headers[0].Value) != string(want.Headers[0].Value) {
			t.Fatalf("record %d = %q %q %v, want %q %q %v", from+j, m.Key, m.Value, m.Headers, want.Key, want.Value, want.Headers)
		}
	}
}

// TestSpillFile: records come back in order with their headers; replay progress survives a
// reopen; a torn tail is cut; the size bound holds (compacting published records first); a
// second process cannot open the same directory.
func TestSpillFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sp, err := openSpill(dir, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []kafka.Message
	for i := range 40 {
		msgs = append(msgs, testRecord(i))
	}
	if n, err := sp.append(msgs); err != nil || n != 40 {
		t.Fatalf("append() = %d, %v", n, err)
	}
	if _, err := openSpill(dir, 4096); !errors.Is(err, errSpillLocked) {
		t.Fatalf("a second openSpill of the same directory = %v, want errSpillLocked", err)
	}
	got, next, err := sp.peek(15)
	if err != nil || len(got) != 15 {
		t.Fatalf("peek() = %d records, %v", len(got), err)
	}
	checkRecords(t, got, 0)
	if err := sp.advance(next, len(got)); err != nil {
		t.Fatal(err)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	// A torn record at the end, as after a crash in the middle of a write.
	f, err := os.OpenFile(filepath.Join(dir, spillFileName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := encodeRecord(nil, testRecord(99))
	if _, err := f.Write(torn[:len(torn)-3]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sp, err = openSpill(dir, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sp.close(); err != nil {
			t.Error(err)
		}
	}()
	if n := sp.pending(); n != 25 {
		t.Fatalf("pending after reopen = %d, want 25", n)
	}
	got, _, err = sp.peek(100)
	if err != nil || len(got) != 25 {
		t.Fatalf("peek() = %d records, %v", len(got), err)
	}
	checkRecords(t, got, 15)
	// Fill to the bound: the 15 published records are compacted away, then it refuses.
	var more []kafka.Message
	for i := 40; i < 400; i++ {
		more = append(more, testRecord(i))
	}
	n, err := sp.append(more)
	if !errors.Is(err, errSpillFull) || n == 0 || n == len(more) {
		t.Fatalf("append() over the bound = %d, %v; want some written and errSpillFull", n, err)
	}
	if sp.bytes() > 4096 {
		t.Errorf("spill file %d bytes, bound 4096", sp.bytes())
	}
	got, next, err = sp.peek(1000)
	if err != nil || len(got) != 25+n {
		t.Fatalf("peek() = %d records, %v; want %d", len(got), err, 25+n)
	}
	checkRecords(t, got, 15)
	if err := sp.advance(next, len(got)); err != nil {
		t.Fatal(err)
	}
	if sp.pending() != 0 || sp.bytes() != spillHeader {
		t.Errorf("after replaying everything: %d pending, %d bytes", sp.pending(), sp.bytes())
	}
}
