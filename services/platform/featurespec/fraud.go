package featurespec

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Positions of the fraud features in the vector (spec fraud-v1).
const (
	FraudAmount = iota
	FraudLocationScore
	FraudDeviceRiskScore
	FraudTimeSinceLastTransaction
	FraudTxCount1h
	FraudTxCount24h
	FraudAmountSum1h
	FraudAmountSum24h
	FraudAmountZScore
	FraudDistinctMerchants24h
	FraudDistinctDevices24h
	FraudGeoVelocityKmh
	FraudHourOfDay
	FraudIsNewDevice
	FraudIsNewMerchant
	FraudIsNewCountry
	// FraudLen is the length of the fraud feature vector.
	FraudLen
)

// Limits of the fraud computation. Changing any of them changes feature
// semantics and requires a new spec version.
const (
	// MaxGapSeconds caps time_since_last_transaction (30 days); it is also
	// the value for an account without history.
	MaxGapSeconds = 30 * 24 * 3600
	// LocationScaleKm is the e-folding distance of location_score.
	LocationScaleKm = 1000.0
	// MaxVelocityKmh caps geo_velocity_kmh.
	MaxVelocityKmh = 20000.0
	// MinVelocityInterval is the smallest time used as the denominator of
	// geo_velocity_kmh, so that two transactions in the same second do not
	// divide by zero.
	MinVelocityInterval = time.Minute
	// ZScoreSDFloor is the smallest standard deviation (of log1p(amount))
	// used by amount_zscore.
	ZScoreSDFloor = 0.05
	// MaxZScore caps |amount_zscore|.
	MaxZScore = 50.0
	// MaxAmount is the largest valid amount.
	MaxAmount = 1e7
	// earthRadiusKm is the mean Earth radius.
	earthRadiusKm = 6371.0088
)

// Fraud returns the fraud-detection spec (binary classification), version 1.
func Fraud() Spec {
	return Spec{
		Name:    "fraud",
		Version: 1,
		Task:    TaskBinary,
		Features: []Feature{
			FraudAmount: {Name: "amount", Type: TypeFloat, Min: 0, Max: MaxAmount,
				Description: "transaction amount in its currency"},
			FraudLocationScore: {Name: "location_score", Type: TypeFloat, Min: 0, Max: 1,
				Description: "1-exp(-d/1000 km), d the great-circle distance from the account's usual location (centroid of its located transactions); 0 without location or history"},
			FraudDeviceRiskScore: {Name: "device_risk_score", Type: TypeFloat, Min: 0, Max: 1,
				Description: "1-(1-novelty)*(1-reputation); novelty 1/(1+prior uses of the device by the account), reputation the optional external device score in [0,1]"},
			FraudTimeSinceLastTransaction: {Name: "time_since_last_transaction", Type: TypeFloat, Min: 0, Max: MaxGapSeconds,
				Description: "seconds since the account's latest previous transaction, capped at 30 days (also the value without history)"},
			FraudTxCount1h: {Name: "tx_count_1h", Type: TypeInt, Min: 0, Max: 1e9,
				Description: "previous transactions of the account in the 60 event-minutes ending with this transaction's minute"},
			FraudTxCount24h: {Name: "tx_count_24h", Type: TypeInt, Min: 0, Max: 1e9,
				Description: "previous transactions of the account in the 1440 event-minutes ending with this transaction's minute"},
			FraudAmountSum1h: {Name: "amount_sum_1h", Type: TypeFloat, Min: 0, Max: 1e15,
				Description: "sum of amounts of the transactions counted by tx_count_1h"},
			FraudAmountSum24h: {Name: "amount_sum_24h", Type: TypeFloat, Min: 0, Max: 1e15,
				Description: "sum of amounts of the transactions counted by tx_count_24h"},
			FraudAmountZScore: {Name: "amount_zscore", Type: TypeFloat, Min: -MaxZScore, Max: MaxZScore,
				Description: "(log1p(amount)-mean)/sd over the account's previous log1p(amounts), sd floored at 0.05, clipped to +-50; 0 with fewer than 2 previous transactions"},
			FraudDistinctMerchants24h: {Name: "distinct_merchants_24h", Type: TypeInt, Min: 0, Max: MaxMerchants,
				Description: "distinct merchants among previous transactions in the last 1440 event-minutes (saturates at 64)"},
			FraudDistinctDevices24h: {Name: "distinct_devices_24h", Type: TypeInt, Min: 0, Max: MaxDevices,
				Description: "distinct devices among previous transactions in the last 1440 event-minutes (saturates at 16)"},
			FraudGeoVelocityKmh: {Name: "geo_velocity_kmh", Type: TypeFloat, Min: 0, Max: MaxVelocityKmh,
				Description: "great-circle distance from the previous located transaction divided by the elapsed time (at least 1 minute), km/h, capped at 20000; 0 without both locations"},
			FraudHourOfDay: {Name: "hour_of_day", Type: TypeInt, Min: 0, Max: 23,
				Description: "UTC hour of the event time"},
			FraudIsNewDevice: {Name: "is_new_device", Type: TypeBool, Min: 0, Max: 1,
				Description: "1 if the device is not among the account's remembered devices (or is empty)"},
			FraudIsNewMerchant: {Name: "is_new_merchant", Type: TypeBool, Min: 0, Max: 1,
				Description: "1 if the merchant is not among the account's remembered merchants (or is empty)"},
			FraudIsNewCountry: {Name: "is_new_country", Type: TypeBool, Min: 0, Max: 1,
				Description: "1 if the country is not among the account's remembered countries (or is empty)"},
		},
	}
}

// Input is one transaction as the fraud computation sees it. It is
// independent of protobuf so training and serving code share it.
type Input struct {
	// Amount in the transaction's currency, >= 0.
	Amount float64
	// Time is the event time.
	Time time.Time
	// Latitude and Longitude in degrees. (0, 0) means "no location".
	Latitude  float64
	Longitude float64
	// Country is an ISO 3166 code; empty means unknown.
	Country string
	// MerchantID, DeviceID identify the counterparty and the device; empty
	// means unknown (treated as new, never remembered).
	MerchantID string
	DeviceID   string
	// DeviceReputation is an optional external risk score of the device in
	// [0, 1] (0 when no reputation source is wired). Serving and training
	// must use the same source.
	DeviceReputation float64
}

// Validate reports whether in can be used by Compute and Apply.
func (in Input) Validate() error {
	var errs []error
	if math.IsNaN(in.Amount) || in.Amount < 0 || in.Amount > MaxAmount {
		errs = append(errs, fmt.Errorf("amount %v outside [0, %v]", in.Amount, float64(MaxAmount)))
	}
	if in.Time.IsZero() {
		errs = append(errs, errors.New("event time is zero"))
	}
	if math.IsNaN(in.Latitude) || in.Latitude < -90 || in.Latitude > 90 {
		errs = append(errs, fmt.Errorf("latitude %v outside [-90, 90]", in.Latitude))
	}
	if math.IsNaN(in.Longitude) || in.Longitude < -180 || in.Longitude > 180 {
		errs = append(errs, fmt.Errorf("longitude %v outside [-180, 180]", in.Longitude))
	}
	if math.IsNaN(in.DeviceReputation) || in.DeviceReputation < 0 || in.DeviceReputation > 1 {
		errs = append(errs, fmt.Errorf("device reputation %v outside [0, 1]", in.DeviceReputation))
	}
	return errors.Join(errs...)
}

func (in Input) hasLocation() bool { return in.Latitude != 0 || in.Longitude != 0 }

// Compute writes the fraud feature vector of transaction in, given the
// account's state before it, into out (len(out) must be FraudLen). It reads
// s and never modifies it, so it is safe for concurrent use with other
// readers; it does not allocate. A nil s means an account without history.
// in must be valid (see Input.Validate).
func Compute(s *AccountState, in Input, out []float64) error {
	if len(out) != FraudLen {
		return fmt.Errorf("output has %d slots, fraud spec needs %d", len(out), FraudLen)
	}
	if s == nil {
		s = &AccountState{}
	}
	t := in.Time.UnixNano()
	minute := unixMinute(t)
	amount := in.Amount

	out[FraudAmount] = amount

	// Location relative to the account's usual location.
	hasLoc := in.hasLocation()
	var x, y, z float64
	if hasLoc {
		x, y, z = unitVector(in.Latitude, in.Longitude)
	}
	out[FraudLocationScore] = 0
	if hasLoc && s.LocCount > 0 {
		d := angleTo(x, y, z, s.HomeX, s.HomeY, s.HomeZ) * earthRadiusKm
		out[FraudLocationScore] = clamp(1-math.Exp(-d/LocationScaleKm), 0, 1)
	}

	devKey, merKey, ctyKey := keyOf(in.DeviceID), keyOf(in.MerchantID), keyOf(in.Country)
	devUses := usesOf(s.Devices, devKey)
	novelty := 1 / (1 + float64(devUses))
	rep := clamp(in.DeviceReputation, 0, 1)
	// 1-(1-novelty)*(1-rep), written so that rep == 0 yields novelty exactly.
	out[FraudDeviceRiskScore] = clamp(novelty+rep*(1-novelty), 0, 1)

	// Time since the latest previous transaction.
	gap := float64(MaxGapSeconds)
	if s.TxCount > 0 {
		gap = math.Min(math.Max(float64(t-s.LastTime)/1e9, 0), MaxGapSeconds)
	}
	out[FraudTimeSinceLastTransaction] = gap

	// Windows over minute buckets, newest last.
	var c1, c24 uint64
	var s1, s24 float64
	for i := len(s.Minutes) - 1; i >= 0; i-- {
		b := &s.Minutes[i]
		if b.Minute > minute {
			continue // out-of-order: later than this transaction
		}
		if b.Minute <= minute-DayMinutes {
			break
		}
		c24 += uint64(b.Count)
		s24 += b.Sum
		if b.Minute > minute-HourMinutes {
			c1 += uint64(b.Count)
			s1 += b.Sum
		}
	}
	out[FraudTxCount1h] = float64(c1)
	out[FraudTxCount24h] = float64(c24)
	out[FraudAmountSum1h] = s1
	out[FraudAmountSum24h] = s24

	// Amount against the account's running distribution of log1p(amount).
	z0 := 0.0
	if s.TxCount >= 2 {
		sd := math.Max(math.Sqrt(s.LogAmountM2/float64(s.TxCount-1)), ZScoreSDFloor)
		z0 = clamp((math.Log1p(amount)-s.LogAmountMean)/sd, -MaxZScore, MaxZScore)
	}
	out[FraudAmountZScore] = z0

	out[FraudDistinctMerchants24h] = float64(countSince(s.Merchants, minute-DayMinutes))
	out[FraudDistinctDevices24h] = float64(countSince(s.Devices, minute-DayMinutes))

	// Velocity from the previous located transaction.
	v := 0.0
	if hasLoc && s.LastHasLoc {
		d := angleTo(x, y, z, s.LastX, s.LastY, s.LastZ) * earthRadiusKm
		dt := time.Duration(t - s.LastLocTime)
		if dt < MinVelocityInterval {
			dt = MinVelocityInterval
		}
		v = math.Min(d/dt.Hours(), MaxVelocityKmh)
	}
	out[FraudGeoVelocityKmh] = v

	out[FraudHourOfDay] = float64(hourOfDay(t))
	out[FraudIsNewDevice] = b2f(devUses == 0)
	out[FraudIsNewMerchant] = b2f(usesOf(s.Merchants, merKey) == 0)
	out[FraudIsNewCountry] = b2f(usesOf(s.Countries, ctyKey) == 0)
	return nil
}

// Apply updates s with transaction in. It is deterministic: the same
// sequence of inputs yields the same state (and the same encoding). It does
// not deduplicate: exactly-once per transaction id is the store's job.
// It returns an error, leaving s unchanged, when in is invalid.
func Apply(s *AccountState, in Input) error {
	if err := in.Validate(); err != nil {
		return fmt.Errorf("apply transaction to account state: %w", err)
	}
	t := in.Time.UnixNano()
	minute := unixMinute(t)

	s.TxCount++
	if s.TxCount == 1 || t >= s.LastTime {
		s.LastTime = t
	}

	// Welford on log1p(amount).
	la := math.Log1p(in.Amount)
	d := la - s.LogAmountMean
	s.LogAmountMean += d / float64(s.TxCount)
	s.LogAmountM2 += d * (la - s.LogAmountMean)

	if in.hasLocation() {
		x, y, z := unitVector(in.Latitude, in.Longitude)
		s.LocCount++
		n := float64(s.LocCount)
		s.HomeX += (x - s.HomeX) / n
		s.HomeY += (y - s.HomeY) / n
		s.HomeZ += (z - s.HomeZ) / n
		if !s.LastHasLoc || t >= s.LastLocTime {
			s.LastHasLoc = true
			s.LastLocTime = t
			s.LastX, s.LastY, s.LastZ = x, y, z
		}
	}

	s.addToMinute(minute, in.Amount)
	s.Merchants = touch(s.Merchants, keyOf(in.MerchantID), minute, MaxMerchants)
	s.Devices = touch(s.Devices, keyOf(in.DeviceID), minute, MaxDevices)
	s.Countries = touch(s.Countries, keyOf(in.Country), minute, MaxCountries)
	return nil
}

// Step computes the features of in into out and then applies in to s: the
// serving path of a new transaction.
func Step(s *AccountState, in Input, out []float64) error {
	if err := in.Validate(); err != nil {
		return fmt.Errorf("step account state: %w", err)
	}
	if err := Compute(s, in, out); err != nil {
		return err
	}
	return Apply(s, in)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func clamp(v, lo, hi float64) float64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// unitVector converts degrees to a point on the unit sphere.
func unitVector(lat, lon float64) (x, y, z float64) {
	const rad = math.Pi / 180
	sl, cl := math.Sincos(lat * rad)
	so, co := math.Sincos(lon * rad)
	return cl * co, cl * so, sl
}

// angleTo is the angle in radians between unit vector a and the direction
// of b (b need not be normalised: a centroid of unit vectors is shorter).
// It uses atan2(|a x b|, a . b), accurate for small and large angles.
func angleTo(ax, ay, az, bx, by, bz float64) float64 {
	cx := ay*bz - az*by
	cy := az*bx - ax*bz
	cz := ax*by - ay*bx
	cross := math.Sqrt(cx*cx + cy*cy + cz*cz)
	dot := ax*bx + ay*by + az*bz
	if cross == 0 && dot == 0 {
		return 0 // degenerate centroid (antipodal points cancel)
	}
	return math.Atan2(cross, dot)
}

// unixMinute is floor(t / 1 minute) for unix nanoseconds t.
func unixMinute(t int64) int64 {
	const m = int64(time.Minute)
	q := t / m
	if t%m < 0 {
		q--
	}
	return q
}

func hourOfDay(t int64) int {
	const day, hour = int64(24 * time.Hour), int64(time.Hour)
	r := t % day
	if r < 0 {
		r += day
	}
	return int(r / hour)
}

// keyOf is the 64-bit FNV-1a hash of s; 0 (reserved) for the empty string.
func keyOf(s string) uint64 {
	if s == "" {
		return 0
	}
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	if h == 0 {
		h = 1
	}
	return h
}
