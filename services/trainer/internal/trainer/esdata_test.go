package trainer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// fakeDoc is one prediction document of fakeES.
type fakeDoc struct {
	id     string
	at     time.Time
	source map[string]any
}

// fakeES is an Elasticsearch fake for the requests ESSource sends: it opens and closes points
// in time and answers searches by applying the query's filters (exists, range, task/prefix),
// its sort (@timestamp desc, transaction_id desc) and search_after the way Elasticsearch does.
type fakeES struct {
	t     *testing.T
	index string
	docs  []fakeDoc
	noPIT bool
	// failFirst answers this many search requests with 503 first.
	failFirst int
	// failAlways answers every search with 500.
	failAlways bool

	mu       sync.Mutex
	nextPIT  int
	openPITs map[string]bool
	searches int
	pitUsed  bool
}

type fakeQuery struct {
	Size        int                  `json:"size"`
	PIT         *struct{ ID string } `json:"pit"`
	SearchAfter []json.RawMessage    `json:"search_after"`
	Query       struct {
		Bool struct {
			Filter []struct {
				Exists *struct{ Field string } `json:"exists"`
				Range  map[string]struct {
					Gte string `json:"gte"`
					Lt  string `json:"lt"`
				} `json:"range"`
				Bool *struct {
					Should []struct {
						Term   map[string]string `json:"term"`
						Prefix map[string]string `json:"prefix"`
					} `json:"should"`
				} `json:"bool"`
			} `json:"filter"`
		} `json:"bool"`
	} `json:"query"`
}

func writeESError(w http.ResponseWriter, status int, typ, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"type": typ, "reason": reason}, "status": status})
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/_pit"):
		if f.noPIT {
			// What a cluster without the API answers.
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = io.WriteString(w, `{"error":"Incorrect HTTP method for uri [/x/_pit] and method [POST], allowed: [DELETE]","status":405}`)
			return
		}
		if r.URL.Path != "/"+f.index+"/_pit" {
			writeESError(w, http.StatusNotFound, "index_not_found_exception", "no such index")
			return
		}
		if r.URL.Query().Get("keep_alive") == "" {
			writeESError(w, http.StatusBadRequest, "action_request_validation_exception", "keep_alive is missing")
			return
		}
		f.nextPIT++
		id := fmt.Sprintf("pit-%d", f.nextPIT)
		f.openPITs[id] = true
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id})
	case r.Method == http.MethodDelete && r.URL.Path == "/_pit":
		var body struct{ ID string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !f.openPITs[body.ID] {
			writeESError(w, http.StatusNotFound, "search_context_missing_exception", "no such pit")
			return
		}
		delete(f.openPITs, body.ID)
		_ = json.NewEncoder(w).Encode(map[string]any{"succeeded": true})
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/_search"):
		f.searches++
		if f.failAlways || f.failFirst > 0 {
			f.failFirst--
			writeESError(w, http.StatusServiceUnavailable, "cluster_block_exception", "try later")
			return
		}
		var q fakeQuery
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
			writeESError(w, http.StatusBadRequest, "parsing_exception", err.Error())
			return
		}
		switch {
		case q.PIT != nil && r.URL.Path == "/_search" && f.openPITs[q.PIT.ID]:
			f.pitUsed = true
		case q.PIT == nil && r.URL.Path == "/"+f.index+"/_search":
		case q.PIT == nil:
			writeESError(w, http.StatusNotFound, "index_not_found_exception", "no such index")
			return
		default:
			writeESError(w, http.StatusBadRequest, "illegal_argument_exception", "bad point in time or path")
			return
		}
		f.search(w, q)
	default:
		writeESError(w, http.StatusBadRequest, "unexpected", r.Method+" "+r.URL.Path)
	}
}

func (f *fakeES) search(w http.ResponseWriter, q fakeQuery) {
	match := func(d fakeDoc) bool {
		for _, c := range q.Query.Bool.Filter {
			switch {
			case c.Exists != nil:
				if _, ok := d.source[c.Exists.Field]; !ok {
					return false
				}
			case c.Range != nil:
				rg := c.Range["@timestamp"]
				ms := d.at.UnixMilli()
				if from, err := time.Parse(time.RFC3339Nano, rg.Gte); err != nil || ms < from.UnixMilli() {
					return false
				}
				if to, err := time.Parse(time.RFC3339Nano, rg.Lt); rg.Lt != "" && (err != nil || ms >= to.UnixMilli()) {
					return false
				}
			case c.Bool != nil:
				ok := false
				for _, s := range c.Bool.Should {
					for k, v := range s.Term {
						ok = ok || d.source[k] == v
					}
					for k, v := range s.Prefix {
						str, _ := d.source[k].(string)
						ok = ok || strings.HasPrefix(str, v)
					}
				}
				if !ok {
					return false
				}
			default:
				f.t.Errorf("fake ES: unexpected filter clause")
			}
		}
		return true
	}
	var hits []fakeDoc
	for _, d := range f.docs {
		if match(d) {
			hits = append(hits, d)
		}
	}
	slices.SortFunc(hits, func(a, b fakeDoc) int {
		return cmp.Or(-cmp.Compare(a.at.UnixMilli(), b.at.UnixMilli()), -strings.Compare(a.id, b.id))
	})
	if q.SearchAfter != nil {
		var ms int64
		var id string
		if len(q.SearchAfter) != 2 || json.Unmarshal(q.SearchAfter[0], &ms) != nil || json.Unmarshal(q.SearchAfter[1], &id) != nil {
			writeESError(w, http.StatusBadRequest, "parsing_exception", "bad search_after")
			return
		}
		i := slices.IndexFunc(hits, func(d fakeDoc) bool {
			return d.at.UnixMilli() < ms || (d.at.UnixMilli() == ms && d.id < id)
		})
		if i < 0 {
			i = len(hits)
		}
		hits = hits[i:]
	}
	hits = hits[:min(len(hits), q.Size)]
	out := make([]map[string]any, len(hits))
	for i, d := range hits {
		out[i] = map[string]any{"_id": d.id, "_source": d.source, "sort": []any{d.at.UnixMilli(), d.id}}
	}
	resp := map[string]any{"_shards": map[string]any{"total": 1, "successful": 1, "failed": 0}, "hits": map[string]any{"hits": out}}
	if q.PIT != nil {
		resp["pit_id"] = q.PIT.ID
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// testBase is the event time of document 0 of the unit tests.
var testBase = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// predictionDoc builds document i the way predlog stores it: feature k of document i is
// i*100+k, the label alternates, and every third document shares its millisecond with the
// previous one (ties across page boundaries).
func predictionDoc(spec featurespec.Spec, i int, labelled bool) fakeDoc {
	at := testBase.Add(time.Duration(i-i/3) * time.Second).Add(time.Duration(i) * time.Microsecond)
	feats := map[string]any{}
	for k, n := range spec.Names() {
		feats[n] = float64(i*100 + k)
	}
	src := map[string]any{
		"@timestamp": at.Format(time.RFC3339Nano), "transaction_id": fmt.Sprintf("tx-%04d", i), "task": "binary_classification",
		"model_name": "fraud", "model_version": "1", "feature_spec": spec.ID(), "features": feats, "amount": float64(10 + i),
	}
	if labelled {
		src["actual"] = float64(i % 2)
		src["labelled_at"] = at.Add(time.Hour).Format(time.RFC3339Nano)
	}
	return fakeDoc{id: fmt.Sprintf("tx-%04d", i), at: at, source: src}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestESSourceLoad(t *testing.T) {
	t.Parallel()
	spec := featurespec.Fraud()
	seq := func(from, to int) []int {
		var out []int
		for i := from; i < to; i++ {
			out = append(out, i)
		}
		return out
	}
	tests := []struct {
		name      string
		n         int // labelled documents 0..n-1 (plus unlabelled ones after them)
		edit      func(docs []fakeDoc) []fakeDoc
		noPIT     bool
		failFirst int
		q         DataQuery
		minRows   int
		wantRows  []int // document numbers, in order
		wantErr   error
		wantText  string // in the error or the Source
		wantStats map[string]float64
		wantNaN   map[int][]string // row -> features expected NaN
	}{
		{name: "pages in event-time order", n: 23, wantRows: seq(0, 23),
			wantStats: map[string]float64{"used": 23}},
		{name: "without point in time", n: 23, noPIT: true, wantRows: seq(0, 23)},
		{name: "transient errors retried", n: 9, failFirst: 2, wantRows: seq(0, 9)},
		{name: "missing features become NaN", n: 10, wantRows: seq(0, 10),
			edit: func(d []fakeDoc) []fakeDoc {
				delete(d[3].source["features"].(map[string]any), "amount_zscore")
				delete(d[3].source["features"].(map[string]any), "tx_count_1h")
				delete(d[7].source["features"].(map[string]any), "tx_count_1h")
				return d
			},
			wantNaN:   map[int][]string{3: {"amount_zscore", "tx_count_1h"}, 7: {"tx_count_1h"}},
			wantText:  "3 missing values",
			wantStats: map[string]float64{"used": 10, "missing:tx_count_1h": 2, "missing:amount_zscore": 1}},
		{name: "other feature spec skipped and counted", n: 12, wantRows: []int{0, 1, 2, 4, 5, 6, 8, 9, 10, 11},
			edit: func(d []fakeDoc) []fakeDoc {
				d[3].source["feature_spec"] = "fraud-v0"
				d[7].source["feature_spec"] = "fraud-v0"
				return d
			},
			wantText: "2 skipped (other feature spec)", wantStats: map[string]float64{"used": 10, "spec_mismatch": 2}},
		{name: "other use case not selected", n: 6, wantRows: []int{0, 1, 2, 4, 5},
			edit: func(d []fakeDoc) []fakeDoc {
				d[3].source["feature_spec"], d[3].source["task"] = "purchase-v1", "regression"
				return d
			},
			wantStats: map[string]float64{"used": 5, "spec_mismatch": 0}},
		{name: "invalid label skipped", n: 6, wantRows: []int{0, 1, 2, 3, 5},
			edit:      func(d []fakeDoc) []fakeDoc { d[4].source["actual"] = 0.5; return d },
			wantStats: map[string]float64{"used": 5, "invalid": 1}},
		{name: "max rows keeps the newest", n: 23, q: DataQuery{MaxRows: 10}, wantRows: seq(13, 23)},
		{name: "time window", n: 23,
			q:        DataQuery{From: predictionDoc(spec, 5, true).at.Truncate(time.Second), To: predictionDoc(spec, 17, true).at.Truncate(time.Second)},
			wantRows: seq(5, 17)},
		{name: "too few rows", n: 23, minRows: 24, wantErr: ErrNoData, wantText: "23 labelled fraud-v1 documents"},
		{name: "missing index", n: 5, edit: func([]fakeDoc) []fakeDoc { return nil }, wantErr: ErrNoData, wantText: "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var docs []fakeDoc
			for i := range tt.n {
				docs = append(docs, predictionDoc(spec, i, true))
			}
			// Unlabelled predictions (label not arrived yet) interleaved in time.
			for i := range 4 {
				d := predictionDoc(spec, 1000+i, false)
				d.at = testBase.Add(time.Duration(i*4)*time.Second + 500*time.Millisecond)
				d.source["@timestamp"] = d.at.Format(time.RFC3339Nano)
				docs = append(docs, d)
			}
			index := "predictions"
			if tt.edit != nil {
				docs = tt.edit(docs)
				if docs == nil {
					index = "some-other-index"
				}
			}
			fake := &fakeES{t: t, index: index, docs: docs, noPIT: tt.noPIT, failFirst: tt.failFirst, openPITs: map[string]bool{}}
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			reg := prometheus.NewRegistry()
			src := NewESSource(ESConfig{URL: srv.URL, Index: "predictions", Timeout: 5 * time.Second, Lookback: 10000 * time.Hour,
				MinRows: cmp.Or(tt.minRows, 1), MaxRows: 1000, PageSize: 4}, srv.Client(), quiet(), reg)
			src.backoff = time.Millisecond
			src.now = func() time.Time { return testBase.Add(24 * time.Hour) }
			q := tt.q
			q.Spec = spec
			ds, err := src.Load(context.Background(), q)

			fake.mu.Lock()
			if len(fake.openPITs) != 0 {
				t.Errorf("points in time left open: %v", fake.openPITs)
			}
			if fake.pitUsed == tt.noPIT && tt.wantErr == nil {
				t.Errorf("point in time used = %v, want %v", fake.pitUsed, !tt.noPIT)
			}
			fake.mu.Unlock()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(fmt.Sprint(err), tt.wantText) {
					t.Fatalf("Load() error = %v, want %v containing %q", err, tt.wantErr, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			if !strings.Contains(ds.Source, tt.wantText) || !strings.HasPrefix(ds.Source, "elasticsearch predictions (fraud-v1, ") {
				t.Errorf("Source = %q, want it to contain %q", ds.Source, tt.wantText)
			}
			w := spec.Len()
			var got []int
			for r := range ds.Rows() {
				got = append(got, int(ds.X[r*w])/100)
			}
			if diff := gocmp.Diff(tt.wantRows, got); diff != "" {
				t.Fatalf("rows (document numbers) mismatch (-want +got):\n%s", diff)
			}
			if len(ds.X) != ds.Rows()*w || len(ds.EventTimes) != ds.Rows() || len(ds.Amounts) != ds.Rows() {
				t.Fatalf("shape: %d values, %d times, %d amounts for %d rows of %d", len(ds.X), len(ds.EventTimes), len(ds.Amounts), ds.Rows(), w)
			}
			for r, i := range got {
				for k, n := range spec.Names() {
					v := ds.X[r*w+k]
					if slices.Contains(tt.wantNaN[i], n) {
						if !math.IsNaN(v) {
							t.Errorf("row %d feature %s = %v, want NaN", i, n, v)
						}
						continue
					}
					if v != float64(i*100+k) {
						t.Errorf("row %d feature %s = %v, want %d", i, n, v, i*100+k)
					}
				}
				want := predictionDoc(spec, i, true)
				if ds.Y[r] != float64(i%2) || ds.EventTimes[r] != want.at.UnixNano() || ds.Amounts[r] != float64(10+i) {
					t.Errorf("row %d: label %v time %d amount %v, want %d %d %d", i, ds.Y[r], ds.EventTimes[r], ds.Amounts[r], i%2, want.at.UnixNano(), 10+i)
				}
				if r > 0 && ds.EventTimes[r] < ds.EventTimes[r-1] {
					t.Errorf("row %d is older than the row before it", r)
				}
			}
			for k, want := range tt.wantStats {
				var c prometheus.Collector = src.docs.WithLabelValues(k)
				if f, ok := strings.CutPrefix(k, "missing:"); ok {
					c = src.missing.WithLabelValues(f)
				}
				if got := testutil.ToFloat64(c); got != want {
					t.Errorf("counter %s = %v, want %v", k, got, want)
				}
			}
		})
	}
}

func TestESSourceFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fake *fakeES
		spec featurespec.Spec
		want string
	}{
		{name: "persistent server error", fake: &fakeES{failAlways: true}, spec: featurespec.Fraud(), want: "status 503"},
		{name: "unsupported task", fake: &fakeES{}, spec: featurespec.Spec{Name: "x", Version: 1, Task: "ranking"}, want: "unsupported task"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fake.t, tt.fake.index, tt.fake.openPITs = t, "predictions", map[string]bool{}
			srv := httptest.NewServer(tt.fake)
			t.Cleanup(srv.Close)
			src := NewESSource(ESConfig{URL: srv.URL, Index: "predictions", Timeout: 5 * time.Second, Lookback: time.Hour, MinRows: 1, MaxRows: 10, PageSize: 4},
				srv.Client(), quiet(), prometheus.NewRegistry())
			src.backoff = time.Millisecond
			_, err := src.Load(context.Background(), DataQuery{Spec: tt.spec})
			if err == nil || errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load() error = %v, want a non-ErrNoData error containing %q", err, tt.want)
			}
			tt.fake.mu.Lock()
			defer tt.fake.mu.Unlock()
			if len(tt.fake.openPITs) != 0 {
				t.Errorf("points in time left open: %v", tt.fake.openPITs)
			}
			if tt.fake.failAlways && tt.fake.searches != esRetries+1 {
				t.Errorf("searches = %d, want %d (first try and %d retries)", tt.fake.searches, esRetries+1, esRetries)
			}
		})
	}
}

func TestESSourceLookback(t *testing.T) {
	t.Parallel()
	spec := featurespec.Fraud()
	var docs []fakeDoc
	for i := range 20 {
		docs = append(docs, predictionDoc(spec, i, true))
	}
	fake := &fakeES{t: t, index: "predictions", docs: docs, openPITs: map[string]bool{}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	// Document i is at about testBase + (i - i/3) s; "now" is document 19's time + 1s and the
	// lookback 5s, so documents 13..19 (13 s to 17 s... after base) are in the window.
	now := predictionDoc(spec, 19, true).at.Add(time.Second)
	src := NewESSource(ESConfig{URL: srv.URL, Index: "predictions", Timeout: 5 * time.Second, Lookback: 5 * time.Second, MinRows: 1, MaxRows: 100, PageSize: 3},
		srv.Client(), quiet(), prometheus.NewRegistry())
	src.now = func() time.Time { return now }
	ds, err := src.Load(context.Background(), DataQuery{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for i := range 20 {
		if !predictionDoc(spec, i, true).at.Before(now.Add(-5 * time.Second).Truncate(time.Millisecond)) {
			want = append(want, i)
		}
	}
	var got []int
	for r := range ds.Rows() {
		got = append(got, int(ds.X[r*spec.Len()])/100)
	}
	if len(want) == 0 || len(want) == 20 {
		t.Fatalf("bad test: %d of 20 documents in the window", len(want))
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("rows mismatch (-want +got):\n%s", diff)
	}
}

func TestDataSourceConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string // type of the data source
		wantErr []string
	}{
		{name: "default is elasticsearch", want: "*trainer.ESSource"},
		{name: "files by flag", args: []string{"-data.source", "file", "-data.file", "a.csv,b.csv.gz"}, want: "trainer.FileSource"},
		{name: "file source without files", args: []string{"-data.source", "file"}, wantErr: []string{"-data.file"}},
		{name: "removed simulator source", args: []string{"-data.source", "sim"}, wantErr: []string{"loadtest/cmd/simulate -dataset"}},
		{name: "elasticsearch by flag", args: []string{"-data.source", "es", "-es.url", "http://es:9200", "-es.index", "preds"}, want: "*trainer.ESSource"},
		{name: "elasticsearch by env", env: map[string]string{"DATA_SOURCE": "es", "DATA_MIN_ROWS": "5000"}, want: "*trainer.ESSource"},
		{name: "unknown source", args: []string{"-data.source", "csv"}, wantErr: []string{`data source "csv"`}},
		{name: "bad elasticsearch settings", args: []string{"-data.source", "es", "-es.url", "es:9200", "-es.index", "a,b",
			"-data.min-rows", "10", "-data.lookback", "0s", "-es.page-size", "20000"},
			wantErr: []string{"http(s) URL", "index", "min rows 10", "lookback", "page size"}},
		{name: "elasticsearch settings ignored for files", args: []string{"-data.source", "file", "-data.file", "a.csv", "-es.url", "nonsense"}, want: "trainer.FileSource"},
		// The minimum of labelled rows applies to every source.
		{name: "min rows checked for files too", args: []string{"-data.source", "file", "-data.file", "a.csv", "-data.min-rows", "1", "-data.min-positives", "0"},
			wantErr: []string{"min rows 1", "min positives 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfig(tt.args, func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				for _, w := range tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("ParseConfig() error = %v, want it to mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ds, err := NewDataSource(cfg, quiet(), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%T", ds); got != tt.want {
				t.Errorf("data source type = %s, want %s", got, tt.want)
			}
			if es, ok := ds.(*ESSource); ok {
				es.CloseIdleConnections()
				if tt.env["DATA_MIN_ROWS"] == "5000" && es.cfg.MinRows != 5000 {
					t.Errorf("min rows = %d, want 5000 from DATA_MIN_ROWS", es.cfg.MinRows)
				}
				if es.cfg.Index == "" || es.cfg.Lookback != 30*24*time.Hour || es.cfg.PageSize != 5000 {
					t.Errorf("es config = %+v, want defaults lookback 720h, page size 5000", es.cfg)
				}
			}
		})
	}
}
