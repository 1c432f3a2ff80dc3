package featurespec_test

import (
	"fmt"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// The serving path of one account: compute the features of a transaction
// from the state before it, then fold it into the state.
func Example() {
	spec := featurespec.Fraud()
	var state featurespec.AccountState
	out := make([]float64, spec.Len())
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	for i, amount := range []float64{12.5, 30, 800} {
		in := featurespec.Input{
			Amount: amount, Time: start.Add(time.Duration(i) * 10 * time.Minute),
			Latitude: 52.52, Longitude: 13.405, Country: "DE", MerchantID: "m-1", DeviceID: "phone-1",
		}
		if err := featurespec.Step(&state, in, out); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println("tx_count_1h:", out[featurespec.FraudTxCount1h])
	fmt.Println("amount_sum_1h:", out[featurespec.FraudAmountSum1h])
	fmt.Println("device_risk_score:", out[featurespec.FraudDeviceRiskScore])
	fmt.Println("is_new_merchant:", out[featurespec.FraudIsNewMerchant])
	// Output:
	// tx_count_1h: 2
	// amount_sum_1h: 42.5
	// device_risk_score: 0.3333333333333333
	// is_new_merchant: 0
}

// A model stores the spec it was trained with; scoring checks it.
func ExampleSpec_Check() {
	serving := featurespec.Fraud()
	trained := featurespec.Fraud()
	trained.Version = 2
	trained.Features = trained.Features[:15]
	fmt.Println(serving.Check(featurespec.Fraud()) == nil)
	fmt.Println(serving.Check(trained) != nil)
	// Output:
	// true
	// true
}
