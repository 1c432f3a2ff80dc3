package features

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

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

// Keys of Transaction.attributes that a shop event may set for the purchase features the
// CommerceSession block has no field for. Values are decimal numbers, last_purchase_time is
// RFC 3339.
const (
	AttrProductViews     = "product_views"
	AttrPastPurchases    = "past_purchases"
	AttrLastPurchaseTime = "last_purchase_time"
	AttrDiscountRatio    = "discount_ratio"
)

// IsShopEvent reports whether tx is a shop event (its commerce block is set): the features
// service computes its purchase vector (spec purchase-v1) instead of the fraud vector.
func IsShopEvent(tx *eventsv1.Transaction) bool { return tx.GetCommerce() != nil }

// PurchaseVector writes the purchase feature vector (featurespec.Purchase(), length
// featurespec.PurchaseLen) of the shop event tx into out. The conversion is the one the
// simulator's sim.SessionInput applies to its sessions:
//
//   - page_views, time_on_site_seconds (session_duration_seconds), cart_value, cart_items and
//     is_returning (returning_customer) come from the commerce block;
//   - is_mobile is channel == CHANNEL_MOBILE; hour_of_day comes from event_time;
//   - product_views, past_purchases and discount_ratio come from the attributes of the same
//     names, days_since_last_purchase from attribute last_purchase_time (RFC 3339; absent with
//     past_purchases present means "never": 3650). The shop is the system of record of its
//     customers' orders, so it sends them; the features service keeps no purchase state.
//
// A missing product_views or past_purchases attribute makes the feature (and, for
// past_purchases, days_since_last_purchase) NaN, LightGBM's missing value; a missing
// discount_ratio is 0 (no discount offered). It returns an error naming every problem when
// the event lacks ids or a valid event time, or when a value is malformed or out of range.
func PurchaseVector(tx *eventsv1.Transaction, out []float64) error {
	var errs []error
	if tx.GetAccountId() == "" {
		errs = append(errs, errors.New("account_id is empty"))
	}
	if tx.GetTransactionId() == "" {
		errs = append(errs, errors.New("transaction_id is empty"))
	}
	c := tx.GetCommerce()
	in := featurespec.SessionInput{
		PageViews:   int(c.GetPageViews()),
		CartValue:   c.GetCartValue(),
		CartItems:   int(c.GetCartItems()),
		IsReturning: c.GetReturningCustomer(),
		IsMobile:    tx.GetChannel() == eventsv1.Channel_CHANNEL_MOBILE,
	}
	if d := c.GetSessionDurationSeconds(); math.IsNaN(d) || math.IsInf(d, 0) || d < 0 {
		errs = append(errs, fmt.Errorf("commerce.session_duration_seconds %v: want a finite value >= 0", d))
	} else {
		in.TimeOnSite = time.Duration(math.Min(d, 86400) * float64(time.Second))
	}
	if ts := tx.GetEventTime(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			errs = append(errs, fmt.Errorf("event_time: %w", err))
		} else {
			in.Time = ts.AsTime()
		}
	}
	attrs := tx.GetAttributes()
	productViews, hasProductViews, err := intAttr(attrs, AttrProductViews)
	errs = append(errs, err)
	in.ProductViews = productViews
	past, hasPast, err := intAttr(attrs, AttrPastPurchases)
	errs = append(errs, err)
	in.PastPurchases = past
	if s, ok := attrs[AttrLastPurchaseTime]; ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("attribute %s: %w", AttrLastPurchaseTime, err))
		}
		in.LastPurchase = t
	}
	if s, ok := attrs[AttrDiscountRatio]; ok {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("attribute %s: %w", AttrDiscountRatio, err))
		}
		in.DiscountRatio = v
	}
	if err := errors.Join(errs...); err == nil {
		if err := featurespec.ComputePurchase(in, out); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shop event %q of account %q: %w", tx.GetTransactionId(), tx.GetAccountId(), err)
	}
	if !hasProductViews {
		out[featurespec.PurchaseProductViews] = math.NaN()
	}
	if !hasPast {
		out[featurespec.PurchasePastPurchases] = math.NaN()
		if in.LastPurchase.IsZero() {
			out[featurespec.PurchaseDaysSinceLastPurchase] = math.NaN()
		}
	}
	return nil
}

// intAttr parses the attribute key as a non-negative integer; ok is false when it is absent.
func intAttr(attrs map[string]string, key string) (v int, ok bool, err error) {
	s, ok := attrs[key]
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, true, fmt.Errorf("attribute %s %q: want a whole number >= 0", key, s)
	}
	return n, true, nil
}
