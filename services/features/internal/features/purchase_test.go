package features_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// shopTx is a shop event of account acct-1 with every purchase attribute set.
func shopTx(id string) *eventsv1.Transaction {
	return &eventsv1.Transaction{
		EventId: id, EventTime: timestamppb.New(baseTime), TransactionId: id, AccountId: "acct-1",
		Amount: 80, Currency: "EUR", Channel: eventsv1.Channel_CHANNEL_MOBILE,
		Commerce: &eventsv1.CommerceSession{SessionId: id, PageViews: 7, SessionDurationSeconds: 300,
			CartItems: 2, CartValue: 80, ReturningCustomer: true},
		Attributes: map[string]string{features.AttrProductViews: "4", features.AttrPastPurchases: "3",
			features.AttrLastPurchaseTime: baseTime.Add(-36 * time.Hour).Format(time.RFC3339), features.AttrDiscountRatio: "0.1"},
	}
}

func TestPurchaseVector(t *testing.T) {
	t.Parallel()
	full := make([]float64, featurespec.PurchaseLen)
	if err := featurespec.ComputePurchase(featurespec.SessionInput{Time: baseTime, PageViews: 7, ProductViews: 4,
		TimeOnSite: 300 * time.Second, CartValue: 80, CartItems: 2, PastPurchases: 3, LastPurchase: baseTime.Add(-36 * time.Hour),
		IsReturning: true, IsMobile: true, DiscountRatio: 0.1}, full); err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	tests := []struct {
		name    string
		edit    func(*eventsv1.Transaction)
		want    func([]float64)
		wantErr bool
	}{
		{name: "all attributes", edit: func(*eventsv1.Transaction) {}, want: func([]float64) {}},
		{name: "no attributes", edit: func(tx *eventsv1.Transaction) { tx.Attributes = nil },
			want: func(v []float64) {
				v[featurespec.PurchaseProductViews], v[featurespec.PurchasePastPurchases], v[featurespec.PurchaseDaysSinceLastPurchase] = nan, nan, nan
				v[featurespec.PurchaseDiscountRatio] = 0
			}},
		{name: "never purchased", edit: func(tx *eventsv1.Transaction) {
			tx.Attributes[features.AttrPastPurchases] = "0"
			delete(tx.Attributes, features.AttrLastPurchaseTime)
		}, want: func(v []float64) {
			v[featurespec.PurchasePastPurchases], v[featurespec.PurchaseDaysSinceLastPurchase] = 0, featurespec.MaxDaysSincePurchase
		}},
		{name: "bad attribute", edit: func(tx *eventsv1.Transaction) { tx.Attributes[features.AttrProductViews] = "-1" }, wantErr: true},
		{name: "discount above 1", edit: func(tx *eventsv1.Transaction) { tx.Attributes[features.AttrDiscountRatio] = "2" }, wantErr: true},
		{name: "no event time", edit: func(tx *eventsv1.Transaction) { tx.EventTime = nil }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tx := shopTx("shop-1")
			tt.edit(tx)
			got := make([]float64, featurespec.PurchaseLen)
			err := features.PurchaseVector(tx, got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("PurchaseVector() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			want := append([]float64(nil), full...)
			tt.want(want)
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) })); diff != "" {
				t.Errorf("vector (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHandleBatchShopEvents: a shop event gets the purchase vector (same values and event id
// on a replay) and leaves the account's fraud state alone; a payment of the same account in
// the same batch still gets its fraud vector; an invalid shop event is dead-lettered.
func TestHandleBatchShopEvents(t *testing.T) {
	t.Parallel()
	rdb, prefix := testRedis(t)
	s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), prometheus.NewRegistry())
	bad := shopTx("shop-bad")
	bad.Attributes[features.AttrDiscountRatio] = "x"
	pay := testTx(1) // acct-1
	msgs := []kafka.Message{testRecord(t, 0, shopTx("shop-1")), testRecord(t, 1, pay), testRecord(t, 2, bad)}
	res, err := s.HandleBatch(context.Background(), msgs)
	if err != nil || len(res) != 3 {
		t.Fatalf("HandleBatch: %d results, %v; want 3", len(res), err)
	}
	purchase, fraud := featurespec.Purchase(), featurespec.Fraud()
	fv := decodeFV(t, res[0].Output[0])
	if fv.GetSpecName() != purchase.Name || fv.GetSpecFingerprint() != purchase.Fingerprint() || len(fv.GetValues()) != purchase.Len() {
		t.Errorf("shop event: spec %s %s with %d values, want %s", fv.GetSpecName(), fv.GetSpecFingerprint(), len(fv.GetValues()), purchase.Fingerprint())
	}
	if string(res[0].Output[0].Key) != "acct-1" || res[0].Output[0].Topic != outTopic {
		t.Errorf("shop event record: topic %q key %q", res[0].Output[0].Topic, res[0].Output[0].Key)
	}
	if got := decodeFV(t, res[1].Output[0]); got.GetSpecName() != fraud.Name {
		t.Errorf("payment: spec %s, want %s", got.GetSpecName(), fraud.Name)
	}
	if !kafkaio.IsPermanent(res[2].Err) || res[2].Output != nil {
		t.Errorf("invalid shop event: err %v output %d, want a permanent error", res[2].Err, len(res[2].Output))
	}
	if got := txCount(t, rdb, prefix, "acct-1"); got != 1 {
		t.Errorf("acct-1 TxCount = %d, want 1 (the payment only)", got)
	}
	again := decodeFV(t, handle(t, s, msgs[0])[0].Output[0])
	if again.GetEventId() != fv.GetEventId() || !cmp.Equal(again.GetValues(), fv.GetValues()) {
		t.Errorf("replayed shop event: event id %s values %v, want %s %v", again.GetEventId(), again.GetValues(), fv.GetEventId(), fv.GetValues())
	}
	// The sync path answers a shop event with the same purchase vector.
	resp, err := s.GetOnlineFeatures(context.Background(), &featuresv1.GetOnlineFeaturesRequest{Transaction: shopTx("shop-1"), IncludeNames: true})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetVector(); v.GetSpecName() != purchase.Name || !cmp.Equal(v.GetValues(), fv.GetValues()) || len(v.GetNames()) != purchase.Len() {
		t.Errorf("GetOnlineFeatures(shop event) = %v", v)
	}
}
