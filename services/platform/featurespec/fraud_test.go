package featurespec_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type ev struct {
	at       time.Duration
	amount   float64
	merchant string
	device   string
}

func build(t testing.TB, evs []ev) *featurespec.AccountState {
	t.Helper()
	s := &featurespec.AccountState{}
	for _, e := range evs {
		in := featurespec.Input{Amount: e.amount, Time: t0.Add(e.at), MerchantID: e.merchant, DeviceID: e.device, Country: "DE", Latitude: 52.52, Longitude: 13.405}
		if err := featurespec.Apply(s, in); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	return s
}

func TestWindows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		history    []ev
		at         time.Duration
		c1, c24    float64
		s1, s24    float64
		merchants  float64
		devices    float64
		newDevice  float64
		gapSeconds float64
	}{
		{name: "no history", at: 0, newDevice: 1, gapSeconds: featurespec.MaxGapSeconds},
		{name: "same minute", history: []ev{{10 * time.Second, 5, "m1", "d1"}}, at: 50 * time.Second,
			c1: 1, c24: 1, s1: 5, s24: 5, merchants: 1, devices: 1, gapSeconds: 40},
		{name: "59 minutes before", history: []ev{{0, 5, "m1", "d1"}}, at: 59 * time.Minute,
			c1: 1, c24: 1, s1: 5, s24: 5, merchants: 1, devices: 1, gapSeconds: 59 * 60},
		{name: "60 minutes before leaves the hour", history: []ev{{0, 5, "m1", "d1"}}, at: 60 * time.Minute,
			c1: 0, c24: 1, s1: 0, s24: 5, merchants: 1, devices: 1, gapSeconds: 3600},
		{name: "minute resolution: 59m01s apart but 60 minutes apart", history: []ev{{59 * time.Second, 5, "m1", "d1"}}, at: 60 * time.Minute,
			c1: 0, c24: 1, s1: 0, s24: 5, merchants: 1, devices: 1, gapSeconds: 3541},
		{name: "1439 minutes before", history: []ev{{0, 7, "m1", "d1"}}, at: 1439 * time.Minute,
			c1: 0, c24: 1, s1: 0, s24: 7, merchants: 1, devices: 1, gapSeconds: 1439 * 60},
		{name: "1440 minutes before leaves the day", history: []ev{{0, 7, "m1", "d1"}}, at: 1440 * time.Minute,
			c1: 0, c24: 0, s1: 0, s24: 0, merchants: 0, devices: 0, gapSeconds: 1440 * 60},
		{name: "mixed", history: []ev{
			{-25 * time.Hour, 100, "m0", "d0"},
			{-2 * time.Hour, 10, "m1", "d1"},
			{-30 * time.Minute, 20, "m2", "d1"},
			{-5 * time.Minute, 30, "m2", "d2"},
		}, at: 0, c1: 2, c24: 3, s1: 50, s24: 60, merchants: 2, devices: 2, gapSeconds: 300},
		{name: "out of order: later events excluded", history: []ev{
			{-10 * time.Minute, 10, "m1", "d1"},
			{+10 * time.Minute, 20, "m2", "d1"},
		}, at: 0, c1: 1, c24: 1, s1: 10, s24: 10, merchants: 2, devices: 1, gapSeconds: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := build(t, tt.history)
			out := make([]float64, featurespec.FraudLen)
			in := featurespec.Input{Amount: 1, Time: t0.Add(tt.at), MerchantID: "mX", DeviceID: "d1", Country: "DE"}
			if err := featurespec.Compute(s, in, out); err != nil {
				t.Fatal(err)
			}
			check := []struct {
				idx  int
				want float64
			}{
				{featurespec.FraudTxCount1h, tt.c1}, {featurespec.FraudTxCount24h, tt.c24},
				{featurespec.FraudAmountSum1h, tt.s1}, {featurespec.FraudAmountSum24h, tt.s24},
				{featurespec.FraudDistinctMerchants24h, tt.merchants}, {featurespec.FraudDistinctDevices24h, tt.devices},
				{featurespec.FraudIsNewDevice, tt.newDevice}, {featurespec.FraudTimeSinceLastTransaction, tt.gapSeconds},
				{featurespec.FraudIsNewMerchant, 1},
			}
			names := featurespec.Fraud().Names()
			for _, c := range check {
				if out[c.idx] != c.want {
					t.Errorf("%s = %v, want %v", names[c.idx], out[c.idx], c.want)
				}
			}
		})
	}
}

func TestSemantics(t *testing.T) {
	t.Parallel()
	berlin := featurespec.Input{Amount: 20, MerchantID: "m1", DeviceID: "d1", Country: "DE", Latitude: 52.52, Longitude: 13.405}
	s := &featurespec.AccountState{}
	for i := range 10 {
		in := berlin
		in.Time = t0.Add(time.Duration(i) * time.Hour)
		in.Amount = 20 + float64(i%3)
		if err := featurespec.Apply(s, in); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]float64, featurespec.FraudLen)
	tests := []struct {
		name  string
		in    featurespec.Input
		check func(t *testing.T, out []float64)
	}{
		{name: "home, known device", in: berlin, check: func(t *testing.T, out []float64) {
			if out[featurespec.FraudLocationScore] > 1e-9 || math.Abs(out[featurespec.FraudDeviceRiskScore]-1.0/11) > 1e-12 || out[featurespec.FraudIsNewCountry] != 0 {
				t.Errorf("location %v device risk %v new country %v", out[featurespec.FraudLocationScore], out[featurespec.FraudDeviceRiskScore], out[featurespec.FraudIsNewCountry])
			}
		}},
		{name: "new york, new device, 10 minutes later", in: featurespec.Input{Amount: 900, DeviceID: "evil", Country: "US", Latitude: 40.7128, Longitude: -74.006, MerchantID: "m9"},
			check: func(t *testing.T, out []float64) {
				// Berlin-New York is about 6385 km.
				d := -math.Log(1-out[featurespec.FraudLocationScore]) * featurespec.LocationScaleKm
				if math.Abs(d-6385) > 20 {
					t.Errorf("distance from location_score = %.0f km, want ~6385", d)
				}
				// 6385 km in 10 minutes is faster than the cap.
				if v := out[featurespec.FraudGeoVelocityKmh]; v != featurespec.MaxVelocityKmh {
					t.Errorf("geo_velocity_kmh = %.0f, want the cap %v", v, featurespec.MaxVelocityKmh)
				}
				if out[featurespec.FraudDeviceRiskScore] != 1 || out[featurespec.FraudIsNewDevice] != 1 || out[featurespec.FraudIsNewCountry] != 1 {
					t.Errorf("novelty features %v", out)
				}
				if out[featurespec.FraudAmountZScore] < 10 {
					t.Errorf("amount_zscore = %v, want large", out[featurespec.FraudAmountZScore])
				}
			}},
		{name: "reputation raises device risk", in: func() featurespec.Input { in := berlin; in.DeviceReputation = 0.5; return in }(),
			check: func(t *testing.T, out []float64) {
				if want := 1 - (1-1.0/11)*0.5; math.Abs(out[featurespec.FraudDeviceRiskScore]-want) > 1e-12 {
					t.Errorf("device_risk_score = %v, want %v", out[featurespec.FraudDeviceRiskScore], want)
				}
			}},
		{name: "no location", in: featurespec.Input{Amount: 20, DeviceID: "d1", MerchantID: "m1", Country: "DE"},
			check: func(t *testing.T, out []float64) {
				if out[featurespec.FraudLocationScore] != 0 || out[featurespec.FraudGeoVelocityKmh] != 0 {
					t.Errorf("location features without location: %v %v", out[featurespec.FraudLocationScore], out[featurespec.FraudGeoVelocityKmh])
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Time = t0.Add(9*time.Hour + 10*time.Minute)
			before, _ := s.MarshalBinary()
			if err := featurespec.Compute(s, in, out); err != nil {
				t.Fatal(err)
			}
			after, _ := s.MarshalBinary()
			if !bytes.Equal(before, after) {
				t.Fatal("Compute mutated the state")
			}
			if out[featurespec.FraudHourOfDay] != 21 {
				t.Errorf("hour_of_day = %v, want 21", out[featurespec.FraudHourOfDay])
			}
			if err := featurespec.Fraud().CheckVector(out); err != nil {
				t.Error(err)
			}
			tt.check(t, out)
		})
	}
}

// reference recomputes the fraud features from the raw history by brute
// force, independently of AccountState.
func reference(hist []featurespec.Input, in featurespec.Input) []float64 {
	out := make([]float64, featurespec.FraudLen)
	minute := func(t time.Time) int64 { return int64(math.Floor(float64(t.Unix()) / 60)) }
	m := minute(in.Time)
	out[featurespec.FraudAmount] = in.Amount
	out[featurespec.FraudTimeSinceLastTransaction] = featurespec.MaxGapSeconds
	merchants, devices := map[string]bool{}, map[string]bool{}
	var devUses int
	seenMer, seenCty := false, false
	var sumLog float64
	var hx, hy, hz float64
	var located int
	var last *featurespec.Input
	for i := range hist {
		h := hist[i]
		hm := minute(h.Time)
		if hm > m-60 && hm <= m {
			out[featurespec.FraudTxCount1h]++
			out[featurespec.FraudAmountSum1h] += h.Amount
		}
		if hm > m-1440 && hm <= m {
			out[featurespec.FraudTxCount24h]++
			out[featurespec.FraudAmountSum24h] += h.Amount
		}
		if hm > m-1440 {
			merchants[h.MerchantID] = true
			devices[h.DeviceID] = true
		}
		if h.DeviceID == in.DeviceID {
			devUses++
		}
		seenMer = seenMer || h.MerchantID == in.MerchantID
		seenCty = seenCty || h.Country == in.Country
		sumLog += math.Log1p(h.Amount)
		lat, lon := h.Latitude*math.Pi/180, h.Longitude*math.Pi/180
		hx += math.Cos(lat) * math.Cos(lon)
		hy += math.Cos(lat) * math.Sin(lon)
		hz += math.Sin(lat)
		located++
		last = &hist[i]
	}
	if n := len(hist); n > 0 {
		out[featurespec.FraudTimeSinceLastTransaction] = math.Min(in.Time.Sub(last.Time).Seconds(), featurespec.MaxGapSeconds)
		if n >= 2 {
			mean := sumLog / float64(n)
			var ss float64
			for _, h := range hist {
				ss += (math.Log1p(h.Amount) - mean) * (math.Log1p(h.Amount) - mean)
			}
			sd := math.Max(math.Sqrt(ss/float64(n-1)), featurespec.ZScoreSDFloor)
			out[featurespec.FraudAmountZScore] = math.Max(-50, math.Min(50, (math.Log1p(in.Amount)-mean)/sd))
		}
		// Usual location: direction of the summed unit vectors.
		norm := math.Sqrt(hx*hx + hy*hy + hz*hz)
		clat, clon := math.Asin(hz/norm)*180/math.Pi, math.Atan2(hy, hx)*180/math.Pi
		d := haversine(in.Latitude, in.Longitude, clat, clon)
		out[featurespec.FraudLocationScore] = 1 - math.Exp(-d/featurespec.LocationScaleKm)
		dt := math.Max(in.Time.Sub(last.Time).Hours(), 1.0/60)
		out[featurespec.FraudGeoVelocityKmh] = math.Min(haversine(in.Latitude, in.Longitude, last.Latitude, last.Longitude)/dt, featurespec.MaxVelocityKmh)
	}
	out[featurespec.FraudDeviceRiskScore] = 1 / (1 + float64(devUses))
	out[featurespec.FraudDistinctMerchants24h] = float64(len(merchants))
	out[featurespec.FraudDistinctDevices24h] = float64(len(devices))
	out[featurespec.FraudHourOfDay] = float64(in.Time.UTC().Hour())
	out[featurespec.FraudIsNewDevice] = b2f(devUses == 0)
	out[featurespec.FraudIsNewMerchant] = b2f(!seenMer)
	out[featurespec.FraudIsNewCountry] = b2f(!seenCty)
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const r = math.Pi / 180
	dlat, dlon := (lat2-lat1)*r, (lon2-lon1)*r
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*r)*math.Cos(lat2*r)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * 6371.0088 * math.Asin(math.Sqrt(a))
}

// randomHistory generates an in-order transaction sequence with bursts,
// small pools of merchants/devices/countries (below the caps) and jumps.
func randomHistory(rng *rand.Rand, n int) []featurespec.Input {
	cities := [][2]float64{{52.52, 13.405}, {48.8566, 2.3522}, {40.7128, -74.006}, {-33.8688, 151.2093}, {35.6762, 139.6503}}
	countries := []string{"DE", "FR", "US", "AU", "JP"}
	tm := t0
	out := make([]featurespec.Input, n)
	for i := range out {
		switch rng.IntN(4) {
		case 0:
			tm = tm.Add(time.Duration(rng.Int64N(int64(90 * time.Second))))
		case 1:
			tm = tm.Add(time.Duration(rng.Int64N(int64(2 * time.Hour))))
		default:
			tm = tm.Add(time.Duration(rng.Int64N(int64(30 * time.Hour))))
		}
		c := rng.IntN(len(cities))
		if rng.IntN(4) > 0 {
			c = 0
		}
		out[i] = featurespec.Input{
			Amount:     math.Round(math.Exp(rng.NormFloat64()+3)*100) / 100,
			Time:       tm,
			Latitude:   cities[c][0] + rng.Float64()*0.1,
			Longitude:  cities[c][1] + rng.Float64()*0.1,
			Country:    countries[c],
			MerchantID: fmt.Sprintf("m%d", rng.IntN(30)),
			DeviceID:   fmt.Sprintf("d%d", rng.IntN(6)),
		}
	}
	return out
}

// TestMatchesReference is the property test: incremental Compute-then-Apply
// equals (1) a state rebuilt from scratch by replaying the prefix, (2) a
// state round-tripped through the binary and JSON encodings, and (3) the
// brute-force reference over the raw history.
func TestMatchesReference(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			hist := randomHistory(rng, 150)
			s := &featurespec.AccountState{}
			got := make([]float64, featurespec.FraudLen)
			again := make([]float64, featurespec.FraudLen)
			names := featurespec.Fraud().Names()
			for i, in := range hist {
				if err := featurespec.Compute(s, in, got); err != nil {
					t.Fatal(err)
				}
				want := reference(hist[:i], in)
				for j := range got {
					tol := 1e-9 * math.Max(1, math.Abs(want[j]))
					if j == featurespec.FraudGeoVelocityKmh || j == featurespec.FraudLocationScore {
						tol = 1e-6 * math.Max(1, math.Abs(want[j]))
					}
					if math.Abs(got[j]-want[j]) > tol {
						t.Fatalf("tx %d %s = %v, reference %v", i, names[j], got[j], want[j])
					}
				}
				if err := featurespec.Fraud().CheckVector(got); err != nil {
					t.Fatalf("tx %d: %v", i, err)
				}
				// Rebuild from scratch and through the encodings.
				if i%25 == 0 {
					rebuilt := &featurespec.AccountState{}
					for _, h := range hist[:i] {
						if err := featurespec.Apply(rebuilt, h); err != nil {
							t.Fatal(err)
						}
					}
					b1, _ := s.MarshalBinary()
					b2, _ := rebuilt.MarshalBinary()
					if !bytes.Equal(b1, b2) {
						t.Fatalf("tx %d: incremental and rebuilt state encode differently", i)
					}
					dec, err := featurespec.DecodeAccountState(b1)
					if err != nil {
						t.Fatalf("decode: %v", err)
					}
					js, err := json.Marshal(s)
					if err != nil {
						t.Fatal(err)
					}
					var fromJSON featurespec.AccountState
					if err := json.Unmarshal(js, &fromJSON); err != nil {
						t.Fatal(err)
					}
					for _, st := range []*featurespec.AccountState{rebuilt, dec, &fromJSON} {
						if err := featurespec.Compute(st, in, again); err != nil {
							t.Fatal(err)
						}
						for j := range got {
							if got[j] != again[j] {
								t.Fatalf("tx %d %s: %v vs %v after rebuild/decode", i, names[j], got[j], again[j])
							}
						}
					}
				}
				if err := featurespec.Apply(s, in); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestOutOfOrderAndCapsKeepStateValid(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	s := &featurespec.AccountState{}
	out := make([]float64, featurespec.FraudLen)
	tm := t0
	for i := range 5000 {
		tm = tm.Add(time.Duration(rng.Int64N(int64(5 * time.Minute))))
		at := tm.Add(-time.Duration(rng.Int64N(int64(30 * time.Hour)))) // up to 30h late
		in := featurespec.Input{Amount: rng.Float64() * 50, Time: at, MerchantID: fmt.Sprint("m", i), DeviceID: fmt.Sprint("d", i%40), Country: fmt.Sprint("C", i%30),
			Latitude: rng.Float64()*180 - 90, Longitude: rng.Float64()*360 - 180}
		if err := featurespec.Step(s, in, out); err != nil {
			t.Fatal(err)
		}
		if err := featurespec.Fraud().CheckVector(out); err != nil {
			t.Fatalf("tx %d: %v", i, err)
		}
	}
	if len(s.Merchants) != featurespec.MaxMerchants || len(s.Devices) != featurespec.MaxDevices || len(s.Countries) != featurespec.MaxCountries {
		t.Errorf("sets not capped: %d %d %d", len(s.Merchants), len(s.Devices), len(s.Countries))
	}
	if len(s.Minutes) > featurespec.DayMinutes {
		t.Errorf("%d minute buckets", len(s.Minutes))
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := featurespec.DecodeAccountState(b); err != nil {
		t.Fatalf("state after out-of-order input does not decode: %v", err)
	}
	t.Logf("state after 5000 tx: %d buckets, %d bytes", len(s.Minutes), len(b))
}

func TestApplyRejectsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   featurespec.Input
	}{
		{"nan amount", featurespec.Input{Amount: math.NaN(), Time: t0}},
		{"negative amount", featurespec.Input{Amount: -1, Time: t0}},
		{"zero time", featurespec.Input{Amount: 1}},
		{"latitude", featurespec.Input{Amount: 1, Time: t0, Latitude: 91}},
		{"reputation", featurespec.Input{Amount: 1, Time: t0, DeviceReputation: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &featurespec.AccountState{}
			if err := featurespec.Apply(s, tt.in); err == nil {
				t.Error("Apply accepted invalid input")
			}
			if s.TxCount != 0 {
				t.Error("Apply changed the state on invalid input")
			}
		})
	}
}

func TestComputeAllocations(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	hist := randomHistory(rng, 300)
	s := &featurespec.AccountState{}
	for _, in := range hist[:299] {
		_ = featurespec.Apply(s, in)
	}
	out := make([]float64, featurespec.FraudLen)
	in := hist[299]
	if n := testing.AllocsPerRun(100, func() { _ = featurespec.Compute(s, in, out) }); n != 0 {
		t.Errorf("Compute allocates %v times", n)
	}
}

func benchState(b *testing.B) (*featurespec.AccountState, []featurespec.Input) {
	rng := rand.New(rand.NewPCG(5, 6))
	hist := randomHistory(rng, 4000)
	// Compress into a busy account: 4000 tx over ~3 days.
	for i := range hist {
		hist[i].Time = t0.Add(time.Duration(i) * time.Minute)
	}
	s := &featurespec.AccountState{}
	for _, in := range hist[:2000] {
		if err := featurespec.Apply(s, in); err != nil {
			b.Fatal(err)
		}
	}
	return s, hist[2000:]
}

func BenchmarkCompute(b *testing.B) {
	s, next := benchState(b)
	out := make([]float64, featurespec.FraudLen)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = featurespec.Compute(s, next[i%len(next)], out)
		i++
	}
	b.ReportMetric(float64(len(s.Minutes)), "buckets")
}

func BenchmarkComputeTypical(b *testing.B) {
	// A typical account: a few transactions a day.
	s := &featurespec.AccountState{}
	rng := rand.New(rand.NewPCG(8, 9))
	hist := randomHistory(rng, 200)
	for _, in := range hist[:199] {
		_ = featurespec.Apply(s, in)
	}
	out := make([]float64, featurespec.FraudLen)
	b.ReportAllocs()
	for b.Loop() {
		_ = featurespec.Compute(s, hist[199], out)
	}
}

func BenchmarkApply(b *testing.B) {
	s, next := benchState(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		in := next[i%len(next)]
		in.Time = t0.Add(time.Duration(2000+i) * time.Minute)
		_ = featurespec.Apply(s, in)
		i++
	}
}

func BenchmarkMarshalBinary(b *testing.B) {
	s, _ := benchState(b)
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.AppendBinary(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

func BenchmarkUnmarshalBinary(b *testing.B) {
	s, _ := benchState(b)
	data, _ := s.MarshalBinary()
	var d featurespec.AccountState
	b.ReportAllocs()
	for b.Loop() {
		if err := d.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
}
