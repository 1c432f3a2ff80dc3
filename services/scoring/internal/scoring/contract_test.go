package scoring

import (
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"
)

func TestHandlerContractInProcess(t *testing.T) {
	t.Parallel()
	runContract(t, kafkaiotest.StartBroker(t))
}

func TestHandlerContractRealKafka(t *testing.T) {
	t.Parallel()
	runContract(t, strings.Split(stacktest.KafkaBrokers(t), ","))
}

func runContract(t *testing.T, brokers []string) {
	l := lib(t)
	d := scoringtest.FraudData(t)
	text := scoringtest.TrainModel(t, l, 20)
	want := expectedScores(t, l, text, d, lightgbm.PredictNormal)
	const n = 60
	enc := func(fv *eventsv1.FeatureVector) kafka.Message {
		b, err := proto.Marshal(fv)
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Key: []byte(fv.AccountId), Value: b, Headers: []kafka.Header{{Key: kafkaio.HeaderContentType, Value: []byte(kafkaio.ContentTypeProtobuf)}}}
	}
	kafkaiotest.RunHandlerContract(t, brokers, kafkaiotest.Contract{
		Name:         "scoring",
		OutputTopics: []string{"predictions"},
		N:            n,
		NewHandler: func(t testing.TB, env kafkaiotest.Env) kafkaio.BatchHandler {
			cfg := testConfig(t)
			cfg.PredictionsTopic = env.Topics["predictions"]
			cfg.SpecHold = 0 // the invalid records (another spec version) go to the DLQ at once
			s, _ := newTestServer(t, cfg, Deps{}, localModel(t, l, text, "1", 0.8))
			return s.HandleFeatures
		},
		Valid: func(i int) kafka.Message { return enc(vector(d, i, "contract")) },
		Invalid: func(i int) kafka.Message {
			fv := vector(d, i, "contract-bad")
			fv.SpecVersion = "9"
			return enc(fv)
		},
		InvalidReason: topics.ReasonSpecMismatch,
		Verify: func(t testing.TB, env kafkaiotest.Env, accepted []kafka.Message, outputs map[string][]kafka.Message) {
			byKey := map[string][]*eventsv1.Prediction{}
			for _, m := range outputs["predictions"] {
				var p eventsv1.Prediction
				if err := proto.Unmarshal(m.Value, &p); err != nil {
					t.Errorf("undecodable prediction: %v", err)
					continue
				}
				byKey[string(m.Key)] = append(byKey[string(m.Key)], &p)
			}
			for _, in := range accepted {
				var fv eventsv1.FeatureVector
				if err := proto.Unmarshal(in.Value, &fv); err != nil {
					t.Fatal(err)
				}
				ps := byKey[fv.TransactionId]
				if len(ps) == 0 {
					t.Errorf("no prediction for accepted transaction %s", fv.TransactionId)
					continue
				}
				var i int
				if _, err := fmtSscanSuffix(fv.TransactionId, &i); err != nil {
					t.Fatal(err)
				}
				for _, p := range ps {
					// Replays are harmless: same id, same score.
					if p.Score != want[i] || p.EventId != ps[0].EventId {
						t.Errorf("prediction of %s: score %v id %s, want %v id %s", fv.TransactionId, p.Score, p.EventId, want[i], ps[0].EventId)
					}
				}
			}
		},
	})
}

// fmtSscanSuffix parses the row index at the end of a test transaction id ("tx-x-12").
func fmtSscanSuffix(id string, i *int) (int, error) {
	j := strings.LastIndexByte(id, '-')
	n := 0
	for _, c := range id[j+1:] {
		n = n*10 + int(c-'0')
	}
	*i = n
	return 1, nil
}
