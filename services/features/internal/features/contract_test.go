package features_test

import (
	"bytes"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// handlerContract describes the tx.validated handler for kafkaiotest.RunHandlerContract,
// with its state in the real Redis under prefix (one sub-prefix per case).
func handlerContract(rdb *redis.Client, prefix string) kafkaiotest.Contract {
	casePrefix := func(env kafkaiotest.Env) string { return prefix + env.Suffix + ":" }
	return kafkaiotest.Contract{
		Name:         "features",
		OutputTopics: []string{"features"},
		NewHandler: func(t testing.TB, env kafkaiotest.Env) kafkaio.BatchHandler {
			return features.New(testConfig(env.Topics["features"], casePrefix(env)), rdb, testLogger(t), prometheus.NewRegistry()).HandleBatch
		},
		Valid: func(i int) kafka.Message {
			tx := testTx(i)
			b, err := proto.Marshal(tx)
			if err != nil {
				panic(err)
			}
			m := kafka.Message{Key: []byte(tx.GetAccountId()), Value: b,
				Headers: []kafka.Header{{Key: kafkaio.HeaderContentType, Value: []byte(kafkaio.ContentTypeProtobuf)}}}
			if tp := traceparentOf(i); tp != "" {
				m.Headers = append(m.Headers, kafka.Header{Key: kafkaio.HeaderTraceparent, Value: []byte(tp)})
			}
			return m
		},
		Invalid: func(i int) kafka.Message {
			tx := testTx(i)
			tx.TransactionId = "bad-" + tx.GetTransactionId()
			switch i % 3 {
			case 0:
				tx.Amount = -5
			case 1:
				tx.EventTime = nil
			default:
				tx.AccountId = ""
			}
			b, err := proto.Marshal(tx)
			if err != nil {
				panic(err)
			}
			return kafka.Message{Key: []byte("acct-x"), Value: b}
		},
		InvalidReason: kafkaio.ReasonValidation,
		Verify: func(t testing.TB, env kafkaiotest.Env, accepted []kafka.Message, outputs map[string][]kafka.Message) {
			verifyContract(t, rdb, casePrefix(env), accepted, outputs["features"])
		},
	}
}

// verifyContract checks the effects of a contract case: every accepted transaction has
// output, all outputs of one transaction are byte-identical (replays re-publish), the values
// are those of applying the accepted transactions once each in partition order, and each
// account's state counts each of its transactions once.
func verifyContract(t testing.TB, rdb *redis.Client, prefix string, accepted, outputs []kafka.Message) {
	t.Helper()
	byTx := map[string][]kafka.Message{}
	for _, m := range outputs {
		fv := decodeFV(t, m)
		if string(m.Key) != fv.GetAccountId() {
			t.Errorf("output key %q, account %q", m.Key, fv.GetAccountId())
		}
		if tp, _ := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderTraceparent); string(tp) != fv.GetTrace().GetTraceparent() {
			t.Errorf("%s: traceparent header %q, payload %q", fv.GetTransactionId(), tp, fv.GetTrace().GetTraceparent())
		}
		byTx[fv.GetTransactionId()] = append(byTx[fv.GetTransactionId()], m)
	}
	sort.Slice(accepted, func(i, j int) bool {
		if accepted[i].Partition != accepted[j].Partition {
			return accepted[i].Partition < accepted[j].Partition
		}
		return accepted[i].Offset < accepted[j].Offset
	})
	var txs []*eventsv1.Transaction
	perAccount := map[string]int{}
	for _, m := range accepted {
		tx := &eventsv1.Transaction{}
		if err := proto.Unmarshal(m.Value, tx); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
		perAccount[tx.GetAccountId()]++
		outs := byTx[tx.GetTransactionId()]
		if len(outs) == 0 {
			t.Errorf("accepted %s has no feature vector", tx.GetTransactionId())
			continue
		}
		for _, o := range outs[1:] {
			if !bytes.Equal(o.Value, outs[0].Value) {
				t.Errorf("%s was published %d times with different vectors", tx.GetTransactionId(), len(outs))
				break
			}
		}
		if tp, _ := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderTraceparent); len(tp) > 0 {
			if got, _ := kafkaio.HeaderValue(outs[0].Headers, kafkaio.HeaderTraceparent); !bytes.Equal(got, tp) {
				t.Errorf("%s: output traceparent %q, input %q", tx.GetTransactionId(), got, tp)
			}
		}
	}
	want := reference(t, txs)
	for id, values := range want {
		if outs := byTx[id]; len(outs) > 0 {
			if diff := cmp.Diff(values, decodeFV(t, outs[0]).GetValues()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", id, diff)
			}
		}
	}
	for id := range byTx {
		if strings.HasPrefix(id, "bad-") {
			t.Errorf("invalid transaction %s produced a vector", id)
		}
	}
	for acct, n := range perAccount {
		if got := txCount(t, rdb, prefix, acct); got != uint64(n) {
			t.Errorf("%s TxCount = %d, want %d (each accepted transaction once)", acct, got, n)
		}
	}
}

func TestHandlerContractInProcessKafka(t *testing.T) {
	t.Parallel()
	rdb, prefix := testRedis(t)
	kafkaiotest.RunHandlerContract(t, kafkaiotest.StartBroker(t), handlerContract(rdb, prefix))
}

func TestHandlerContractRealKafka(t *testing.T) {
	t.Parallel()
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	rdb, prefix := testRedis(t)
	c := handlerContract(rdb, prefix)
	c.Timeout = 90 * time.Second
	kafkaiotest.RunHandlerContract(t, brokers, c)
}
