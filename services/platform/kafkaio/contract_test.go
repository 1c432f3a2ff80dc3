package kafkaio_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// doubler is the reference handler of the contract tests: the value is a decimal integer
// and the output, on topic "out" with the same key, is twice it. Anything else is invalid.
func doubler(out string) kafkaio.Handler {
	return func(_ context.Context, m kafka.Message) ([]kafka.Message, error) {
		n, err := strconv.ParseInt(string(m.Value), 10, 64)
		if err != nil {
			return nil, kafkaio.PermanentReason(kafkaio.ReasonDecode, fmt.Errorf("decode value at offset %d: %w", m.Offset, err))
		}
		return []kafka.Message{kafkaio.NewRecord(out, m.Key, []byte(strconv.FormatInt(2*n, 10)), "text/plain", m.Headers)}, nil
	}
}

// doublerBatch is doubler as a BatchHandler that handles the whole batch in one pass.
func doublerBatch(out string) kafkaio.BatchHandler {
	h := doubler(out)
	return func(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
		res := make([]kafkaio.Result, len(msgs))
		for i, m := range msgs {
			res[i].Output, res[i].Err = h(ctx, m)
		}
		return res, nil
	}
}

func doublerContract(batch bool) kafkaiotest.Contract {
	name := "doubler"
	if batch {
		name = "doubler-batch"
	}
	return kafkaiotest.Contract{
		Name:         name,
		OutputTopics: []string{"out"},
		NewHandler: func(_ testing.TB, env kafkaiotest.Env) kafkaio.BatchHandler {
			if batch {
				return doublerBatch(env.Topics["out"])
			}
			return kafkaio.PerMessage(doubler(env.Topics["out"]))
		},
		Valid: func(i int) kafka.Message {
			return kafka.Message{Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(strconv.Itoa(i))}
		},
		Invalid: func(i int) kafka.Message {
			return kafka.Message{Key: []byte("bad"), Value: []byte("not a number " + strconv.Itoa(i))}
		},
		InvalidReason: kafkaio.ReasonDecode,
		Verify:        verifyDoubled,
	}
}

// verifyDoubled checks that every accepted input has its doubled output, that there is no
// other output, and that per key the first output of each input appears in input order.
func verifyDoubled(t testing.TB, _ kafkaiotest.Env, accepted []kafka.Message, outputs map[string][]kafka.Message) {
	t.Helper()
	want := map[string]bool{}
	for _, in := range accepted {
		n, _ := strconv.Atoi(string(in.Value))
		want[string(in.Key)+"="+strconv.Itoa(2*n)] = true
	}
	got := map[string]bool{}
	lastPerKey := map[string]int{}
	for _, out := range outputs["out"] {
		k := string(out.Key) + "=" + string(out.Value)
		if !want[k] {
			t.Errorf("unexpected output %s", k)
		}
		if tp, ok := kafkaio.HeaderValue(out.Headers, kafkaio.HeaderTraceparent); !ok || !kafkaio.ValidTraceparent(tp) {
			t.Errorf("output %s has no valid traceparent", k)
		}
		if !got[k] {
			n, _ := strconv.Atoi(string(out.Value))
			if last, ok := lastPerKey[string(out.Key)]; ok && n < last {
				t.Errorf("key %s: output %d after %d, want input order", out.Key, n, last)
			}
			lastPerKey[string(out.Key)] = n
		}
		got[k] = true
	}
	for k := range want {
		if !got[k] {
			t.Errorf("missing output %s", k)
		}
	}
}

func TestConsumerContract(t *testing.T) {
	t.Parallel()
	brokers := kafkaiotest.StartBroker(t)
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			t.Parallel()
			kafkaiotest.RunHandlerContract(t, brokers, doublerContract(batch))
		})
	}
}

func TestConsumerContractRealKafka(t *testing.T) {
	t.Parallel()
	brokers := strings.Split(stacktest.KafkaBrokers(t), ",")
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			t.Parallel()
			kafkaiotest.RunHandlerContract(t, brokers, doublerContract(batch))
		})
	}
}
