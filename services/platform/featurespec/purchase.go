package featurespec

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Positions of the purchase features in the vector (spec purchase-v1).
const (
	PurchasePageViews = iota
	PurchaseProductViews
	PurchaseTimeOnSiteSeconds
	PurchaseCartValue
	PurchaseCartItems
	PurchasePastPurchases
	PurchaseDaysSinceLastPurchase
	PurchaseIsReturning
	PurchaseIsMobile
	PurchaseHourOfDay
	PurchaseDiscountRatio
	// PurchaseLen is the length of the purchase feature vector.
	PurchaseLen
)

// MaxDaysSincePurchase caps days_since_last_purchase; it is also the value
// for a customer who never purchased.
const MaxDaysSincePurchase = 3650

// Purchase returns the purchase-probability spec (regression), version 1.
func Purchase() Spec {
	return Spec{
		Name:    "purchase",
		Version: 1,
		Task:    TaskRegression,
		Features: []Feature{
			PurchasePageViews:         {Name: "page_views", Type: TypeInt, Min: 0, Max: 1e5, Description: "pages viewed in the session"},
			PurchaseProductViews:      {Name: "product_views", Type: TypeInt, Min: 0, Max: 1e5, Description: "product pages viewed in the session"},
			PurchaseTimeOnSiteSeconds: {Name: "time_on_site_seconds", Type: TypeFloat, Min: 0, Max: 86400, Description: "session duration so far, seconds, capped at one day"},
			PurchaseCartValue:         {Name: "cart_value", Type: TypeFloat, Min: 0, Max: MaxAmount, Description: "value of the cart"},
			PurchaseCartItems:         {Name: "cart_items", Type: TypeInt, Min: 0, Max: 1e4, Description: "items in the cart"},
			PurchasePastPurchases:     {Name: "past_purchases", Type: TypeInt, Min: 0, Max: 1e6, Description: "purchases by the customer before this session"},
			PurchaseDaysSinceLastPurchase: {Name: "days_since_last_purchase", Type: TypeFloat, Min: 0, Max: MaxDaysSincePurchase,
				Description: "days since the customer's last purchase, capped at 3650 (also the value for no purchase)"},
			PurchaseIsReturning:   {Name: "is_returning", Type: TypeBool, Min: 0, Max: 1, Description: "1 if the customer visited before"},
			PurchaseIsMobile:      {Name: "is_mobile", Type: TypeBool, Min: 0, Max: 1, Description: "1 for a mobile device"},
			PurchaseHourOfDay:     {Name: "hour_of_day", Type: TypeInt, Min: 0, Max: 23, Description: "UTC hour of the event time"},
			PurchaseDiscountRatio: {Name: "discount_ratio", Type: TypeFloat, Min: 0, Max: 1, Description: "discount offered on the cart, fraction of its value"},
		},
	}
}

// SessionInput is one shopping session as the purchase computation sees it.
type SessionInput struct {
	Time          time.Time
	PageViews     int
	ProductViews  int
	TimeOnSite    time.Duration
	CartValue     float64
	CartItems     int
	PastPurchases int
	// LastPurchase is the customer's previous purchase; zero means never.
	LastPurchase  time.Time
	IsReturning   bool
	IsMobile      bool
	DiscountRatio float64
}

// Validate reports whether in can be used by ComputePurchase.
func (in SessionInput) Validate() error {
	var errs []error
	if in.Time.IsZero() {
		errs = append(errs, errors.New("event time is zero"))
	}
	if in.PageViews < 0 || in.ProductViews < 0 || in.CartItems < 0 || in.PastPurchases < 0 || in.TimeOnSite < 0 {
		errs = append(errs, errors.New("negative count or duration"))
	}
	if math.IsNaN(in.CartValue) || in.CartValue < 0 || in.CartValue > MaxAmount {
		errs = append(errs, fmt.Errorf("cart value %v outside [0, %v]", in.CartValue, float64(MaxAmount)))
	}
	if math.IsNaN(in.DiscountRatio) || in.DiscountRatio < 0 || in.DiscountRatio > 1 {
		errs = append(errs, fmt.Errorf("discount ratio %v outside [0, 1]", in.DiscountRatio))
	}
	return errors.Join(errs...)
}

// ComputePurchase writes the purchase feature vector of in into out
// (len(out) must be PurchaseLen). It is stateless and does not allocate.
func ComputePurchase(in SessionInput, out []float64) error {
	if len(out) != PurchaseLen {
		return fmt.Errorf("output has %d slots, purchase spec needs %d", len(out), PurchaseLen)
	}
	if err := in.Validate(); err != nil {
		return fmt.Errorf("compute purchase features: %w", err)
	}
	out[PurchasePageViews] = math.Min(float64(in.PageViews), 1e5)
	out[PurchaseProductViews] = math.Min(float64(in.ProductViews), 1e5)
	out[PurchaseTimeOnSiteSeconds] = math.Min(in.TimeOnSite.Seconds(), 86400)
	out[PurchaseCartValue] = in.CartValue
	out[PurchaseCartItems] = math.Min(float64(in.CartItems), 1e4)
	out[PurchasePastPurchases] = math.Min(float64(in.PastPurchases), 1e6)
	days := float64(MaxDaysSincePurchase)
	if !in.LastPurchase.IsZero() {
		days = clamp(in.Time.Sub(in.LastPurchase).Hours()/24, 0, MaxDaysSincePurchase)
	}
	out[PurchaseDaysSinceLastPurchase] = days
	out[PurchaseIsReturning] = b2f(in.IsReturning)
	out[PurchaseIsMobile] = b2f(in.IsMobile)
	out[PurchaseHourOfDay] = float64(hourOfDay(in.Time.UnixNano()))
	out[PurchaseDiscountRatio] = in.DiscountRatio
	return nil
}
