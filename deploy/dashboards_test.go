package deploy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// dashboard is the part of a Grafana dashboard JSON the check reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // collapsed rows
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// promqlKeywords are the PromQL words that are not metric names: functions are recognised by
// the "(" that follows them, but aggregation modifiers and operators are not.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promVariable = regexp.MustCompile(`\$\{?\w+\}?`)
	promBraces   = regexp.MustCompile(`\{[^{}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promNumber   = regexp.MustCompile(`\b\d+(\.\d+)?(e[+-]?\d+)?\b`)
)

// metricNames returns the metric names an expression selects. It strips, in order, string
// literals, Grafana variables, label matchers, range and subquery brackets, and the label
// lists of by/without/on/ignoring/group_*; what remains is metric names, function names
// (followed by "("), keywords and numbers.
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	e = promVariable.ReplaceAllString(e, " 1 ")
	e = promBraces.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	e = promNumber.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promqlKeywords[strings.ToLower(name)] {
			continue
		}
		out = append(out, name)
	}
	return out
}

// TestDashboardsUseExportedMetrics: every metric a dashboard queries is one the services
// export, and every label it matches on, groups by or shows in a legend is one of that
// metric's labels. The exported set comes from the services' Go sources (exportedMetrics:
// literal Name fields of prometheus.*Opts and the label names after them, histograms adding
// _bucket, _sum and _count; the Go and process collectors the registry adds; Prometheus's own
// up; the target labels job, instance and service).
func TestDashboardsUseExportedMetrics(t *testing.T) {
	t.Parallel()
	known := queryableSeries(exportedMetrics(t))
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil || len(files) < 3 {
		t.Fatalf("dashboards under %s: %v, %v; want pipeline, models and business", dashboardsDir, files, err)
	}
	uids := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid and title required", f)
		}
		if prev, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s share uid %q", prev, f, d.UID)
		}
		uids[d.UID] = f
		type query struct{ expr, legend string }
		var exprs []query
		var walk func([]panel)
		queried := 0
		walk = func(ps []panel) {
			for _, p := range ps {
				walk(p.Panels)
				if p.Type != "row" && p.Type != "text" && len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", f, p.Title)
				}
				for _, tg := range p.Targets {
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s: panel %q has an empty query", f, p.Title)
					}
					exprs = append(exprs, query{tg.Expr, tg.LegendFormat})
					queried++
				}
			}
		}
		walk(d.Panels)
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("%s: variable %s: %v", f, v.Name, err)
			}
			// label_values(metric, label): a selector and one of its labels.
			if m, ok := strings.CutPrefix(q.Query, "label_values("); ok {
				metric, label, _ := strings.Cut(strings.TrimSuffix(m, ")"), ",")
				exprs = append(exprs, query{strings.TrimSpace(metric), "{{" + strings.TrimSpace(label) + "}}"})
			}
		}
		if queried == 0 {
			t.Errorf("%s queries nothing", f)
		}
		for _, q := range exprs {
			names := metricNames(q.expr)
			if len(names) == 0 {
				t.Errorf("%s: query %q selects no metric", f, q.expr)
			}
			labels := map[string]bool{}
			complete := true
			for _, n := range names {
				s, ok := known[n]
				if !ok {
					t.Errorf("%s: query %q uses %s, which no service exports", f, q.expr, n)
					complete = false
					continue
				}
				complete = complete && s.labelsKnown
				for _, l := range s.labels {
					labels[l] = true
				}
			}
			if !complete {
				continue
			}
			for _, l := range append(labelNames(q.expr), legendLabels(q.legend)...) {
				if !labels[l] {
					t.Errorf("%s: query %q (legend %q) uses label %s, which none of %v has", f, q.expr, q.legend, l, names)
				}
			}
		}
	}
	// docker-compose provisions the same files (Grafana's file provider reads the mount).
	compose, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, mount := range []string{"./deploy/grafana/dashboards:/var/lib/grafana/dashboards/mlops", "./deploy/grafana/provisioning:/etc/grafana/provisioning"} {
		if !strings.Contains(string(compose), mount) {
			t.Errorf("docker-compose.yml does not mount %s", mount)
		}
	}
	for _, want := range []string{"mlops-pipeline", "mlops-models", "mlops-business"} {
		if _, ok := uids[want]; !ok {
			t.Errorf("no dashboard with uid %s", want)
		}
	}
}

// targetLabels are the labels Prometheus adds to every scraped series: job and instance, and
// service (the local stack's static label, the ServiceMonitor's relabeling in Kubernetes).
var targetLabels = []string{"job", "instance", "service"}

// queryableSeries maps every series name a query can select (histograms add _bucket with le,
// _sum and _count) to its labels, target labels included; up is Prometheus's own.
func queryableSeries(exported map[string]metricInfo) map[string]metricInfo {
	out := map[string]metricInfo{"up": {labels: targetLabels, labelsKnown: true}}
	for name, m := range exported {
		m.labels = append(slices.Clone(m.labels), targetLabels...)
		out[name] = m
		if m.histogram {
			out[name+"_sum"], out[name+"_count"] = m, m
			b := m
			b.labels = append(slices.Clone(m.labels), "le")
			out[name+"_bucket"] = b
		}
	}
	return out
}

var (
	promMatchers = regexp.MustCompile(`\{([^{}]*)\}`)
	promMatcher  = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	promLabelsIn = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)
	legendLabel  = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// labelNames returns the label names an expression matches on or groups by.
func labelNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	var out []string
	for _, m := range promMatchers.FindAllStringSubmatch(e, -1) {
		for _, part := range strings.Split(m[1], ",") {
			if mm := promMatcher.FindStringSubmatch(part); mm != nil {
				out = append(out, mm[1])
			}
		}
	}
	for _, m := range promLabelsIn.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// legendLabels returns the labels a legend format interpolates ({{label}}).
func legendLabels(legend string) []string {
	var out []string
	for _, m := range legendLabel.FindAllStringSubmatch(legend, -1) {
		out = append(out, m[1])
	}
	return out
}

// The name extraction itself, on the shapes the dashboards use.
func TestMetricNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (service, topic) (rate(mlops_kafka_messages_consumed_total{service=~"$service"}[$__rate_interval]))`, []string{"mlops_kafka_messages_consumed_total"}},
		{`histogram_quantile(0.99, sum by (le, path) (rate(mlops_scoring_end_to_end_duration_seconds_bucket[5m])))`, []string{"mlops_scoring_end_to_end_duration_seconds_bucket"}},
		{`mlops_drift_psi > ignoring(statistic) mlops_drift_threshold{statistic="psi"}`, []string{"mlops_drift_psi", "mlops_drift_threshold"}},
		{`sum(increase(a_total{decision="alert"}[1d])) * (1 - scalar(max(b{metric="by (x)"}))) * $review_cost`, []string{"a_total", "b"}},
		{`time() - max by (model) (mlops_drift_last_window_end_timestamp_seconds)`, []string{"mlops_drift_last_window_end_timestamp_seconds"}},
		{`up{service=~"$service"} == 0 or on (service) vector(1e3)`, []string{"up"}},
	}
	for _, tt := range tests {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

// TestDashboardQueriesParse sends every dashboard query, with its variables filled in, to the
// local stack's Prometheus, which must accept it (a PromQL syntax or type error fails). It
// needs the stack (MLOPS_TEST_PROMETHEUS_URL) and skips without it unless
// MLOPS_TEST_REQUIRE_STACK=1.
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()
	base := os.Getenv("MLOPS_TEST_PROMETHEUS_URL")
	if base == "" {
		if os.Getenv("MLOPS_TEST_REQUIRE_STACK") == "1" {
			t.Fatal("MLOPS_TEST_PROMETHEUS_URL unset with MLOPS_TEST_REQUIRE_STACK=1")
		}
		t.Skip("MLOPS_TEST_PROMETHEUS_URL unset: no Prometheus to parse the queries")
	}
	fill := strings.NewReplacer("$__rate_interval", "1m", "$service", ".*", "$model", ".*", "$review_cost", "5")
	client := &http.Client{Timeout: 10 * time.Second}
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				walk(p.Panels)
				for _, tg := range p.Targets {
					expr := fill.Replace(tg.Expr)
					resp, err := client.PostForm(strings.TrimRight(base, "/")+"/api/v1/query", url.Values{"query": {expr}})
					if err != nil {
						t.Fatalf("query Prometheus at %s: %v", base, err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("%s: panel %q: Prometheus refuses %q: %s %s", f, p.Title, expr, resp.Status, body)
					}
					n++
				}
			}
		}
		walk(d.Panels)
	}
	if n == 0 {
		t.Fatal("no queries sent")
	}
}
