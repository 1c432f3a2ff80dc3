package features

import (
	"errors"
	"fmt"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// InputFromTransaction converts a validated Transaction into the input of the fraud
// computation, the conversion the simulator's sim.Input applies to its own transactions:
//
//   - Amount, Country, MerchantID and DeviceID are copied;
//   - Time is event_time;
//   - Latitude and Longitude are copied when both are set; when either is unset the
//     transaction has no location ((0, 0), which featurespec reads as "no location");
//   - DeviceReputation is 0: no reputation source is wired (training uses none either).
//
// It returns an error naming every problem when the transaction lacks an account id, a
// transaction id or a valid event time, or when the input is not acceptable to featurespec
// (amount, coordinates out of range).
func InputFromTransaction(tx *eventsv1.Transaction) (featurespec.Input, error) {
	var errs []error
	if tx.GetAccountId() == "" {
		errs = append(errs, errors.New("account_id is empty"))
	}
	if tx.GetTransactionId() == "" {
		errs = append(errs, errors.New("transaction_id is empty"))
	}
	in := featurespec.Input{
		Amount:     tx.GetAmount(),
		Country:    tx.GetCountry(),
		MerchantID: tx.GetMerchantId(),
		DeviceID:   tx.GetDeviceId(),
	}
	if tx.Latitude != nil && tx.Longitude != nil {
		in.Latitude, in.Longitude = tx.GetLatitude(), tx.GetLongitude()
	}
	if ts := tx.GetEventTime(); ts != nil {
		// An unset event_time is reported by Validate ("event time is zero").
		if err := ts.CheckValid(); err != nil {
			errs = append(errs, fmt.Errorf("event_time: %w", err))
		} else {
			in.Time = ts.AsTime()
		}
	}
	if err := in.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return featurespec.Input{}, fmt.Errorf("transaction %q of account %q: %w", tx.GetTransactionId(), tx.GetAccountId(), err)
	}
	return in, nil
}
