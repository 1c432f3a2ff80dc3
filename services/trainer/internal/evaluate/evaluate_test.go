package evaluate_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/stacktest"
	"github.com/streaming-mlops/mlops/services/trainer/internal/evaluate"
)

func TestEvaluateBinarySmall(t *testing.T) {
	t.Parallel()
	// Hand-checked: 2 positives, 3 negatives.
	scores := []float64{0.9, 0.8, 0.8, 0.3, 0.1}
	labels := []float64{1, 0, 1, 0, 0}
	b, err := evaluate.EvaluateBinary(scores, labels, 0.5, evaluate.CostModel{ReviewCost: 5, Amounts: []float64{100, 20, 50, 10, 10}})
	if err != nil {
		t.Fatal(err)
	}
	// Pairs (pos, neg): 0.9 beats all 3; 0.8 beats 0.3, 0.1 and ties 0.8 → 2.5. AUC = 5.5/6.
	checks := []struct {
		name      string
		got, want float64
	}{
		{"auc", b.AUC, 5.5 / 6},
		{"precision", b.Precision, 2.0 / 3},
		{"recall", b.Recall, 1},
		{"f1", b.F1, 0.8},
		{"cost at 0.5: one false alarm", b.Cost, 5},
		// Flag only >=0.9: miss 50 → 50; flag >=0.8: one false alarm → 5; lower adds alarms.
		{"best cost", b.BestCost, 5},
		{"best threshold", b.BestThreshold, 0.8},
		// AP: at 0.9 recall .5 precision 1; at 0.8 recall 1 precision 2/3 → .5 + .5*2/3.
		{"pr_auc", b.PRAUC, 0.5 + 0.5*2.0/3},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEvaluateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		scores, labels []float64
	}{
		{"empty", nil, nil},
		{"length mismatch", []float64{.1}, []float64{0, 1}},
		{"nan score", []float64{math.NaN()}, []float64{1}},
		{"label not binary", []float64{.5}, []float64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := evaluate.EvaluateBinary(tt.scores, tt.labels, .5, evaluate.CostModel{}); err == nil {
				t.Error("EvaluateBinary accepted bad input")
			}
		})
	}
}

// TestEvaluateMatchesScikitLearn cross-checks every metric against scikit-learn on the same
// data (ties included, since real scores tie).
func TestEvaluateMatchesScikitLearn(t *testing.T) {
	py := stacktest.Python(t)
	r := rand.New(rand.NewPCG(3, 4))
	const n = 5000
	scores, labels, pred, target := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		y := 0.0
		if r.Float64() < 0.1 {
			y = 1
		}
		labels[i] = y
		scores[i] = math.Round(math.Min(1, math.Max(0, 0.3*y+r.Float64()*0.7))*200) / 200 // ties
		target[i] = r.Float64()
		pred[i] = target[i] + r.NormFloat64()*0.1
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	data, _ := json.Marshal(map[string]any{"scores": scores, "labels": labels, "pred": pred, "target": target})
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
from sklearn import metrics
d = json.load(open(sys.argv[1]))
s, y = d["scores"], d["labels"]
flag = [1 if v >= 0.5 else 0 for v in s]
print(json.dumps({
  "auc": metrics.roc_auc_score(y, s),
  "pr_auc": metrics.average_precision_score(y, s),
  "logloss": metrics.log_loss(y, s),
  "precision": metrics.precision_score(y, flag),
  "recall": metrics.recall_score(y, flag),
  "f1": metrics.f1_score(y, flag),
  "mse": metrics.mean_squared_error(d["target"], d["pred"]),
  "mae": metrics.mean_absolute_error(d["target"], d["pred"]),
  "r2": metrics.r2_score(d["target"], d["pred"]),
}))`
	out, err := exec.Command(py, "-c", script, in).Output()
	if err != nil {
		t.Fatalf("python scikit-learn: %v", err)
	}
	var want map[string]float64
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	b, err := evaluate.EvaluateBinary(scores, labels, 0.5, evaluate.CostModel{ReviewCost: 1, MissCost: 10})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := evaluate.EvaluateRegression(pred, target)
	if err != nil {
		t.Fatal(err)
	}
	got := b.Metrics()
	for k, v := range reg.Metrics() {
		got[k] = v
	}
	for k, w := range want {
		if math.Abs(got[k]-w) > 1e-9 {
			t.Errorf("%s: Go %.12f, scikit-learn %.12f", k, got[k], w)
		}
	}
}

func TestCurves(t *testing.T) {
	t.Parallel()
	scores := []float64{0.9, 0.7, 0.4, 0.2}
	labels := []float64{1, 0, 1, 0}
	roc := evaluate.ROC(scores, labels)
	if last := roc[len(roc)-1]; last.X != 1 || last.Y != 1 || len(roc) != 5 {
		t.Errorf("ROC = %v, want 5 points ending at (1,1)", roc)
	}
	cal := evaluate.Calibration(scores, labels, 2)
	if len(cal) != 2 || cal[0].Y != 0.5 || cal[1].Y != 0.5 {
		t.Errorf("Calibration = %v", cal)
	}
	if pr := evaluate.PR(scores, labels); pr[0].Y != 1 || pr[len(pr)-1].X != 1 {
		t.Errorf("PR = %v", pr)
	}
}
