package sim_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/sim"
)

var start = sim.DefaultConfig().Start

func newSim(t testing.TB, cfg sim.Config) *sim.Sim {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func encodeStream(t testing.TB, cfg sim.Config, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for ev := range newSim(t, cfg).Events(n) {
		var err error
		if ev.Transaction != nil {
			err = enc.Encode(struct {
				*sim.Transaction
				Fraud   bool   `json:"fraud"`
				Pattern string `json:"pattern"`
			}{ev.Transaction, ev.Transaction.IsFraud, ev.Transaction.Pattern.String()})
		} else {
			err = enc.Encode(ev.Label)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	cfg := sim.Config{Seed: 42, Accounts: 2000, Drifts: []sim.Drift{{At: start.Add(12 * time.Hour), AmountScale: 2}}}
	a := encodeStream(t, cfg, 20000)
	b := encodeStream(t, cfg, 20000)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed produced different streams")
	}
	cfg.Seed = 43
	if c := encodeStream(t, cfg, 20000); bytes.Equal(a, c) {
		t.Fatal("different seeds produced the same stream")
	}
}

func TestTransactionJSON(t *testing.T) {
	t.Parallel()
	tx, _ := newSim(t, sim.Config{Seed: 1, Accounts: 100}).Next()
	b, err := json.Marshal(tx)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"transaction_id", "account_id", "amount", "currency", "merchant_id", "merchant_category", "device_id",
		"country", "latitude", "longitude", "channel", "event_time"}
	if len(m) != len(want) {
		t.Errorf("JSON has %d fields, want %d: %s", len(m), len(want), b)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	et, err := time.Parse(time.RFC3339Nano, m["event_time"].(string))
	if err != nil || !et.Equal(tx.EventTime) {
		t.Errorf("event_time %v does not round-trip as RFC 3339: %v", m["event_time"], err)
	}
	if err := sim.Input(&tx).Validate(); err != nil {
		t.Errorf("simulated transaction is not a valid feature input: %v", err)
	}
}

func TestFraudRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  sim.Config
		want float64
	}{
		{name: "default", cfg: sim.Config{Seed: 3, Accounts: 5000}, want: 0.015},
		{name: "3 percent", cfg: sim.Config{Seed: 4, Accounts: 5000, FraudRate: 0.03}, want: 0.03},
		{name: "no fraud", cfg: sim.Config{Seed: 5, Accounts: 5000, NoFraud: true}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, tt.cfg)
			const n = 200000
			fraud := 0
			patterns := map[sim.Pattern]int{}
			for range n {
				tx, _ := s.Next()
				if tx.IsFraud {
					fraud++
					patterns[tx.Pattern]++
				}
			}
			got := float64(fraud) / n
			if math.Abs(got-tt.want) > 0.2*tt.want {
				t.Errorf("fraud rate %.4f, want %.4f +-20%%", got, tt.want)
			}
			if tt.want > 0 {
				for _, p := range []sim.Pattern{sim.PatternAccountTakeover, sim.PatternCardTesting, sim.PatternGeoJump, sim.PatternRiskyDevice} {
					if patterns[p] == 0 {
						t.Errorf("no %v transactions", p)
					}
				}
				if patterns[sim.PatternBustOut] != 0 {
					t.Errorf("bust-out is disabled by default but occurred %d times", patterns[sim.PatternBustOut])
				}
			}
			t.Logf("fraud rate %.4f, by pattern %v", got, patterns)
		})
	}
}

func TestLabelsDelayedAndOrdered(t *testing.T) {
	t.Parallel()
	cfg := sim.Config{Seed: 9, Accounts: 3000, LabelDelayMin: time.Hour, LabelDelayMax: 6 * time.Hour}
	s := newSim(t, cfg)
	txTime := map[string]time.Time{}
	fraud := map[string]bool{}
	labelOf := map[string]float64{}
	var friendly, unreported, nfraud int
	var lastEvent time.Time
	labelled := map[string]bool{}
	check := func(l sim.Label, now time.Time, drained bool) {
		t.Helper()
		at, ok := txTime[l.TransactionID]
		if !ok {
			t.Fatalf("label for unknown or future transaction %s", l.TransactionID)
		}
		if labelled[l.TransactionID] {
			t.Fatalf("second label for %s", l.TransactionID)
		}
		labelled[l.TransactionID] = true
		if !l.TransactionTime.Equal(at) {
			t.Fatalf("label transaction_time %v, transaction at %v", l.TransactionTime, at)
		}
		delay := l.EventTime.Sub(at)
		if l.Label != labelOf[l.TransactionID] {
			t.Fatalf("label %v, the transaction says %v", l.Label, labelOf[l.TransactionID])
		}
		switch {
		case l.Label == 1:
			if delay < cfg.LabelDelayMin || delay > cfg.LabelDelayMax {
				t.Fatalf("chargeback with delay %v outside [%v, %v]", delay, cfg.LabelDelayMin, cfg.LabelDelayMax)
			}
			if fraud[l.TransactionID] != (l.Pattern != "friendly_fraud") {
				t.Fatalf("chargeback of pattern %q on a transaction with fraud %v", l.Pattern, fraud[l.TransactionID])
			}
			if !fraud[l.TransactionID] {
				friendly++
			}
		case l.Label != 0 || delay != cfg.LabelDelayMax:
			t.Fatalf("label %v with delay %v, want 0 at %v", l.Label, delay, cfg.LabelDelayMax)
		case fraud[l.TransactionID]:
			unreported++
		}
		if !drained && l.EventTime.After(now) {
			t.Fatalf("label at %v emitted before its time (stream at %v)", l.EventTime, now)
		}
		if l.EventTime.Before(lastEvent) {
			t.Fatalf("label at %v after an event at %v", l.EventTime, lastEvent)
		}
		lastEvent = l.EventTime
	}
	const n = 50000
	for range n {
		tx, labels := s.Next()
		for _, l := range labels {
			check(l, tx.EventTime, false)
		}
		if tx.EventTime.Before(lastEvent) {
			t.Fatalf("transaction at %v after an event at %v", tx.EventTime, lastEvent)
		}
		lastEvent = tx.EventTime
		txTime[tx.TransactionID] = tx.EventTime
		fraud[tx.TransactionID] = tx.IsFraud
		labelOf[tx.TransactionID] = tx.Label
		if tx.IsFraud {
			nfraud++
		}
	}
	for _, l := range s.Drain() {
		check(l, time.Time{}, true)
	}
	if len(labelled) != n {
		t.Errorf("%d labels for %d transactions", len(labelled), n)
	}
	// Label noise: some fraud is never reported, some legitimate purchases are disputed.
	if friendly == 0 || unreported == 0 || float64(unreported) > 0.2*float64(nfraud) {
		t.Errorf("%d friendly-fraud chargebacks, %d of %d fraudulent transactions unreported", friendly, unreported, nfraud)
	}
	t.Logf("%d friendly-fraud chargebacks, %d of %d fraudulent transactions unreported", friendly, unreported, nfraud)
}

// windowMeans returns the mean of f over transactions (legit only unless
// includeFraud) before and after at, within span on each side.
func windowMeans(t *testing.T, cfg sim.Config, at time.Time, span time.Duration, f func(*sim.Transaction) float64, includeFraud bool) (before, after float64) {
	t.Helper()
	s := newSim(t, cfg)
	var sb, sa, nb, na float64
	for {
		tx, _ := s.Next()
		if tx.EventTime.After(at.Add(span)) {
			break
		}
		if tx.IsFraud && !includeFraud {
			continue
		}
		v := f(&tx)
		switch {
		case tx.EventTime.Before(at.Add(-span)):
		case tx.EventTime.Before(at):
			sb += v
			nb++
		default:
			sa += v
			na++
		}
	}
	return sb / nb, sa / na
}

func TestDrift(t *testing.T) {
	t.Parallel()
	at := start.Add(48 * time.Hour)
	span := 24 * time.Hour
	logAmount := func(tx *sim.Transaction) float64 { return math.Log(tx.Amount) }
	tests := []struct {
		name  string
		drift sim.Drift
		f     func(*sim.Transaction) float64
		fraud bool
		// noTravel turns trips (which spread longitudes around the globe) off.
		noTravel bool
		check    func(before, after float64) bool
		want     string
	}{
		{name: "amount x2", drift: sim.Drift{AmountScale: 2}, f: logAmount,
			check: func(b, a float64) bool { return math.Abs(math.Exp(a-b)-2) < 0.1 }, want: "geometric mean ratio 2+-0.1"},
		{name: "no drift", drift: sim.Drift{}, f: logAmount,
			check: func(b, a float64) bool { return math.Abs(math.Exp(a-b)-1) < 0.05 }, want: "ratio 1+-0.05"},
		{name: "location shift 500 km east", drift: sim.Drift{LocationShiftKm: 500}, f: func(tx *sim.Transaction) float64 {
			return tx.Longitude * 111.2 * math.Cos(tx.Latitude*math.Pi/180)
		}, noTravel: true, check: func(b, a float64) bool { return math.Abs(a-b-500) < 100 }, want: "+500 km"},
		{name: "fraud rate x3", drift: sim.Drift{FraudRateScale: 3}, fraud: true, f: func(tx *sim.Transaction) float64 {
			if tx.IsFraud {
				return 1
			}
			return 0
		}, check: func(b, a float64) bool { return a/b > 2.4 && a/b < 3.6 }, want: "3x fraud fraction"},
		{name: "new pattern bust-out", drift: sim.Drift{PatternWeights: func() (w [6]float64) { w[sim.PatternBustOut] = 1; return }()},
			fraud: true, f: func(tx *sim.Transaction) float64 {
				if tx.Pattern == sim.PatternBustOut {
					return 1
				}
				return 0
			}, check: func(b, a float64) bool { return b == 0 && a > 0.005 }, want: "bust-out only after the drift"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.drift
			d.At = at
			cfg := sim.Config{Seed: 11, Accounts: 4000, Drifts: []sim.Drift{d}}
			if tt.noTravel {
				cfg.TravelProb = 1e-12
			}
			b, a := windowMeans(t, cfg, at, span, tt.f, tt.fraud)
			if !tt.check(b, a) {
				t.Errorf("before %.4f after %.4f, want %s", b, a, tt.want)
			}
			t.Logf("before %.4f after %.4f", b, a)
		})
	}
}

func TestDriftShiftsFeatures(t *testing.T) {
	t.Parallel()
	at := start.Add(72 * time.Hour)
	cfg := sim.Config{Seed: 12, Accounts: 3000, Warmup: 72 * time.Hour, Drifts: []sim.Drift{{At: at, NewDeviceProb: 0.2}}}
	d, err := sim.FraudDataset(cfg, 60000)
	if err != nil {
		t.Fatal(err)
	}
	var sb, sa, nb, na float64
	for i := range d.Rows() {
		if d.Y[i] == 1 {
			continue
		}
		v := d.Row(i)[featurespec.FraudDeviceRiskScore]
		if d.EventTimes[i] < at.UnixNano() {
			sb, nb = sb+v, nb+1
		} else {
			sa, na = sa+v, na+1
		}
	}
	if nb == 0 || na == 0 || sa/na < sb/nb+0.1 {
		t.Errorf("legit device_risk_score before %.3f after %.3f (n %v/%v), want a rise of at least 0.1", sb/nb, sa/na, nb, na)
	}
}

func TestDatasetMatchesStream(t *testing.T) {
	t.Parallel()
	cfg := sim.Config{Seed: 21, Accounts: 500, Warmup: 24 * time.Hour}
	const n = 20000
	d, err := sim.FraudDataset(cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	s := newSim(t, cfg)
	states := map[string]*featurespec.AccountState{}
	out := make([]float64, featurespec.FraudLen)
	row := 0
	for row < n {
		tx, _ := s.Next()
		st := states[tx.AccountID]
		if st == nil {
			st = &featurespec.AccountState{}
			states[tx.AccountID] = st
		}
		// The serving path: JSON on the wire, decoded, converted, stepped.
		b, err := json.Marshal(tx)
		if err != nil {
			t.Fatal(err)
		}
		var wire sim.Transaction
		if err := json.Unmarshal(b, &wire); err != nil {
			t.Fatal(err)
		}
		if err := featurespec.Step(st, sim.Input(&wire), out); err != nil {
			t.Fatal(err)
		}
		if tx.EventTime.Before(s.Config().Start) {
			continue
		}
		if d.EventTimes[row] != tx.EventTime.UnixNano() || d.Y[row] != tx.Label || (d.Truth[row] == 1) != tx.IsFraud {
			t.Fatalf("row %d is not the stream's transaction", row)
		}
		for j, v := range d.Row(row) {
			if v != out[j] {
				t.Fatalf("row %d %s: dataset %v, serving path %v", row, d.Spec.Features[j].Name, v, out[j])
			}
		}
		row++
	}
	for i := range d.Rows() {
		if err := d.Spec.CheckVector(d.Row(i)); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if d.LabelTimes[i] <= d.EventTimes[i] {
			t.Fatalf("row %d label time before event time", i)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  sim.Config
		want string
	}{
		{"fraud rate", sim.Config{FraudRate: 0.7}, "fraud rate"},
		{"label delays", sim.Config{LabelDelayMin: 2 * time.Hour, LabelDelayMax: time.Hour}, "label delays"},
		{"drift order", sim.Config{Drifts: []sim.Drift{{At: start.Add(time.Hour)}, {At: start}}}, "before drift"},
		{"drift time", sim.Config{Drifts: []sim.Drift{{AmountScale: 2}}}, "no time"},
		{"merchants", sim.Config{Merchants: 3}, "merchants"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := sim.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func BenchmarkNext(b *testing.B) {
	s, err := sim.New(sim.Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Next()
	}
}

func BenchmarkFraudDataset(b *testing.B) {
	for _, n := range []int{100000, 1000000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sim.FraudDataset(sim.Config{Seed: 1}, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
