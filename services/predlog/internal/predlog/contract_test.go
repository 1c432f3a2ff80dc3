package predlog_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func contractTx(i int) string { return fmt.Sprintf("tx-ct-%04d", i) }

func contractLabelValue(i int) float64 { return float64(i % 2) }

// contracts returns the handler contracts of predictions and of labels, writing to the real
// Elasticsearch at esURL, each case in its own index namespace.
func contracts(t *testing.T, esURL string) map[string]kafkaiotest.Contract {
	// One namespace per case (env.Suffix), shared by the handlers of the case's consumers.
	var mu sync.Mutex
	envs := map[string]*testES{}
	esFor := func(t testing.TB, env kafkaiotest.Env) *testES {
		mu.Lock()
		defer mu.Unlock()
		if te, ok := envs[env.Suffix]; ok {
			return te
		}
		te := newTestESAt(t, esURL, "predlogct-"+env.Suffix)
		envs[env.Suffix] = te
		return te
	}
	const n = 60
	invalid := func(i int) kafka.Message {
		return kafka.Message{Key: []byte(contractTx(i)), Value: []byte("not protobuf \xff\xff"),
			Headers: []kafka.Header{{Key: topics.HeaderContentType, Value: []byte(topics.ContentTypeProtobuf)}}}
	}
	valid := func(topic string) func(i int) kafka.Message {
		return func(i int) kafka.Message {
			if topic == labelTopic {
				return record(t, "", contractTx(i), label(contractTx(i), contractLabelValue(i), time.Duration(i)*time.Minute+time.Hour), 0)
			}
			return record(t, "", contractTx(i), prediction(contractTx(i), i), 0)
		}
	}
	return map[string]kafkaiotest.Contract{
		"predictions": {
			Name: "predlog-pred", N: n,
			NewHandler: func(t testing.TB, env kafkaiotest.Env) kafkaio.BatchHandler {
				w, _ := esFor(t, env).writer(t)
				return w.Handler(env.InputTopic, "unused-labels")
			},
			Valid: valid(predTopic), Invalid: invalid, InvalidReason: kafkaio.ReasonDecode,
			Verify: func(t testing.TB, env kafkaiotest.Env, accepted []kafka.Message, _ map[string][]kafka.Message) {
				docs := esFor(t, env).search(t) // search fails the test on duplicate ids
				for _, m := range accepted {
					d := docs[string(m.Key)]
					if d == nil || d["transaction_id"] != string(m.Key) || d["model_name"] != "fraud" {
						t.Errorf("accepted prediction %s: document %v", m.Key, d)
					}
				}
				for id := range docs {
					if !strings.HasPrefix(id, "tx-ct-") {
						t.Errorf("unexpected document %s", id)
					}
				}
			},
		},
		"labels": {
			Name: "predlog-label", N: n,
			NewHandler: func(t testing.TB, env kafkaiotest.Env) kafkaio.BatchHandler {
				te := esFor(t, env)
				w, _ := te.writer(t)
				// Predictions for the first half exist before their labels; the second half's
				// labels arrive first and wait in the pending index.
				var preds []kafka.Message
				for i := range n / 2 {
					preds = append(preds, record(t, predTopic, contractTx(i), prediction(contractTx(i), i), int64(i)))
				}
				handleOK(t, w.Handler(predTopic, labelTopic), preds...)
				return w.Handler("unused-predictions", env.InputTopic)
			},
			Valid: valid(labelTopic), Invalid: invalid, InvalidReason: kafkaio.ReasonDecode,
			Verify: func(t testing.TB, env kafkaiotest.Env, accepted []kafka.Message, _ map[string][]kafka.Message) {
				te := esFor(t, env)
				w, _ := te.writer(t)
				// Now the second half's predictions arrive and adopt their parked labels.
				var preds []kafka.Message
				for i := n / 2; i < n; i++ {
					preds = append(preds, record(t, predTopic, contractTx(i), prediction(contractTx(i), i), int64(i)))
				}
				handleOK(t, w.Handler(predTopic, labelTopic), preds...)
				docs := te.search(t)
				for _, m := range accepted {
					var i int
					if _, err := fmt.Sscanf(string(m.Key), "tx-ct-%04d", &i); err != nil {
						t.Fatal(err)
					}
					d := docs[string(m.Key)]
					if d == nil || d["actual"] != contractLabelValue(i) || d["model_name"] != "fraud" {
						t.Errorf("accepted label %s: document %v, want actual %v on the prediction", m.Key, d, contractLabelValue(i))
					}
				}
				if left := te.countPending(t); left != 0 {
					t.Errorf("%d labels still pending after every prediction arrived", left)
				}
			},
		},
	}
}

func TestHandlerContractInProcessKafka(t *testing.T) {
	t.Parallel()
	esURL := stacktest.ElasticsearchURL(t)
	brokers := kafkaiotest.StartBroker(t)
	for name, c := range contracts(t, esURL) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kafkaiotest.RunHandlerContract(t, brokers, c)
		})
	}
}

func TestHandlerContractRealKafka(t *testing.T) {
	t.Parallel()
	esURL := stacktest.ElasticsearchURL(t)
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	for name, c := range contracts(t, esURL) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kafkaiotest.RunHandlerContract(t, brokers, c)
		})
	}
}
