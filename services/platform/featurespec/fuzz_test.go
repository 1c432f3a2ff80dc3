package featurespec_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// FuzzDecodeAccountState checks that the decoder never panics, reports
// every rejection as ErrBadState, and that whatever it accepts re-encodes to
// a canonical form that decodes to the same state and can be used by
// Compute and Apply without producing out-of-range features.
func FuzzDecodeAccountState(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("FS\x01"))
	empty, _ := (&featurespec.AccountState{}).MarshalBinary()
	f.Add(empty)
	s := &featurespec.AccountState{}
	for i := range 20 {
		_ = featurespec.Apply(s, featurespec.Input{Amount: float64(i), Time: t0.Add(time.Duration(i) * 7 * time.Minute),
			MerchantID: "m", DeviceID: "d", Country: "DE", Latitude: 1, Longitude: 2})
	}
	full, _ := s.MarshalBinary()
	f.Add(full)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := featurespec.DecodeAccountState(data)
		if err != nil {
			if !errors.Is(err, featurespec.ErrBadState) {
				t.Fatalf("error %v does not wrap ErrBadState", err)
			}
			return
		}
		b1, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		st2, err := featurespec.DecodeAccountState(b1)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		b2, _ := st2.MarshalBinary()
		if !bytes.Equal(b1, b2) {
			t.Fatal("encoding is not canonical after one round trip")
		}
		out := make([]float64, featurespec.FraudLen)
		in := featurespec.Input{Amount: 10, Time: t0, MerchantID: "m", DeviceID: "d", Country: "DE", Latitude: 1, Longitude: 2}
		if err := featurespec.Step(st2, in, out); err != nil {
			t.Fatal(err)
		}
		// Decoded state may come from anywhere, so only finiteness is
		// guaranteed for the counters; bounded features must stay in range.
		spec := featurespec.Fraud()
		for _, i := range []int{featurespec.FraudLocationScore, featurespec.FraudDeviceRiskScore, featurespec.FraudAmountZScore,
			featurespec.FraudGeoVelocityKmh, featurespec.FraudHourOfDay, featurespec.FraudIsNewDevice, featurespec.FraudTimeSinceLastTransaction} {
			if !spec.Features[i].InRange(out[i]) {
				t.Errorf("%s = %v out of range on decoded state", spec.Features[i].Name, out[i])
			}
		}
	})
}
