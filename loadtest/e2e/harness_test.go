package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/sim"
)

// This file holds what the outage and scaling tests share: a paced load generator that
// survives broker outages, a private stack instance (scripts/stack.sh STACK_INSTANCE), a
// private Prometheus evaluating the project's alert rules, and readers of the services'
// /metrics, of consumer-group state and of every document of an index pattern.

// simTraffic returns n simulated transactions of accounts accounts (seeded), starting far
// enough back that none is in the future or older than ingestion's 30-day limit, and their
// records for topic (JSON, keyed by account).
func simTraffic(t *testing.T, seed uint64, accounts, n int, topic string) (sim.Config, []sim.Transaction, []kafka.Message) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Seed = seed
	cfg.Accounts = accounts
	cfg.Start = time.Now().Add(-20 * 24 * time.Hour).Truncate(time.Second)
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	txs := make([]sim.Transaction, n)
	msgs := make([]kafka.Message, n)
	for i := range n {
		txs[i], _ = s.Next()
		b, err := json.Marshal(&txs[i])
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafkaio.NewRecord(topic, []byte(txs[i].AccountID), b, topics.ContentTypeJSON, nil)
	}
	if last := txs[n-1].EventTime; last.After(time.Now()) {
		t.Fatalf("simulated traffic reaches %v, in the future: use more accounts or fewer transactions", last)
	}
	return cfg, txs, msgs
}

// load publishes a fixed sequence of records in order at a steady rate, one batch per tick
// (what is due since the last one, so a slow write does not lower the rate; at most a
// second's worth at once), and waits for each batch's acknowledgement before the next:
// records are never reordered,
// and while the broker is away it retries the batch (a retry after a lost acknowledgement may
// duplicate a record, which the pipeline must absorb). Pause stops the pace without losing
// the position; PublishNow sends a burst synchronously while paused.
type load struct {
	t       *testing.T
	ctx     context.Context
	brokers []string
	msgs    []kafka.Message
	rate    float64 // records per second

	mu     sync.Mutex // serialises writes and guards sent, paused
	sent   int
	paused bool
	outage time.Duration // total time spent retrying

	stop chan struct{}
	done chan struct{}
	prod *kafkaio.Producer
}

const loadTick = 100 * time.Millisecond

func startLoad(t *testing.T, ctx context.Context, brokers string, msgs []kafka.Message, perSecond int) *load {
	t.Helper()
	prod, err := kafkaio.NewProducer(kafkaio.Config{Brokers: []string{brokers}, ClientID: "e2e-load", BatchTimeout: time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &load{t: t, ctx: ctx, brokers: []string{brokers}, msgs: msgs, rate: float64(perSecond),
		stop: make(chan struct{}), done: make(chan struct{}), prod: prod}
	go l.run()
	t.Cleanup(func() { l.Stop() })
	return l
}

func (l *load) run() {
	defer close(l.done)
	tick := time.NewTicker(loadTick)
	defer tick.Stop()
	last, due := time.Now(), 0.0
	for {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case now := <-tick.C:
			due = min(due+l.rate*now.Sub(last).Seconds(), l.rate)
			last = now
		}
		l.mu.Lock()
		if l.paused {
			due = 0
		} else if n := int(due); n > 0 {
			if err := l.publish(n); err != nil {
				l.mu.Unlock()
				l.t.Errorf("load: %v", err)
				return
			}
			due -= float64(n)
		}
		l.mu.Unlock()
	}
}

// publish sends the next n records (fewer at the end of the sequence) and retries until all
// are acknowledged or the test's context ends. Callers hold mu.
func (l *load) publish(n int) error {
	batch := l.msgs[l.sent:min(l.sent+n, len(l.msgs))]
	if len(batch) == 0 {
		return nil
	}
	var start time.Time
	for pending := batch; ; {
		ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
		err := l.prod.WriteMessages(ctx, pending...)
		cancel()
		if err == nil {
			break
		}
		if l.ctx.Err() != nil {
			return fmt.Errorf("publishing %d records at %d: %w (last error)", len(pending), l.sent, err)
		}
		if start.IsZero() {
			start = time.Now()
			l.t.Logf("load: publishing stalls at record %d: %v", l.sent, err)
		}
		// Only the records that failed are sent again; any other error (the broker is
		// unreachable) leaves their fate unknown, so all of them are.
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			var again []kafka.Message
			for i, e := range werrs {
				if e != nil {
					again = append(again, pending[i])
				}
			}
			pending = again
		}
		select {
		case <-l.ctx.Done():
		case <-time.After(250 * time.Millisecond): // the broker's restart, not a goroutine
		}
	}
	if !start.IsZero() {
		l.outage += time.Since(start)
		l.t.Logf("load: publishing resumed at record %d after %v", l.sent, time.Since(start).Round(time.Millisecond))
	}
	l.sent += len(batch)
	return nil
}

// Sent is how many records were acknowledged.
func (l *load) Sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

// Pause stops the steady pace (after the batch in flight) or resumes it.
func (l *load) Pause(p bool) {
	l.mu.Lock()
	l.paused = p
	l.mu.Unlock()
}

// PublishNow sends the next n records at once and returns when they are acknowledged.
func (l *load) PublishNow(n int) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent+n > len(l.msgs) {
		l.t.Fatalf("load: %d more records wanted, %d left", n, len(l.msgs)-l.sent)
	}
	if err := l.publish(n); err != nil {
		l.t.Fatal(err)
	}
}

// Stop ends the load and returns how many records were acknowledged.
func (l *load) Stop() int {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.prod.Close()
	return l.Sent()
}

// waitSent waits until at least n records were acknowledged.
func (l *load) waitSent(ctx context.Context, n int, timeout time.Duration) {
	l.t.Helper()
	if n > len(l.msgs) {
		l.t.Fatalf("load: waiting for %d records, only %d generated", n, len(l.msgs))
	}
	waitFor(l.t, ctx, timeout, fmt.Sprintf("%d records published", n), func() (bool, string) {
		s := l.Sent()
		return s >= n, fmt.Sprintf("sent=%d", s)
	})
}

// requireRunning fails the test if the process has exited (when says since when it should
// have been running).
func (p *proc) requireRunning(t *testing.T, when string) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		t.Errorf("%s exited %s: %v\n%s", p.name, when, err, p.tail())
	default:
	}
}

// scrapeSum scrapes http://admin/metrics and sums the samples of metric name whose label set
// contains every label="value" of match (a sample without labels counts when match is empty).
func scrapeSum(admin, name string, match ...string) (float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics: %s", admin, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, m := range match {
			if !strings.Contains(line, m) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// esScrollDocs returns the _source of every document of index (a pattern), through the scroll
// API, however many there are.
func esScrollDocs(t *testing.T, base, index string) []map[string]any {
	t.Helper()
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	post := func(path, body string) page {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s %s", path, resp.Status, b)
		}
		var p page
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out []map[string]any
	p := post("/"+index+"/_search?scroll=1m", `{"size":2000,"query":{"match_all":{}}}`)
	for len(p.Hits.Hits) > 0 {
		for _, h := range p.Hits.Hits {
			out = append(out, h.Source)
		}
		p = post("/_search/scroll", fmt.Sprintf(`{"scroll":"1m","scroll_id":%q}`, p.ScrollID))
	}
	if req, err := http.NewRequest(http.MethodDelete, base+"/_search/scroll/_all", nil); err == nil {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	return out
}

// checkExactlyOnce requires docs to hold exactly one document per transaction of txs.
func checkExactlyOnce(t *testing.T, txs []sim.Transaction, docs []map[string]any) {
	t.Helper()
	want := make(map[string]bool, len(txs))
	for _, tx := range txs {
		want[tx.TransactionID] = true
	}
	seen := map[string]int{}
	for _, d := range docs {
		id, _ := d["transaction_id"].(string)
		seen[id]++
	}
	missing, doubled, unknown := 0, 0, 0
	for id := range want {
		switch seen[id] {
		case 0:
			if missing++; missing <= 5 {
				t.Errorf("transaction %s has no document", id)
			}
		case 1:
		default:
			if doubled++; doubled <= 5 {
				t.Errorf("transaction %s has %d documents", id, seen[id])
			}
		}
	}
	for id := range seen {
		if !want[id] {
			unknown++
		}
	}
	if missing+doubled+unknown > 0 || len(docs) != len(txs) {
		t.Fatalf("%d documents for %d published transactions: %d missing, %d doubled, %d unknown", len(docs), len(txs), missing, doubled, unknown)
	}
}

// groupLag is the records topic holds beyond what group has committed, summed over
// partitions (a partition the group never committed counts from 0).
func groupLag(ctx context.Context, brokers, group, topic string) (int64, error) {
	ids, err := kafkaio.Partitions(ctx, []string{brokers}, topic)
	if err != nil {
		return 0, err
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers), Timeout: 10 * time.Second}
	resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	committed := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return 0, p.Error
		}
		committed[p.Partition] = max(p.CommittedOffset, 0)
	}
	// The end offsets after the commits: a commit made in between cannot pass them.
	ends, err := kafkaio.EndOffsets(ctx, []string{brokers}, topic)
	if err != nil {
		return 0, err
	}
	var lag int64
	for p, end := range ends {
		lag += end - committed[p]
	}
	return lag, nil
}

// groupMembers returns, per member of group, the partitions of topic assigned to it.
func groupMembers(ctx context.Context, brokers, group, topic string) (map[string][]int, string, error) {
	c := &kafka.Client{Addr: kafka.TCP(brokers), Timeout: 10 * time.Second}
	resp, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil, "", err
	}
	if len(resp.Groups) != 1 {
		return nil, "", fmt.Errorf("describe group %s: %d groups in the answer", group, len(resp.Groups))
	}
	g := resp.Groups[0]
	if g.Error != nil {
		return nil, "", g.Error
	}
	out := map[string][]int{}
	for _, m := range g.Members {
		var parts []int
		for _, tp := range m.MemberAssignments.Topics {
			if tp.Topic == topic {
				parts = append(parts, tp.Partitions...)
			}
		}
		out[m.MemberID] = parts
	}
	return out, g.GroupState, nil
}

// privateStack is a stack instance of this test alone (scripts/stack.sh with STACK_INSTANCE),
// on free ports, so the test may stop and restart its components. It is stopped and its data
// removed when the test ends.
type privateStack struct {
	t                         *testing.T
	root, name, dir           string
	env                       []string
	brokers, esURL, redisAddr string
	upDone                    chan struct{} // closed when upAsync's start has ended
}

// newPrivateStack chooses the instance's ports and registers its removal; start it with
// upAsync.
func newPrivateStack(t *testing.T, name string) *privateStack {
	t.Helper()
	root := repoRoot(t)
	port := func() string {
		_, p, err := net.SplitHostPort(servicetest.FreeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	kp, ep, rp := port(), port(), port()
	s := &privateStack{t: t, root: root, name: name,
		env: []string{"STACK_INSTANCE=" + name, "KAFKA_PORT=" + kp, "KAFKA_CONTROLLER_PORT=" + port(),
			"ES_PORT=" + ep, "ES_TRANSPORT_PORT=" + port(), "REDIS_PORT=" + rp, "REDIS_PERSIST=1", "ES_HEAP=512m"},
		brokers: "127.0.0.1:" + kp, esURL: "http://127.0.0.1:" + ep, redisAddr: "127.0.0.1:" + rp}
	cache := os.Getenv("MLOPS_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	s.dir = filepath.Join(cache, "instances", name)
	t.Cleanup(func() {
		if s.upDone != nil {
			<-s.upDone // a test that failed early: let its start finish, then stop it
		}
		s.ctl("down")
		if !t.Failed() {
			os.RemoveAll(s.dir)
		} else {
			t.Logf("private stack kept for inspection: %s (logs in run/<component>/log)", s.dir)
		}
	})
	return s
}

// upAsync starts components in the background; the returned function waits for them to be
// healthy and fails the test if they are not.
func (s *privateStack) upAsync(components ...string) (wait func()) {
	done := make(chan error, 1)
	s.upDone = make(chan struct{})
	go func() {
		defer close(s.upDone)
		done <- s.run(append([]string{"up"}, components...)...)
	}()
	return func() {
		s.t.Helper()
		if err := <-done; err != nil {
			s.t.Fatal(err)
		}
	}
}

// ctl runs scripts/stack.sh on the instance and fails the test if it fails.
func (s *privateStack) ctl(args ...string) {
	s.t.Helper()
	if err := s.run(args...); err != nil {
		s.t.Fatal(err)
	}
}

func (s *privateStack) run(args ...string) error {
	cmd := exec.Command(filepath.Join(s.root, "scripts", "stack.sh"), args...)
	cmd.Env = append(os.Environ(), s.env...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("stack.sh %s (instance %s): %v\n%s", strings.Join(args, " "), s.name, err, out)
	}
	s.t.Logf("stack.sh %s: %v", strings.Join(args, " "), time.Since(t0).Round(100*time.Millisecond))
	return nil
}

// prometheus is a private Prometheus scraping the test's services every second and
// evaluating the project's alert rules (deploy/prometheus/rules) unchanged.
type prometheus struct {
	url string
	cmd *exec.Cmd
}

func startPrometheus(t *testing.T, bin string, procs map[string]*proc) *prometheus {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	fmt.Fprintf(&b, "rule_files:\n  - %q\n", filepath.Join(root, "deploy", "prometheus", "rules", "*.yml"))
	fmt.Fprintf(&b, "scrape_configs:\n")
	for name, p := range procs {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n        labels: {service: %s}\n", name, p.admin, name)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := servicetest.FreeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	pr := &prometheus{url: "http://" + addr, cmd: cmd}
	waitFor(t, context.Background(), time.Minute, "private Prometheus ready with the rules loaded", func() (bool, string) {
		select {
		case err := <-done:
			done <- err
			log, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("prometheus exited: %v\n%s", err, log)
		default:
		}
		var rules struct {
			Data struct {
				Groups []struct {
					Name string `json:"name"`
				} `json:"groups"`
			} `json:"data"`
		}
		err := pr.get("/api/v1/rules", nil, &rules)
		return err == nil && len(rules.Data.Groups) > 0, fmt.Sprintf("%v", err)
	})
	return pr
}

func (p *prometheus) get(path string, q url.Values, into any) error {
	u := p.url + path
	if q != nil {
		u += "?" + q.Encode()
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, b)
	}
	return json.Unmarshal(b, into)
}

// alertSample is one evaluation of an alert: when, in which state, with which labels.
type alertSample struct {
	at     time.Time
	state  string
	labels map[string]string
}

// alertHistory returns every evaluation of alertname between from and to (the ALERTS series
// Prometheus writes for pending and firing alerts), at a one-second step.
func (p *prometheus) alertHistory(t *testing.T, alertname string, from, to time.Time) []alertSample {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	q := url.Values{"query": {fmt.Sprintf("ALERTS{alertname=%q}", alertname)},
		"start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix()+1, 10)}, "step": {"1"}}
	if err := p.get("/api/v1/query_range", q, &r); err != nil {
		t.Fatal(err)
	}
	var out []alertSample
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			ts, _ := v[0].(float64)
			out = append(out, alertSample{at: time.Unix(0, int64(ts*1e9)), state: s.Metric["alertstate"], labels: s.Metric})
		}
	}
	return out
}

// activeAlerts returns the alerts Prometheus holds right now (pending or firing).
func (p *prometheus) activeAlerts(t *testing.T) []alertSample {
	t.Helper()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/alerts", nil, &r); err != nil {
		t.Fatal(err)
	}
	var out []alertSample
	for _, a := range r.Data.Alerts {
		out = append(out, alertSample{at: time.Now(), state: a.State, labels: a.Labels})
	}
	return out
}
