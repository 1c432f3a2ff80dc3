package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Names of the drift scenarios, for Config.Scenario, SessionConfig.Scenario and the
// -drift flags of loadgen and simulate.
const (
	// ScenarioCovariate shifts the inputs, not the concept: legitimate amounts x1.6, six
	// times as many trips abroad (the country mix), usual hours six hours later (the time
	// of day); for sessions, cart values x1.6 and mostly mobile sessions.
	ScenarioCovariate = "covariate"
	// ScenarioNewPattern starts a fraud pattern models trained before it have never seen
	// (concept drift): bust-out fraud (PatternBustOut) becomes half of all fraud episodes
	// and the fraud rate rises by half; for sessions, the same features convert less
	// (purchase log-odds -0.8).
	ScenarioNewPattern = "new-pattern"
	// ScenarioSeason is a holiday rush: for sessions, more engaged customers (product views
	// x1.8), discounts on 60% of sessions, mostly mobile, more carts (log-odds +1.5) and carts
	// that are mostly checked out (log-odds +3: gifts with a deadline), so the share of
	// sessions that buy rises from about 5% to about half and a purchase model trained before
	// it underestimates them (its MSE rises above 0.1 until purchase histories catch up); for
	// transactions, amounts x1.3 and three times as many trips.
	ScenarioSeason = "season"
)

// Scenarios lists the drift scenario names.
func Scenarios() []string { return []string{ScenarioCovariate, ScenarioNewPattern, ScenarioSeason} }

func unknownScenario(name string) error {
	return fmt.Errorf("unknown drift scenario %q (one of %s)", name, strings.Join(Scenarios(), ", "))
}

// ScenarioDrift returns the transaction drift of the named scenario, starting at at.
func ScenarioDrift(name string, at time.Time) (Drift, error) {
	d := Drift{At: at}
	switch name {
	case ScenarioCovariate:
		d.AmountScale, d.TravelProbScale, d.PeakHourShift = 1.6, 6, 6
	case ScenarioNewPattern:
		d.PatternWeights = DefaultConfig().PatternWeights
		d.PatternWeights[PatternBustOut] = 1
		d.FraudRateScale = 1.5
	case ScenarioSeason:
		d.AmountScale, d.TravelProbScale = 1.3, 3
	default:
		return Drift{}, unknownScenario(name)
	}
	return d, nil
}

// SessionScenarioDrift returns the session drift of the named scenario, starting at at.
func SessionScenarioDrift(name string, at time.Time) (SessionDrift, error) {
	d := SessionDrift{At: at}
	switch name {
	case ScenarioCovariate:
		d.CartValueScale, d.MobileShare = 1.6, 0.85
	case ScenarioNewPattern:
		d.ConversionShift = -0.8
	case ScenarioSeason:
		d.EngagementScale, d.DiscountShare, d.MobileShare, d.ConversionShift, d.CartShift = 1.8, 0.6, 0.75, 3.0, 1.5
	default:
		return SessionDrift{}, unknownScenario(name)
	}
	return d, nil
}

// AddDrift adds d to a running simulation: it applies from the first event at or after
// d.At (at once when d.At has passed), after the drifts already applied. Load generators use
// it to switch a scenario on at a wall-clock moment (ScenarioDrift(name, last event time)).
func (s *Sim) AddDrift(d Drift) error {
	if d.At.IsZero() {
		return errors.New("drift has no time")
	}
	if d.AmountScale < 0 || d.FraudRateScale < 0 || d.TravelProbScale < 0 || d.NewDeviceProb < 0 || d.NewDeviceProb > 1 {
		return errors.New("drift has a negative scale or a probability outside [0, 1]")
	}
	i := len(s.cfg.Drifts)
	for i > s.nextDrift && s.cfg.Drifts[i-1].At.After(d.At) {
		i--
	}
	s.cfg.Drifts = slices.Insert(slices.Clone(s.cfg.Drifts), i, d)
	return nil
}

// AddDrift adds d to a running session simulation: it applies from the first session at or
// after d.At (at once when d.At has passed), after the drifts already applied. Load
// generators use it to switch a scenario on at a wall-clock moment
// (SessionScenarioDrift(name, last session time)).
func (s *Sessions) AddDrift(d SessionDrift) error {
	if d.At.IsZero() {
		return errors.New("session drift has no time")
	}
	if d.CartValueScale < 0 || d.EngagementScale < 0 || d.MobileShare < 0 || d.MobileShare > 1 || d.DiscountShare < 0 || d.DiscountShare > 1 {
		return errors.New("session drift has a negative scale or a share outside [0, 1]")
	}
	i := len(s.cfg.Drifts)
	for i > s.nextDrift && s.cfg.Drifts[i-1].At.After(d.At) {
		i--
	}
	s.cfg.Drifts = slices.Insert(slices.Clone(s.cfg.Drifts), i, d)
	return nil
}
