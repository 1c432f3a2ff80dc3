package sim_test

import (
	"slices"
	"testing"
	"time"

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
