package ingest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testNow is the fixed clock of the tests: a few minutes after the contract fixtures'
// event times.
var testNow = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow }

// validTx returns a valid payment transaction.
func validTx() *eventsv1.Transaction {
	lat, lon := 52.52, 13.405
	return &eventsv1.Transaction{
		EventId:          "6f1c2a9e-3b7d-4c5e-9a51-2f0d8e7b4c11",
		EventTime:        timestamppb.New(testNow.Add(-time.Minute)),
		TransactionId:    "tx-000042",
		AccountId:        "acc-1001",
		Amount:           129.95,
		Currency:         "EUR",
		MerchantId:       "m-778",
		MerchantCategory: "5732",
		DeviceId:         "dev-9f2",
		IpAddress:        "203.0.113.7",
		Country:          "DE",
		Latitude:         &lat,
		Longitude:        &lon,
		Channel:          eventsv1.Channel_CHANNEL_ONLINE,
		Attributes:       map[string]string{"card_bin": "411111"},
		Source:           "gateway-eu",
	}
}

func ts(sec int64, nsec int32) *timestamppb.Timestamp {
	return &timestamppb.Timestamp{Seconds: sec, Nanos: nsec}
}

func cmpProto() cmp.Option { return protocmp.Transform() }
