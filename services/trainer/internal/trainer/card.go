package trainer

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/trainer/internal/evaluate"
)

// Plot file names below model/plots/.
const (
	PlotROC         = "roc.png"
	PlotPR          = "pr.png"
	PlotCalibration = "calibration.png"
	PlotImportance  = "feature_importance.png"
)

// maxCurvePoints thins curves before drawing; a PNG cannot show more.
const maxCurvePoints = 2000

func thin(pts []evaluate.Point) []evaluate.Point {
	if len(pts) <= maxCurvePoints {
		return pts
	}
	step := float64(len(pts)-1) / float64(maxCurvePoints-1)
	out := make([]evaluate.Point, 0, maxCurvePoints)
	for i := 0; i < maxCurvePoints; i++ {
		out = append(out, pts[int(float64(i)*step)])
	}
	return out
}

// Plots draws the evaluation plots of t: ROC, precision-recall and calibration on the
// holdout for binary models (calibration only for regression), and the gain importance.
func Plots(t *Trained) (map[string][]byte, error) {
	out := map[string][]byte{}
	h := t.Split.Holdout
	diag := Series{Name: "chance", Points: []evaluate.Point{{X: 0, Y: 0}, {X: 1, Y: 1}}, Color: colGrey, Dashed: true}
	if t.Spec.Task == featurespec.TaskBinary {
		roc, err := LineChart(fmt.Sprintf("ROC on holdout (AUC %.4f)", t.Metrics["auc"]), "false positive rate", "true positive rate",
			[]Series{diag, {Name: "model", Points: thin(evaluate.ROC(t.HoldoutScores, h.Y)), Color: colBlue}})
		if err != nil {
			return nil, fmt.Errorf("roc plot: %w", err)
		}
		out[PlotROC] = roc
		base := float64(t.Binary.Positives) / float64(max(t.Binary.N, 1))
		pr, err := LineChart(fmt.Sprintf("Precision-recall on holdout (AP %.4f)", t.Metrics["pr_auc"]), "recall", "precision",
			[]Series{{Name: "base rate", Points: []evaluate.Point{{X: 0, Y: base}, {X: 1, Y: base}}, Color: colGrey, Dashed: true},
				{Name: "model", Points: thin(evaluate.PR(t.HoldoutScores, h.Y)), Color: colBlue}})
		if err != nil {
			return nil, fmt.Errorf("pr plot: %w", err)
		}
		out[PlotPR] = pr
	}
	cal, err := LineChart("Calibration on holdout (10 bins)", "mean predicted", "observed rate",
		[]Series{{Name: "perfect", Points: diag.Points, Color: colGrey, Dashed: true},
			markers("model", evaluate.Calibration(clamp01(t.HoldoutScores), h.Y, 10), colGreen)})
	if err != nil {
		return nil, fmt.Errorf("calibration plot: %w", err)
	}
	out[PlotCalibration] = cal
	order := importanceOrder(t.Importance)
	labels := make([]string, len(order))
	vals := make([]float64, len(order))
	names := t.Spec.Names()
	for i, j := range order {
		labels[i], vals[i] = names[j], t.Importance[j]
	}
	imp, err := BarChart("Feature importance (total gain)", labels, vals)
	if err != nil {
		return nil, fmt.Errorf("importance plot: %w", err)
	}
	out[PlotImportance] = imp
	return out, nil
}

func clamp01(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = min(max(x, 0), 1)
	}
	return out
}

// importanceOrder returns feature indexes by descending importance.
func importanceOrder(imp []float64) []int {
	idx := make([]int, len(imp))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(imp[b], imp[a]) })
	return idx
}

// CardInfo is what the model card describes besides the trained model.
type CardInfo struct {
	Model, RunID, Actor, Reason string
	Trained                     *Trained
	DataSource                  string
	Threshold, ReviewCost       float64
	LightGBMVersion             string
	// ChampionVersion and ChampionMetrics describe the champion on the same holdout; empty
	// when there was none.
	ChampionVersion string
	ChampionMetrics map[string]float64
	Decision        Decision
	CreatedAt       time.Time
}

func window(d *Dataset) string {
	if d.Rows() == 0 {
		return "empty"
	}
	f := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }
	return fmt.Sprintf("%s to %s (%d rows)", f(d.EventTimes[0]), f(d.EventTimes[d.Rows()-1]), d.Rows())
}

// ModelCard renders the Markdown model card of a training run.
func ModelCard(ci CardInfo) []byte {
	t := ci.Trained
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	primary, higher := Primary(t.Spec.Task)
	p("# Model card: %s\n\n", ci.Model)
	p("| | |\n|---|---|\n")
	p("| Task | %s |\n| Feature spec | %s v%d (`%s`) |\n", t.Spec.Task, t.Spec.Name, t.Spec.Version, t.Spec.Fingerprint())
	p("| Trained at | %s |\n| MLflow run | `%s` |\n| Requested by | %s |\n| Reason | %s |\n", ci.CreatedAt.UTC().Format(time.RFC3339), ci.RunID, ci.Actor, ci.Reason)
	p("| LightGBM | %s |\n| Best iteration | %d of at most %d |\n\n", cmp.Or(ci.LightGBMVersion, "unknown"), t.BestIteration, t.Params.NumRounds)

	p("## Intended use\n\n")
	if t.Spec.Task == featurespec.TaskBinary {
		p("Scores card transactions for fraud in real time (probability in [0, 1]); a score at or above the decision threshold (%.2f) raises an alert for review. ", ci.Threshold)
		p("Not for use on transactions of populations or currencies absent from the training data, nor as the sole basis for declining a customer without review.\n\n")
	} else {
		p("Predicts the probability that a shopping session ends in a purchase, for ranking and recommendation. ")
		p("Monitored by MSE on labelled traffic; not for decisions about individual customers' credit or pricing.\n\n")
	}

	p("## Data\n\nSource: %s. Time-ordered split (%.0f/%.0f/%.0f by event time):\n\n", ci.DataSource, TrainFraction*100, ValidFraction*100, (1-TrainFraction-ValidFraction)*100)
	p("| split | window |\n|---|---|\n| train | %s |\n| validation (early stopping) | %s |\n| holdout (evaluation) | %s |\n\n",
		window(t.Split.Train), window(t.Split.Valid), window(t.Split.Holdout))

	p("## Metrics on the holdout\n\n")
	keys := slices.Sorted(maps.Keys(t.Metrics))
	if len(ci.ChampionMetrics) > 0 {
		p("| metric | this model | champion v%s |\n|---|---|---|\n", ci.ChampionVersion)
		for _, k := range keys {
			p("| %s | %.6g | %.6g |\n", k, t.Metrics[k], ci.ChampionMetrics[k])
		}
	} else {
		p("| metric | value |\n|---|---|\n")
		for _, k := range keys {
			p("| %s | %.6g |\n", k, t.Metrics[k])
		}
	}
	dir := "higher"
	if !higher {
		dir = "lower"
	}
	p("\nPrimary metric: **%s** (%s is better). Promotion decision: **%v**, %s.\n\n", primary, dir, ci.Decision.Promote, ci.Decision.Reason)
	if bm := t.Binary; bm != nil {
		p("## Threshold\n\nDecision threshold %.2f: precision %.4f, recall %.4f, F1 %.4f. ", bm.Threshold, bm.Precision, bm.Recall, bm.F1)
		p("Expected cost on the holdout (missed fraud = its amount, false alarm = %.2f): %.2f at the threshold; the cost-minimising threshold is %.4f with cost %.2f.\n\n",
			ci.ReviewCost, bm.Cost, bm.BestThreshold, bm.BestCost)
	}

	p("## Training parameters\n\n| parameter | value |\n|---|---|\n")
	p("| num_iterations | %d |\n| early_stopping_round | %d |\n", t.Params.NumRounds, t.Params.EarlyStopping)
	for _, k := range slices.Sorted(maps.Keys(t.Params.Booster)) {
		p("| %s | %s |\n", k, t.Params.Booster[k])
	}

	p("\n## Feature importance (total gain)\n\n| rank | feature | gain | share |\n|---|---|---|---|\n")
	var total float64
	for _, v := range t.Importance {
		total += v
	}
	names := t.Spec.Names()
	for r, j := range importanceOrder(t.Importance) {
		share := 0.0
		if total > 0 {
			share = t.Importance[j] / total
		}
		p("| %d | %s | %.6g | %.1f%% |\n", r+1, names[j], t.Importance[j], share*100)
	}

	p("\n## Plots\n\n")
	for _, f := range []string{PlotROC, PlotPR, PlotCalibration, PlotImportance} {
		if t.Spec.Task != featurespec.TaskBinary && (f == PlotROC || f == PlotPR) {
			continue
		}
		p("- [%s](plots/%s)\n", strings.TrimSuffix(f, ".png"), f)
	}
	return []byte(b.String())
}
