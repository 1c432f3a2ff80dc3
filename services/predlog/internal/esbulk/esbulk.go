// Package esbulk is a small synchronous Elasticsearch client for the writes predlog needs: one
// _bulk request per call whose every item outcome is returned to the caller (so a Kafka offset
// can be committed only after Elasticsearch acknowledged every item), realtime _mget, and
// idempotent index template installation. It sits on go-elasticsearch v8's esapi layer and
// leaves retries to the caller (the kafkaio consumer loop retries with capped backoff).
package esbulk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/streaming-mlops/mlops/services/platform/esauth"
)

// ErrUnavailable is wrapped by every error that means Elasticsearch could not be reached or
// refused the request as a whole for a reason that may pass (connection refused, timeout,
// 429, 5xx). Callers retry it.
var ErrUnavailable = errors.New("elasticsearch unavailable")

// Client sends requests to one Elasticsearch cluster. It is safe for concurrent use.
type Client struct {
	es *elasticsearch.Client
}

// DefaultDialTimeout is the default bound on connecting to Elasticsearch (WithDialTimeout).
const DefaultDialTimeout = 5 * time.Second

// An Option changes a setting of New.
type Option func(*options)

type options struct {
	dialTimeout time.Duration
	auth        esauth.Config
}

// WithAuth authenticates every request with the API key or basic-auth credentials of a and
// verifies an https cluster with a's TLS settings.
func WithAuth(a esauth.Config) Option {
	return func(o *options) { o.auth = a }
}

// WithDialTimeout bounds connecting to Elasticsearch: the TCP connect and, for https, the
// TLS handshake, each. Without it (or with d <= 0) the bound is DefaultDialTimeout. A
// connection that cannot be made in time fails the request with ErrUnavailable.
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.dialTimeout = d
		}
	}
}

// New returns a client for the cluster at url (e.g. http://127.0.0.1:9200). timeout bounds
// the wait for each response's headers once the request is sent; connecting is bounded by the
// dial timeout (WithDialTimeout, default DefaultDialTimeout). The client never retries by
// itself. It does no I/O.
func New(url string, timeout time.Duration, opts ...Option) (*Client, error) {
	o := options{dialTimeout: DefaultDialTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	dialer := &net.Dialer{Timeout: o.dialTimeout, KeepAlive: 30 * time.Second}
	transport, err := o.auth.Transport(&http.Transport{
		// Without a dialer timeout a connect to a host that drops packets waits for the
		// kernel (minutes), and an unanswered TLS handshake forever: the consumer loop's
		// context has no deadline.
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   o.dialTimeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client for %s: %w", url, err)
	}
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:    []string{url},
		DisableRetry: true,
		Transport:    transport,
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client for %s: %w", url, err)
	}
	return &Client{es: es}, nil
}

// Action is a bulk action.
type Action string

// Bulk actions.
const (
	// ActionIndex writes Doc as the whole document (create or replace).
	ActionIndex Action = "index"
	// ActionCreate writes Doc as a new document; the item fails with status 409
	// (version_conflict_engine_exception) when a document with that _id exists.
	ActionCreate Action = "create"
	// ActionUpdate merges Doc into the document; with DocAsUpsert it creates the document
	// from Doc when it does not exist.
	ActionUpdate Action = "update"
	// ActionDelete deletes the document.
	ActionDelete Action = "delete"
)

// Op is one item of a bulk request.
type Op struct {
	Action Action
	Index  string
	ID     string
	// Doc is the document (index, create) or the partial document (update), JSON-encoded by
	// Bulk: through its AppendJSON method when it is an Appender, with encoding/json otherwise.
	Doc any
	// DocAsUpsert makes an update create the document from Doc when it is missing.
	DocAsUpsert bool
	// IfSeqNo and IfPrimaryTerm, when IfPrimaryTerm > 0, make the item conditional on the
	// document's current sequence number (optimistic concurrency control): a concurrent change
	// fails the item with status 409.
	IfSeqNo       int64
	IfPrimaryTerm int64
}

// Item is the outcome of one Op.
type Item struct {
	// Status is the HTTP status of the item (200/201 on success).
	Status int
	// Result is "created", "updated", "noop", "deleted" or "not_found" on success.
	Result      string
	SeqNo       int64
	PrimaryTerm int64
	// ErrType and ErrReason describe a failed item (e.g. "document_parsing_exception").
	ErrType   string
	ErrReason string
}

// OK reports whether the item succeeded.
func (it Item) OK() bool { return it.Status >= 200 && it.Status < 300 }

// Err returns nil for a successful item, otherwise an *ItemError.
func (it Item) Err() error {
	if it.OK() {
		return nil
	}
	return &ItemError{Status: it.Status, Type: it.ErrType, Reason: it.ErrReason}
}

// ItemError is a failed bulk item.
type ItemError struct {
	Status int
	Type   string
	Reason string
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("elasticsearch item status %d: %s: %s", e.Status, e.Type, e.Reason)
}

// Transient reports whether retrying the item may succeed: 429 (rejected execution), 5xx,
// and 409 (a concurrent change under optimistic concurrency control; re-reading fixes it).
func (e *ItemError) Transient() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusConflict || e.Status >= 500
}

// Class is a short, fixed word for the item failure, fit for a metric label: "mapping"
// (the document does not fit the mappings), "rejected" (429), "conflict" (409), "server"
// (5xx) or "invalid" (any other 4xx).
func (e *ItemError) Class() string {
	switch {
	case e.Status == http.StatusTooManyRequests:
		return "rejected"
	case e.Status == http.StatusConflict:
		return "conflict"
	case e.Status >= 500:
		return "server"
	}
	switch e.Type {
	case "mapper_parsing_exception", "document_parsing_exception", "strict_dynamic_mapping_exception",
		"illegal_argument_exception", "mapper_exception":
		return "mapping"
	}
	return "invalid"
}

// RequestError is a request Elasticsearch answered with a non-2xx status as a whole.
type RequestError struct {
	Status int
	Body   string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("elasticsearch status %d: %s", e.Status, e.Body)
}

// Unwrap makes 429 and 5xx match ErrUnavailable.
func (e *RequestError) Unwrap() error {
	if e.Status == http.StatusTooManyRequests || e.Status >= 500 {
		return ErrUnavailable
	}
	return nil
}

// Bulk sends ops in one _bulk request and returns one Item per op, in order. A non-nil error
// means the request as a whole failed (no item outcome is known); it wraps ErrUnavailable when
// Elasticsearch could not be reached or answered 429/5xx.
func (c *Client) Bulk(ctx context.Context, ops []Op) ([]Item, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	body, err := encodeBulk(ops)
	if err != nil {
		return nil, err
	}
	res, err := c.es.Bulk(bytes.NewReader(body), c.es.Bulk.WithContext(ctx),
		c.es.Bulk.WithFilterPath("errors", "items.*.status", "items.*.result", "items.*._seq_no",
			"items.*._primary_term", "items.*.error.type", "items.*.error.reason"))
	if err != nil {
		return nil, fmt.Errorf("bulk of %d items: %w: %w", len(ops), ErrUnavailable, err)
	}
	defer res.Body.Close()
	if err := statusError(res); err != nil {
		return nil, fmt.Errorf("bulk of %d items: %w", len(ops), err)
	}
	var parsed struct {
		Items []map[string]struct {
			Status      int    `json:"status"`
			Result      string `json:"result"`
			SeqNo       int64  `json:"_seq_no"`
			PrimaryTerm int64  `json:"_primary_term"`
			Error       *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := json.NewDecoder(res.Body).Decode(&parsed); err != nil {
		return nil, fmt.Errorf("decode bulk response: %w: %w", ErrUnavailable, err)
	}
	if len(parsed.Items) != len(ops) {
		return nil, fmt.Errorf("bulk response has %d items for %d ops: %w", len(parsed.Items), len(ops), ErrUnavailable)
	}
	items := make([]Item, len(ops))
	for i, m := range parsed.Items {
		for _, v := range m { // exactly one key: the action
			items[i] = Item{Status: v.Status, Result: v.Result, SeqNo: v.SeqNo, PrimaryTerm: v.PrimaryTerm}
			if v.Error != nil {
				items[i].ErrType, items[i].ErrReason = v.Error.Type, v.Error.Reason
			}
		}
	}
	return items, nil
}

// Appender is a document that renders itself as one line of JSON (no newline), appended to
// b. Bulk uses it instead of encoding/json: the prediction documents are most of predlog's
// CPU otherwise.
type Appender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// encodeBulk renders ops as the NDJSON body of a _bulk request.
func encodeBulk(ops []Op) ([]byte, error) {
	buf := make([]byte, 0, 1024*len(ops))
	for i, op := range ops {
		switch op.Action {
		case ActionIndex, ActionCreate, ActionUpdate, ActionDelete:
		default:
			return nil, fmt.Errorf("bulk op %d: unknown action %q", i, op.Action)
		}
		buf = append(buf, `{"`...)
		buf = append(buf, op.Action...)
		buf = append(buf, `":{"_index":`...)
		buf = AppendString(buf, op.Index)
		buf = append(buf, `,"_id":`...)
		buf = AppendString(buf, op.ID)
		if op.IfPrimaryTerm > 0 {
			buf = append(buf, `,"if_seq_no":`...)
			buf = strconv.AppendInt(buf, op.IfSeqNo, 10)
			buf = append(buf, `,"if_primary_term":`...)
			buf = strconv.AppendInt(buf, op.IfPrimaryTerm, 10)
		}
		buf = append(buf, "}}\n"...)
		if op.Action == ActionDelete {
			continue
		}
		if op.Action == ActionUpdate {
			buf = append(buf, `{"doc":`...)
		}
		var err error
		if buf, err = appendDoc(buf, op.Doc); err != nil {
			return nil, fmt.Errorf("encode bulk op %d (%s %s/%s): %w", i, op.Action, op.Index, op.ID, err)
		}
		if op.Action == ActionUpdate {
			buf = append(buf, `,"doc_as_upsert":`...)
			buf = strconv.AppendBool(buf, op.DocAsUpsert)
			buf = append(buf, '}')
		}
		buf = append(buf, '\n')
	}
	return buf, nil
}

func appendDoc(b []byte, doc any) ([]byte, error) {
	if a, ok := doc.(Appender); ok {
		return a.AppendJSON(b)
	}
	line, err := json.Marshal(doc)
	if err != nil {
		return b, err
	}
	return append(b, line...), nil
}

// DocRef names one document for MGet.
type DocRef struct {
	Index string
	ID    string
}

// Doc is the outcome of one MGet lookup.
type Doc struct {
	// Found is false when the document or its index does not exist.
	Found       bool
	SeqNo       int64
	PrimaryTerm int64
	// Source holds the requested source fields.
	Source json.RawMessage
}

// MGet reads refs in one realtime _mget request (a document is visible as soon as its write
// was acknowledged, without a refresh) and returns one Doc per ref, in order. Only the source
// fields named in sourceFields are returned (all when none are named). A missing index counts
// as not found.
func (c *Client) MGet(ctx context.Context, refs []DocRef, sourceFields ...string) ([]Doc, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	type mdoc struct {
		Index  string   `json:"_index"`
		ID     string   `json:"_id"`
		Source []string `json:"_source,omitempty"`
	}
	req := struct {
		Docs []mdoc `json:"docs"`
	}{Docs: make([]mdoc, len(refs))}
	for i, r := range refs {
		req.Docs[i] = mdoc{Index: r.Index, ID: r.ID, Source: sourceFields}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode mget: %w", err)
	}
	// Only what is read below: the index and id of every doc are known from refs, and
	// decoding them back was most of the response's size and decoding time.
	res, err := c.es.Mget(bytes.NewReader(body), c.es.Mget.WithContext(ctx), c.es.Mget.WithRealtime(true),
		c.es.Mget.WithFilterPath("docs.found", "docs._seq_no", "docs._primary_term", "docs._source", "docs.error.type", "docs.error.reason"))
	if err != nil {
		return nil, fmt.Errorf("mget of %d docs: %w: %w", len(refs), ErrUnavailable, err)
	}
	defer res.Body.Close()
	if err := statusError(res); err != nil {
		return nil, fmt.Errorf("mget of %d docs: %w", len(refs), err)
	}
	var parsed struct {
		Docs []struct {
			Found       bool            `json:"found"`
			SeqNo       int64           `json:"_seq_no"`
			PrimaryTerm int64           `json:"_primary_term"`
			Source      json.RawMessage `json:"_source"`
			Error       *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"docs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&parsed); err != nil {
		return nil, fmt.Errorf("decode mget response: %w: %w", ErrUnavailable, err)
	}
	if len(parsed.Docs) != len(refs) {
		return nil, fmt.Errorf("mget response has %d docs for %d refs: %w", len(parsed.Docs), len(refs), ErrUnavailable)
	}
	docs := make([]Doc, len(refs))
	for i, d := range parsed.Docs {
		if d.Error != nil && d.Error.Type != "index_not_found_exception" {
			return nil, fmt.Errorf("mget %s/%s: %s: %s: %w", refs[i].Index, refs[i].ID, d.Error.Type, d.Error.Reason, ErrUnavailable)
		}
		docs[i] = Doc{Found: d.Found, SeqNo: d.SeqNo, PrimaryTerm: d.PrimaryTerm, Source: d.Source}
	}
	return docs, nil
}

// PutIndexTemplate creates or replaces the composable index template name with body (the
// JSON of PUT _index_template/<name>). It is idempotent.
func (c *Client) PutIndexTemplate(ctx context.Context, name string, body []byte) error {
	res, err := c.es.Indices.PutIndexTemplate(name, bytes.NewReader(body), c.es.Indices.PutIndexTemplate.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("put index template %s: %w: %w", name, ErrUnavailable, err)
	}
	defer res.Body.Close()
	if err := statusError(res); err != nil {
		return fmt.Errorf("put index template %s: %w", name, err)
	}
	return nil
}

// Refresh makes every write to index visible to search (tests and tools; the write path never
// needs it).
func (c *Client) Refresh(ctx context.Context, index string) error {
	res, err := c.es.Indices.Refresh(c.es.Indices.Refresh.WithIndex(index), c.es.Indices.Refresh.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("refresh %s: %w: %w", index, ErrUnavailable, err)
	}
	defer res.Body.Close()
	return statusError(res)
}

// Do sends a raw request (method, path with query, optional JSON body) and returns the
// response body; a non-2xx status is a *RequestError. For tests and tools.
func (c *Client) Do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.es.Perform(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %w", method, path, ErrUnavailable, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w: %w", method, path, ErrUnavailable, err)
	}
	if res.StatusCode/100 != 2 {
		return b, &RequestError{Status: res.StatusCode, Body: truncate(string(b), 512)}
	}
	return b, nil
}

// statusError turns a non-2xx response into a *RequestError.
func statusError(res *esapi.Response) error {
	if !res.IsError() {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return &RequestError{Status: res.StatusCode, Body: truncate(string(b), 512)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "...(" + strconv.Itoa(len(s)-n) + " more bytes)"
}
