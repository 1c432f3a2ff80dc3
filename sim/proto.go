package sim

import (
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
