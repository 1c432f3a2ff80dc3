package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/profile"
	"github.com/streaming-mlops/mlops/sim"
)

// staticSource serves fixed references.
type staticSource map[string]*Reference

func (s staticSource) Load(_ context.Context, model string) (*Reference, error) {
	if r, ok := s[model]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("no champion for %q", model)
}

func testConfig(t *testing.T, args ...string) Config {
	t.Helper()
	cfg, err := ParseConfig(append([]string{"-models", "fraud"}, args...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// scoreOf is a fixed stand-in model: a logistic function of a few fraud features.
func scoreOf(row []float64) float64 {
	z := -4 + 1.5*row[featurespec.FraudDeviceRiskScore] + 1.2*row[featurespec.FraudIsNewDevice] +
		0.8*row[featurespec.FraudIsNewCountry] + 0.3*math.Log1p(row[featurespec.FraudAmount]/100) + 0.2*row[featurespec.FraudTxCount1h]
	return 1 / (1 + math.Exp(-z))
}

func predictionRecord(t testing.TB, tx string, at int64, row []float64, score float64) kafka.Message {
	t.Helper()
	spec := featurespec.Fraud()
	p := &eventsv1.Prediction{
		EventId: "e-" + tx, EventTime: timestamppb.New(time.Unix(0, at)), TransactionId: tx, AccountId: "a",
		ModelName: "fraud", ModelVersion: "1", Score: score, Threshold: 0.8,
		Features: &eventsv1.FeatureVector{TransactionId: tx, SpecName: spec.Name, SpecVersion: strconv.Itoa(spec.Version),
			SpecFingerprint: spec.Fingerprint(), Values: row, Amount: row[featurespec.FraudAmount]},
	}
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: topics.Predictions, Value: b}
}

// simReference profiles rows [0, n) of d, scored by scoreOf, calibrated at windowSize.
func simReference(t *testing.T, d *sim.Dataset, n, windowSize int, cfg Config) *Reference {
	t.Helper()
	w := d.Spec.Len()
	scores := make([]float64, n)
	for i := range n {
		scores[i] = scoreOf(d.Row(i))
	}
	prof, err := profile.Build(d.Spec.Fingerprint(), d.Spec.Names(), d.X[:n*w], scores, profile.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := prof.Calibrate(d.X[:n*w], scores, profile.CalibrateOptions{WindowSize: windowSize, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	ref, err := NewReference("fraud", "1", "run-1", d.Spec, 0.8, prof, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// feedRows sends rows [from, to) of d through Handle in batches and returns the drift
// events, keyed by the index of the window (0-based from the first row fed) that raised them.
func feedRows(t *testing.T, s *Server, d *sim.Dataset, from, to, window int) map[int][]*eventsv1.DriftEvent {
	t.Helper()
	out := map[int][]*eventsv1.DriftEvent{}
	const batch = 500
	for b := from; b < to; b += batch {
		var msgs []kafka.Message
		for i := b; i < min(b+batch, to); i++ {
			msgs = append(msgs, predictionRecord(t, "tx-"+strconv.Itoa(i), d.EventTimes[i], d.Row(i), scoreOf(d.Row(i))))
		}
		res, err := s.Handle(context.Background(), msgs)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range res {
			if r.Err != nil {
				t.Fatalf("record %d: %v", b+j, r.Err)
			}
			for _, rec := range r.Output {
				ev := new(eventsv1.DriftEvent)
				if err := proto.Unmarshal(rec.Value, ev); err != nil {
					t.Fatal(err)
				}
				idx := (b + j - from) / window
				out[idx] = append(out[idx], ev)
			}
		}
	}
	return out
}

// TestDriftNoFalseAlarmOnCleanWindows: 20 windows of unshifted simulated traffic raise no
// drift event; amounts doubling (a shift the founding document's PSI 0.1 cares about) is
// flagged within 2 windows, by exactly one event that recommends retraining.
func TestDriftNoFalseAlarmOnCleanWindows(t *testing.T) {
	t.Parallel()
	const (
		window = 5000
		refN   = 300000
		clean  = 20 * window
		shift  = 4 * window
	)
	base := sim.Config{Seed: 11, Accounts: 1700, Warmup: 14 * 24 * time.Hour}
	d, err := sim.FraudDataset(base, refN+clean+shift)
	if err != nil {
		t.Fatal(err)
	}
	// The same stream with amounts doubled from the first row after the clean windows.
	drifted := base
	drifted.Drifts = []sim.Drift{{At: time.Unix(0, d.EventTimes[refN+clean]), AmountScale: 2}}
	dd, err := sim.FraudDataset(drifted, refN+clean+shift)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "-window.count", strconv.Itoa(window), "-window.duration", "2400h")
	s := New(cfg, staticSource{"fraud": simReference(t, d, refN, window, cfg)}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	s.LoadReferences(context.Background())

	if evs := feedRows(t, s, d, refN, refN+clean, window); len(evs) > 0 {
		for w, e := range evs {
			for _, ev := range e {
				t.Errorf("clean window %d raised %s", w, ev.GetMessage())
			}
		}
	}
	hist := s.monitors["fraud"].snapshot(false).History
	if len(hist) != 20 {
		t.Fatalf("%d windows closed over %d clean predictions, want 20", len(hist), clean)
	}
	var maxPSI float64
	for _, c := range hist {
		for _, f := range c.Stats.Features {
			maxPSI = max(maxPSI, f.PSI)
		}
	}
	t.Logf("clean windows: max PSI over features %.4f", maxPSI)

	evs := feedRows(t, s, dd, refN+clean, refN+clean+shift, window)
	first := -1
	var all []*eventsv1.DriftEvent
	for w := range 4 {
		if len(evs[w]) > 0 && first < 0 {
			first = w
		}
		all = append(all, evs[w]...)
	}
	if first < 0 || first > 1 {
		t.Fatalf("amount doubling flagged in drifted window %d (0-based), want within the first 2; events: %v", first, all)
	}
	retrain := 0
	for _, ev := range all {
		t.Logf("drift event: %s (severity %s, retrain %v)", ev.GetMessage(), ev.GetSeverity(), ev.GetRetrain())
		if ev.GetRetrain() {
			retrain++
		}
	}
	if retrain != 1 {
		t.Errorf("%d events recommend retraining, want exactly 1", retrain)
	}
	if !containsFeature(all, "amount") {
		t.Errorf("no event names the amount feature: %v", all)
	}
}

func containsFeature(evs []*eventsv1.DriftEvent, f string) bool {
	for _, ev := range evs {
		if ev.GetFeature() == f {
			return true
		}
	}
	return false
}

// TestDriftBadInput: undecodable records and vectors of another spec are dead-lettered with
// their reason; NaN values, predictions of unmonitored models and predictions before any
// reference are counted, never fatal; a label of an unknown transaction is parked until its
// prediction comes.
func TestDriftBadInput(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "-window.count", "1000", "-window.min-count", "10")
	d, err := sim.FraudDataset(sim.Config{Seed: 3, Accounts: 500}, 3000)
	if err != nil {
		t.Fatal(err)
	}
	src := staticSource{}
	reg := prometheus.NewRegistry()
	s := New(cfg, src, slog.New(slog.DiscardHandler), reg)
	row := d.Row(0)

	// No reference yet: counted and skipped.
	s.LoadReferences(context.Background())
	res, err := s.Handle(context.Background(), []kafka.Message{predictionRecord(t, "tx-0", d.EventTimes[0], row, 0.1)})
	if err != nil || res[0].Err != nil {
		t.Fatalf("prediction before a reference: %v %v", err, res[0].Err)
	}
	src["fraud"] = simReference(t, d, 2000, 1000, cfg)
	s.LoadReferences(context.Background())

	nan := append([]float64(nil), row...)
	nan[featurespec.FraudAmount] = math.NaN()
	short := predictionRecord(t, "tx-short", d.EventTimes[0], row[:5], 0.1)
	other := new(eventsv1.Prediction)
	_ = proto.Unmarshal(predictionRecord(t, "tx-other", d.EventTimes[0], row, 0.1).Value, other)
	other.ModelName = "purchase"
	otherB, _ := proto.Marshal(other)
	wrongSpec := new(eventsv1.Prediction)
	_ = proto.Unmarshal(predictionRecord(t, "tx-spec", d.EventTimes[0], row, 0.1).Value, wrongSpec)
	wrongSpec.Features.SpecFingerprint = "fraud-v2-0000"
	wrongSpecB, _ := proto.Marshal(wrongSpec)
	label, _ := proto.Marshal(&eventsv1.Label{TransactionId: "never-seen", Label: 1})
	msgs := []kafka.Message{
		{Topic: topics.Predictions, Value: []byte("\xff\xff not protobuf")},
		short,
		{Topic: topics.Predictions, Value: wrongSpecB},
		predictionRecord(t, "tx-nan", d.EventTimes[0], nan, 0.1),
		{Topic: topics.Predictions, Value: otherB},
		{Topic: topics.Labels, Value: label},
		{Topic: topics.Labels, Value: []byte{0xff}},
	}
	res, err = s.Handle(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	wantReason := []string{topics.ReasonDecode, topics.ReasonSpecMismatch, topics.ReasonSpecMismatch, "", "", "", topics.ReasonDecode}
	for i, want := range wantReason {
		var pe *kafkaio.PermanentError
		switch {
		case want == "" && res[i].Err != nil:
			t.Errorf("record %d: error %v, want counted and skipped", i, res[i].Err)
		case want != "" && !errors.As(res[i].Err, &pe):
			t.Errorf("record %d: error %v, want a permanent error (dead letter) with reason %s", i, res[i].Err, want)
		case want != "" && pe.Reason != want:
			t.Errorf("record %d: reason %q, want %q", i, pe.Reason, want)
		}
	}
	for outcome, want := range map[string]float64{outcomeNoReference: 1, outcomeUnmonitored: 1, outcomeSpecMismatch: 2} {
		if got := testutil.ToFloat64(s.m.records.WithLabelValues(topics.Predictions, outcome)); got != want {
			t.Errorf("predictions %s = %v, want %v", outcome, got, want)
		}
	}
	if got := testutil.ToFloat64(s.m.records.WithLabelValues(topics.Labels, "parked")); got != 1 {
		t.Errorf("parked labels = %v, want 1 (the label of a transaction not seen yet)", got)
	}
	// Its prediction arriving later joins the parked label.
	res, err = s.Handle(context.Background(), []kafka.Message{predictionRecord(t, "never-seen", d.EventTimes[1], d.Row(1), 0.9)})
	if err != nil || res[0].Err != nil {
		t.Fatalf("prediction of the parked label: %v %v", err, res[0].Err)
	}
	if got := s.monitors["fraud"].snapshot(true).Current.Perf.Labelled; got != 1 {
		t.Errorf("labelled predictions after the late prediction = %d, want 1", got)
	}
	st := s.monitors["fraud"].snapshot(true).Current
	if st.Features[featurespec.FraudAmount].MissingRate != 0.5 {
		t.Errorf("amount missing rate after a NaN and a valid prediction = %v, want 0.5", st.Features[featurespec.FraudAmount].MissingRate)
	}
}
