package drift

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/drift/internal/window"
)

// reportPrefix is where main mounts ReportHandler on the admin port.
const reportPrefix = "/drift"

// reportTemplates holds the report's pages (index, model, message). It is parsed once per
// ReportHandler; it is data, never modified.
//
//go:embed report.html.tmpl
var reportTemplates string

// ReportHandler serves the HTML drift report on the admin port: /drift lists the models,
// /drift/<model> shows one window of one model (?window=<id> a kept closed window,
// ?window=open the open one; default the latest closed window, else the open one). The pages
// are self-contained: inline CSS and server-rendered SVG, no JavaScript and no external
// assets. Unknown models and windows are 404 pages listing the valid ones; a model without a
// reference profile yet is a 503 page. The handler is safe for concurrent use.
func (s *Server) ReportHandler() http.Handler {
	tmpl, err := template.New("report").Funcs(template.FuncMap{
		"num":  fmtNum,
		"pct":  fmtPct,
		"pval": fmtPValue,
	}).Parse(reportTemplates)
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "drift report template: "+err.Error(), http.StatusInternalServerError)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rest := strings.Trim(strings.TrimPrefix(r.URL.Path, reportPrefix), "/")
		var (
			status int
			name   string
			data   any
		)
		switch {
		case rest == "":
			status, name, data = http.StatusOK, "index", s.indexPage()
		case strings.Contains(rest, "/"):
			status, name, data = http.StatusNotFound, "message", s.unknownModel(rest)
		default:
			status, name, data = s.modelPage(rest, r.URL.Query())
		}
		var buf bytes.Buffer
		if err := tmpl.ExecuteTemplate(&buf, name, data); err != nil {
			s.logger.Error("drift report not rendered", "page", name, "err", err)
			http.Error(w, "drift report not rendered: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
		w.WriteHeader(status)
		_, _ = w.Write(buf.Bytes())
	})
}

// link is an anchor on a page.
type link struct {
	Href, Text string
	Current    bool
}

func modelHref(model string) string { return reportPrefix + "/" + url.PathEscape(model) }

func windowHref(model string, id string) string {
	return modelHref(model) + "?window=" + url.QueryEscape(id)
}

// messagePage explains why a page cannot be shown.
type messagePage struct {
	Title, Message string
	Status         int
	StatusText     string
	Links          []link
	LinksTitle     string
}

func newMessage(status int, title, msg, linksTitle string, links []link) messagePage {
	return messagePage{Title: title, Message: msg, Status: status, StatusText: http.StatusText(status), Links: links, LinksTitle: linksTitle}
}

func (s *Server) modelLinks() []link {
	out := make([]link, 0, len(s.cfg.Models))
	for _, m := range s.cfg.Models {
		out = append(out, link{Href: modelHref(m), Text: m})
	}
	return out
}

func (s *Server) unknownModel(name string) messagePage {
	return newMessage(http.StatusNotFound, "Unknown model",
		fmt.Sprintf("The drift service does not monitor a model named %q.", name), "Monitored models", s.modelLinks())
}

// ---------------------------------------------------------------------------------------
// index

type indexPage struct {
	Generated string
	Models    []modelStatus
}

type modelStatus struct {
	Name, Href     string
	Loaded         bool
	Version, RunID string
	Drifting       bool
	Judged         bool // a judged window closed
	Windows        int
	LastWindow     string
	OpenCount      int64
	Events         []eventRow
}

func (s *Server) indexPage() indexPage {
	p := indexPage{Generated: time.Now().UTC().Format(time.RFC3339)}
	for _, model := range s.cfg.Models {
		snap := s.monitors[model].snapshot(true)
		ms := modelStatus{Name: model, Href: modelHref(model), Loaded: snap.Ref != nil, Windows: len(snap.History)}
		if snap.Ref != nil {
			ms.Version, ms.RunID = snap.Ref.Version, snap.Ref.RunID
		}
		if snap.Current != nil {
			ms.OpenCount = snap.Current.Predictions
		}
		if n := len(snap.History); n > 0 {
			c := snap.History[n-1]
			ms.LastWindow = fmt.Sprintf("#%d, %d predictions, ended %s", c.ID, c.Stats.Predictions, fmtTime(c.Stats.End))
		}
		for i := len(snap.History) - 1; i >= 0; i-- {
			if c := snap.History[i]; c.Stats.Perf.Judged {
				ms.Judged, ms.Drifting = true, c.Crossings > 0
				break
			}
		}
		for i := len(snap.Events) - 1; i >= 0 && len(ms.Events) < 3; i-- {
			ms.Events = append(ms.Events, newEventRow(snap.Events[i]))
		}
		p.Models = append(p.Models, ms)
	}
	return p
}

// ---------------------------------------------------------------------------------------
// one model

type modelPage struct {
	Model, Version, RunID string
	Regression            bool
	Window                windowInfo
	Windows               []link // kept closed windows, newest first, plus the open one
	MoreWindows           int    // kept windows not linked
	Columns               []columnRow
	Hists                 []histogram
	Score                 histogram
	Perf                  []perfRow
	Chart                 lineChart
	Events                []eventRow // raised by the shown window
	Recent                []eventRow // the model's latest events, newest first
	Generated             string
}

type windowInfo struct {
	Title                string
	Open                 bool
	Reason               string
	Start, End, Duration string
	Predictions          int64
	Versions             string
	Judged               bool
	LabelCoverage        float64
	Labelled             int64
	AlertRate, RefAlert  float64
	Drifted              []string
	Crossings            int
}

type columnRow struct {
	Name                                   string
	Score                                  bool
	Count                                  int64
	PSI, PSIT, KS, KSP, KST, JS, JST       float64
	KSN                                    int
	Missing, NonFinite, OutOfRange         float64
	Drifted, DriftedPSI, DriftedKS, DriftJ bool
	Anchor                                 string
}

type perfRow struct {
	Name, Value, Note string
}

// windowLinksShown caps the window navigation links.
const windowLinksShown = 30

func (s *Server) modelPage(name string, q url.Values) (int, string, any) {
	mo := s.monitors[name]
	if mo == nil {
		return http.StatusNotFound, "message", s.unknownModel(name)
	}
	snap := mo.snapshot(true)
	if snap.Ref == nil {
		return http.StatusServiceUnavailable, "message", newMessage(http.StatusServiceUnavailable, "No reference profile yet",
			fmt.Sprintf("The drift service has not loaded the reference profile of %q yet: it needs the champion's reference_profile.json "+
				"from the model registry (%s). Until then predictions of %q are counted and skipped. The load is retried every %s "+
				"and whenever model.events announces a new champion; check that a champion is registered (mlopsctl models list) "+
				"and the service's logs.", name, s.cfg.MLflowURL, name, s.cfg.RefreshInterval),
			"Monitored models", s.modelLinks())
	}
	var (
		st     *window.Stats
		ref    = snap.Ref
		closed *Closed
	)
	switch w := q.Get("window"); w {
	case "":
		if n := len(snap.History); n > 0 {
			closed = snap.History[n-1]
		}
	case "open":
	default:
		id, err := strconv.ParseInt(w, 10, 64)
		i := slices.IndexFunc(snap.History, func(c *Closed) bool { return c.ID == id })
		if err != nil || i < 0 {
			msg := fmt.Sprintf("Window %q of %q is not kept.", w, name)
			if n := len(snap.History); n > 0 {
				msg += fmt.Sprintf(" Kept windows (up to the last %d): %d to %d.", s.cfg.History, snap.History[0].ID, snap.History[n-1].ID)
			} else {
				msg += " No window has closed yet."
			}
			return http.StatusNotFound, "message", newMessage(http.StatusNotFound, "Unknown window", msg, "Windows", windowLinks(name, snap.History, 0, len(snap.History)))
		}
		closed = snap.History[i]
	}
	if closed != nil {
		st, ref = &closed.Stats, closed.Ref
	} else {
		st = snap.Current
	}
	p := &modelPage{Model: name, Version: ref.Version, RunID: ref.RunID, Regression: ref.Ref.Regression,
		Generated: time.Now().UTC().Format(time.RFC3339)}
	selected := int64(0)
	if closed != nil {
		selected = closed.ID
	}
	p.Windows = windowLinks(name, snap.History, selected, windowLinksShown)
	p.MoreWindows = max(0, len(snap.History)-windowLinksShown)
	p.Window = newWindowInfo(closed, st)
	for i := range st.Features {
		c := &st.Features[i]
		p.Columns = append(p.Columns, newColumnRow(c, false))
		p.Hists = append(p.Hists, newHistogram(c, ref.Layout.Features[i].Edges, ref.Ref.Features[i].Fractions, closedRange(ref, i)))
	}
	p.Columns = append(p.Columns, newColumnRow(&st.Score, true))
	p.Score = newHistogram(&st.Score, ref.Layout.Score.Edges, ref.Ref.Score.Fractions, closedRange(ref, len(st.Features)))
	p.Perf = perfRows(&st.Perf, ref.Ref.Regression)
	p.Chart = s.performanceChart(snap.History, selected, ref.Ref.Regression)
	if closed != nil {
		for _, ev := range closed.Events {
			p.Events = append(p.Events, newEventRow(ev))
		}
	}
	for i := len(snap.Events) - 1; i >= 0 && len(p.Recent) < defaultListLimit; i-- {
		p.Recent = append(p.Recent, newEventRow(snap.Events[i]))
	}
	return http.StatusOK, "model", p
}

// windowLinks links the newest at most n kept windows, newest first, then the open window.
func windowLinks(model string, hist []*Closed, selected int64, n int) []link {
	var out []link
	for i := len(hist) - 1; i >= 0 && len(out) < n; i-- {
		id := hist[i].ID
		out = append(out, link{Href: windowHref(model, strconv.FormatInt(id, 10)), Text: "#" + strconv.FormatInt(id, 10), Current: id == selected})
	}
	return append(out, link{Href: windowHref(model, "open"), Text: "open", Current: selected == 0})
}

func newWindowInfo(c *Closed, st *window.Stats) windowInfo {
	w := windowInfo{Title: "open window (not closed yet)", Open: true, Start: fmtTime(st.Start), End: fmtTime(st.End),
		Predictions: st.Predictions, Judged: st.Perf.Judged, LabelCoverage: st.Perf.LabelCoverage, Labelled: st.Perf.Labelled,
		AlertRate: st.Perf.AlertRate, RefAlert: st.Perf.ReferenceAlertRate}
	if c != nil {
		w.Title, w.Open, w.Reason, w.Crossings = fmt.Sprintf("window #%d", c.ID), false, c.Reason, c.Crossings
	}
	if st.Start != math.MaxInt64 && st.End != math.MinInt64 {
		w.Duration = time.Duration(st.End - st.Start).Round(time.Millisecond).String()
	}
	var vs []string
	for _, v := range slices.Sorted(mapKeys(st.Versions)) {
		vs = append(vs, fmt.Sprintf("%s (%d)", v, st.Versions[v]))
	}
	w.Versions = strings.Join(vs, ", ")
	for _, col := range append(st.Features[:len(st.Features):len(st.Features)], st.Score) {
		if col.Drifted {
			w.Drifted = append(w.Drifted, col.Name)
		}
	}
	return w
}

func mapKeys(m map[string]int64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func newColumnRow(c *window.ColumnStats, score bool) columnRow {
	return columnRow{Name: c.Name, Score: score, Count: c.Count, PSI: c.PSI, PSIT: c.PSIThreshold, KS: c.KS, KSP: c.KSPValue,
		KST: c.KSThreshold, JS: c.JS, JST: c.JSThreshold, KSN: c.KSSampleSize, Missing: c.MissingRate, NonFinite: c.NonFiniteRate,
		OutOfRange: c.OutOfRange, Drifted: c.Drifted, DriftedPSI: c.DriftedPSI, DriftedKS: c.DriftedKS, DriftJ: c.DriftedJS,
		Anchor: "h-" + c.Name}
}

func perfRows(p *window.Performance, regression bool) []perfRow {
	f := func(v float64) string { return fmtNum(v) }
	rows := []perfRow{{"predictions", strconv.FormatInt(p.Predictions, 10), ""},
		{"labelled", strconv.FormatInt(p.Labelled, 10), fmt.Sprintf("coverage %s", fmtPct(p.LabelCoverage))}}
	if regression {
		return append(rows,
			perfRow{"MSE", f(p.MSE), "realized, on labelled predictions"},
			perfRow{"MAE", f(p.MAE), "realized"},
			perfRow{"reference MSE", f(p.ReferenceMSE), "champion's training holdout"})
	}
	return append(rows,
		perfRow{"AUC (realized)", f(p.AUC), judgedNote(p)},
		perfRow{"AUC (estimated)", f(p.EstAUC), "from calibrated scores, every prediction"},
		perfRow{"AUC (estimated, labelled rows)", f(p.EstAUCLabelled), "compare with realized: a gap means concept drift"},
		perfRow{"reference AUC", f(p.ReferenceAUC), "champion's training holdout"},
		perfRow{"precision", f(p.Precision), "realized at threshold " + f(p.Threshold)},
		perfRow{"recall", f(p.Recall), "realized"},
		perfRow{"precision (estimated)", f(p.EstPrecision), ""},
		perfRow{"recall (estimated)", f(p.EstRecall), ""},
		perfRow{"log loss", f(p.LogLoss), ""},
		perfRow{"alert rate", fmtPct(p.AlertRate), "reference " + fmtPct(p.ReferenceAlertRate)},
		perfRow{"fraud amount caught / missed", f(p.FraudCaught) + " / " + f(p.FraudMissed), ""},
		perfRow{"false-positive cost", f(p.FalsePosCost), ""})
}

func judgedNote(p *window.Performance) string {
	if p.RealizedJudged {
		return fmt.Sprintf("on %d labelled predictions", p.LabelledAUCSample)
	}
	return fmt.Sprintf("too few labels to judge (%d)", p.LabelledAUCSample)
}

// ---------------------------------------------------------------------------------------
// events

type eventRow struct {
	Time, Feature, Metric, Severity, Message, Window string
	Value, Threshold                                 float64
	Retrain                                          bool
}

func newEventRow(ev *eventsv1.DriftEvent) eventRow {
	r := eventRow{Feature: ev.GetFeature(), Metric: metricName(ev.GetMetric()), Value: ev.GetValue(), Threshold: ev.GetThreshold(),
		Severity: strings.ToLower(strings.TrimPrefix(ev.GetSeverity().String(), "SEVERITY_")), Retrain: ev.GetRetrain(), Message: ev.GetMessage()}
	if t := ev.GetEventTime(); t != nil {
		r.Time = t.AsTime().UTC().Format(time.RFC3339)
	}
	if r.Feature == "" {
		r.Feature = "performance"
	}
	if w := ev.GetWindow(); w != nil {
		r.Window = fmt.Sprintf("%d predictions", w.GetCount())
	}
	return r
}

// ---------------------------------------------------------------------------------------
// SVG: histograms

// Histogram geometry, in SVG user units.
const (
	histW, histH                         = 460, 210
	histLeft, histRight, histTop         = 44, 8, 10
	histBottom                           = 50
	chartW, chartH                       = 960, 300
	chartLeft, chartRight                = 52, 150
	chartTop, chartBottom                = 14, 40
	maxAxisLabels                        = 14
	histPlotW, histPlotH                 = histW - histLeft - histRight, histH - histTop - histBottom
	chartPlotW, chartPlotH               = chartW - chartLeft - chartRight, chartH - chartTop - chartBottom
	barGap                               = 0.12
	minVisibleBar                float64 = 0.5
)

type histogram struct {
	Name                         string
	Anchor                       string
	Drifted                      bool
	PSI, PSIT                    float64
	Count                        int64
	Empty                        bool // no finite value in the window
	Mismatch                     bool // bins differ from the reference's (should not happen)
	W, H, X0, Y0, X1, Y1, LabelY int
	TickY2                       int
	Bars                         []bar
	XTicks, YTicks               []tick
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type tick struct {
	X, Y  float64
	Label string
}

// closedRange reports whether the profile's bins of column i (the score after the features)
// close the reference's range (driftstat.ReferenceBins): the first edge just below the
// minimum, the last at the maximum. Older profiles have open-ended end bins.
func closedRange(ref *Reference, i int) bool {
	if ref.Profile == nil {
		return false
	}
	d := ref.Profile.Score
	if i < len(ref.Profile.Features) {
		d = &ref.Profile.Features[i]
	}
	return d != nil && len(d.Edges) >= 2 && d.Edges[0] == math.Nextafter(d.Min, math.Inf(-1)) && d.Edges[len(d.Edges)-1] == d.Max
}

func newHistogram(c *window.ColumnStats, edges, ref []float64, closed bool) histogram {
	h := histogram{Name: c.Name, Anchor: "h-" + c.Name, Drifted: c.Drifted, PSI: c.PSI, PSIT: c.PSIThreshold, Count: c.Count,
		Empty: c.Count == 0, W: histW, H: histH, X0: histLeft, Y0: histTop + histPlotH, X1: histLeft + histPlotW, Y1: histTop,
		LabelY: histTop + histPlotH + 14, TickY2: histTop + histPlotH + 4}
	n := len(edges) + 1
	if len(ref) != n || len(c.Current) != n {
		h.Mismatch = true
		return h
	}
	top := 0.0
	for i := range n {
		top = max(top, ref[i], c.Current[i])
	}
	top = niceCeil(top)
	y := func(v float64) float64 { return float64(histTop) + float64(histPlotH)*(1-v/top) }
	slot := float64(histPlotW) / float64(n)
	bw := slot * (1 - 2*barGap) / 2
	curClass := "cur"
	if c.Drifted {
		curClass = "cur drifted"
	}
	for i := range n {
		x := float64(histLeft) + slot*float64(i) + slot*barGap
		rng := binRange(edges, i, closed)
		for j, side := range []struct {
			v     float64
			class string
			who   string
		}{{ref[i], "ref", "reference"}, {c.Current[i], curClass, "window"}} {
			hgt := float64(histPlotH) * side.v / top
			if side.v > 0 {
				hgt = max(hgt, minVisibleBar)
			}
			h.Bars = append(h.Bars, bar{X: x + float64(j)*bw, Y: float64(histTop+histPlotH) - hgt, W: bw, H: hgt, Class: side.class,
				Title: fmt.Sprintf("%s %s: %s", rng, side.who, fmtPct(side.v))})
		}
	}
	every := max(1, (len(edges)+maxAxisLabels-1)/maxAxisLabels)
	for i, e := range edges {
		if i%every == 0 {
			h.XTicks = append(h.XTicks, tick{X: float64(histLeft) + slot*float64(i+1), Y: float64(h.LabelY), Label: shortNum(e)})
		}
	}
	for _, v := range []float64{0, top / 2, top} {
		h.YTicks = append(h.YTicks, tick{X: histLeft - 4, Y: y(v), Label: fmtPct(v)})
	}
	return h
}

// binRange describes bin i of the right-closed bins on edges.
func binRange(edges []float64, i int, closed bool) string {
	// In a closed range bin 0 holds x ≤ the float64 just below the minimum, i.e. x < min.
	lo := func() string { return shortNum(math.Nextafter(edges[0], math.Inf(1)) + 0) } // + 0: no "-0"
	switch {
	case len(edges) == 0:
		return "all values"
	case i == 0 && closed:
		return "< " + lo()
	case i == 0:
		return "≤ " + shortNum(edges[0])
	case i == len(edges):
		return "> " + shortNum(edges[i-1])
	case i == 1 && closed:
		return fmt.Sprintf("[%s, %s]", lo(), shortNum(edges[1]))
	}
	return fmt.Sprintf("(%s, %s]", shortNum(edges[i-1]), shortNum(edges[i]))
}

// niceCeil rounds a positive fraction up to a readable axis maximum.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	for _, step := range []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.25} {
		if v <= step*5 {
			return math.Ceil(v/step) * step
		}
	}
	return math.Min(1, math.Ceil(v/0.25)*0.25)
}

// ---------------------------------------------------------------------------------------
// SVG: performance over the kept windows

type lineChart struct {
	Empty                   bool
	Note                    string
	W, H, X0, Y0, X1, Y1    int
	Series                  []series
	HLines                  []hline
	XTicks, YTicks          []tick
	Marker                  float64 // x of the shown window; 0: not in the chart
	LegendX                 int
	XLabelX, XLabelY        int
	XLabel                  string
	YLabel                  string
	YLabelX, MidY           float64
	MarkerTop, MarkerBottom int
}

type series struct {
	Name, Class string
	Segments    []string // polyline points
	Points      []point
	LegendY     float64
}

type point struct {
	X, Y  float64
	Title string
}

type hline struct {
	Y       float64
	Class   string
	Label   string
	LegendY float64
}

func (s *Server) performanceChart(hist []*Closed, selected int64, regression bool) lineChart {
	ch := lineChart{W: chartW, H: chartH, X0: chartLeft, Y0: chartTop + chartPlotH, X1: chartLeft + chartPlotW, Y1: chartTop,
		LegendX: chartLeft + chartPlotW + 14, XLabelX: chartLeft + chartPlotW/2, XLabelY: chartH - 4, XLabel: "closed window", MarkerTop: chartTop, MarkerBottom: chartTop + chartPlotH}
	if len(hist) == 0 {
		ch.Empty, ch.Note = true, "No window has closed yet: the chart fills in as windows close."
		return ch
	}
	type def struct {
		name, class string
		v           func(*window.Performance) float64
	}
	var defs []def
	var hls []hline
	lo, hi := 0.0, 1.0
	last := &hist[len(hist)-1].Stats.Perf
	if regression {
		defs = []def{{"MSE (realized)", "s-mse", func(p *window.Performance) float64 { return p.MSE }},
			{"MAE (realized)", "s-mae", func(p *window.Performance) float64 { return p.MAE }}}
		hls = append(hls, hline{Y: s.cfg.MSEThreshold, Class: "h-floor", Label: "MSE alarm " + shortNum(s.cfg.MSEThreshold)})
		if !math.IsNaN(last.ReferenceMSE) {
			hls = append(hls, hline{Y: last.ReferenceMSE, Class: "h-ref", Label: "reference MSE " + shortNum(last.ReferenceMSE)})
		}
		hi = 0
		for _, c := range hist {
			hi = max(hi, finiteOr(c.Stats.Perf.MSE, 0), finiteOr(c.Stats.Perf.MAE, 0))
		}
		for _, h := range hls {
			hi = max(hi, h.Y)
		}
		hi = niceMax(hi * 1.1)
		ch.YLabel = "error"
	} else {
		defs = []def{{"AUC (realized)", "s-auc", func(p *window.Performance) float64 { return p.AUC }},
			{"AUC (estimated)", "s-est", func(p *window.Performance) float64 { return p.EstAUC }},
			{"label coverage", "s-cov", func(p *window.Performance) float64 { return p.LabelCoverage }}}
		if !math.IsNaN(last.ReferenceAUC) {
			hls = append(hls, hline{Y: last.ReferenceAUC, Class: "h-ref", Label: "reference AUC " + fmtNum(last.ReferenceAUC)},
				hline{Y: last.ReferenceAUC - s.cfg.AUCDrop, Class: "h-floor", Label: "AUC alarm " + fmtNum(last.ReferenceAUC-s.cfg.AUCDrop)})
		}
		ch.YLabel = "AUC, coverage"
	}
	y := func(v float64) float64 { return float64(chartTop) + float64(chartPlotH)*(1-(v-lo)/(hi-lo)) }
	step := float64(chartPlotW)
	if len(hist) > 1 {
		step = float64(chartPlotW) / float64(len(hist)-1)
	}
	x := func(i int) float64 {
		if len(hist) == 1 {
			return float64(chartLeft) + float64(chartPlotW)/2
		}
		return float64(chartLeft) + step*float64(i)
	}
	legendY := float64(chartTop + 8)
	known := false
	for _, d := range defs {
		sr := series{Name: d.name, Class: d.class, LegendY: legendY}
		legendY += 18
		var seg []string
		flush := func() {
			if len(seg) > 1 {
				sr.Segments = append(sr.Segments, strings.Join(seg, " "))
			}
			seg = seg[:0]
		}
		for i, c := range hist {
			v := d.v(&c.Stats.Perf)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				flush()
				continue
			}
			known = true
			px, py := x(i), y(min(max(v, lo), hi))
			seg = append(seg, fmt.Sprintf("%.1f,%.1f", px, py))
			sr.Points = append(sr.Points, point{X: px, Y: py, Title: fmt.Sprintf("window #%d %s: %s", c.ID, d.name, fmtNum(v))})
		}
		flush()
		ch.Series = append(ch.Series, sr)
	}
	for _, h := range hls {
		if h.Y < lo || h.Y > hi || math.IsNaN(h.Y) {
			continue
		}
		h.LegendY = legendY
		legendY += 18
		h.Y = y(h.Y)
		ch.HLines = append(ch.HLines, h)
	}
	if !known {
		ch.Note = "No performance value is known yet in the kept windows (labels arrive late; estimates need a calibrated reference)."
	}
	every := max(1, (len(hist)+maxAxisLabels-1)/maxAxisLabels)
	for i, c := range hist {
		if i%every == 0 || i == len(hist)-1 {
			ch.XTicks = append(ch.XTicks, tick{X: x(i), Y: float64(chartTop + chartPlotH + 16), Label: "#" + strconv.FormatInt(c.ID, 10)})
		}
		if c.ID == selected {
			ch.Marker = x(i)
		}
	}
	for k := range 5 {
		v := lo + (hi-lo)*float64(k)/4
		ch.YTicks = append(ch.YTicks, tick{X: chartLeft - 6, Y: y(v), Label: shortNum(v)})
	}
	ch.YLabelX, ch.MidY = 14, float64(chartTop)+float64(chartPlotH)/2
	return ch
}

// niceMax rounds a positive axis maximum up to 1, 2, 2.5 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if v <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func finiteOr(v, def float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return def
	}
	return v
}

// ---------------------------------------------------------------------------------------
// formatting

// fmtNum formats a statistic with 4 significant digits; NaN (unknown) is a dash.
func fmtNum(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	if v == 0 {
		return "0"
	}
	if a := math.Abs(v); a >= 1e-3 && a < 1e6 {
		return strconv.FormatFloat(v, 'f', max(0, 3-int(math.Floor(math.Log10(a)))), 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// fmtPct formats a fraction as a percentage.
func fmtPct(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	if v != 0 && math.Abs(v) < 0.001 {
		return fmt.Sprintf("%.3f%%", 100*v)
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// fmtPValue formats a p-value.
func fmtPValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v < 1e-4:
		return "<0.0001"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// shortNum formats an axis value compactly (1.5k, 2M).
func shortNum(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "—"
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'g', 3, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func fmtTime(ns int64) string {
	if ns == math.MaxInt64 || ns == math.MinInt64 {
		return "—"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000Z")
}
