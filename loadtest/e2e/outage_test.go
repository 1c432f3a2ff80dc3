package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// streamServices are the pipeline's consumers, in pipeline order, with the topic each reads.
var streamServices = []string{"ingestion", "features", "scoring", "predlog"}

// TestOutageRecovery runs the pipeline on a private stack instance under a steady load of
// simulated transactions and takes its dependencies away one after the other, each once the
// service that needs it keeps up with the load: Elasticsearch for 60 s, Redis for 30 s
// (persistent, as a production Redis is), then a restart of the Kafka broker. Afterwards every published
// transaction must be exactly one prediction document whose features equal the offline
// computation; the consumer lag gauges on the services' /metrics must have risen during the
// outages and drained to zero; and a private Prometheus, scraping the services every second
// and evaluating deploy/prometheus/rules unchanged, must have raised KafkaConsumerLagHigh for
// predlog during the Elasticsearch outage and for features during the Redis outage (pending:
// the rule waits 2 minutes before firing, longer than these outages), cleared it once the
// lag drained, and never fired ServiceDown (no service died or stopped answering).
func TestOutageRecovery(t *testing.T) {
	const (
		rate      = 60 // transactions per second
		esDown    = 60 * time.Second
		redisDown = 30 * time.Second
		lagAlert  = 1000 // KafkaConsumerLagHigh's threshold
	)
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	stacktest.MLflowURL(t) // the model registry is the shared stack's; the rest is private
	promBin := stacktest.Binary(t, "prometheus")
	stacktest.Binary(t, "redis-server")

	st := newPrivateStack(t, strings.ToLower(kafkaiotest.UniqueName("e2e-outage")))
	p := startPipelineWith(t, ctx, pipelineOpts{brokers: st.brokers, esURL: st.esURL, redisAddr: st.redisAddr,
		partitions: 3, extra: []string{"-kafka.lag-interval", "1s"}, depsReady: st.upAsync("kafka", "es", "redis")})
	t.Logf("pipeline ready after %v", time.Since(t0).Round(time.Second))
	stream := map[string]*proc{}
	for _, s := range streamServices {
		stream[s] = p.procs[s]
	}
	prom := startPrometheus(t, promBin, stream)

	cfg, txs, msgs := simTraffic(t, 11, 3000, 16000, p.tp.raw)
	search := p.indexPrefix + "*"
	count := func() int {
		c, _ := esCount(p.esURL, search, `{"query":{"match_all":{}}}`)
		return c
	}
	lagOf := func(svc string) float64 {
		v, err := scrapeSum(p.procs[svc].admin, "mlops_kafka_consumer_lag")
		if err != nil {
			t.Errorf("%s /metrics: %v", svc, err)
		}
		return v
	}
	// hold keeps a component down for d, sampling svc's lag gauge every second; it returns the
	// highest value seen. The wait is the outage's length, not a stand-in for a condition.
	hold := func(d time.Duration, svc string) float64 {
		peak := 0.0
		for end := time.Now().Add(d); time.Now().Before(end); {
			peak = max(peak, lagOf(svc))
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(time.Second):
			}
		}
		return peak
	}

	start := time.Now()
	l := startLoad(t, ctx, p.brokers, msgs, rate)
	waitFor(t, ctx, 2*time.Minute, "the first documents", func() (bool, string) {
		c := count()
		return c >= 5*rate, fmt.Sprintf("count=%d", c)
	})

	// quiet waits until svc keeps up with the load and has no lag alert pending, so that
	// what the next outage raises is the outage's doing.
	quiet := func(svc string) {
		t.Helper()
		waitFor(t, ctx, 3*time.Minute, svc+" to keep up with the load", func() (bool, string) {
			lag := lagOf(svc)
			for _, a := range prom.activeAlerts(t) {
				if a.labels["service"] == svc {
					return false, fmt.Sprintf("lag %.0f, alert %v", lag, a.labels)
				}
			}
			return lag < 2*rate, fmt.Sprintf("lag %.0f", lag)
		})
	}

	// Elasticsearch: 60 s away. predlog retries its bulk writes; its lag must grow.
	quiet("predlog")
	st.ctl("down", "es")
	esFrom := time.Now()
	predlogPeak := hold(esDown, "predlog")
	st.ctl("up", "es")
	esTo := time.Now()
	t.Logf("Elasticsearch down %v (back after %v): predlog lag peaked at %.0f", esDown, esTo.Sub(esFrom).Round(time.Second), predlogPeak)

	// Redis: 30 s away. features retries its state updates; its lag must grow.
	quiet("features")
	st.ctl("down", "redis")
	redisFrom := time.Now()
	featuresPeak := hold(redisDown, "features")
	st.ctl("up", "redis")
	redisTo := time.Now()
	t.Logf("Redis down %v (back after %v): features lag peaked at %.0f", redisDown, redisTo.Sub(redisFrom).Round(time.Second), featuresPeak)

	// Kafka: the broker restarts (graceful stop, start on the same data).
	before := l.Sent()
	st.ctl("down", "kafka")
	kafkaFrom := time.Now()
	st.ctl("up", "kafka")
	t.Logf("Kafka broker restarted in %v", time.Since(kafkaFrom).Round(time.Second))
	kafkaUp, atUp := time.Now(), count()
	waitFor(t, ctx, 3*time.Minute, "documents again after the broker restart", func() (bool, string) {
		c := count()
		return c > atUp, fmt.Sprintf("count=%d", c)
	})
	t.Logf("documents written again %v after the broker was back", time.Since(kafkaUp).Round(100*time.Millisecond))
	// Publishing resumes, and keeps going for a few seconds.
	l.waitSent(ctx, before+5*rate, 2*time.Minute)
	n := l.Stop()
	loadFor := time.Since(start)
	t.Logf("published %d transactions in %v (%.1f/s; publishing stalled %v in all)", n, loadFor.Round(time.Second),
		float64(n)/loadFor.Seconds(), l.outage.Round(100*time.Millisecond))

	// Everything arrives, and every consumer's lag gauge drains to zero.
	drainFrom := time.Now()
	waitFor(t, ctx, 5*time.Minute, fmt.Sprintf("%d documents", n), func() (bool, string) {
		c := count()
		return c >= n, fmt.Sprintf("count=%d\n%s", c, p.procs["predlog"].tail())
	})
	t.Logf("all %d documents written %v after the load stopped", n, time.Since(drainFrom).Round(time.Second))
	waitFor(t, ctx, 2*time.Minute, "every consumer lag gauge at 0", func() (bool, string) {
		var state []string
		total := 0.0
		for _, s := range streamServices {
			v := lagOf(s)
			total += v
			state = append(state, fmt.Sprintf("%s=%.0f", s, v))
		}
		return total == 0, strings.Join(state, " ")
	})
	t.Logf("every lag gauge at 0 %v after the load stopped", time.Since(drainFrom).Round(time.Second))

	for _, svc := range streamServices { // the same processes throughout: nothing restarted
		p.procs[svc].requireRunning(t, "during the outages")
	}
	if predlogPeak <= lagAlert {
		t.Errorf("predlog's lag gauge peaked at %.0f during the Elasticsearch outage, want above %d", predlogPeak, lagAlert)
	}
	if featuresPeak <= lagAlert {
		t.Errorf("features' lag gauge peaked at %.0f during the Redis outage, want above %d", featuresPeak, lagAlert)
	}

	// Exactly one document per transaction, with the features the offline builder computes.
	docs := esScrollDocs(t, p.esURL, search)
	checkExactlyOnce(t, txs[:n], docs)
	checkServedFeatures(t, cfg, txs[:n], docs)

	// The alerts, as the project's rules evaluated them on the real metrics. Prometheus
	// evaluates once a second; give it two more evaluations after the drain.
	waitFor(t, ctx, 30*time.Second, "KafkaConsumerLagHigh to clear after the drain", func() (bool, string) {
		for _, a := range prom.activeAlerts(t) {
			if a.labels["alertname"] == "KafkaConsumerLagHigh" {
				return false, fmt.Sprintf("%v", a.labels)
			}
		}
		return true, ""
	})
	end := time.Now()
	lagAlerts := prom.alertHistory(t, "KafkaConsumerLagHigh", start, end)
	raised := func(svc string, from, to time.Time) (first time.Time, firing bool) {
		for _, a := range lagAlerts {
			if a.labels["service"] != svc || a.at.Before(from) || a.at.After(to) {
				continue
			}
			if first.IsZero() || a.at.Before(first) {
				first = a.at
			}
			firing = firing || a.state == "firing"
		}
		return first, firing
	}
	if at, firing := raised("predlog", esFrom, redisFrom); at.IsZero() {
		t.Errorf("KafkaConsumerLagHigh was never raised for predlog during the Elasticsearch outage (%v..%v)", esFrom.Format(time.TimeOnly), redisFrom.Format(time.TimeOnly))
	} else {
		t.Logf("KafkaConsumerLagHigh{service=predlog} raised %v after Elasticsearch went down (firing: %v)", at.Sub(esFrom).Round(time.Second), firing)
	}
	if at, firing := raised("features", redisFrom, end); at.IsZero() {
		t.Errorf("KafkaConsumerLagHigh was never raised for features during the Redis outage (%v..%v)", redisFrom.Format(time.TimeOnly), end.Format(time.TimeOnly))
	} else {
		t.Logf("KafkaConsumerLagHigh{service=features} raised %v after Redis went down (firing: %v)", at.Sub(redisFrom).Round(time.Second), firing)
	}
	pending := 0
	for _, a := range prom.alertHistory(t, "ServiceDown", start, end) {
		if a.state == "firing" {
			t.Errorf("ServiceDown fired for %s at %v", a.labels["service"], a.at.Format(time.TimeOnly))
			break
		}
		pending++
	}
	t.Logf("ServiceDown: never fired (%d pending evaluations: scrapes that failed)", pending)
}
