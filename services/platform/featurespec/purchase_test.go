package featurespec_test

import (
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

func TestComputePurchase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      featurespec.SessionInput
		want    map[int]float64
		wantErr bool
	}{
		{name: "new visitor", in: featurespec.SessionInput{Time: t0, PageViews: 3, TimeOnSite: 90 * time.Second, IsMobile: true},
			want: map[int]float64{featurespec.PurchasePageViews: 3, featurespec.PurchaseTimeOnSiteSeconds: 90, featurespec.PurchaseIsMobile: 1,
				featurespec.PurchaseDaysSinceLastPurchase: featurespec.MaxDaysSincePurchase, featurespec.PurchaseHourOfDay: 12}},
		{name: "returning buyer", in: featurespec.SessionInput{Time: t0, CartValue: 80, CartItems: 2, PastPurchases: 4, LastPurchase: t0.Add(-36 * time.Hour), IsReturning: true, DiscountRatio: 0.1},
			want: map[int]float64{featurespec.PurchaseCartValue: 80, featurespec.PurchaseCartItems: 2, featurespec.PurchasePastPurchases: 4,
				featurespec.PurchaseDaysSinceLastPurchase: 1.5, featurespec.PurchaseIsReturning: 1, featurespec.PurchaseDiscountRatio: 0.1}},
		{name: "negative views", in: featurespec.SessionInput{Time: t0, PageViews: -1}, wantErr: true},
		{name: "discount above 1", in: featurespec.SessionInput{Time: t0, DiscountRatio: 1.5}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := make([]float64, featurespec.PurchaseLen)
			err := featurespec.ComputePurchase(tt.in, out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ComputePurchase() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if err := featurespec.Purchase().CheckVector(out); err != nil {
				t.Error(err)
			}
			names := featurespec.Purchase().Names()
			for idx, w := range tt.want {
				if out[idx] != w {
					t.Errorf("%s = %v, want %v", names[idx], out[idx], w)
				}
			}
		})
	}
}
