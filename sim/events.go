package sim

import "time"

// Transaction is one simulated transaction. Its JSON form matches the
// fields of the protobuf Transaction (event_time in RFC 3339 with
// nanoseconds), so it can be published to tx.raw as JSON. Ground truth is
// kept out of the JSON.
type Transaction struct {
	TransactionID    string    `json:"transaction_id"`
	AccountID        string    `json:"account_id"`
	Amount           float64   `json:"amount"`
	Currency         string    `json:"currency"`
	MerchantID       string    `json:"merchant_id"`
	MerchantCategory string    `json:"merchant_category"`
	DeviceID         string    `json:"device_id"`
	Country          string    `json:"country"`
	Latitude         float64   `json:"latitude"`
	Longitude        float64   `json:"longitude"`
	Channel          string    `json:"channel"`
	EventTime        time.Time `json:"event_time"`

	// IsFraud and Pattern are the ground truth (not serialised).
	IsFraud bool    `json:"-"`
	Pattern Pattern `json:"-"`
	// Label is the label the transaction will get (not serialised): 1 for
	// reported fraud and for friendly fraud, 0 for legitimate transactions
	// and unreported fraud.
	Label float64 `json:"-"`
}

// Label is the delayed, reported outcome of one transaction: 1 for a
// chargeback (reported fraud, or friendly fraud: a legitimate transaction
// its cardholder disputes), 0 when the chargeback window closed without
// one (legitimate transactions and fraud never reported). Pattern is the
// fraud pattern of a chargeback, or "friendly_fraud". EventTime is when the
// label becomes known: TransactionTime plus the delay.
type Label struct {
	EventID         string    `json:"event_id"`
	TransactionID   string    `json:"transaction_id"`
	AccountID       string    `json:"account_id"`
	Label           float64   `json:"label"`
	Pattern         string    `json:"pattern,omitempty"`
	TransactionTime time.Time `json:"transaction_time"`
	EventTime       time.Time `json:"event_time"`
}

// Event is one element of the merged, event-time ordered stream: exactly
// one of Transaction and Label is set.
type Event struct {
	Transaction *Transaction
	Label       *Label
}
