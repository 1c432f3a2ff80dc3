package kafkaio_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
)

// lagSeries returns the mlops_kafka_consumer_lag series of topic in reg, by partition.
func lagSeries(t testing.TB, reg prometheus.Gatherer, topic string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "mlops_kafka_consumer_lag" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var tp, p string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "topic":
					tp = l.GetValue()
				case "partition":
					p = l.GetValue()
				}
			}
			if tp == topic {
				out[p] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func sumLag(series map[string]float64) float64 {
	var s float64
	for _, v := range series {
		s += v
	}
	return s
}

func produceN(t testing.TB, brokers []string, topic string, from, to int) {
	t.Helper()
	msgs := make([]kafka.Message, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	kafkaiotest.Produce(t, brokers, msgs...)
}

// startConsumer runs a consumer of cfg with h until the test ends (or stop is called) and
// requires a clean stop.
func startConsumer(t *testing.T, cfg kafkaio.Config, h kafkaio.BatchHandler, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	c, err := kafkaio.NewConsumer(cfg, h, discardLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// While the handler keeps failing (Elasticsearch or Redis down), nothing is committed, and the
// lag must still show the records piling up, even once the fetcher is blocked behind the
// stalled batch; the lag alert exists for exactly that.
func TestConsumerLagWhileHandlerRetries(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	in := kafkaiotest.UniqueName("in")
	kafkaiotest.CreateTopics(t, brokers, 2, in)
	var down atomic.Bool
	down.Store(true)
	h := func(_ context.Context, batch []kafka.Message) ([]kafkaio.Result, error) {
		if down.Load() {
			return nil, errors.New("store unavailable")
		}
		return make([]kafkaio.Result, len(batch)), nil
	}
	cfg := kafkaiotest.ConsumerConfig(brokers, kafkaiotest.UniqueName("g"), in)
	cfg.MaxBatch = 5 // the fetcher blocks after a few records
	reg := prometheus.NewRegistry()
	stop := startConsumer(t, cfg, h, reg)

	waitLag := func(what string, want float64) {
		t.Helper()
		kafkaiotest.WaitFor(t, 20*time.Second, what, func() (bool, error) {
			got := lagSeries(t, reg, in)
			return sumLag(got) == want, fmt.Errorf("lag %v, want a sum of %v", got, want)
		})
	}
	produceN(t, brokers, in, 0, 10)
	waitLag("lag of the fetched, unhandled records", 10)
	produceN(t, brokers, in, 10, 30)
	waitLag("lag of records produced while the fetcher is blocked", 30)
	if got := kafkaiotest.MetricValue(reg, "mlops_kafka_messages_consumed_total", map[string]string{"topic": in}); got != 0 {
		t.Fatalf("consumed %v while the handler fails", got)
	}

	down.Store(false)
	waitLag("lag after recovery", 0)
	if got := len(lagSeries(t, reg, in)); got != 2 {
		t.Errorf("%d lag series after recovery, want one per partition (2)", got)
	}
	stop()
	if got := lagSeries(t, reg, in); len(got) != 0 {
		t.Errorf("lag series %v after the consumer stopped, want none", got)
	}
}

// Each consumer of a group reports the lag of the partitions assigned to it, and only those:
// when a rebalance moves a partition away, its series goes.
func TestConsumerLagFollowsAssignment(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	in := kafkaiotest.UniqueName("in")
	kafkaiotest.CreateTopics(t, brokers, 2, in)
	h := func(_ context.Context, batch []kafka.Message) ([]kafkaio.Result, error) {
		return make([]kafkaio.Result, len(batch)), nil
	}
	group := kafkaiotest.UniqueName("g")
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	startConsumer(t, kafkaiotest.ConsumerConfig(brokers, group, in), h, regA)
	produceN(t, brokers, in, 0, 20)
	kafkaiotest.WaitFor(t, 20*time.Second, "both partitions caught up", func() (bool, error) {
		got := lagSeries(t, regA, in)
		return len(got) == 2 && sumLag(got) == 0, fmt.Errorf("lag %v", got)
	})

	stopB := startConsumer(t, kafkaiotest.ConsumerConfig(brokers, group, in), h, regB)
	kafkaiotest.WaitFor(t, 30*time.Second, "one partition each after the rebalance", func() (bool, error) {
		a, b := lagSeries(t, regA, in), lagSeries(t, regB, in)
		all := slices.Sorted(maps.Keys(a))
		all = append(all, slices.Sorted(maps.Keys(b))...)
		slices.Sort(all)
		return len(a) == 1 && len(b) == 1 && slices.Equal(all, []string{"0", "1"}), fmt.Errorf("A %v, B %v", a, b)
	})

	stopB()
	if got := lagSeries(t, regB, in); len(got) != 0 {
		t.Errorf("B's lag series %v after it stopped, want none", got)
	}
	kafkaiotest.WaitFor(t, 30*time.Second, "A owns both partitions again", func() (bool, error) {
		got := lagSeries(t, regA, in)
		return len(got) == 2, fmt.Errorf("A %v", got)
	})
}
