package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
)

// shopTraffic is what a run published on the transaction and label topics, decoded under the
// contract's strict rules.
type shopTraffic struct {
	payments, shop, shopJSON int
	mobile                   int
	shopTime                 map[string]time.Time // session id -> event time
	fraudLabels, shopLabels  int
}

func decodeTraffic(t *testing.T, wall time.Time, msgs []kafka.Message) shopTraffic {
	t.Helper()
	tr := shopTraffic{shopTime: map[string]time.Time{}}
	for _, m := range msgs {
		ct, _ := kafkaio.HeaderValue(m.Headers, topics.HeaderContentType)
		switch m.Topic {
		case topics.TxRaw:
			var tx eventsv1.Transaction
			var err error
			if string(ct) == topics.ContentTypeJSON {
				err = protojson.Unmarshal(m.Value, &tx)
			} else {
				err = proto.Unmarshal(m.Value, &tx)
			}
			if err != nil {
				t.Fatalf("transaction (%s) does not decode: %v\n%s", ct, err, m.Value)
			}
			if tx.GetEventTime().AsTime().After(wall) {
				t.Errorf("event %s from the future: %v", tx.GetTransactionId(), tx.GetEventTime().AsTime())
			}
			if tx.GetCommerce() == nil {
				tr.payments++
				continue
			}
			tr.shop++
			if string(ct) == topics.ContentTypeJSON {
				tr.shopJSON++
			}
			if tx.GetChannel() == eventsv1.Channel_CHANNEL_MOBILE {
				tr.mobile++
			}
			if string(m.Key) != tx.GetAccountId() || tx.GetCommerce().GetSessionId() != tx.GetTransactionId() ||
				tx.GetAttributes()["product_views"] == "" {
				t.Errorf("shop event %s: key %q, %s", tx.GetTransactionId(), m.Key, protojson.Format(&tx))
			}
			tr.shopTime[tx.GetTransactionId()] = tx.GetEventTime().AsTime()
		case topics.Labels:
			var l eventsv1.Label
			if err := proto.Unmarshal(m.Value, &l); err != nil {
				t.Fatal(err)
			}
			if l.GetKind() != eventsv1.LabelKind_LABEL_KIND_PURCHASE {
				tr.fraudLabels++
				continue
			}
			tr.shopLabels++
			at, ok := tr.shopTime[l.GetTransactionId()]
			if !ok || string(m.Key) != l.GetTransactionId() || !l.GetTransactionTime().AsTime().Equal(at) ||
				!l.GetEventTime().AsTime().After(at) || (l.GetLabel() != 0 && l.GetLabel() != 1) {
				t.Errorf("purchase label %s (key %q) for session %s at %v: %s", l.GetEventId(), m.Key, l.GetTransactionId(), at, protojson.Format(&l))
			}
		default:
			t.Fatalf("unexpected topic %q", m.Topic)
		}
	}
	return tr
}

// collect runs o on a fixed wall clock and returns what it wrote (write is called from the
// payment and the shop goroutine).
func collect(o options, wall time.Time) (stats, []kafka.Message, error) {
	var mu sync.Mutex
	var msgs []kafka.Message
	st, err := run(context.Background(), o, func() time.Time { return wall }, func(_ context.Context, m ...kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		msgs = append(msgs, m...)
		return nil
	})
	return st, msgs, err
}

// TestRunPublishesShopTraffic: with -shop-rate, shop events (commerce block set, protobuf or
// JSON by -proto-fraction) go to the transaction topic next to the payments, and every
// session's LABEL_KIND_PURCHASE label follows it, after it, with its event time as the
// transaction time.
func TestRunPublishesShopTraffic(t *testing.T) {
	t.Parallel()
	wall := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	o := options{n: 100, rate: 0, seed: 7, accounts: 50, protoFraction: 0.25, labels: true, lag: 72 * time.Hour,
		labelDelay: time.Minute, txTopic: topics.TxRaw, labelTopic: topics.Labels,
		shopRate: 5000, shopN: 600, customers: 100}
	st, msgs, err := collect(o, wall)
	if err != nil {
		t.Fatal(err)
	}
	tr := decodeTraffic(t, wall, msgs)
	if st.Transactions != 100 || tr.payments != 100 || st.Shop == nil || st.Shop.Events != 600 || tr.shop != 600 ||
		st.Shop.Proto != 150 || tr.shopJSON != 450 {
		t.Errorf("stats %+v shop %+v; published %d payments, %d shop events (%d JSON): want 100 payments, 600 shop events, 150 protobuf",
			st, st.Shop, tr.payments, tr.shop, tr.shopJSON)
	}
	if tr.shopLabels == 0 || tr.shopLabels != st.Shop.Labels || tr.fraudLabels != st.Labels || st.Shop.Purchases == 0 {
		t.Errorf("purchase labels published %d (stats %d, purchases %d), fraud labels %d (stats %d): want purchase labels > 0",
			tr.shopLabels, st.Shop.Labels, st.Shop.Purchases, tr.fraudLabels, st.Labels)
	}
}

// TestRunSwitchesShopDrift: -drift switches the scenario on for the sessions too.
func TestRunSwitchesShopDrift(t *testing.T) {
	t.Parallel()
	wall := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	o := options{n: 10, seed: 7, accounts: 50, labels: true, lag: 72 * time.Hour, labelDelay: time.Minute,
		txTopic: topics.TxRaw, labelTopic: topics.Labels, shopRate: 5000, shopN: 1000, customers: 200,
		drift: "season", driftAfter: 0}
	st, msgs, err := collect(o, wall)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, st.Shop.DriftAt)
	if err != nil || !at.Equal(wall.Add(-o.lag)) || st.DriftAt == "" {
		t.Errorf("drift switched on for sessions at %q (%v), payments at %q: want both, sessions from the start %v", st.Shop.DriftAt, err, st.DriftAt, wall.Add(-o.lag))
	}
	// The season makes three sessions in four mobile (about half without it).
	if tr := decodeTraffic(t, wall, msgs); tr.mobile < 700 {
		t.Errorf("%d of %d shop events mobile under the season scenario, want about 750", tr.mobile, tr.shop)
	}
}

func TestParseShopFlags(t *testing.T) {
	t.Parallel()
	env := func(string) string { return "" }
	o, err := parse([]string{"-shop-rate", "5", "-shop-customers", "300"}, env)
	if err != nil || o.shopRate != 5 || o.customers != 300 || o.shopN != 0 {
		t.Errorf("parse(-shop-rate 5 -shop-customers 300) = %+v, %v", o, err)
	}
	if o, err := parse(nil, env); err != nil || o.shopRate != 0 {
		t.Errorf("default -shop-rate = %v (%v), want 0: no shop events", o.shopRate, err)
	}
	for _, args := range [][]string{{"-shop-rate", "-1"}, {"-shop-n", "-3"}, {"-shop-customers", "0"}} {
		if _, err := parse(args, env); err == nil {
			t.Errorf("parse(%q) accepted", args)
		}
	}
}

// TestRealMainShopOnKafka runs the command against a Kafka-protocol broker (kfake): shop
// events and their purchase labels arrive on the topics, decodable, next to the payments.
func TestRealMainShopOnKafka(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	txTopic, labelTopic := kafkaiotest.UniqueName("tx"), kafkaiotest.UniqueName("labels")
	kafkaiotest.CreateTopics(t, brokers, 3, txTopic, labelTopic)
	var stderr bytes.Buffer
	// Labels come a minute of sim time (one session a sim second) after each session ends.
	err := realMain(context.Background(), []string{"-kafka.brokers", strings.Join(brokers, ","), "-tx-topic", txTopic,
		"-label-topic", labelTopic, "-rate", "0", "-n", "50", "-shop-rate", "2000", "-shop-n", "400",
		"-label-delay", "1m", "-duration", "1m"}, func(string) string { return "" }, &stderr)
	if err != nil {
		t.Fatalf("realMain: %v\n%s", err, stderr.String())
	}
	var msgs []kafka.Message
	for _, topic := range []string{txTopic, labelTopic} {
		for _, m := range kafkaiotest.ReadTopic(t, brokers, topic) {
			switch m.Topic {
			case txTopic:
				m.Topic = topics.TxRaw
			case labelTopic:
				m.Topic = topics.Labels
			}
			msgs = append(msgs, m)
		}
	}
	// Labels are read after all events; decodeTraffic needs the events first.
	tr := decodeTraffic(t, time.Now(), msgs)
	if tr.payments != 50 || tr.shop != 400 || tr.shopLabels == 0 {
		t.Errorf("on Kafka: %d payments, %d shop events, %d purchase labels; want 50, 400, > 0\n%s", tr.payments, tr.shop, tr.shopLabels, stderr.String())
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf(`"shop":{"events":%d`, 400)) {
		t.Errorf("final stats line without the shop counts:\n%s", stderr.String())
	}
}
