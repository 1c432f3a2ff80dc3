package drift_test

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/drift/internal/drift"
	"github.com/streaming-mlops/mlops/services/platform/driftstat"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/profile"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

var screenshotOut = flag.String("screenshot", "", "TestDriftReportInBrowser also writes its screenshot to this path, to look at")

// Shape of the simulated traffic: windows of reportWindow predictions, the first
// normalWindows as the reference, then shiftedWindows with "amount" scaled up, then a partly
// filled open window.
const (
	reportWindow   = 500
	normalWindows  = 6
	shiftedWindows = 4
	openWindow     = 180
	amountShift    = 4.0
)

// fakeSource serves one reference for "fraud"; every other model has none.
type fakeSource struct{ ref *drift.Reference }

func (f fakeSource) Load(_ context.Context, model string) (*drift.Reference, error) {
	if model == f.ref.Model {
		return f.ref, nil
	}
	return nil, fmt.Errorf("no champion registered for %q", model)
}

// gen draws fraud-spec feature vectors, their score and a label drawn from the score.
type gen struct {
	rng  *rand.Rand
	spec featurespec.Spec
}

func (g *gen) row(shift float64) (values []float64, score float64, label bool) {
	values = make([]float64, g.spec.Len())
	for j, f := range g.spec.Features {
		span := f.Max - f.Min
		switch f.Type {
		case featurespec.TypeBool:
			if g.rng.Float64() < 0.15 {
				values[j] = 1
			}
		case featurespec.TypeInt:
			values[j] = f.Min + float64(g.rng.IntN(int(min(span, 30))+1))
		default:
			u := g.rng.Float64()
			values[j] = f.Min + min(span, 100)*u*u
		}
	}
	values[featurespec.FraudAmount] *= shift
	z := -3 + 2.5*values[featurespec.FraudLocationScore] + 2*values[featurespec.FraudDeviceRiskScore] + values[featurespec.FraudIsNewDevice]
	score = 1 / (1 + math.Exp(-z))
	return values, score, g.rng.Float64() < score
}

// reportServer is a drift server for models fraud (with a reference) and purchase (none),
// fed simulated predictions and labels: normalWindows like the reference, shiftedWindows with
// amount shifted, and an open window.
func reportServer(t *testing.T) *drift.Server {
	t.Helper()
	ctx := context.Background()
	cfg, err := drift.ParseConfig([]string{"-window.count", fmt.Sprint(reportWindow), "-window.min-count", "100", "-models", "fraud,purchase"},
		func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	spec := featurespec.Fraud()
	g := &gen{rng: rand.New(rand.NewPCG(1, 2)), spec: spec}
	const refRows = 5000
	matrix := make([]float64, 0, refRows*spec.Len())
	scores := make([]float64, 0, refRows)
	labels := make([]bool, 0, refRows)
	alerts := 0
	for range refRows {
		v, s, l := g.row(1)
		matrix, scores, labels = append(matrix, v...), append(scores, s), append(labels, l)
		if s >= 0.8 {
			alerts++
		}
	}
	prof, err := profile.Build(spec.Fingerprint(), spec.Names(), matrix, scores, profile.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if err := prof.Calibrate(matrix, scores, profile.CalibrateOptions{WindowSize: reportWindow, Resamples: 200, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	iso := driftstat.FitIsotonic(scores, labels)
	prof.Calibration, prof.Threshold, prof.AlertRate = &iso, 0.8, float64(alerts)/refRows
	prof.Holdout = map[string]float64{"auc": driftstat.AUC(scores, labels)}
	ref, err := drift.NewReference("fraud", "1", "run1", spec, 0.8, prof, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := drift.New(cfg, fakeSource{ref: ref}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	s.LoadReferences(ctx)

	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	n := 0
	feed := func(count int, shift float64) {
		var batch []kafka.Message
		for range count {
			v, score, label := g.row(shift)
			tx := fmt.Sprintf("tx-%06d", n)
			et := timestamppb.New(start.Add(time.Duration(n) * 10 * time.Millisecond))
			n++
			p := &eventsv1.Prediction{EventId: "p-" + tx, EventTime: et, TransactionId: tx, ModelName: "fraud", ModelVersion: "1",
				Task: eventsv1.Task_TASK_BINARY_CLASSIFICATION, Score: score, Threshold: 0.8,
				Features: &eventsv1.FeatureVector{TransactionId: tx, Values: v, SpecFingerprint: spec.Fingerprint(), Amount: v[featurespec.FraudAmount]}}
			batch = append(batch, kafka.Message{Topic: topics.Predictions, Value: marshal(t, p)})
			if g.rng.Float64() < 0.6 { // labels of most predictions, in the same window
				l := &eventsv1.Label{EventId: "l-" + tx, EventTime: et, TransactionId: tx, Label: b2f(label), Kind: eventsv1.LabelKind_LABEL_KIND_FRAUD}
				batch = append(batch, kafka.Message{Topic: topics.Labels, Value: marshal(t, l)})
			}
			if len(batch) >= 200 {
				handle(t, s, batch)
				batch = batch[:0]
			}
		}
		handle(t, s, batch)
	}
	feed(normalWindows*reportWindow, 1)
	feed(shiftedWindows*reportWindow, amountShift)
	feed(openWindow, amountShift)
	return s
}

func handle(t *testing.T, s *drift.Server, batch []kafka.Message) {
	t.Helper()
	if len(batch) == 0 {
		return
	}
	res, err := s.Handle(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("record %d: %v", i, r.Err)
		}
	}
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func get(t *testing.T, h http.Handler, method, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code, rec.Body.String()
}

// driftedRow matches the feature table row of a drifted feature.
func driftedRow(name string) string {
	return `<tr class="feature drifted" data-feature="` + name + `">`
}

func TestReportHandler(t *testing.T) {
	t.Parallel()
	s := reportServer(t)
	h := s.ReportHandler()
	lastID := normalWindows + shiftedWindows
	names := featurespec.Fraud().Names()

	tests := []struct {
		name, method, target string
		wantCode             int
		want                 []string
		notWant              []string
	}{
		{name: "index", target: "/drift", wantCode: 200,
			want: []string{`href="/drift/fraud"`, `href="/drift/purchase"`, "drifting", "no reference yet", "version 1", "run1"}},
		{name: "index with slash", target: "/drift/", wantCode: 200, want: []string{`href="/drift/fraud"`}},
		{name: "latest closed window", target: "/drift/fraud", wantCode: 200,
			want: append([]string{fmt.Sprintf("window #%d", lastID), "champion version", "run1", "label coverage", `<svg id="performance"`,
				`class="histogram"`, driftedRow("amount"), `<rect class="cur drifted"`, "AUC (realized)", "AUC (estimated)",
				"reference AUC", "retraining recommended", `class="current">#` + fmt.Sprint(lastID)}, names...)},
		{name: "first window has no drifted amount", target: "/drift/fraud?window=1", wantCode: 200,
			want: []string{"window #1", `data-feature="amount"`}, notWant: []string{driftedRow("amount")}},
		{name: "open window", target: "/drift/fraud?window=open", wantCode: 200,
			want: []string{"open window (not closed yet)", fmt.Sprint(openWindow), driftedRow("amount"), "raises its events when it closes"}},
		{name: "unknown window", target: "/drift/fraud?window=9999", wantCode: 404,
			want: []string{"Unknown window", fmt.Sprintf("): 1 to %d", lastID), `href="/drift/fraud?window=3"`}},
		{name: "bad window id", target: "/drift/fraud?window=x%3Cb%3E", wantCode: 404, want: []string{"Unknown window", "x&lt;b&gt;"}, notWant: []string{"x<b>"}},
		{name: "unknown model", target: "/drift/nope", wantCode: 404, want: []string{"Unknown model", `href="/drift/fraud"`, `href="/drift/purchase"`}},
		{name: "unknown model is escaped", target: "/drift/%3Cscript%3Ealert(1)%3C%2Fscript%3E", wantCode: 404,
			want: []string{"&lt;script&gt;"}, notWant: []string{"<script>alert"}},
		{name: "nested path", target: "/drift/fraud/x", wantCode: 404, want: []string{"Unknown model"}},
		{name: "no reference yet", target: "/drift/purchase", wantCode: 503, want: []string{"No reference profile yet", "purchase", "retried every 30s"}},
		{name: "post", method: http.MethodPost, target: "/drift/fraud", wantCode: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, body := get(t, h, cmp.Or(tt.method, http.MethodGet), tt.target)
			if code != tt.wantCode {
				t.Errorf("GET %s = %d, want %d\n%.2000s", tt.target, code, tt.wantCode, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s: body lacks %q", tt.target, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("GET %s: body contains %q", tt.target, w)
				}
			}
			if code != http.StatusMethodNotAllowed && strings.Contains(body, "<script") {
				t.Errorf("GET %s: the report must not carry JavaScript", tt.target)
			}
			if regexp.MustCompile(`(src|href)="(https?:)?//`).MatchString(body) {
				t.Errorf("GET %s: the report links an external asset", tt.target)
			}
		})
	}
}

func TestReportHistogramsAndChart(t *testing.T) {
	t.Parallel()
	s := reportServer(t)
	_, body := get(t, s.ReportHandler(), http.MethodGet, "/drift/fraud")
	nFeatures := featurespec.Fraud().Len()
	if got := strings.Count(body, `class="histogram"`); got != nFeatures+1 {
		t.Errorf("%d histograms, want %d (features and score)", got, nFeatures+1)
	}
	if got := strings.Count(body, `<tr class="feature`); got != nFeatures+1 {
		t.Errorf("%d feature table rows, want %d", got, nFeatures+1)
	}
	if got := strings.Count(body, `<rect class="ref"`); got < 2*nFeatures {
		t.Errorf("%d reference bars, want at least 2 per feature", got)
	}
	// One point per kept window for the estimated AUC and the label coverage.
	for _, class := range []string{"s-est", "s-cov", "s-auc"} {
		if got := strings.Count(body, `<circle class="`+class+`"`); got != normalWindows+shiftedWindows {
			t.Errorf("%d %s points, want %d", got, class, normalWindows+shiftedWindows)
		}
	}
	if strings.Contains(body, "NaN") {
		t.Error("the report shows NaN; unknown values are a dash")
	}
}

// TestDriftReportInBrowser renders the report in headless Chromium: the DOM it builds holds
// the feature table and the SVG charts, and the screenshot is a real page.
func TestDriftReportInBrowser(t *testing.T) {
	bin := stacktest.Binary(t, "chromium")
	s := reportServer(t)
	mux := http.NewServeMux()
	mux.Handle("/drift", s.ReportHandler())
	mux.Handle("/drift/", s.ReportHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	url := srv.URL + "/drift/fraud"

	browser := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
			"--user-data-dir=" + t.TempDir()}, args...)
		cmd := exec.CommandContext(ctx, bin, append(args, url)...)
		cmd.WaitDelay = 5 * time.Second
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}

	t.Run("dom", func(t *testing.T) {
		t.Parallel()
		dom := browser(t, "--dump-dom")
		for _, want := range append([]string{driftedRow("amount"), `<svg id="performance"`, "<polyline", "<circle", `<rect class="cur drifted"`,
			fmt.Sprintf("window #%d", normalWindows+shiftedWindows)}, featurespec.Fraud().Names()...) {
			if !strings.Contains(dom, want) {
				t.Errorf("rendered DOM lacks %q", want)
			}
		}
		if got := strings.Count(dom, `<tr class="feature`); got != featurespec.Fraud().Len()+1 {
			t.Errorf("rendered DOM has %d feature rows, want %d", got, featurespec.Fraud().Len()+1)
		}
		if got := strings.Count(dom, "<svg"); got < featurespec.Fraud().Len()+2 {
			t.Errorf("rendered DOM has %d SVG elements, want one per histogram and the chart", got)
		}
	})
	t.Run("screenshot", func(t *testing.T) {
		t.Parallel()
		png := filepath.Join(t.TempDir(), "report.png")
		browser(t, "--hide-scrollbars", "--window-size=1280,2000", "--screenshot="+png)
		fi, err := os.Stat(png)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		if fi.Size() <= 10<<10 {
			t.Errorf("screenshot is %d bytes, want a real page (> 10 KB)", fi.Size())
		}
		if *screenshotOut != "" {
			if err := copyFile(png, *screenshotOut); err != nil {
				t.Error(err)
			}
		}
	})
}

func copyFile(from, to string) (err error) {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
