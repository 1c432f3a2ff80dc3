package trainer

import (
	"maps"
	"math"

	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/profile"
)

// referenceProfile builds the reference profile the drift service compares live windows
// with: quantile bins and samples of the training rows and their scores, alarm thresholds
// calibrated at the drift service's window size (alarmWindow; 0 takes the default), the
// serving threshold and the reference alert rate, the holdout metrics and, for binary
// models, the isotonic and the logistic (Platt) calibration of scores fitted on the holdout
// (for performance estimation before labels arrive) and the estimate of AUC the latter gives
// on the holdout.
func referenceProfile(t *Trained, threshold float64, alarmWindow int) (*profile.Profile, error) {
	prof, err := profile.Build(t.Spec.Fingerprint(), t.Spec.Names(), t.Split.Train.X, t.TrainScores, profile.Options{})
	if err != nil {
		return nil, err
	}
	if err := prof.Calibrate(t.Split.Train.X, t.TrainScores, profile.CalibrateOptions{WindowSize: alarmWindow}); err != nil {
		return nil, err
	}
	prof.Task = string(t.Spec.Task)
	prof.Threshold = threshold
	// JSON has no NaN: metrics undefined on this holdout (AUC without positives) are left out.
	prof.Holdout = maps.Clone(t.Metrics)
	maps.DeleteFunc(prof.Holdout, func(_ string, v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
	if len(t.TrainScores) > 0 {
		alerts := 0
		for _, s := range t.TrainScores {
			if s >= threshold {
				alerts++
			}
		}
		prof.AlertRate = float64(alerts) / float64(len(t.TrainScores))
	}
	if t.Spec.Task == featurespec.TaskBinary {
		labels := make([]bool, len(t.Split.Holdout.Y))
		for i, y := range t.Split.Holdout.Y {
			labels[i] = y >= 0.5
		}
		if c := driftstat.FitIsotonic(t.HoldoutScores, labels); len(c.X) > 0 {
			prof.Calibration = &c
		}
		if c, ok := driftstat.FitPlatt(t.HoldoutScores, labels); ok {
			prof.Platt = &c
			probs := make([]float64, len(t.HoldoutScores))
			for i, s := range t.HoldoutScores {
				probs[i] = c.Apply(s)
			}
			if e := driftstat.EstimatePerformance(probs, threshold, t.HoldoutScores).AUC; !math.IsNaN(e) {
				prof.EstimatedAUC = e
			}
			// JSON has no NaN: a holdout too short for two windows leaves the floor unset.
			if f := estimateFloor(probs, t.HoldoutScores, threshold, alarmWindow); !math.IsNaN(f) {
				prof.EstimatedAUCFloor = f
			}
		}
	}
	return prof, nil
}

// estimateFloor is the lowest estimate of AUC over windows of window consecutive holdout rows
// (at 200 evenly spaced offsets); NaN when the holdout holds fewer than two windows.
func estimateFloor(probs, scores []float64, threshold float64, window int) float64 {
	if window <= 0 {
		window = profile.DefaultAlarmWindow
	}
	n := len(scores)
	if n < 2*window {
		return math.NaN()
	}
	floor := math.Inf(1)
	const offsets = 200
	for k := range offsets {
		start := k * (n - window) / (offsets - 1)
		if e := driftstat.EstimatePerformance(probs[start:start+window], threshold, scores[start:start+window]).AUC; e < floor {
			floor = e
		}
	}
	if math.IsInf(floor, 1) {
		return math.NaN()
	}
	return floor
}
