package featurespec_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

func TestBuiltinSpecsValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    featurespec.Spec
		wantLen int
		wantID  string
	}{
		{spec: featurespec.Fraud(), wantLen: featurespec.FraudLen, wantID: "fraud-v1"},
		{spec: featurespec.Purchase(), wantLen: featurespec.PurchaseLen, wantID: "purchase-v1"},
	}
	for _, tt := range tests {
		t.Run(tt.wantID, func(t *testing.T) {
			t.Parallel()
			if err := tt.spec.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if got := tt.spec.Len(); got != tt.wantLen {
				t.Errorf("Len() = %d, want %d", got, tt.wantLen)
			}
			if got := tt.spec.ID(); got != tt.wantID {
				t.Errorf("ID() = %q, want %q", got, tt.wantID)
			}
			if fp := tt.spec.Fingerprint(); !strings.HasPrefix(fp, tt.wantID+"-") || len(fp) != len(tt.wantID)+17 {
				t.Errorf("Fingerprint() = %q, want %q plus 16 hex digits", fp, tt.wantID)
			}
			if err := tt.spec.Check(tt.spec); err != nil {
				t.Errorf("Check(self) = %v", err)
			}
			for i, f := range tt.spec.Features {
				if f.Description == "" {
					t.Errorf("feature %q has no description", f.Name)
				}
				if tt.spec.Index(f.Name) != i {
					t.Errorf("Index(%q) = %d, want %d", f.Name, tt.spec.Index(f.Name), i)
				}
			}
			got, err := featurespec.ByName(tt.wantID)
			if err != nil || got.Fingerprint() != tt.spec.Fingerprint() {
				t.Errorf("ByName(%q) = %v, %v", tt.wantID, got.ID(), err)
			}
		})
	}
	if featurespec.Fraud().Fingerprint() == featurespec.Purchase().Fingerprint() {
		t.Error("fraud and purchase fingerprints are equal")
	}
}

func TestFingerprintPinned(t *testing.T) {
	t.Parallel()
	// A change of this value means the vector layout changed: bump the
	// spec version (models trained on the old layout must be refused).
	const want, wantPurchase = "fraud-v1-be5545aef54e1595", "purchase-v1-858804f9b931f012"
	fp := featurespec.Fraud().Fingerprint()
	if fp != want {
		t.Fatalf("Fingerprint() = %q, want %q", fp, want)
	}
	if got := featurespec.Purchase().Fingerprint(); got != wantPurchase {
		t.Fatalf("purchase Fingerprint() = %q, want %q", got, wantPurchase)
	}
	// Descriptions and ranges do not change the fingerprint.
	s := featurespec.Fraud()
	s.Features[0].Description = "changed"
	s.Features[0].Max = 1
	if s.Fingerprint() != fp {
		t.Errorf("fingerprint changed with description/range")
	}
}

func TestCheckMismatch(t *testing.T) {
	t.Parallel()
	base := featurespec.Fraud()
	tests := []struct {
		name   string
		mutate func(s *featurespec.Spec)
		want   []string
	}{
		{name: "version", mutate: func(s *featurespec.Spec) { s.Version = 2 }, want: []string{"identity fraud-v1 vs fraud-v2"}},
		{name: "task", mutate: func(s *featurespec.Spec) { s.Task = featurespec.TaskRegression }, want: []string{`task "binary" vs "regression"`}},
		{name: "swapped", mutate: func(s *featurespec.Spec) { s.Features[0], s.Features[1] = s.Features[1], s.Features[0] },
			want: []string{"order: amount at 0 vs 1, location_score at 1 vs 0"}},
		{name: "missing", mutate: func(s *featurespec.Spec) { s.Features = s.Features[:len(s.Features)-1] },
			want: []string{"missing in other: is_new_country", "16 vs 15 features"}},
		{name: "extra", mutate: func(s *featurespec.Spec) {
			s.Features = append(s.Features, featurespec.Feature{Name: "shoe_size", Type: featurespec.TypeFloat})
		}, want: []string{"extra in other: shoe_size"}},
		{name: "renamed", mutate: func(s *featurespec.Spec) { s.Features[2].Name = "device_score" },
			want: []string{"missing in other: device_risk_score", "extra in other: device_score"}},
		{name: "retyped", mutate: func(s *featurespec.Spec) { s.Features[0].Type = featurespec.TypeInt }, want: []string{"type: amount float vs int"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			other := featurespec.Fraud()
			tt.mutate(&other)
			err := base.Check(other)
			if !errors.Is(err, featurespec.ErrMismatch) {
				t.Fatalf("Check() = %v, want ErrMismatch", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestSpecJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []featurespec.Spec{featurespec.Fraud(), featurespec.Purchase()} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if !strings.Contains(string(b), `"fingerprint":"`+s.Fingerprint()+`"`) {
			t.Errorf("JSON lacks the fingerprint: %s", b)
		}
		var got featurespec.Spec
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		if err := s.Check(got); err != nil {
			t.Errorf("round trip: %v", err)
		}
		for i := range s.Features {
			if s.Features[i] != got.Features[i] {
				t.Errorf("feature %d: got %+v, want %+v", i, got.Features[i], s.Features[i])
			}
		}
	}
}

func TestSpecJSONRejects(t *testing.T) {
	t.Parallel()
	good, err := json.Marshal(featurespec.Fraud())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{name: "tampered", doc: strings.Replace(string(good), `"amount"`, `"amount2"`, 1), want: "does not match"},
		{name: "duplicate", doc: `{"name":"x","version":1,"task":"binary","features":[{"name":"a","type":"float"},{"name":"a","type":"float"}]}`, want: "positions 0 and 1"},
		{name: "bad type", doc: `{"name":"x","version":1,"task":"binary","features":[{"name":"a","type":"complex"}]}`, want: "unknown type"},
		{name: "bad range", doc: `{"name":"x","version":1,"task":"binary","features":[{"name":"a","type":"float","min":2,"max":1}]}`, want: "min 2 > max 1"},
		{name: "no version", doc: `{"name":"x","task":"binary","features":[{"name":"a","type":"float"}]}`, want: "version 0"},
		{name: "syntax", doc: `{"name":`, want: "unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s featurespec.Spec
			err := json.Unmarshal([]byte(tt.doc), &s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Unmarshal() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestInRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    featurespec.Feature
		v    float64
		want bool
	}{
		{"float inside", featurespec.Feature{Type: featurespec.TypeFloat, Min: 0, Max: 1}, 0.5, true},
		{"float above", featurespec.Feature{Type: featurespec.TypeFloat, Min: 0, Max: 1}, 1.01, false},
		{"nan", featurespec.Feature{Type: featurespec.TypeFloat, Min: 0, Max: 1}, math.NaN(), false},
		{"int whole", featurespec.Feature{Type: featurespec.TypeInt, Min: 0, Max: 10}, 3, true},
		{"int fraction", featurespec.Feature{Type: featurespec.TypeInt, Min: 0, Max: 10}, 3.5, false},
		{"bool one", featurespec.Feature{Type: featurespec.TypeBool, Min: 0, Max: 1}, 1, true},
		{"bool half", featurespec.Feature{Type: featurespec.TypeBool, Min: 0, Max: 1}, 0.5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.f.InRange(tt.v); got != tt.want {
				t.Errorf("InRange(%v) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
	if err := featurespec.Fraud().CheckVector(make([]float64, 3)); err == nil {
		t.Error("CheckVector accepted a short vector")
	}
}
