package window

import (
	"math"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
)

// Default alarm settings, used where the reference profile carries no calibrated threshold.
const (
	// PSIFloor is the founding document's PSI alarm; calibrated thresholds never go below it.
	PSIFloor = 0.1
	// DefaultKSThreshold and DefaultJSThreshold apply to columns without calibration.
	DefaultKSThreshold = 0.1
	DefaultJSThreshold = 0.1
	// CriticalPSI marks a PSI crossing as critical (the industry's "significant shift").
	CriticalPSI = 0.25
	// DefaultMSEThreshold is the founding document's MSE alarm for regression.
	DefaultMSEThreshold = 0.1
)

// RefColumn is the reference side of one column.
type RefColumn struct {
	// Fractions per bin of the reference (len(Edges)+1).
	Fractions []float64
	// Sample of reference values, sorted ascending, for KS.
	Sample []float64
	// PSI, KS and JS are the calibrated alarm thresholds at CalibratedAt rows; zero means
	// not calibrated (defaults apply).
	PSI, KS, JS  float64
	CalibratedAt int
}

// Reference is what a window is compared with: the champion's reference profile.
type Reference struct {
	Features []RefColumn
	Score    RefColumn
	// Regression is true for regression models (MSE, MAE), false for binary classifiers.
	Regression bool
	// Threshold is the champion's decision threshold (from its manifest).
	Threshold float64
	// AlertRate is the share of reference scores at or above the decision threshold.
	AlertRate float64
	// Calibration maps a raw score to a calibrated probability (binary); nil disables
	// estimation.
	Calibration Calibrator
	// ReferenceAUC and ReferenceMSE are the champion's holdout metrics (NaN if unknown).
	ReferenceAUC, ReferenceMSE float64
	// ReferenceEstAUC is the estimate of AUC the calibration gives on the holdout (NaN if
	// unknown): live estimates are compared with it. ReferenceEstFloor is the lowest estimate
	// a window of consecutive holdout rows gave (NaN if unknown): the estimate's own spread.
	ReferenceEstAUC, ReferenceEstFloor float64
	// ReviewCost is the cost of one false alert.
	ReviewCost float64
	// MinCount is the smallest number of predictions a window needs to be judged.
	MinCount int64
	// MinLabels is the smallest number of labelled predictions for realized performance.
	MinLabels int64
}

// ColumnStats are one column's statistics in one window.
type ColumnStats struct {
	Name                                      string
	Count                                     int64 // finite values
	PSI, KS, KSPValue, JS                     float64
	MissingRate, NonFiniteRate, OutOfRange    float64
	PSIThreshold, KSThreshold, JSThreshold    float64
	KSSampleSize                              int
	Current                                   []float64 // fractions per bin
	DriftedPSI, DriftedKS, DriftedJS, Drifted bool
}

// Performance is the window's model quality. Metrics that do not apply or lack data are NaN.
type Performance struct {
	Predictions, Labelled                  int64
	LabelCoverage                          float64
	AlertRate, ReferenceAlertRate          float64
	Threshold                              float64
	AUC, Precision, Recall, LogLoss        float64
	FraudCaught, FraudMissed, FalsePosCost float64
	MSE, MAE                               float64
	EstAUC, EstPrecision, EstRecall        float64
	EstAUCLabelled                         float64
	ReferenceAUC, ReferenceMSE             float64
	ReferenceEstAUC, ReferenceEstFloor     float64
	// Positives among the labelled rows and the standard error of AUC (Hanley–McNeil): the
	// sampling noise a realized AUC carries with this many positives and negatives.
	Positives                                 int
	AUCStdErr                                 float64
	Judged                                    bool // enough predictions to judge drift
	RealizedJudged                            bool // enough labels for realized metrics
	LabelledAUCSample, LabelledScoreSampleLen int
}

// Stats are a window's statistics against the reference.
type Stats struct {
	// Kind is how the window was bounded (the value of eventsv1.WindowKind); set by the caller.
	Kind        int32
	Start, End  int64
	Predictions int64
	Versions    map[string]int64
	Features    []ColumnStats
	Score       ColumnStats
	Perf        Performance
}

// Evaluate computes the window's statistics against ref. It does not modify s.
func Evaluate(s *State, names []string, ref *Reference) Stats {
	st := Stats{Start: s.Start, End: s.End, Predictions: s.Predictions, Versions: s.Versions}
	n := len(s.layout.Features)
	st.Features = make([]ColumnStats, n)
	for i := range n {
		st.Features[i] = evalColumn(names[i], &s.Features[i], s.Rows.Column(i), &ref.Features[i], s.Predictions)
	}
	st.Score = evalColumn("score", &s.Score, s.Rows.Column(n), &ref.Score, s.Predictions)
	st.Perf = evalPerformance(s, ref)
	judged := s.Predictions >= max(ref.MinCount, 1)
	st.Perf.Judged = judged
	if !judged {
		for i := range st.Features {
			st.Features[i].clearVerdict()
		}
		st.Score.clearVerdict()
	}
	return st
}

func (c *ColumnStats) clearVerdict() {
	c.Drifted, c.DriftedPSI, c.DriftedKS, c.DriftedJS = false, false, false, false
}

func evalColumn(name string, h *Hist, sample []float64, ref *RefColumn, total int64) ColumnStats {
	c := ColumnStats{Name: name, Count: h.Finite(), KSSampleSize: len(sample)}
	if total > 0 {
		c.MissingRate = float64(h.Missing) / float64(total)
		c.NonFiniteRate = float64(h.NonFinite) / float64(total)
		c.OutOfRange = float64(h.OutOfRange) / float64(total)
	}
	c.Current = make([]float64, len(h.Bins))
	if c.Count == 0 || len(ref.Fractions) != len(h.Bins) {
		c.PSI, c.KS, c.KSPValue, c.JS = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		return c
	}
	for i, b := range h.Bins {
		c.Current[i] = float64(b) / float64(c.Count)
	}
	c.PSI = driftstat.PSI(ref.Fractions, c.Current)
	c.JS = driftstat.JSDistance(ref.Fractions, c.Current)
	if len(sample) > 0 && len(ref.Sample) > 0 {
		c.KS, c.KSPValue = driftstat.KSTest(ref.Sample, sample)
	} else {
		c.KS, c.KSPValue = math.NaN(), math.NaN()
	}
	c.PSIThreshold, c.KSThreshold, c.JSThreshold = thresholds(ref, c.Count, len(sample))
	c.DriftedPSI = c.PSI > c.PSIThreshold
	c.DriftedKS = c.KS > c.KSThreshold
	c.DriftedJS = c.JS > c.JSThreshold
	c.Drifted = c.DriftedPSI || c.DriftedKS || c.DriftedJS
	return c
}

// thresholds returns the alarm thresholds for a window with n binned values and a KS sample
// of ks values. Calibrated thresholds hold at the calibration size N; a smaller window is
// noisier, so they are scaled up (never down) the way each statistic's null spread grows:
// PSI (a chi-square over n) by N/n, JS (about the square root of half the PSI) by √(N/n),
// and KS by √((1/n+1/m)/(1/N+1/m)) with m the reference sample size.
func thresholds(ref *RefColumn, n int64, ks int) (psi, ksT, js float64) {
	psi, ksT, js = PSIFloor, DefaultKSThreshold, DefaultJSThreshold
	if ref.CalibratedAt <= 0 {
		return psi, ksT, js
	}
	big := float64(ref.CalibratedAt)
	psiScale, jsScale, ksScale := 1.0, 1.0, 1.0
	if f := float64(n); f > 0 && f < big {
		psiScale = big / f
		jsScale = math.Sqrt(big / f)
	}
	if m := float64(len(ref.Sample)); ks > 0 && float64(ks) < big && m > 0 {
		ksScale = math.Sqrt((1/float64(ks) + 1/m) / (1/big + 1/m))
	}
	return max(PSIFloor, ref.PSI*psiScale), ref.KS * ksScale, ref.JS * jsScale
}

func evalPerformance(s *State, ref *Reference) Performance {
	nan := math.NaN()
	p := Performance{
		Predictions: s.Predictions, Labelled: s.Labels,
		ReferenceAlertRate: ref.AlertRate, ReferenceAUC: ref.ReferenceAUC, ReferenceMSE: ref.ReferenceMSE, ReferenceEstAUC: ref.ReferenceEstAUC, ReferenceEstFloor: ref.ReferenceEstFloor,
		AUC: nan, Precision: nan, Recall: nan, LogLoss: nan, FraudCaught: nan, FraudMissed: nan, FalsePosCost: nan,
		MSE: nan, MAE: nan, AUCStdErr: nan, EstAUC: nan, EstPrecision: nan, EstRecall: nan, EstAUCLabelled: nan, Threshold: nan,
	}
	if s.Predictions > 0 {
		p.AlertRate = float64(s.Alerts) / float64(s.Predictions)
		p.LabelCoverage = math.Min(1, float64(s.Labels)/float64(s.Predictions))
	}
	_, rows := s.Labelled.Rows()
	p.LabelledAUCSample = len(rows)
	scores := make([]float64, len(rows))
	targets := make([]float64, len(rows))
	for i, r := range rows {
		scores[i], targets[i] = r[lScore], r[lLabel]
	}
	p.Threshold = ref.Threshold
	p.RealizedJudged = int64(len(rows)) >= max(ref.MinLabels, 1)
	if ref.Regression {
		if len(rows) > 0 {
			p.MSE = driftstat.MSE(scores, targets)
			p.MAE = driftstat.MAE(scores, targets)
		}
		return p
	}
	if len(rows) > 0 {
		labels := make([]bool, len(rows))
		var tp, fp, fn float64
		p.FraudCaught, p.FraudMissed = 0, 0
		for i, r := range rows {
			labels[i] = r[lLabel] >= 0.5
			alert := r[lScore] >= r[lThreshold]
			switch {
			case labels[i] && alert:
				tp++
				p.FraudCaught += r[lAmount]
			case labels[i]:
				fn++
				p.FraudMissed += r[lAmount]
			case alert:
				fp++
			}
		}
		p.AUC = driftstat.AUC(scores, labels)
		p.Positives = int(tp + fn)
		p.AUCStdErr = AUCStdErr(p.AUC, p.Positives, len(rows)-p.Positives)
		p.LogLoss = driftstat.LogLoss(scores, labels)
		p.Precision = ratio(tp, tp+fp)
		p.Recall = ratio(tp, tp+fn)
		p.FalsePosCost = fp * ref.ReviewCost
		if ref.Calibration != nil {
			p.EstAUCLabelled = estimate(ref.Calibration, scores, p.Threshold).AUC
		}
	}
	if ref.Calibration != nil && s.Rows.Len() > 0 {
		all := s.Rows.Column(len(s.layout.Features))
		e := estimate(ref.Calibration, all, ref.Threshold)
		p.EstAUC, p.EstPrecision, p.EstRecall = e.AUC, e.Precision, e.Recall
	}
	return p
}

// Calibrator maps a model score to a calibrated probability of the positive label
// (driftstat.Platt or driftstat.Isotonic).
type Calibrator interface {
	Apply(score float64) float64
}

func estimate(c Calibrator, scores []float64, threshold float64) driftstat.Estimate {
	probs := make([]float64, len(scores))
	for i, s := range scores {
		probs[i] = c.Apply(s)
	}
	return driftstat.EstimatePerformance(probs, threshold, scores)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// realized is AUC (binary; labels >= 0.5 are positive) or MSE (regression).
func realized(scores, targets []float64, regression bool) float64 {
	if regression {
		return driftstat.MSE(scores, targets)
	}
	labels := make([]bool, len(targets))
	for i, t := range targets {
		labels[i] = t >= 0.5
	}
	return driftstat.AUC(scores, labels)
}

// AUCStdErr is the standard error of an AUC of a over pos positives and neg negatives, by
// Hanley and McNeil (1982): with Q1 = a/(2−a) and Q2 = 2a²/(1+a),
// SE² = (a(1−a) + (pos−1)(Q1−a²) + (neg−1)(Q2−a²)) / (pos·neg). NaN without both classes.
func AUCStdErr(a float64, pos, neg int) float64 {
	if pos <= 0 || neg <= 0 || math.IsNaN(a) {
		return math.NaN()
	}
	q1, q2 := a/(2-a), 2*a*a/(1+a)
	v := (a*(1-a) + float64(pos-1)*(q1-a*a) + float64(neg-1)*(q2-a*a)) / float64(pos*neg)
	return math.Sqrt(max(v, 0))
}
