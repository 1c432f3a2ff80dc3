package trainer

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	ci := func(diff, lo, hi float64) Comparison {
		return Comparison{Diff: diff, Lo: lo, Hi: hi, Rows: 3000, Resamples: 1000, Confidence: 0.95}
	}
	auc := map[string]float64{"auc": 0.95}
	mse := map[string]float64{"mse": 0.1}
	tests := []struct {
		name        string
		task        featurespec.Task
		challenger  map[string]float64
		hasChampion bool
		cmp         Comparison
		margin      float64
		want        bool
		wantMetrics bool
		wantText    string
	}{
		{name: "first version", task: featurespec.TaskBinary, challenger: map[string]float64{"auc": 0.6}, want: true, wantText: "no champion yet"},
		{name: "challenger without metric", task: featurespec.TaskBinary, challenger: map[string]float64{}, hasChampion: true, cmp: ci(0.1, 0.05, 0.15)},
		{name: "challenger metric NaN", task: featurespec.TaskBinary, challenger: map[string]float64{"auc": nan}, hasChampion: true, cmp: ci(0.1, 0.05, 0.15)},
		// The CI rule: only the lower bound counts.
		{name: "auc lower bound clears margin", task: featurespec.TaskBinary, challenger: auc, hasChampion: true, cmp: ci(0.02, 0.012, 0.03), margin: 0.01, want: true, wantMetrics: true, wantText: "delta_auc 0.0200 [0.0120, 0.0300]"},
		{name: "auc point estimate clears margin, lower bound does not", task: featurespec.TaskBinary, challenger: auc, hasChampion: true, cmp: ci(0.02, 0.008, 0.03), margin: 0.01, wantMetrics: true, wantText: "lower bound <= margin"},
		{name: "auc lower bound equal to margin", task: featurespec.TaskBinary, challenger: auc, hasChampion: true, cmp: ci(0.02, 0.01, 0.03), margin: 0.01, wantMetrics: true},
		{name: "auc interval straddles zero, zero margin", task: featurespec.TaskBinary, challenger: auc, hasChampion: true, cmp: ci(0.001, -0.002, 0.004), wantMetrics: true},
		{name: "auc clearly worse", task: featurespec.TaskBinary, challenger: auc, hasChampion: true, cmp: ci(-0.2, -0.25, -0.15), wantMetrics: true},
		{name: "auc tiny but certain gain, zero margin", task: featurespec.TaskBinary, challenger: auc, hasChampion: true, cmp: ci(0.0004, 0.0001, 0.0007), want: true, wantMetrics: true},
		{name: "no interval (one class, no rows)", task: featurespec.TaskBinary, challenger: auc, hasChampion: true, cmp: ci(nan, nan, nan), wantText: "no confidence interval"},
		{name: "diff without interval", task: featurespec.TaskBinary, challenger: auc, hasChampion: true, cmp: ci(0.3, nan, nan), wantMetrics: true, wantText: "no confidence interval"},
		{name: "mse improvement lower bound clears margin", task: featurespec.TaskRegression, challenger: mse, hasChampion: true, cmp: ci(0.02, 0.015, 0.025), margin: 0.01, want: true, wantMetrics: true, wantText: "delta_mse"},
		{name: "mse improvement within noise", task: featurespec.TaskRegression, challenger: mse, hasChampion: true, cmp: ci(0.02, 0.005, 0.035), margin: 0.01, wantMetrics: true},
		{name: "mse worse", task: featurespec.TaskRegression, challenger: mse, hasChampion: true, cmp: ci(-0.05, -0.07, -0.03), wantMetrics: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(tt.task, tt.challenger, tt.hasChampion, tt.cmp, tt.margin)
			if d.Promote != tt.want || d.Reason == "" || !strings.Contains(d.Reason, tt.wantText) {
				t.Errorf("Decide() = %+v, want promote %v with a reason containing %q", d, tt.want, tt.wantText)
			}
			key := DeltaKey(tt.task)
			if _, ok := d.Metrics[key]; ok != tt.wantMetrics {
				t.Errorf("Decide() metrics = %v, want %s present %v", d.Metrics, key, tt.wantMetrics)
			}
			if tt.wantMetrics && !math.IsNaN(tt.cmp.Lo) && (d.Metrics[key+"_lo"] != tt.cmp.Lo || d.Metrics[key+"_hi"] != tt.cmp.Hi) {
				t.Errorf("Decide() metrics = %v, want lo %v hi %v", d.Metrics, tt.cmp.Lo, tt.cmp.Hi)
			}
		})
	}
}

// TestCompare checks the sign conventions of the paired comparison: positive means the
// challenger is better, for AUC and for MSE, and identical models give an interval of 0.
func TestCompare(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	n := 4000
	y := make([]float64, n)
	good, noisy, yr, predGood, predBad := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		if r.Float64() < 0.1 {
			y[i] = 1
		}
		good[i] = y[i] + r.NormFloat64()*0.5
		noisy[i] = y[i] + r.NormFloat64()*2
		yr[i] = r.NormFloat64()
		predGood[i] = yr[i] + r.NormFloat64()*0.3
		predBad[i] = yr[i] + r.NormFloat64()*0.6
	}
	tests := []struct {
		name                     string
		task                     featurespec.Task
		champion, challenger     []float64
		y                        []float64
		wantLoAbove, wantHiBelow float64
	}{
		{name: "better auc challenger", task: featurespec.TaskBinary, champion: noisy, challenger: good, y: y, wantLoAbove: 0.05, wantHiBelow: 1},
		{name: "worse auc challenger", task: featurespec.TaskBinary, champion: good, challenger: noisy, y: y, wantLoAbove: -1, wantHiBelow: -0.05},
		{name: "better mse challenger", task: featurespec.TaskRegression, champion: predBad, challenger: predGood, y: yr, wantLoAbove: 0.1, wantHiBelow: 1},
		{name: "worse mse challenger", task: featurespec.TaskRegression, champion: predGood, challenger: predBad, y: yr, wantLoAbove: -1, wantHiBelow: -0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Compare(tt.task, tt.champion, tt.challenger, tt.y, 200, 0.95, 1)
			if !(c.Lo <= c.Diff && c.Diff <= c.Hi) || c.Lo <= tt.wantLoAbove || c.Hi >= tt.wantHiBelow || c.Rows != n {
				t.Errorf("Compare() = %+v, want lo > %v, hi < %v", c, tt.wantLoAbove, tt.wantHiBelow)
			}
		})
	}
	same := Compare(featurespec.TaskBinary, good, good, y, 200, 0.95, 1)
	if same.Diff != 0 || same.Lo != 0 || same.Hi != 0 {
		t.Errorf("Compare(identical) = %+v, want all zero", same)
	}
}

func TestSplitByTime(t *testing.T) {
	t.Parallel()
	// 20 rows with shuffled event times; feature 0 carries the time so rows can be traced.
	spec := featurespec.Fraud()
	w := spec.Len()
	times := []int64{5, 3, 19, 0, 7, 12, 1, 18, 9, 2, 15, 4, 11, 6, 17, 8, 14, 10, 16, 13}
	d := &Dataset{Spec: spec, X: make([]float64, len(times)*w), Y: make([]float64, len(times)), EventTimes: times, Amounts: make([]float64, len(times))}
	for i, tm := range times {
		d.X[i*w] = float64(tm)
		d.Amounts[i] = float64(tm)
	}
	s, err := SplitByTime(d, 0.7, 0.15)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{s.Train.Rows(), s.Valid.Rows(), s.Holdout.Rows()}; !cmp.Equal(got, []int{14, 3, 3}) {
		t.Fatalf("split sizes = %v, want [14 3 3]", got)
	}
	var all []int64
	for _, part := range []*Dataset{s.Train, s.Valid, s.Holdout} {
		for i, tm := range part.EventTimes {
			if part.X[i*w] != float64(tm) || part.Amounts[i] != float64(tm) {
				t.Errorf("row with time %d carries feature %v amount %v: rows were mixed up", tm, part.X[i*w], part.Amounts[i])
			}
		}
		all = append(all, part.EventTimes...)
	}
	for i := range all {
		if all[i] != int64(i) {
			t.Fatalf("event times across train|valid|holdout = %v, want 0..19 in order", all)
		}
	}
	if _, err := SplitByTime(&Dataset{Spec: spec, X: make([]float64, 2*w), Y: make([]float64, 2), EventTimes: []int64{1, 2}}, 0.7, 0.15); !errors.Is(err, ErrNoData) {
		t.Errorf("SplitByTime(2 rows) = %v, want ErrNoData", err)
	}
}

func TestDatasetFilter(t *testing.T) {
	t.Parallel()
	spec := featurespec.Fraud()
	w := spec.Len()
	d := &Dataset{Spec: spec, X: make([]float64, 10*w), Y: make([]float64, 10), EventTimes: make([]int64, 10)}
	for i := range 10 {
		d.EventTimes[i] = time.Unix(int64(i), 0).UnixNano()
		d.X[i*w] = float64(i)
	}
	got := d.filter(DataQuery{From: time.Unix(2, 0), To: time.Unix(8, 0), MaxRows: 3})
	want := []float64{5, 6, 7} // rows 2..7, newest three
	var firsts []float64
	for i := range got.Rows() {
		firsts = append(firsts, got.X[i*w])
	}
	if diff := cmp.Diff(want, firsts); diff != "" {
		t.Errorf("filter rows (-want +got):\n%s", diff)
	}
}

func TestBuildParams(t *testing.T) {
	t.Parallel()
	tp, err := BuildParams(featurespec.TaskBinary, 500, 30, map[string]string{"num_iterations": "7", "num_leaves": "15", "early_stopping_round": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if tp.NumRounds != 7 || tp.EarlyStopping != 0 || tp.Booster["num_leaves"] != "15" || tp.Booster["objective"] != "binary" {
		t.Errorf("BuildParams = %+v", tp)
	}
	if _, ok := tp.Booster["num_iterations"]; ok {
		t.Error("num_iterations must not be passed to LightGBM (Train's NumRounds decides)")
	}
	for _, bad := range []map[string]string{{"objective": "poisson"}, {"num_leaves": "-1"}, {"learning_rate": "fast"}} {
		if _, err := BuildParams(featurespec.TaskBinary, 500, 30, bad); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("BuildParams(%v) = %v, want ErrInvalidParams", bad, err)
		}
	}
	reg, err := BuildParams(featurespec.TaskRegression, 10, 0, nil)
	if err != nil || reg.Booster["objective"] != "regression" {
		t.Errorf("regression params = %+v, %v", reg, err)
	}
}

func TestGainImportance(t *testing.T) {
	t.Parallel()
	model := "tree\nversion=v4\nTree=0\nnum_leaves=3\nsplit_feature=2 0\nsplit_gain=10.5 2\n\nTree=1\nsplit_feature=2\nsplit_gain=1.5\n"
	got, err := GainImportance(model, 3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{2, 0, 12}, got); diff != "" {
		t.Errorf("GainImportance (-want +got):\n%s", diff)
	}
	if _, err := GainImportance("split_feature=0 1\nsplit_gain=1\n", 2); err == nil {
		t.Error("GainImportance with mismatched lines = nil error")
	}
}

func ev(typ eventsv1.ModelEventType, model, alias, from, to string, at time.Time) *eventsv1.ModelEvent {
	return &eventsv1.ModelEvent{Type: typ, ModelName: model, Alias: alias, FromVersion: from, ToVersion: to, EventTime: ts(at)}
}

func TestAsOf(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	const p, r, reg = eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED, eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK, eventsv1.ModelEventType_MODEL_EVENT_TYPE_REGISTERED
	events := []*eventsv1.ModelEvent{
		ev(p, "m", "champion", "2", "3", at(20)), // out of order on purpose
		ev(reg, "m", "", "", "1", at(0)),
		ev(p, "m", "champion", "", "1", at(1)),
		ev(p, "m", "champion", "1", "2", at(10)),
		ev(p, "other", "champion", "", "9", at(5)),
		ev(p, "m", "challenger", "", "3", at(15)),
		ev(r, "m", "champion", "3", "2", at(30)),
	}
	tests := []struct {
		name      string
		alias     string
		t         time.Time
		want      string
		wantUntil string
	}{
		{name: "before any", alias: "champion", t: at(0)},
		{name: "at first promotion", alias: "champion", t: at(1), want: "1", wantUntil: "2"},
		{name: "between", alias: "champion", t: at(12), want: "2", wantUntil: "3"},
		{name: "after promotion to 3", alias: "champion", t: at(25), want: "3", wantUntil: "2"},
		{name: "after rollback", alias: "champion", t: at(40), want: "2"},
		{name: "other alias", alias: "challenger", t: at(16), want: "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := AsOf(events, "m", tt.alias, tt.t)
			if got.Version != tt.want || got.Found != (tt.want != "") {
				t.Errorf("AsOf(%v) = %q found %v, want %q", tt.t, got.Version, got.Found, tt.want)
			}
			if until := got.Until.GetToVersion(); until != tt.wantUntil {
				t.Errorf("AsOf(%v).Until = %q, want %q", tt.t, until, tt.wantUntil)
			}
		})
	}
}

func TestRollbackTarget(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	const p = eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED
	history := []*eventsv1.ModelEvent{ev(p, "m", "champion", "", "1", t0), ev(p, "m", "champion", "1", "2", t0.Add(time.Second))}
	tests := []struct {
		name    string
		events  []*eventsv1.ModelEvent
		current string
		to      string
		want    string
		wantErr bool
	}{
		{name: "previous champion", events: history, current: "2", want: "1"},
		{name: "explicit", events: history, current: "2", to: "7", want: "7"},
		{name: "explicit is current", events: history, current: "2", to: "2", wantErr: true},
		{name: "first champion", events: history[:1], current: "1", wantErr: true},
		{name: "no history", current: "1", wantErr: true},
		{name: "audit disagrees with registry", events: history, current: "5", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := RollbackTarget(tt.events, "m", tt.current, tt.to)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("RollbackTarget = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrPrecondition) {
				t.Errorf("error %v does not match ErrPrecondition", err)
			}
		})
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Threshold != 0.8 || c.GRPCAddr != "127.0.0.1:50056" || c.Kafka.Topics[0] != "drift.events" || c.ModelEventsTopic != "model.events" {
		t.Errorf("defaults = %+v", c)
	}
	if c.PromotionResamples != 1000 || c.PromotionConfidence != 0.95 || c.MinLabelledRows != 1000 || c.MinPositives != 30 ||
		c.PreChange != 0 || c.LeaseSettle != 300*time.Millisecond || c.RetrainCooldown != time.Hour {
		t.Errorf("closed-loop defaults = resamples %d confidence %v min rows %d min positives %d pre-change %v settle %v cooldown %v",
			c.PromotionResamples, c.PromotionConfidence, c.MinLabelledRows, c.MinPositives, c.PreChange, c.LeaseSettle, c.RetrainCooldown)
	}
	_, err = ParseConfig([]string{"-threshold=1.5", "-promotion.margin=-1", "-data.source=file", "-promotion.resamples=10",
		"-promotion.confidence=1", "-drift.pre-change=-1h", "-lease.settle=2m"}, func(string) string { return "" })
	for _, want := range []string{"threshold", "margin", "-data.file", "resamples 10", "confidence 1", "pre-change", "lease settle"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(bad) = %v, want it to mention %q", err, want)
		}
	}
}
