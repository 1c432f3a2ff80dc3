package sim

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
)

// Proto converts the transaction to the protobuf contract (what a source system would
// publish to tx.raw as application/x-protobuf). The event id is the transaction id.
func (tx *Transaction) Proto() *eventsv1.Transaction {
	lat, lon := tx.Latitude, tx.Longitude
	return &eventsv1.Transaction{
		EventId:          tx.TransactionID,
		EventTime:        timestamppb.New(tx.EventTime),
		TransactionId:    tx.TransactionID,
		AccountId:        tx.AccountID,
		Amount:           tx.Amount,
		Currency:         tx.Currency,
		MerchantId:       tx.MerchantID,
		MerchantCategory: tx.MerchantCategory,
		DeviceId:         tx.DeviceID,
		Country:          tx.Country,
		Latitude:         &lat,
		Longitude:        &lon,
		Channel:          eventsv1.Channel(eventsv1.Channel_value[tx.Channel]),
	}
}

// Proto converts the label to the protobuf contract of labels.v1, with its transaction time.
func (l *Label) Proto() *eventsv1.Label {
	return &eventsv1.Label{
		EventId:         l.EventID,
		EventTime:       timestamppb.New(l.EventTime),
		TransactionId:   l.TransactionID,
		AccountId:       l.AccountID,
		Label:           l.Label,
		Kind:            eventsv1.LabelKind_LABEL_KIND_FRAUD,
		Source:          "simulator",
		TransactionTime: timestamppb.New(l.TransactionTime),
	}
}

// Proto converts the session into the shop event a shop publishes to tx.raw: a transaction
// with the commerce block set, plus the attributes the features service reads for the
// purchase features the block has no field for (product_views, past_purchases,
// discount_ratio, last_purchase_time; docs/purchase.md). The event and transaction id are
// the session id, the account the customer, the amount the cart value; a mobile session has
// channel CHANNEL_MOBILE, any other CHANNEL_ONLINE.
func (s *Session) Proto() *eventsv1.Transaction {
	channel := eventsv1.Channel_CHANNEL_ONLINE
	if s.IsMobile {
		channel = eventsv1.Channel_CHANNEL_MOBILE
	}
	attrs := map[string]string{
		"product_views":  strconv.Itoa(s.ProductViews),
		"past_purchases": strconv.Itoa(s.PastPurchases),
		"discount_ratio": strconv.FormatFloat(s.DiscountRatio, 'g', -1, 64),
	}
	if s.LastPurchaseTime != nil {
		attrs["last_purchase_time"] = s.LastPurchaseTime.Format(time.RFC3339Nano)
	}
	return &eventsv1.Transaction{
		EventId:       s.SessionID,
		EventTime:     timestamppb.New(s.EventTime),
		TransactionId: s.SessionID,
		AccountId:     s.CustomerID,
		Amount:        s.CartValue,
		Currency:      "EUR",
		MerchantId:    "shop-1",
		Channel:       channel,
		Source:        "shop-web",
		Attributes:    attrs,
		Commerce: &eventsv1.CommerceSession{
			SessionId:              s.SessionID,
			PageViews:              int32(s.PageViews),
			SessionDurationSeconds: s.TimeOnSiteSeconds,
			CartItems:              int32(s.CartItems),
			CartValue:              s.CartValue,
			ReturningCustomer:      s.IsReturning,
		},
	}
}

// Proto converts the purchase outcome to the protobuf contract of labels.v1
// (LABEL_KIND_PURCHASE, so it joins the session's purchase prediction), with txTime, the
// event time of the session's shop event, as its transaction time.
func (l *PurchaseLabel) Proto(txTime time.Time) *eventsv1.Label {
	return &eventsv1.Label{
		EventId:         l.EventID,
		EventTime:       timestamppb.New(l.EventTime),
		TransactionId:   l.SessionID,
		AccountId:       l.CustomerID,
		Label:           l.Label,
		Kind:            eventsv1.LabelKind_LABEL_KIND_PURCHASE,
		Source:          "simulator",
		TransactionTime: timestamppb.New(txTime),
	}
}
