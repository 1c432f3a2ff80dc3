package features_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/sim"
)

func ptr(v float64) *float64 { return &v }

func TestInputFromTransaction(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	base := func() *eventsv1.Transaction {
		return &eventsv1.Transaction{
			TransactionId: "tx-1", AccountId: "a-1", EventTime: timestamppb.New(at), Amount: 12.5,
			MerchantId: "m", DeviceId: "d", Country: "DE", Latitude: ptr(52.5), Longitude: ptr(13.4),
		}
	}
	full := featurespec.Input{Amount: 12.5, Time: at, Latitude: 52.5, Longitude: 13.4, Country: "DE", MerchantID: "m", DeviceID: "d"}
	tests := []struct {
		name    string
		mutate  func(*eventsv1.Transaction)
		want    featurespec.Input
		wantErr []string
	}{
		{name: "complete", mutate: func(*eventsv1.Transaction) {}, want: full},
		{name: "no location", mutate: func(tx *eventsv1.Transaction) { tx.Latitude, tx.Longitude = nil, nil },
			want: featurespec.Input{Amount: 12.5, Time: at, Country: "DE", MerchantID: "m", DeviceID: "d"}},
		{name: "latitude only means no location", mutate: func(tx *eventsv1.Transaction) { tx.Longitude = nil },
			want: featurespec.Input{Amount: 12.5, Time: at, Country: "DE", MerchantID: "m", DeviceID: "d"}},
		{name: "zero amount", mutate: func(tx *eventsv1.Transaction) { tx.Amount = 0 },
			want: featurespec.Input{Time: at, Latitude: 52.5, Longitude: 13.4, Country: "DE", MerchantID: "m", DeviceID: "d"}},
		{name: "everything missing", mutate: func(tx *eventsv1.Transaction) { *tx = eventsv1.Transaction{} },
			wantErr: []string{"account_id is empty", "transaction_id is empty", "event time is zero"}},
		{name: "invalid timestamp", mutate: func(tx *eventsv1.Transaction) { tx.EventTime = &timestamppb.Timestamp{Nanos: -1} },
			wantErr: []string{"event_time"}},
		{name: "longitude out of range", mutate: func(tx *eventsv1.Transaction) { tx.Longitude = ptr(181) },
			wantErr: []string{"longitude 181"}},
		{name: "amount too large", mutate: func(tx *eventsv1.Transaction) { tx.Amount = 2e7 },
			wantErr: []string{"amount"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tx := base()
			tt.mutate(tx)
			got, err := features.InputFromTransaction(tx)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("InputFromTransaction() = %+v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("InputFromTransaction() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInputMatchesSimulator checks the conversion against the simulator's own
// (sim.Input), the one its training datasets use.
func TestInputMatchesSimulator(t *testing.T) {
	t.Parallel()
	s, err := sim.New(sim.Config{Seed: 3, Accounts: 100})
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		tx, _ := s.Next()
		got, err := features.InputFromTransaction(simTransaction(&tx))
		if err != nil {
			t.Fatal(err)
		}
		want := sim.Input(&tx)
		if !got.Time.Equal(want.Time) {
			t.Fatalf("%s: time %v, want %v", tx.TransactionID, got.Time, want.Time)
		}
		got.Time = want.Time
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s (-sim +service):\n%s", tx.TransactionID, diff)
		}
	}
}
