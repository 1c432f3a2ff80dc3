package e2e_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// replica starts another process of p's service with the same flags (so the same consumer
// group and topics), its own admin and gRPC addresses, and its own scoring directories.
func (p *proc) replica(t *testing.T, i int) *proc {
	t.Helper()
	args := slices.Clone(p.args[2:]) // without -admin.addr
	if p.grpc != "" {
		args = args[:len(args)-2] // without -grpc.addr
	}
	if j := slices.Index(args, "-model.cache-dir"); j >= 0 {
		args[j+1] = t.TempDir()
	}
	env := append(slices.Clone(p.env), "SYNC_SPILL_DIR="+t.TempDir())
	return start(t, fmt.Sprintf("%s-%d", p.name, i), p.bin, p.grpc != "", env, args...)
}

// TestScaleOutUnderLoad runs ingestion, features, scoring and predlog as 1, then 3, then 1
// processes each (the same consumer groups, topics of 6 partitions on the real broker) while
// a steady load of simulated transactions flows; the scale-in stops one replica of each
// service with SIGTERM and kills another with SIGKILL. After each step the groups must have
// the expected members, each owning partitions, and the lag must drain; at the end every
// published transaction must be exactly one prediction document whose features equal the
// offline computation (per-account order held across every rebalance). The throughput of the
// whole path with 1 and with 3 replicas is measured on a burst published on top of a drained
// pipeline and reported.
func TestScaleOutUnderLoad(t *testing.T) {
	const (
		rate       = 40   // steady transactions per second
		burst      = 3000 // transactions of each throughput measurement
		partitions = 6
	)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	p := startPipelineWith(t, ctx, pipelineOpts{partitions: partitions, extra: []string{
		"-kafka.lag-interval", "1s", "-kafka.session-timeout", "6s", "-kafka.heartbeat-interval", "1s",
		"-kafka.rebalance-timeout", "10s"}})
	groups := map[string]string{"ingestion": p.tp.raw, "features": p.tp.validated, "scoring": p.tp.features, "predlog": p.tp.predictions}
	group := func(svc string) string { return "e2e-" + svc + "-" + p.id }
	replicas := map[string][]*proc{}
	for _, s := range streamServices {
		replicas[s] = []*proc{p.procs[s]}
	}

	cfg, txs, msgs := simTraffic(t, 13, 5000, 20000, p.tp.raw)
	search := p.indexPrefix + "*"
	count := func() int {
		c, _ := esCount(p.esURL, search, `{"query":{"match_all":{}}}`)
		return c
	}
	l := startLoad(t, ctx, p.brokers, msgs, rate)

	// drained pauses the steady load and waits until every group has committed everything
	// its topic holds and every published transaction is a document; the load stays paused.
	drained := func(what string) {
		t.Helper()
		l.Pause(true)
		want := l.Sent()
		waitFor(t, ctx, 3*time.Minute, "the lag to drain "+what, func() (bool, string) {
			var state []string
			var total int64
			for _, s := range streamServices {
				lag, err := groupLag(ctx, p.brokers, group(s), groups[s])
				if err != nil {
					return false, err.Error()
				}
				total += lag
				state = append(state, fmt.Sprintf("%s=%d", s, lag))
			}
			c := count()
			return total == 0 && c >= want, fmt.Sprintf("lag %s; %d of %d documents", strings.Join(state, " "), c, want)
		})
	}
	// members waits until each group is stable with n members, each owning partitions.
	members := func(n int) {
		t.Helper()
		for _, s := range streamServices {
			waitFor(t, ctx, 2*time.Minute, fmt.Sprintf("%s's group to have %d members", s, n), func() (bool, string) {
				m, state, err := groupMembers(ctx, p.brokers, group(s), groups[s])
				if err != nil {
					return false, err.Error()
				}
				owned := 0
				for _, parts := range m {
					if len(parts) > 0 {
						owned++
					}
				}
				return state == "Stable" && len(m) == n && owned == n, fmt.Sprintf("state %s, members %v", state, m)
			})
		}
	}
	// throughput drains the pipeline with the steady load paused, publishes a burst and
	// returns how many transactions per second went through the whole path.
	throughput := func(what string) float64 {
		t.Helper()
		drained("before the " + what + " burst")
		t0 := time.Now()
		l.PublishNow(burst)
		drained("after the " + what + " burst")
		el := time.Since(t0)
		l.Pause(false)
		r := float64(burst) / el.Seconds()
		t.Logf("throughput with %s: %d transactions end to end in %v = %.0f/s", what, burst, el.Round(10*time.Millisecond), r)
		return r
	}
	steady := func(d time.Duration) { // let the steady load run for d more
		t.Helper()
		l.Pause(false)
		l.waitSent(ctx, l.Sent()+int(d.Seconds())*rate, d+time.Minute)
	}

	// 1 replica each.
	steady(10 * time.Second)
	one := throughput("1 replica")

	// Scale out to 3 under load.
	for _, s := range streamServices {
		for i := 1; i < 3; i++ {
			replicas[s] = append(replicas[s], replicas[s][0].replica(t, i))
		}
	}
	t.Logf("scale-out: 2 more replicas of each service started (%d published so far)", l.Sent())
	members(3)
	t.Logf("scale-out: every group has 3 members owning partitions (%d published so far)", l.Sent())
	steady(10 * time.Second)
	three := throughput("3 replicas")

	// Scale in to 1 under load: one replica stops cleanly, one is killed.
	for _, s := range streamServices {
		replicas[s][1].stop(t)
		replicas[s][2].kill9(t)
		replicas[s] = replicas[s][:1]
	}
	t.Logf("scale-in: one replica of each service stopped, one killed (%d published so far)", l.Sent())
	members(1)
	t.Logf("scale-in: every group has 1 member (%d published so far)", l.Sent())
	steady(10 * time.Second)
	n := l.Stop()
	drained("after the scale-in")

	for _, s := range streamServices {
		replicas[s][0].requireRunning(t, "while replicas came and went")
	}
	docs := esScrollDocs(t, p.esURL, search)
	checkExactlyOnce(t, txs[:n], docs)
	checkServedFeatures(t, cfg, txs[:n], docs)
	t.Logf("%d transactions; end-to-end throughput %.0f/s with 1 replica, %.0f/s with 3 replicas of ingestion, features, scoring and predlog (ratio %.2f, %d CPUs)",
		n, one, three, three/one, runtime.NumCPU())
}
