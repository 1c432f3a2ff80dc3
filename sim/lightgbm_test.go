package sim_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/sim"
)

// TestFraudRealisticDifficulty trains the fraud model as the trainer does (LightGBM, its
// default parameters, a 70/15/15 split by event time, early stopping on the validation
// part) on clean simulated traffic and checks that fraud is realistically hard: fraud
// mimicking its victims, legitimate customers who travel, change devices and splurge, and
// label noise (unreported fraud, friendly fraud) keep the holdout AUC within [0.90, 0.97].
func TestFraudRealisticDifficulty(t *testing.T) {
	t.Parallel()
	lib := openLightGBM(t)
	cfg := sim.Config{Seed: 2, Accounts: 5000, Warmup: 24 * time.Hour}
	d, err := sim.FraudDataset(cfg, 200000)
	if err != nil {
		t.Fatal(err)
	}
	train, valid, holdout := splitByTime(d)
	m := fit(t, lib, "binary", train, valid, labels)
	p := m.predict(t, holdout)
	got, truth := auc(p, holdout.Y), auc(p, holdout.Truth)
	labelRate, fraudRate := mean(d.Y), mean(d.Truth)
	var delays []time.Duration
	for i := range d.Rows() {
		if d.Y[i] == 1 {
			delays = append(delays, time.Duration(d.LabelTimes[i]-d.EventTimes[i]))
		}
	}
	slices.Sort(delays)
	median := delays[len(delays)/2]
	t.Logf("holdout AUC %.4f (against the ground truth %.4f), best iteration %d; chargeback rate %.4f, fraud rate %.4f; chargeback delay median %v, 90th percentile %v",
		got, truth, m.b.BestIteration(), labelRate, fraudRate, median.Round(time.Hour), delays[len(delays)*9/10].Round(time.Hour))
	if got < 0.90 || got > 0.97 {
		t.Errorf("holdout AUC %.4f outside [0.90, 0.97]", got)
	}
	for name, r := range map[string]float64{"chargeback (label) rate": labelRate, "fraud rate": fraudRate} {
		if r < 0.005 || r > 0.02 {
			t.Errorf("%s %.4f outside [0.005, 0.02]", name, r)
		}
	}
	if median < 2*24*time.Hour || median > 21*24*time.Hour {
		t.Errorf("median chargeback delay %v, want days to weeks", median)
	}
}

// rowsBetween returns the rows of d (in event-time order) with event times in [from, to).
func rowsBetween(d *sim.Dataset, from, to time.Time) *sim.Dataset {
	a, _ := slices.BinarySearch(d.EventTimes, from.UnixNano())
	b, _ := slices.BinarySearch(d.EventTimes, to.UnixNano())
	return slice(d, a, b)
}

// TestScenarioNewPattern checks the concept drift of the new-pattern scenario: a model
// trained before the switch loses at least 0.05 AUC on the traffic after it, and a model
// retrained on post-switch traffic recovers to within 0.02 of the pre-drift AUC.
func TestScenarioNewPattern(t *testing.T) {
	t.Parallel()
	lib := openLightGBM(t)
	at := start.Add(8 * 24 * time.Hour)
	cfg := sim.Config{Seed: 3, Accounts: 5000, Warmup: 24 * time.Hour, Scenario: sim.ScenarioNewPattern, ScenarioAt: at}
	d, err := sim.FraudDataset(cfg, 240000)
	if err != nil {
		t.Fatal(err)
	}
	pre := rowsBetween(d, start, at)
	post := rowsBetween(d, at, time.Unix(0, d.EventTimes[d.Rows()-1]+1))
	train, valid, holdout := splitByTime(pre)
	champion := fit(t, lib, "binary", train, valid, labels)
	before := auc(champion.predict(t, holdout), holdout.Y)

	ptrain, pvalid, pholdout := splitByTime(post)
	after := auc(champion.predict(t, pholdout), pholdout.Y)
	challenger := fit(t, lib, "binary", ptrain, pvalid, labels)
	retrained := auc(challenger.predict(t, pholdout), pholdout.Y)
	t.Logf("%d rows before the switch, %d after (fraud rate %.4f, then %.4f): AUC %.4f before, %.4f after (drop %.4f), retrained %.4f",
		pre.Rows(), post.Rows(), mean(pre.Truth), mean(post.Truth), before, after, before-after, retrained)
	if before-after < 0.05 {
		t.Errorf("AUC of the pre-switch model dropped by %.4f (%.4f -> %.4f), want >= 0.05", before-after, before, after)
	}
	if retrained < before-0.02 {
		t.Errorf("retrained AUC %.4f, want within 0.02 of the pre-drift %.4f", retrained, before)
	}
}

// TestScenarioSeason checks the season scenario of the purchase simulator: the MSE of a
// purchase model trained before the switch rises on the sessions after it.
func TestScenarioSeason(t *testing.T) {
	t.Parallel()
	lib := openLightGBM(t)
	at := start.Add(40 * time.Hour)
	d, err := sim.PurchaseDataset(sim.SessionConfig{Seed: 4, Scenario: sim.ScenarioSeason, ScenarioAt: at}, 240000)
	if err != nil {
		t.Fatal(err)
	}
	pre := rowsBetween(d, start, at)
	post := rowsBetween(d, at, time.Unix(0, d.EventTimes[d.Rows()-1]+1))
	train, valid, holdout := splitByTime(pre)
	m := fit(t, lib, "regression", train, valid, outcomes)
	before := mse(m.predict(t, holdout), holdout.Outcome)
	_, _, pholdout := splitByTime(post)
	after := mse(m.predict(t, pholdout), pholdout.Outcome)
	floor := mse(pholdout.Y, pholdout.Outcome) // the true probabilities' MSE after the switch
	t.Logf("%d sessions before, %d after: MSE %.4f before, %.4f after (Bayes floor after %.4f); purchase rate %.4f, then %.4f",
		pre.Rows(), post.Rows(), before, after, floor, mean(pre.Outcome), mean(post.Outcome))
	if after < before*1.15 || after-floor < 0.01 {
		t.Errorf("MSE %.4f before, %.4f after the switch (floor %.4f): want a rise of at least 15%% and 0.01 above the floor", before, after, floor)
	}
}

// TestScenarioCovariate checks that the covariate scenario shifts the inputs: amounts, the
// share of transactions far from home (the country mix) and the hour of day.
func TestScenarioCovariate(t *testing.T) {
	t.Parallel()
	at := start.Add(5 * 24 * time.Hour)
	d, err := sim.FraudDataset(sim.Config{Seed: 6, Accounts: 3000, Warmup: 24 * time.Hour, Scenario: sim.ScenarioCovariate, ScenarioAt: at}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	pre := rowsBetween(d, start.Add(2*24*time.Hour), at)
	post := rowsBetween(d, at.Add(24*time.Hour), time.Unix(0, d.EventTimes[d.Rows()-1]+1))
	stats := func(d *sim.Dataset) (logAmount, far, evening float64) {
		for i := range d.Rows() {
			r := d.Row(i)
			logAmount += math.Log(r[featurespec.FraudAmount])
			if r[featurespec.FraudLocationScore] > 0.5 {
				far++
			}
			if h := r[featurespec.FraudHourOfDay]; h >= 18 || h < 2 {
				evening++
			}
		}
		n := float64(d.Rows())
		return logAmount / n, far / n, evening / n
	}
	la, fa, ea := stats(pre)
	lb, fb, eb := stats(post)
	t.Logf("amount geometric mean x%.2f, far from home %.3f -> %.3f, evening share %.3f -> %.3f", math.Exp(lb-la), fa, fb, ea, eb)
	if math.Exp(lb-la) < 1.4 || fb < 2*fa || eb < ea+0.1 {
		t.Errorf("covariate scenario: amount x%.2f (want >= 1.4), far %.3f -> %.3f (want doubled), evening %.3f -> %.3f (want +0.1)",
			math.Exp(lb-la), fa, fb, ea, eb)
	}
}

func TestAddDriftMidRun(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.Config{Seed: 5, Accounts: 2000, NoMimic: true})
	var switched time.Time
	bustOut := 0
	for i := range 60000 {
		tx, _ := s.Next()
		if i == 20000 {
			switched = tx.EventTime
			d, err := sim.ScenarioDrift(sim.ScenarioNewPattern, tx.EventTime)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.AddDrift(d); err != nil {
				t.Fatal(err)
			}
		}
		if tx.Pattern == sim.PatternBustOut {
			if switched.IsZero() || tx.EventTime.Before(switched) {
				t.Fatalf("bust-out at %v before the switch", tx.EventTime)
			}
			bustOut++
		}
	}
	if bustOut == 0 {
		t.Error("no bust-out fraud after switching the new-pattern scenario on")
	}
	if err := s.AddDrift(sim.Drift{}); err == nil {
		t.Error("AddDrift accepted a drift without a time")
	}
}
