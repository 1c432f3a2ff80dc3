package sim

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Pattern is a fraud pattern.
type Pattern uint8

// Fraud patterns. PatternNone marks legitimate transactions.
const (
	PatternNone Pattern = iota
	// PatternAccountTakeover: a burst of 3-8 high amounts within minutes,
	// from a device of the fraud pool, in a foreign country, on the web.
	PatternAccountTakeover
	// PatternCardTesting: 5-15 tiny amounts at many online merchants within
	// minutes from one fraud-pool device.
	PatternCardTesting
	// PatternGeoJump: 1-3 card-present transactions in a city far from the
	// account's last location (a cloned card), with a skimmer device.
	PatternGeoJump
	// PatternRiskyDevice: 1-4 elevated amounts from a fraud-pool device near
	// the account's home (a proxy), at high-risk merchants.
	PatternRiskyDevice
	// PatternBustOut: 4-10 large purchases at high-risk merchants within
	// hours from the account's own device and home. Disabled by default;
	// a drift can enable it as a "new fraud pattern".
	PatternBustOut
	numPatterns
)

var patternNames = [numPatterns]string{"none", "account_takeover", "card_testing", "geo_jump", "risky_device", "bust_out"}

// String returns the pattern's snake-case name.
func (p Pattern) String() string {
	if p < numPatterns {
		return patternNames[p]
	}
	return fmt.Sprintf("pattern(%d)", uint8(p))
}

// ParsePattern parses a pattern name as returned by String.
func ParsePattern(s string) (Pattern, error) {
	for i, n := range patternNames {
		if n == s {
			return Pattern(i), nil
		}
	}
	return 0, fmt.Errorf("unknown fraud pattern %q", s)
}

// Patterns lists the fraud patterns (without PatternNone).
func Patterns() []Pattern {
	return []Pattern{PatternAccountTakeover, PatternCardTesting, PatternGeoJump, PatternRiskyDevice, PatternBustOut}
}

// Config configures the transaction simulator. The zero value of every
// field means its default (see DefaultConfig), so Config{Seed: 1} works.
type Config struct {
	// Seed makes the stream reproducible: same Config, same stream.
	Seed uint64
	// StreamSeed, when not 0, seeds the transactions apart from the world: the same Seed
	// gives the same bank (accounts, merchants, devices, fraudster devices) and a different
	// StreamSeed other transactions of it, e.g. a month of history a model learns from and
	// the later traffic it serves. With StreamSeed 0 the same Seed replays the same
	// transactions whatever Start is (shifted in time).
	StreamSeed uint64
	// Start is the sim time at which the stream (after warm-up) begins.
	// Default: 2026-01-01T00:00:00Z.
	Start time.Time
	// Warmup runs the simulation from Start-Warmup. Warm-up transactions
	// are part of the stream (the feature store must see them); datasets
	// omit them as rows but use them to build account state. Default: 0.
	Warmup time.Duration
	// Accounts, Merchants: population sizes. Defaults: 10000, 2000.
	Accounts  int
	Merchants int
	// TxPerAccountPerDay is the mean legitimate rate per account (accounts
	// vary around it). Default: 3.
	TxPerAccountPerDay float64
	// FraudRate is the expected fraction of fraudulent transactions.
	// Default: 0.015. Use NoFraud for 0.
	FraudRate float64
	// NoFraud disables fraud entirely.
	NoFraud bool
	// PatternWeights weights fraud episodes by pattern (indexed by
	// Pattern). Default: ATO 0.35, card testing 0.2, geo jump 0.25, risky
	// device 0.2, bust-out 0.
	PatternWeights [numPatterns]float64
	// LabelDelayMin and LabelDelayMax bound the delay of fraud labels, like
	// chargebacks: log-uniform in between, so most arrive within days and
	// some after weeks. Legitimate transactions (and fraud never reported)
	// are labelled 0 at LabelDelayMax, when the chargeback window closes.
	// Defaults: 48h and 1008h (six weeks). LabelDelayMin must be > 0. Load
	// tests compress them (loadgen -label-delay).
	LabelDelayMin time.Duration
	LabelDelayMax time.Duration
	// SkipLegitLabels emits positive labels (reported fraud and friendly
	// fraud) only.
	SkipLegitLabels bool
	// NewDeviceProb is the probability that a legitimate transaction uses
	// a brand-new device of its owner. Default: 0.01.
	NewDeviceProb float64
	// TravelProb is the probability per legitimate transaction that the
	// owner starts a 2-10 day trip to another city (a foreign country,
	// new merchants and a jump in location). Default: 0.004.
	TravelProb float64
	// SplurgeProb is the probability that a legitimate transaction is a
	// large purchase (several times the owner's usual amount) at an
	// electronics, jewelry, gift card, digital goods or travel merchant,
	// often one the owner never used: what fraud looks like. Default: 0.015.
	SplurgeProb float64
	// SpreeProb is the probability that a legitimate transaction starts a
	// shopping spree: 2-6 more purchases within minutes, at new online
	// merchants. Default: 0.01.
	SpreeProb float64
	// MimicProb is the probability that a fraud episode imitates its
	// victim: the victim's own device (malware, a hijacked session or a
	// cloned card), the victim's home area, amounts and merchants like the
	// victim's, and slower pacing. Such fraud is hard to tell from the
	// account's own behaviour. Default: 0.25. Use NoMimic for 0.
	MimicProb float64
	// NoMimic disables mimicking fraud.
	NoMimic bool
	// UnreportedProb is the probability that a fraudulent transaction is
	// never reported (the cardholder does not notice it): labelled 0.
	// Default: 0.08. Use NoLabelNoise for 0 (with FriendlyFraudProb).
	UnreportedProb float64
	// FriendlyFraudProb is the probability that a legitimate online
	// transaction is disputed by its own cardholder (friendly fraud):
	// labelled 1, late in the chargeback window. Default: 0.0015.
	FriendlyFraudProb float64
	// NoLabelNoise disables unreported and friendly fraud: labels equal
	// the ground truth.
	NoLabelNoise bool
	// Scenario names a drift scenario (see Scenarios) that starts at
	// ScenarioAt; empty means none. Its drift joins Drifts.
	Scenario string
	// ScenarioAt is the sim time at which Scenario starts. Default: Start.
	ScenarioAt time.Time
	// Drifts are applied in order of At.
	Drifts []Drift
}

// Drift changes the simulation from sim time At on. Zero fields leave the
// corresponding setting unchanged. Drifts are cumulative.
type Drift struct {
	// At is the sim time at which the drift starts.
	At time.Time
	// AmountScale multiplies legitimate amounts (e.g. 2 doubles them).
	AmountScale float64
	// LocationShiftKm moves every legitimate transaction this many km east
	// of where it would have been.
	LocationShiftKm float64
	// NewDeviceProb replaces Config.NewDeviceProb (device churn raises
	// device risk).
	NewDeviceProb float64
	// FraudRateScale multiplies the fraud rate.
	FraudRateScale float64
	// PatternWeights, when any entry is positive, replaces the pattern
	// weights (e.g. to start PatternBustOut).
	PatternWeights [numPatterns]float64
	// TravelProbScale multiplies the probability of starting a trip (more
	// transactions abroad: a shift of the country mix).
	TravelProbScale float64
	// PeakHourShift moves every account's usual hours by this many hours
	// (a shift of the time of day).
	PeakHourShift float64
}

// insertDrift inserts d into ds (ordered by At) after the drifts at the same time.
func insertDrift(ds []Drift, d Drift) []Drift {
	i := len(ds)
	for i > 0 && ds[i-1].At.After(d.At) {
		i--
	}
	return slices.Insert(ds, i, d)
}

// DefaultConfig returns the defaults used for zero fields.
func DefaultConfig() Config {
	c := Config{
		Start:              time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Accounts:           10000,
		Merchants:          2000,
		TxPerAccountPerDay: 3,
		FraudRate:          0.015,
		LabelDelayMin:      48 * time.Hour,
		LabelDelayMax:      6 * 7 * 24 * time.Hour,
		NewDeviceProb:      0.01,
		TravelProb:         0.004,
		SplurgeProb:        0.015,
		SpreeProb:          0.01,
		MimicProb:          0.25,
		UnreportedProb:     0.08,
		FriendlyFraudProb:  0.0015,
	}
	c.PatternWeights[PatternAccountTakeover] = 0.35
	c.PatternWeights[PatternCardTesting] = 0.2
	c.PatternWeights[PatternGeoJump] = 0.25
	c.PatternWeights[PatternRiskyDevice] = 0.2
	return c
}

// withDefaults fills zero fields and validates.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Start.IsZero() {
		c.Start = d.Start
	}
	if c.Accounts == 0 {
		c.Accounts = d.Accounts
	}
	if c.Merchants == 0 {
		c.Merchants = d.Merchants
	}
	if c.TxPerAccountPerDay == 0 {
		c.TxPerAccountPerDay = d.TxPerAccountPerDay
	}
	if c.FraudRate == 0 {
		c.FraudRate = d.FraudRate
	}
	if c.LabelDelayMin == 0 {
		c.LabelDelayMin = d.LabelDelayMin
	}
	if c.LabelDelayMax == 0 {
		c.LabelDelayMax = max(d.LabelDelayMax, c.LabelDelayMin)
	}
	if c.NewDeviceProb == 0 {
		c.NewDeviceProb = d.NewDeviceProb
	}
	if c.TravelProb == 0 {
		c.TravelProb = d.TravelProb
	}
	if c.SplurgeProb == 0 {
		c.SplurgeProb = d.SplurgeProb
	}
	if c.SpreeProb == 0 {
		c.SpreeProb = d.SpreeProb
	}
	if c.MimicProb == 0 {
		c.MimicProb = d.MimicProb
	}
	if c.NoMimic {
		c.MimicProb = 0
	}
	if c.UnreportedProb == 0 {
		c.UnreportedProb = d.UnreportedProb
	}
	if c.FriendlyFraudProb == 0 {
		c.FriendlyFraudProb = d.FriendlyFraudProb
	}
	if c.NoLabelNoise {
		c.UnreportedProb, c.FriendlyFraudProb = 0, 0
	}
	var errs []error
	if c.Scenario != "" {
		if c.ScenarioAt.IsZero() {
			c.ScenarioAt = c.Start
		}
		dr, err := ScenarioDrift(c.Scenario, c.ScenarioAt)
		if err != nil {
			errs = append(errs, err)
		} else {
			c.Drifts = insertDrift(slices.Clone(c.Drifts), dr)
		}
	}
	if c.PatternWeights == [numPatterns]float64{} {
		c.PatternWeights = d.PatternWeights
	}
	if c.Accounts < 1 || c.Accounts > 1<<24 {
		errs = append(errs, fmt.Errorf("accounts %d outside [1, %d]", c.Accounts, 1<<24))
	}
	if c.Merchants < 10 {
		errs = append(errs, fmt.Errorf("merchants %d below 10", c.Merchants))
	}
	if c.TxPerAccountPerDay < 0 {
		errs = append(errs, fmt.Errorf("negative rate %v", c.TxPerAccountPerDay))
	}
	if c.FraudRate < 0 || c.FraudRate >= 0.5 {
		errs = append(errs, fmt.Errorf("fraud rate %v outside [0, 0.5)", c.FraudRate))
	}
	if c.LabelDelayMin <= 0 || c.LabelDelayMax < c.LabelDelayMin {
		errs = append(errs, fmt.Errorf("label delays [%v, %v] invalid: need 0 < min <= max", c.LabelDelayMin, c.LabelDelayMax))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("negative warm-up %v", c.Warmup))
	}
	for name, p := range map[string]float64{"new device": c.NewDeviceProb, "travel": c.TravelProb, "splurge": c.SplurgeProb,
		"spree": c.SpreeProb, "mimic": c.MimicProb, "unreported": c.UnreportedProb, "friendly fraud": c.FriendlyFraudProb} {
		if p < 0 || p > 1 {
			errs = append(errs, fmt.Errorf("%s probability %v outside [0, 1]", name, p))
		}
	}
	for _, w := range c.PatternWeights {
		if w < 0 {
			errs = append(errs, errors.New("negative pattern weight"))
		}
	}
	if c.PatternWeights[PatternNone] != 0 {
		errs = append(errs, errors.New("pattern weight of PatternNone must be 0"))
	}
	for i, dr := range c.Drifts {
		if dr.At.IsZero() {
			errs = append(errs, fmt.Errorf("drift %d has no time", i))
		}
		if i > 0 && dr.At.Before(c.Drifts[i-1].At) {
			errs = append(errs, fmt.Errorf("drift %d is before drift %d", i, i-1))
		}
		if dr.AmountScale < 0 || dr.FraudRateScale < 0 || dr.TravelProbScale < 0 || dr.NewDeviceProb < 0 || dr.NewDeviceProb > 1 {
			errs = append(errs, fmt.Errorf("drift %d has a negative scale or a probability outside [0, 1]", i))
		}
	}
	return c, errors.Join(errs...)
}
