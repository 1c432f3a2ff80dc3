package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/streaming-mlops/mlops/services/platform/esauth"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// ESConfig configures the Elasticsearch data source.
type ESConfig struct {
	// URL is the base URL of Elasticsearch. Default: http://127.0.0.1:9200.
	URL string
	// Index is the index, alias or pattern holding the prediction documents predlog writes.
	// Default: "predictions" (the alias over predictions-YYYY.MM).
	Index string
	// Timeout bounds each HTTP request. Default: 30s.
	Timeout time.Duration
	// Lookback is the time window read when a request gives no data_from. Default: 30 days.
	Lookback time.Duration
	// MinRows is the fewest labelled rows a training run accepts from Elasticsearch; fewer
	// fail the run with ErrNoData (FAILED_PRECONDITION). Default: 1000.
	MinRows int
	// MaxRows caps the rows read when the request's max_rows is 0 or larger (newest kept), so
	// a long lookback cannot exhaust memory. Default: 2000000.
	MaxRows int
	// PageSize is the number of documents per search request (at most 10000). Default: 5000.
	PageSize int
	// Auth authenticates to Elasticsearch (API key or basic auth) and verifies it (TLS):
	// -es.api-key, -es.username, -es.password, -es.tls.* (docs/security.md).
	Auth esauth.Config
}

// Validate reports every problem of c.
func (c ESConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("elasticsearch URL %q must be an http(s) URL", c.URL))
	}
	if c.Index == "" || strings.ContainsAny(c.Index, "/ ,") {
		errs = append(errs, fmt.Errorf("elasticsearch index %q must be one non-empty name without slashes, commas or spaces", c.Index))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("elasticsearch timeout %v must be positive", c.Timeout))
	}
	if c.Lookback <= 0 {
		errs = append(errs, fmt.Errorf("data lookback %v must be positive", c.Lookback))
	}
	if c.MinRows < minRows {
		errs = append(errs, fmt.Errorf("data min rows %d must be >= %d", c.MinRows, minRows))
	}
	if c.MaxRows < c.MinRows {
		errs = append(errs, fmt.Errorf("data max rows %d must be >= data min rows %d", c.MaxRows, c.MinRows))
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PageSize <= 0 || c.PageSize > 10000 {
		errs = append(errs, fmt.Errorf("elasticsearch page size %d must be in [1, 10000]", c.PageSize))
	}
	return errors.Join(errs...)
}

// ESSource reads training data log-and-wait style: the feature vectors predlog logged at
// prediction time, with the labels it joined onto them later, read back from Elasticsearch,
// so training sees exactly what serving saw.
//
// Load selects the documents that carry a label (`actual`) and whose `@timestamp`
// (the transaction's event time) lies in [From, To) (From defaults to now - Lookback), of the
// requested use case (`task` or a `feature_spec` of the same family). It reads them newest
// first, paged with search_after inside a point in time (plain search_after on
// [@timestamp, transaction_id] when the cluster has no point-in-time API), until MaxRows
// usable rows are kept, and returns them in event-time order. A document of another
// feature_spec version is skipped and counted; a feature missing from a document (predlog
// leaves NaN out) becomes NaN and is counted. Documents are unique per transaction (the _id),
// so there is nothing to deduplicate. ESSource is safe for concurrent use.
type ESSource struct {
	cfg     ESConfig
	client  *http.Client
	logger  *slog.Logger
	now     func() time.Time
	backoff time.Duration // first retry wait; tests shorten it

	docs    *prometheus.CounterVec
	missing *prometheus.CounterVec
	pages   prometheus.Counter
}

// NewESSource returns the Elasticsearch data source. client may be nil: the source then
// makes its own, with its own connection pool (requests are bounded by cfg.Timeout either way).
func NewESSource(cfg ESConfig, client *http.Client, logger *slog.Logger, reg prometheus.Registerer) *ESSource {
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	f := promauto.With(reg)
	return &ESSource{
		cfg: cfg, client: client, logger: logger, now: time.Now, backoff: esRetryBackoff,
		docs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_trainer_data_documents_total",
			Help: "Labelled prediction documents read from Elasticsearch by outcome (used|spec_mismatch|invalid).",
		}, []string{"outcome"}),
		missing: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mlops_trainer_data_missing_values_total",
			Help: "Features absent from a used document (trained on as NaN), by feature.",
		}, []string{"feature"}),
		pages: f.NewCounter(prometheus.CounterOpts{
			Name: "mlops_trainer_data_search_requests_total",
			Help: "Search requests (pages) sent to Elasticsearch for training data.",
		}),
	}
}

// CloseIdleConnections closes the idle connections of the source's HTTP client.
func (s *ESSource) CloseIdleConnections() { s.client.CloseIdleConnections() }

// esTask is the `task` keyword predlog stores for a spec's task.
func esTask(t featurespec.Task) (string, error) {
	switch t {
	case featurespec.TaskBinary:
		return "binary_classification", nil
	case featurespec.TaskRegression:
		return "regression", nil
	}
	return "", fmt.Errorf("elasticsearch data: unsupported task %q", t)
}

// esDoc is the part of a prediction document training reads.
type esDoc struct {
	Timestamp   string              `json:"@timestamp"`
	FeatureSpec string              `json:"feature_spec"`
	Features    map[string]*float64 `json:"features"`
	Actual      *float64            `json:"actual"`
	Amount      *float64            `json:"amount"`
}

type esHit struct {
	ID     string            `json:"_id"`
	Source esDoc             `json:"_source"`
	Sort   []json.RawMessage `json:"sort"`
}

type esSearchResponse struct {
	PitID  string `json:"pit_id"`
	Shards struct {
		Failed   int               `json:"failed"`
		Failures []json.RawMessage `json:"failures"`
	} `json:"_shards"`
	Hits struct {
		Hits []esHit `json:"hits"`
	} `json:"hits"`
}

// esError is an error answer of Elasticsearch.
type esError struct {
	Status int
	Type   string
	Reason string
}

func (e *esError) Error() string {
	return fmt.Sprintf("elasticsearch status %d: %s: %s", e.Status, e.Type, e.Reason)
}

func (e *esError) transient() bool { return e.Status == http.StatusTooManyRequests || e.Status >= 500 }

// loadStats counts what one Load read.
type loadStats struct {
	used, specMismatch, invalid int
	missing                     map[string]int
	pages                       int
}

// Load reads the labelled rows of q (see ESSource). Too few rows is an error matching
// ErrNoData; Elasticsearch failures are other errors.
func (s *ESSource) Load(ctx context.Context, q DataQuery) (_ *Dataset, err error) {
	task, err := esTask(q.Spec.Task)
	if err != nil {
		return nil, err
	}
	from, to := q.From, q.To
	if from.IsZero() {
		from = s.now().Add(-s.cfg.Lookback)
	}
	limit := s.cfg.MaxRows
	if q.MaxRows > 0 && q.MaxRows < limit {
		limit = q.MaxRows
	}
	window := describeWindow(from, to)

	pit, err := s.openPIT(ctx)
	var nf *esError
	switch {
	case errors.As(err, &nf) && nf.Type == "index_not_found_exception":
		return nil, fmt.Errorf("%w: elasticsearch index %q does not exist: no logged predictions to train on", ErrNoData, s.cfg.Index)
	case errors.As(err, &nf) && !nf.transient():
		// A cluster without the point-in-time API: page on the sort key alone.
		s.logger.Warn("elasticsearch point in time unavailable; paging with search_after only", "index", s.cfg.Index, "err", err)
		pit = ""
	case err != nil:
		return nil, fmt.Errorf("elasticsearch data: open point in time on %q: %w", s.cfg.Index, err)
	}
	if pit != "" {
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
			defer cancel()
			if cerr := s.closePIT(cctx, pit); cerr != nil {
				// The point in time expires by itself after its keep-alive.
				s.logger.Warn("elasticsearch point in time not closed; it expires by itself", "err", cerr)
			}
		}()
	}

	names := q.Spec.Names()
	w := len(names)
	st := loadStats{missing: map[string]int{}}
	// Rows arrive newest first; they are reversed at the end.
	var (
		x       []float64
		y       []float64
		times   []int64
		amounts []float64
		after   []json.RawMessage
	)
	amountCol := q.Spec.Index("amount")
	for len(y) < limit {
		body := s.searchBody(q.Spec, task, from, to, pit, after)
		resp, err := s.search(ctx, pit, body)
		if errors.As(err, &nf) && nf.Type == "index_not_found_exception" {
			return nil, fmt.Errorf("%w: elasticsearch index %q does not exist: no logged predictions to train on", ErrNoData, s.cfg.Index)
		}
		if err != nil {
			return nil, fmt.Errorf("elasticsearch data: search %q (page %d): %w", s.cfg.Index, st.pages+1, err)
		}
		st.pages++
		s.pages.Inc()
		if resp.PitID != "" {
			pit = resp.PitID
		}
		for _, h := range resp.Hits.Hits {
			if len(y) == limit {
				break
			}
			d := h.Source
			if d.FeatureSpec != q.Spec.ID() {
				st.specMismatch++
				continue
			}
			at, terr := time.Parse(time.RFC3339Nano, d.Timestamp)
			if terr != nil || d.Actual == nil || math.IsNaN(*d.Actual) || math.IsInf(*d.Actual, 0) ||
				(q.Spec.Task == featurespec.TaskBinary && *d.Actual != 0 && *d.Actual != 1) {
				st.invalid++
				continue
			}
			for _, n := range names {
				v := d.Features[n]
				if v == nil {
					x = append(x, math.NaN())
					st.missing[n]++
					continue
				}
				x = append(x, *v)
			}
			y = append(y, *d.Actual)
			times = append(times, at.UnixNano())
			if q.Spec.Task == featurespec.TaskBinary {
				amounts = append(amounts, rowAmount(d, x[len(x)-w:], amountCol))
			}
			st.used++
		}
		if len(resp.Hits.Hits) < s.cfg.PageSize {
			break
		}
		after = resp.Hits.Hits[len(resp.Hits.Hits)-1].Sort
		if len(after) == 0 {
			return nil, fmt.Errorf("elasticsearch data: search %q returned hits without sort values", s.cfg.Index)
		}
	}
	s.count(st)
	if len(y) < s.cfg.MinRows {
		pos := 0
		for _, v := range y {
			if v == 1 {
				pos++
			}
		}
		return nil, &NotEnoughDataError{Rows: len(y), Positives: pos, MinRows: s.cfg.MinRows,
			Detail: fmt.Sprintf("%d labelled %s documents in elasticsearch index %q for %s (%d skipped for another feature spec, %d invalid), need at least %d (-data.min-rows)",
				len(y), q.Spec.ID(), s.cfg.Index, window, st.specMismatch, st.invalid, s.cfg.MinRows)}
	}
	reverseRows(x, w)
	slices.Reverse(y)
	slices.Reverse(times)
	slices.Reverse(amounts)
	totalMissing := 0
	for _, n := range st.missing {
		totalMissing += n
	}
	if totalMissing > 0 || st.specMismatch > 0 || st.invalid > 0 {
		s.logger.Warn("training data has gaps; missing features are trained on as NaN, skipped documents left out",
			"rows", len(y), "missing_values", totalMissing, "features_with_missing", len(st.missing),
			"spec_mismatch", st.specMismatch, "invalid", st.invalid)
	}
	s.logger.Info("training data read from elasticsearch", "index", s.cfg.Index, "feature_spec", q.Spec.ID(),
		"rows", len(y), "pages", st.pages, "point_in_time", pit != "")
	return &Dataset{
		Spec: q.Spec, X: x, Y: y, EventTimes: times, Amounts: amounts,
		Source: fmt.Sprintf("elasticsearch %s (%s, %s): %d labelled documents, %d skipped (other feature spec), %d invalid, %d missing values",
			s.cfg.Index, q.Spec.ID(), window, len(y), st.specMismatch, st.invalid, totalMissing),
	}, nil
}

// rowAmount is the amount of a fraud row for the cost model: the document's amount, else the
// amount feature, else 0.
func rowAmount(d esDoc, row []float64, amountCol int) float64 {
	switch {
	case d.Amount != nil:
		return *d.Amount
	case amountCol >= 0 && !math.IsNaN(row[amountCol]):
		return row[amountCol]
	}
	return 0
}

func (s *ESSource) count(st loadStats) {
	s.docs.WithLabelValues("used").Add(float64(st.used))
	s.docs.WithLabelValues("spec_mismatch").Add(float64(st.specMismatch))
	s.docs.WithLabelValues("invalid").Add(float64(st.invalid))
	for n, c := range st.missing {
		s.missing.WithLabelValues(n).Add(float64(c))
	}
}

func describeWindow(from, to time.Time) string {
	end := "now"
	if !to.IsZero() {
		end = to.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s to %s", from.UTC().Format(time.RFC3339), end)
}

// reverseRows reverses the order of the rows of the row-major matrix x of width w in place.
func reverseRows(x []float64, w int) {
	n := len(x) / w
	for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
		for k := range w {
			x[i*w+k], x[j*w+k] = x[j*w+k], x[i*w+k]
		}
	}
}

// pitKeepAlive is how long the point in time lives between two pages.
const pitKeepAlive = "2m"

// searchBody is the query of one page.
func (s *ESSource) searchBody(spec featurespec.Spec, task string, from, to time.Time, pit string, after []json.RawMessage) map[string]any {
	rng := map[string]any{"gte": from.UTC().Format(time.RFC3339Nano), "format": "strict_date_optional_time_nanos"}
	if !to.IsZero() {
		rng["lt"] = to.UTC().Format(time.RFC3339Nano)
	}
	body := map[string]any{
		"size":             s.cfg.PageSize,
		"_source":          []string{"@timestamp", "feature_spec", "features", "actual", "amount"},
		"track_total_hits": false,
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"exists": map[string]any{"field": "actual"}},
			map[string]any{"range": map[string]any{"@timestamp": rng}},
			// The use case: by task, or by a feature spec of the same family (documents of
			// another version are read so they can be counted as skipped).
			map[string]any{"bool": map[string]any{"minimum_should_match": 1, "should": []any{
				map[string]any{"term": map[string]any{"task": task}},
				map[string]any{"prefix": map[string]any{"feature_spec": spec.Name + "-v"}},
			}}},
		}}},
		// Newest first, so MaxRows keeps the newest; transaction_id (the _id) breaks ties.
		"sort": []any{
			map[string]any{"@timestamp": map[string]any{"order": "desc"}},
			map[string]any{"transaction_id": map[string]any{"order": "desc"}},
		},
	}
	if pit != "" {
		body["pit"] = map[string]any{"id": pit, "keep_alive": pitKeepAlive}
	}
	if after != nil {
		body["search_after"] = after
	}
	return body
}

func (s *ESSource) openPIT(ctx context.Context) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	path := "/" + url.PathEscape(s.cfg.Index) + "/_pit?keep_alive=" + pitKeepAlive
	if err := s.do(ctx, http.MethodPost, path, nil, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", errors.New("point in time answer without id")
	}
	return out.ID, nil
}

func (s *ESSource) closePIT(ctx context.Context, pit string) error {
	return s.do(ctx, http.MethodDelete, "/_pit", map[string]any{"id": pit}, nil)
}

func (s *ESSource) search(ctx context.Context, pit string, body map[string]any) (*esSearchResponse, error) {
	path := "/_search"
	if pit == "" {
		path = "/" + url.PathEscape(s.cfg.Index) + "/_search"
	}
	var resp esSearchResponse
	if err := s.do(ctx, http.MethodPost, path, body, &resp); err != nil {
		return nil, err
	}
	if resp.Shards.Failed > 0 {
		// A partial answer would silently drop rows.
		var first string
		if len(resp.Shards.Failures) > 0 {
			first = string(resp.Shards.Failures[0])
		}
		return nil, fmt.Errorf("%d shard(s) failed: %s", resp.Shards.Failed, first)
	}
	return &resp, nil
}

// Retries of a transient Elasticsearch failure: esRetries more attempts, waiting
// esRetryBackoff, 4x and 16x that (200ms, 800ms, 3.2s by default).
const (
	esRetries      = 3
	esRetryBackoff = 200 * time.Millisecond
)

// do sends a JSON request and decodes a 2xx answer into out (when non-nil). Connection
// errors, 429 and 5xx are retried with backoff (every request here is idempotent); other
// answers are returned as *esError.
func (s *ESSource) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		err := s.once(ctx, method, path, payload, out)
		var ee *esError
		transient := err != nil && ctx.Err() == nil && (!errors.As(err, &ee) || ee.transient())
		if !transient || attempt == esRetries {
			return err
		}
		s.logger.Debug("elasticsearch request failed; retrying", "path", path, "attempt", attempt+1, "err", err)
		t := time.NewTimer(s.backoff << (2 * attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

func (s *ESSource) once(ctx context.Context, method, path string, payload []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(s.cfg.URL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		e := &esError{Status: resp.StatusCode, Reason: strings.TrimSpace(string(raw))}
		var parsed struct {
			Error struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &parsed) == nil && parsed.Error.Type != "" {
			e.Type, e.Reason = parsed.Error.Type, parsed.Error.Reason
		}
		return e
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, path, err)
	}
	return nil
}
