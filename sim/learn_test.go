package sim_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/sim"
)

// auc is the area under the ROC curve (Mann-Whitney, ties averaged).
func auc(scores, labels []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmpFloat(scores[a], scores[b]) })
	var rankSum, pos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		rank := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if labels[idx[k]] == 1 {
				rankSum += rank
				pos++
			}
		}
		i = j
	}
	neg := float64(len(scores)) - pos
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestFraudLearnable checks, without LightGBM, that the simulated fraud is
// learnable from the featurespec features: fraud rows differ markedly from
// legit rows, and a plain logistic regression trained on the first 70% (by
// event time) ranks the last 30% well.
func TestFraudLearnable(t *testing.T) {
	t.Parallel()
	cfg := sim.Config{Seed: 5, Accounts: 3000, Warmup: 7 * 24 * time.Hour}
	d, err := sim.FraudDataset(cfg, 120000)
	if err != nil {
		t.Fatal(err)
	}
	w := d.Spec.Len()
	var mean [2][featurespec.FraudLen]float64
	var cnt [2]float64
	for i := range d.Rows() {
		y := int(d.Y[i])
		cnt[y]++
		for j, v := range d.Row(i) {
			mean[y][j] += v
		}
	}
	for y := range 2 {
		for j := range w {
			mean[y][j] /= cnt[y]
		}
	}
	gaps := []struct {
		feature int
		minGap  float64
	}{
		{featurespec.FraudDeviceRiskScore, 0.2},
		{featurespec.FraudLocationScore, 0.3},
		{featurespec.FraudTxCount1h, 1},
		{featurespec.FraudIsNewMerchant, 0.5},
		{featurespec.FraudGeoVelocityKmh, 100},
	}
	for _, g := range gaps {
		if diff := mean[1][g.feature] - mean[0][g.feature]; diff < g.minGap {
			t.Errorf("%s: fraud mean %.3f - legit mean %.3f = %.3f, want >= %v", d.Spec.Features[g.feature].Name,
				mean[1][g.feature], mean[0][g.feature], diff, g.minGap)
		}
	}

	// Logistic regression on signed-log, standardised features.
	x := make([]float64, len(d.X))
	for i, v := range d.X {
		x[i] = math.Copysign(math.Log1p(math.Abs(v)), v)
	}
	mu, sd := make([]float64, w), make([]float64, w)
	for i := range d.Rows() {
		for j := range w {
			mu[j] += x[i*w+j]
		}
	}
	for j := range w {
		mu[j] /= float64(d.Rows())
	}
	for i := range d.Rows() {
		for j := range w {
			sd[j] += (x[i*w+j] - mu[j]) * (x[i*w+j] - mu[j])
		}
	}
	for j := range w {
		sd[j] = math.Max(math.Sqrt(sd[j]/float64(d.Rows())), 1e-9)
		for i := range d.Rows() {
			x[i*w+j] = (x[i*w+j] - mu[j]) / sd[j]
		}
	}
	split := d.Rows() * 7 / 10
	if d.EventTimes[split-1] > d.EventTimes[split] {
		t.Fatal("dataset is not in event-time order")
	}
	wt := make([]float64, w+1)
	grad := make([]float64, w+1)
	for range 200 {
		clear(grad)
		for i := range split {
			z := wt[w]
			for j := range w {
				z += wt[j] * x[i*w+j]
			}
			e := 1/(1+math.Exp(-z)) - d.Y[i]
			for j := range w {
				grad[j] += e * x[i*w+j]
			}
			grad[w] += e
		}
		for j := range wt {
			wt[j] -= 2 * grad[j] / float64(split)
		}
	}
	scores := make([]float64, d.Rows()-split)
	for i := split; i < d.Rows(); i++ {
		z := wt[w]
		for j := range w {
			z += wt[j] * x[i*w+j]
		}
		scores[i-split] = z
	}
	got := auc(scores, d.Y[split:])
	t.Logf("logistic regression holdout AUC %.4f (fraud rows %v of %v)", got, cnt[1], d.Rows())
	if got < 0.9 {
		t.Errorf("holdout AUC %.4f, want >= 0.9", got)
	}
}

func TestPurchaseDataset(t *testing.T) {
	t.Parallel()
	d, err := sim.PurchaseDataset(sim.SessionConfig{Seed: 3}, 50000)
	if err != nil {
		t.Fatal(err)
	}
	var meanY, meanOut float64
	var withCart, noCart, nWith, nNo float64
	for i := range d.Rows() {
		if err := d.Spec.CheckVector(d.Row(i)); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		meanY += d.Y[i]
		meanOut += d.Outcome[i]
		if d.Row(i)[featurespec.PurchaseCartItems] > 0 {
			withCart, nWith = withCart+d.Y[i], nWith+1
		} else {
			noCart, nNo = noCart+d.Y[i], nNo+1
		}
	}
	meanY /= float64(d.Rows())
	meanOut /= float64(d.Rows())
	if meanY < 0.03 || meanY > 0.4 {
		t.Errorf("mean purchase probability %.3f outside [0.03, 0.4]", meanY)
	}
	if math.Abs(meanOut-meanY) > 0.01 {
		t.Errorf("outcome rate %.4f does not match mean probability %.4f", meanOut, meanY)
	}
	if withCart/nWith < 2*noCart/nNo {
		t.Errorf("mean probability with cart %.3f, without %.3f: cart should matter", withCart/nWith, noCart/nNo)
	}
	// MSE of the true probability against outcomes, the floor any model
	// reaches on labelled traffic (the drift threshold is 0.1).
	var mse float64
	for i := range d.Rows() {
		mse += (d.Y[i] - d.Outcome[i]) * (d.Y[i] - d.Outcome[i])
	}
	t.Logf("mean p %.3f, outcome rate %.3f, with cart %.3f, without %.3f, Bayes MSE %.4f", meanY, meanOut, withCart/nWith, noCart/nNo, mse/float64(d.Rows()))
}

func TestSessionsDriftAndLabels(t *testing.T) {
	t.Parallel()
	at := start.Add(6 * time.Hour)
	s, err := sim.NewSessions(sim.SessionConfig{Seed: 8, Drifts: []sim.SessionDrift{{At: at, ConversionShift: 1.5, CartValueScale: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	var pb, pa, nb, na float64
	var last time.Time
	seen := map[string]bool{}
	n := 0
	for {
		ss, labels := s.Next()
		for _, l := range labels {
			if l.EventTime.After(ss.EventTime) || l.EventTime.Before(last) {
				t.Fatalf("label at %v out of order (session at %v, last %v)", l.EventTime, ss.EventTime, last)
			}
			last = l.EventTime
		}
		if ss.EventTime.Before(last) {
			t.Fatalf("session at %v before %v", ss.EventTime, last)
		}
		last = ss.EventTime
		seen[ss.SessionID] = true
		n++
		if ss.EventTime.After(at.Add(6 * time.Hour)) {
			break
		}
		if ss.EventTime.Before(at) {
			pb, nb = pb+ss.Probability, nb+1
		} else {
			pa, na = pa+ss.Probability, na+1
		}
	}
	if pa/na < pb/nb*1.5 {
		t.Errorf("mean probability before %.3f after %.3f: conversion shift had no effect", pb/nb, pa/na)
	}
	if len(seen) != n {
		t.Errorf("duplicate session ids")
	}
}

func BenchmarkPurchaseDataset(b *testing.B) {
	const n = 100000
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sim.PurchaseDataset(sim.SessionConfig{Seed: 1}, n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
