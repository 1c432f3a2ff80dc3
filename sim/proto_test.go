package sim_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/sim"
)

func TestSessionProto(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	last := at.Add(-72*time.Hour - 1500*time.Millisecond)
	tests := []struct {
		name string
		s    sim.Session
		want *eventsv1.Transaction
	}{
		{
			name: "returning mobile customer with a purchase history",
			s: sim.Session{SessionID: "sess-1-7", CustomerID: "cust-0000042", PageViews: 9, ProductViews: 6,
				TimeOnSiteSeconds: 412, CartValue: 83.5, CartItems: 2, PastPurchases: 3, LastPurchaseTime: &last,
				IsReturning: true, IsMobile: true, DiscountRatio: 0.15, EventTime: at, Probability: 0.4, Purchased: true},
			want: &eventsv1.Transaction{EventId: "sess-1-7", EventTime: timestamppb.New(at), TransactionId: "sess-1-7",
				AccountId: "cust-0000042", Amount: 83.5, Currency: "EUR", MerchantId: "shop-1",
				Channel: eventsv1.Channel_CHANNEL_MOBILE, Source: "shop-web",
				Attributes: map[string]string{"product_views": "6", "past_purchases": "3", "discount_ratio": "0.15",
					"last_purchase_time": "2026-11-23T09:29:58.5Z"},
				Commerce: &eventsv1.CommerceSession{SessionId: "sess-1-7", PageViews: 9, SessionDurationSeconds: 412,
					CartItems: 2, CartValue: 83.5, ReturningCustomer: true}},
		},
		{
			name: "first visit on the web, empty cart, no discount",
			s: sim.Session{SessionID: "sess-1-8", CustomerID: "cust-0000007", PageViews: 1,
				TimeOnSiteSeconds: 30, EventTime: at},
			want: &eventsv1.Transaction{EventId: "sess-1-8", EventTime: timestamppb.New(at), TransactionId: "sess-1-8",
				AccountId: "cust-0000007", Currency: "EUR", MerchantId: "shop-1",
				Channel: eventsv1.Channel_CHANNEL_ONLINE, Source: "shop-web",
				Attributes: map[string]string{"product_views": "0", "past_purchases": "0", "discount_ratio": "0"},
				Commerce:   &eventsv1.CommerceSession{SessionId: "sess-1-8", PageViews: 1, SessionDurationSeconds: 30}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.s.Proto(); !proto.Equal(got, tt.want) {
				t.Errorf("Proto() =\n%s\nwant\n%s", prototext.Format(got), prototext.Format(tt.want))
			}
		})
	}
}

func TestPurchaseLabelProto(t *testing.T) {
	t.Parallel()
	txTime := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	l := sim.PurchaseLabel{EventID: "label-sess-1-7", SessionID: "sess-1-7", CustomerID: "cust-0000042", Label: 1,
		Probability: 0.4, EventTime: txTime.Add(37 * time.Minute)}
	want := &eventsv1.Label{EventId: "label-sess-1-7", EventTime: timestamppb.New(txTime.Add(37 * time.Minute)),
		TransactionId: "sess-1-7", AccountId: "cust-0000042", Label: 1, Kind: eventsv1.LabelKind_LABEL_KIND_PURCHASE,
		Source: "simulator", TransactionTime: timestamppb.New(txTime)}
	if got := l.Proto(txTime); !proto.Equal(got, want) {
		t.Errorf("Proto() =\n%s\nwant\n%s", prototext.Format(got), prototext.Format(want))
	}
}

// TestSessionStreamProto: every simulated session converts to a shop event whose commerce
// block and attributes carry its purchase features, and every label names a session.
func TestSessionStreamProto(t *testing.T) {
	t.Parallel()
	ss, err := sim.NewSessions(sim.SessionConfig{Seed: 3, Customers: 50, LabelDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	txTime := map[string]time.Time{}
	var labels []sim.PurchaseLabel
	for range 500 {
		s, due := ss.Next()
		tx := s.Proto()
		txTime[s.SessionID] = s.EventTime
		labels = append(labels, due...)
		if tx.GetCommerce() == nil || tx.GetCommerce().GetPageViews() < 1 || tx.GetAttributes()["product_views"] == "" ||
			(s.LastPurchaseTime != nil) != (tx.GetAttributes()["last_purchase_time"] != "") {
			t.Fatalf("shop event of session %+v: %s", s, prototext.Format(tx))
		}
	}
	labels = append(labels, ss.Drain()...)
	if len(labels) != 500 {
		t.Errorf("%d labels for 500 sessions", len(labels))
	}
	for i := range labels {
		at, ok := txTime[labels[i].SessionID]
		lp := labels[i].Proto(at)
		if !ok || lp.GetKind() != eventsv1.LabelKind_LABEL_KIND_PURCHASE || !lp.GetTransactionTime().AsTime().Equal(at) ||
			!lp.GetEventTime().AsTime().After(at) {
			t.Errorf("label %s: %s", labels[i].EventID, prototext.Format(lp))
		}
	}
}
