package predlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
)

// Dead-letter reasons of predlog (values of the dlq-reason header).
const (
	// ReasonESMapping: Elasticsearch rejected the document because it does not fit the
	// mappings (status 400, a parsing or mapping exception).
	ReasonESMapping = "es_mapping"
	// ReasonESRejected: Elasticsearch rejected the item with another 4xx status.
	ReasonESRejected = "es_rejected"
)

// WriterConfig says where a Writer puts documents.
type WriterConfig struct {
	// IndexPrefix names the monthly prediction indices (IndexPrefix-YYYY.MM) and the alias
	// over all of them. Default: predictions.
	IndexPrefix string
	// PendingIndex holds labels whose prediction has not been written yet.
	// Default: predlog-pending-labels.
	PendingIndex string
	// LabelMaxDelay is how long after its transaction a label may arrive and still find its
	// prediction: a label looks for the prediction in the monthly indices from
	// event_time-LabelMaxDelay to event_time+1d. Default: 4320h (180 days).
	LabelMaxDelay time.Duration
	// PendingMaxAge bounds how long a label waits in the pending index for its prediction,
	// counted from the label's event time (labelled_at): ExpirePending deletes older ones and
	// counts them in mlops_predlog_pending_labels_expired_total. Their predictions never
	// arrived (or arrived past label.max-delay), so nothing would ever adopt them. Keep it
	// above the longest outage of the prediction path you want to absorb (and the retention
	// of predictions.v1). Default: 168h (7 days).
	PendingMaxAge time.Duration
	// RefreshInterval is the refresh_interval of the prediction indices (the index template,
	// and the live indices at PutTemplates): how long an acknowledged document may stay
	// invisible to searches (Kibana, the trainer, the e2e tests). predlog's own reads are
	// realtime gets and never wait for it. "" (the default) leaves Elasticsearch's default:
	// 1s while the index is searched, no background refresh while it is search-idle (a
	// search then waits for one refresh and sees every acknowledged document).
	RefreshInterval string
	// BulkInFlight is how many bulk requests one batch of predictions is split into and sent
	// concurrently (each acknowledged before the batch is). Default: DefaultBulkInFlight.
	BulkInFlight int
}

func (c WriterConfig) withDefaults() WriterConfig {
	if c.IndexPrefix == "" {
		c.IndexPrefix = "predictions"
	}
	if c.PendingIndex == "" {
		c.PendingIndex = "predlog-pending-labels"
	}
	if c.LabelMaxDelay <= 0 {
		c.LabelMaxDelay = 180 * 24 * time.Hour
	}
	if c.PendingMaxAge <= 0 {
		c.PendingMaxAge = DefaultPendingMaxAge
	}
	if c.BulkInFlight <= 0 {
		c.BulkInFlight = DefaultBulkInFlight
	}
	return c
}

// DefaultRefreshInterval is the default of WriterConfig.RefreshInterval: Elasticsearch's own
// (search-idle) behaviour.
const DefaultRefreshInterval = ""

// DefaultBatchWait is predlog's default of the consumer's -kafka.batch-wait (kafkaio's is 0):
// waiting up to 20 ms to fill a batch makes bulks of tens to hundreds of documents instead of
// a few, which is where Elasticsearch's cost per document falls; a prediction becomes
// searchable after the index refresh (a second or more) anyway. In the stream ramp of make
// bench-peers (2026-11-30, same fresh broker, minutes apart) it raised the best 5 s of indexing
// from 10,969 to 15,046 tx/s (README, Throughput).
const DefaultBatchWait = 20 * time.Millisecond

// DefaultBulkInFlight is the default of WriterConfig.BulkInFlight.
const DefaultBulkInFlight = 1

// DefaultPendingMaxAge is the default of WriterConfig.PendingMaxAge.
const DefaultPendingMaxAge = 7 * 24 * time.Hour

// labelClockSkew is how far after a label's event time its prediction's event time may lie.
const labelClockSkew = 24 * time.Hour

// Writer turns predictions and labels into one Elasticsearch document per transaction and
// model family (_id = DocID: the transaction id for fraud, "<tx>:purchase" for purchase) in
// the monthly index of the prediction's event time. A prediction's family is its feature
// vector's spec name, a label's its kind (LABEL_KIND_PURCHASE finds the purchase document). It is safe for
// concurrent use.
//
// A prediction is written with update+doc_as_upsert of the prediction fields only, so it
// never clobbers a label written before it. A label carries no transaction time, so it
// cannot compute its prediction's index: it looks the document up (realtime _mget over the
// months it may lie in) and updates the label fields there; when the prediction is not there
// yet the label is parked in the pending-label index. Each side writes first and looks for
// the other second (a prediction checks the pending index after its write, a parked label
// looks for the prediction again after parking), so at least one of them sees the other and
// moves the label onto the prediction document, then deletes the pending entry. Label
// updates are conditional on the document's sequence number and keep the label with the
// latest event time, so concurrent or replayed labels cannot overwrite a newer one.
type Writer struct {
	es     *esbulk.Client
	cfg    WriterConfig
	logger *slog.Logger
	m      *metrics
}

// NewWriter returns a writer to es. reg receives the mlops_predlog_* instruments.
func NewWriter(es *esbulk.Client, cfg WriterConfig, logger *slog.Logger, reg prometheus.Registerer) *Writer {
	return &Writer{es: es, cfg: cfg.withDefaults(), logger: logger, m: newMetrics(reg)}
}

// Config returns the effective configuration (defaults applied).
func (w *Writer) Config() WriterConfig { return w.cfg }

// PutTemplates installs (or replaces) the index templates of the prediction indices and of
// the pending-label index, then brings the refresh interval (UpdateLiveSettings) and the
// mappings (UpdateLiveMappings) of the indices that already exist up to date: a template
// applies only to indices created after it, so without that a field added to the documents
// would be refused by the strict mapping of the current month's index until the month rolls
// over. It is idempotent.
func (w *Writer) PutTemplates(ctx context.Context) error {
	pt, err := PredictionTemplate(w.cfg.IndexPrefix, w.cfg.RefreshInterval)
	if err != nil {
		return err
	}
	if err := w.es.PutIndexTemplate(ctx, w.cfg.IndexPrefix, pt); err != nil {
		return err
	}
	lt, err := PendingTemplate(w.cfg.PendingIndex)
	if err != nil {
		return err
	}
	if err := w.es.PutIndexTemplate(ctx, w.cfg.PendingIndex, lt); err != nil {
		return err
	}
	if err := w.UpdateLiveSettings(ctx); err != nil {
		return err
	}
	return w.UpdateLiveMappings(ctx)
}

// UpdateLiveSettings puts the configured refresh interval onto every existing prediction
// index (a dynamic setting; "" resets it to Elasticsearch's default), so a change of
// -es.refresh-interval applies at once rather than from the next month's index.
func (w *Writer) UpdateLiveSettings(ctx context.Context) error {
	var v any // null resets the setting
	if w.cfg.RefreshInterval != "" {
		v = w.cfg.RefreshInterval
	}
	body, err := json.Marshal(map[string]any{"index": map[string]any{"refresh_interval": v}})
	if err != nil {
		return fmt.Errorf("encode index settings: %w", err)
	}
	// The pending-label index keeps its own interval, also when its name matches the pattern.
	indices := w.cfg.IndexPrefix + "-*,-" + w.cfg.PendingIndex
	path := "/" + indices + "/_settings?allow_no_indices=true&ignore_unavailable=true"
	if _, err := w.es.Do(ctx, http.MethodPut, path, body); err != nil {
		return fmt.Errorf("update refresh interval of live indices %s: %w", indices, err)
	}
	return nil
}

// UpdateLiveMappings puts the current mappings onto every existing prediction index
// (prefix-*) and onto the pending-label index (PUT _mapping; no matching index is fine).
// Additive changes (a new field, a new feature) apply at once. A change Elasticsearch cannot
// apply in place (a field of another type) is an error naming the indices and Elasticsearch's
// reason: such a change needs a new index (reindex), and the service must not start writing
// documents the live index refuses.
func (w *Writer) UpdateLiveMappings(ctx context.Context) error {
	for _, u := range []struct {
		indices  string
		mappings map[string]any
	}{
		{w.cfg.IndexPrefix + "-*", Mappings()},
		{w.cfg.PendingIndex, pendingMappings()},
	} {
		body, err := json.Marshal(u.mappings)
		if err != nil {
			return fmt.Errorf("encode mappings of %s: %w", u.indices, err)
		}
		path := "/" + u.indices + "/_mapping?allow_no_indices=true&ignore_unavailable=true"
		if _, err := w.es.Do(ctx, http.MethodPut, path, body); err != nil {
			var re *esbulk.RequestError
			if errors.As(err, &re) && re.Status == http.StatusBadRequest {
				return fmt.Errorf("update mappings of live indices %s: not an additive change, the indices need a reindex: %w", u.indices, err)
			}
			return fmt.Errorf("update mappings of live indices %s: %w", u.indices, err)
		}
	}
	return nil
}

// Handler returns the batch handler for records of predictionsTopic (Prediction) and
// labelsTopic (Label). It returns with nil error for a record only after Elasticsearch
// acknowledged every write for it; Elasticsearch being unreachable, 429, 5xx and version
// conflicts are transient; undecodable or invalid events and documents Elasticsearch rejects
// with another 4xx are permanent (dead-lettered).
func (w *Writer) Handler(predictionsTopic, labelsTopic string) kafkaio.BatchHandler {
	handle := func(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
		switch msgs[0].Topic {
		case predictionsTopic:
			return w.handlePredictions(ctx, msgs)
		case labelsTopic:
			return w.handleLabels(ctx, msgs)
		}
		return nil, kafkaio.PermanentReason(kafkaio.ReasonHandler, fmt.Errorf("no handler for topic %q", msgs[0].Topic))
	}
	return func(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
		// The consumer loop hands over one topic at a time; a mixed batch is handled run by
		// run, in order.
		var out []kafkaio.Result
		for len(msgs) > 0 {
			n := 1
			for n < len(msgs) && msgs[n].Topic == msgs[0].Topic {
				n++
			}
			res, err := handle(ctx, msgs[:n])
			if err != nil {
				if len(out) > 0 && !kafkaio.IsPermanent(err) {
					return append(out, kafkaio.Result{Err: err}), nil
				}
				if len(out) > 0 {
					return out, nil // the rest is handed over again
				}
				return nil, err
			}
			out = append(out, res...)
			if len(res) < n {
				return out, nil
			}
			msgs = msgs[n:]
		}
		return out, nil
	}
}

// decode checks the content type of m and unmarshals its value into dst.
func decode(m kafka.Message, dst proto.Message) error {
	if ct, ok := kafkaio.HeaderValue(m.Headers, topics.HeaderContentType); ok && string(ct) != topics.ContentTypeProtobuf {
		return kafkaio.PermanentReason(kafkaio.ReasonDecode, fmt.Errorf("content type %q at %s/%d/%d: want %s", ct, m.Topic, m.Partition, m.Offset, topics.ContentTypeProtobuf))
	}
	if err := proto.Unmarshal(m.Value, dst); err != nil {
		return kafkaio.PermanentReason(kafkaio.ReasonDecode, fmt.Errorf("decode %s at %s/%d/%d: %w", dst.ProtoReflect().Descriptor().Name(), m.Topic, m.Partition, m.Offset, err))
	}
	return nil
}

// prefixResults returns res up to and including the first transient failure.
func prefixResults(res []kafkaio.Result) []kafkaio.Result {
	for i, r := range res {
		if r.Err != nil && !kafkaio.IsPermanent(r.Err) {
			return res[:i+1]
		}
	}
	return res
}

// requestErr classifies the failure of a whole request: 400 is permanent (the loop then
// handles the records one by one to find the culprit), anything else transient.
func requestErr(err error) error {
	var re *esbulk.RequestError
	if errors.As(err, &re) && re.Status == http.StatusBadRequest {
		return kafkaio.PermanentReason(ReasonESRejected, err)
	}
	return err
}

// itemErr counts a failed item and classifies it: transient (429, 409, 5xx) or permanent with
// a dead-letter reason.
func (w *Writer) itemErr(it esbulk.Item) error {
	err := it.Err()
	if err == nil {
		return nil
	}
	var ie *esbulk.ItemError
	errors.As(err, &ie)
	class := ie.Class()
	w.m.itemsFailed.WithLabelValues(class).Inc()
	if ie.Transient() {
		return err
	}
	if class == "mapping" {
		return kafkaio.PermanentReason(ReasonESMapping, err)
	}
	return kafkaio.PermanentReason(ReasonESRejected, err)
}

// minSplit is the fewest operations a concurrent part of a bulk (BulkInFlight) gets.
const minSplit = 100

func (w *Writer) bulk(ctx context.Context, ops []esbulk.Op) ([]esbulk.Item, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	parts := min(w.cfg.BulkInFlight, len(ops)/minSplit)
	if parts <= 1 {
		return w.bulkOne(ctx, ops)
	}
	// Concurrent parts: Elasticsearch runs each bulk shard request on one write thread, so
	// one request at a time leaves the other cores idle. Operations are split by document, so
	// two operations on one document stay in one part, in their order; the batch is
	// acknowledged only when every part is.
	idx := make([][]int, parts)
	for i, op := range ops {
		p := int(fnv1a(op.ID) % uint32(parts))
		idx[p] = append(idx[p], i)
	}
	items := make([]esbulk.Item, len(ops))
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		if len(idx[p]) == 0 {
			continue
		}
		wg.Go(func() {
			part := make([]esbulk.Op, len(idx[p]))
			for k, i := range idx[p] {
				part[k] = ops[i]
			}
			its, err := w.bulkOne(ctx, part)
			if err != nil {
				errs[p] = err
				return
			}
			for k, i := range idx[p] {
				items[i] = its[k]
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return items, nil
}

// fnv1a is the 32-bit FNV-1a hash of s.
func fnv1a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

func (w *Writer) bulkOne(ctx context.Context, ops []esbulk.Op) ([]esbulk.Item, error) {
	start := time.Now()
	items, err := w.es.Bulk(ctx, ops)
	w.m.requestDuration.WithLabelValues(opBulk).Observe(time.Since(start).Seconds())
	w.m.bulkItems.Observe(float64(len(ops)))
	w.observeUp(err)
	return items, err
}

func (w *Writer) mget(ctx context.Context, refs []esbulk.DocRef, fields ...string) ([]esbulk.Doc, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	start := time.Now()
	docs, err := w.es.MGet(ctx, refs, fields...)
	w.m.requestDuration.WithLabelValues(opMGet).Observe(time.Since(start).Seconds())
	w.observeUp(err)
	return docs, err
}

func (w *Writer) observeUp(err error) {
	if errors.Is(err, esbulk.ErrUnavailable) {
		w.m.up.Set(0)
		return
	}
	w.m.up.Set(1)
}

// written is a prediction Elasticsearch acknowledged; its transaction may have a parked label.
type written struct {
	msg   int    // index of the record in the batch
	index string // the prediction document's index
	id    string
}

func (w *Writer) handlePredictions(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
	res := make([]kafkaio.Result, len(msgs))
	ops := make([]esbulk.Op, 0, len(msgs))
	opMsg := make([]int, 0, len(msgs))
	for i, m := range msgs {
		var p eventsv1.Prediction
		if err := decode(m, &p); err != nil {
			res[i].Err = err
			continue
		}
		at, doc, err := buildPrediction(&p)
		if err != nil {
			res[i].Err = kafkaio.PermanentReason(kafkaio.ReasonValidation, err)
			continue
		}
		ops = append(ops, esbulk.Op{Action: esbulk.ActionCreate, Index: IndexFor(w.cfg.IndexPrefix, at), ID: doc.id, Doc: doc})
		opMsg = append(opMsg, i)
	}
	// A prediction document normally does not exist yet (labels that come first wait in the
	// pending index), so each is first created: Elasticsearch then indexes it directly, where
	// an update must read the document, merge and re-serialise it. A document that exists
	// (a replayed or duplicate prediction, possibly with its label already on it) fails the
	// create with 409 and is merged with update+doc_as_upsert as before, so an existing
	// label is never clobbered.
	items, err := w.bulk(ctx, ops)
	if err != nil {
		return nil, requestErr(err)
	}
	var done []written
	var merges []esbulk.Op
	var mergeMsg []int
	for j, it := range items {
		i := opMsg[j]
		if it.Status == http.StatusConflict {
			op := ops[j]
			op.Action, op.DocAsUpsert = esbulk.ActionUpdate, true
			merges = append(merges, op)
			mergeMsg = append(mergeMsg, i)
			continue
		}
		if err := w.itemErr(it); err != nil {
			res[i].Err = err
			continue
		}
		done = append(done, written{msg: i, index: ops[j].Index, id: ops[j].ID})
	}
	items, err = w.bulk(ctx, merges)
	if err != nil {
		return nil, requestErr(err)
	}
	for j, it := range items {
		i := mergeMsg[j]
		if err := w.itemErr(it); err != nil {
			res[i].Err = err
			continue
		}
		done = append(done, written{msg: i, index: merges[j].Index, id: merges[j].ID})
	}
	slices.SortFunc(done, func(a, b written) int { return a.msg - b.msg })
	w.m.docsWritten.WithLabelValues(kindPrediction).Add(float64(len(done)))
	if err := w.adoptPending(ctx, done, res); err != nil {
		return nil, err
	}
	return prefixResults(res), nil
}

// adoptPending moves parked labels of the just written predictions onto them.
func (w *Writer) adoptPending(ctx context.Context, done []written, res []kafkaio.Result) error {
	if len(done) == 0 {
		return nil
	}
	refs := make([]esbulk.DocRef, len(done))
	for k, d := range done {
		refs[k] = esbulk.DocRef{Index: w.cfg.PendingIndex, ID: d.id}
	}
	pend, err := w.mget(ctx, refs)
	if err != nil {
		return err
	}
	var moves []move
	var targets []esbulk.DocRef
	for k, p := range pend {
		if !p.Found {
			continue
		}
		var l labelDoc
		if err := json.Unmarshal(p.Source, &l); err != nil {
			return fmt.Errorf("decode pending label %s: %w", done[k].id, err)
		}
		moves = append(moves, move{msg: done[k].msg, label: &l, pendSeq: p.SeqNo, pendTerm: p.PrimaryTerm, pendingFound: true})
		targets = append(targets, esbulk.DocRef{Index: done[k].index, ID: done[k].id})
	}
	if len(moves) == 0 {
		return nil
	}
	docs, err := w.mget(ctx, targets, fieldLabelledAt)
	if err != nil {
		return err
	}
	for k := range moves {
		if !docs[k].Found { // written a moment ago: only a deleted index explains this
			res[moves[k].msg].Err = fmt.Errorf("prediction %s/%s vanished after its write", targets[k].Index, targets[k].ID)
			moves[k].skip = true
			continue
		}
		moves[k].target, moves[k].doc = targets[k], docs[k]
	}
	return w.moveLabels(ctx, moves, res)
}

// move is a label to put onto an existing prediction document and, when it was parked, to
// remove from the pending index afterwards.
type move struct {
	msg          int
	label        *labelDoc
	target       esbulk.DocRef
	doc          esbulk.Doc // the prediction document as read (labelled_at, seq_no)
	pendingFound bool
	pendSeq      int64
	pendTerm     int64
	skip         bool
}

// newer reports whether the document's label (labelled_at in src) is strictly later than l.
func newer(src json.RawMessage, l *labelDoc) bool {
	var st labelState
	if len(src) == 0 || json.Unmarshal(src, &st) != nil || st.LabelledAt == "" {
		return false
	}
	have, err1 := time.Parse(time.RFC3339Nano, st.LabelledAt)
	want, err2 := time.Parse(time.RFC3339Nano, l.LabelledAt)
	return err1 == nil && err2 == nil && have.After(want)
}

// moveLabels writes each move's label onto its prediction document (conditional on the
// document's sequence number, skipped when the document has a later label), then deletes the
// parked copies of the labels that landed. Failures are recorded in res as transient errors.
func (w *Writer) moveLabels(ctx context.Context, moves []move, res []kafkaio.Result) error {
	var ops []esbulk.Op
	var opMove []int
	for k, mv := range moves {
		if mv.skip {
			continue
		}
		if newer(mv.doc.Source, mv.label) {
			w.m.labelsStale.Inc()
			continue
		}
		ops = append(ops, esbulk.Op{
			Action: esbulk.ActionUpdate, Index: mv.target.Index, ID: mv.target.ID, Doc: mv.label,
			IfSeqNo: mv.doc.SeqNo, IfPrimaryTerm: mv.doc.PrimaryTerm,
		})
		opMove = append(opMove, k)
	}
	items, err := w.bulk(ctx, ops)
	if err != nil {
		return requestErr(err)
	}
	landed := 0
	for j, it := range items {
		mv := &moves[opMove[j]]
		if it.OK() {
			landed++
			continue
		}
		if err := w.itemErr(it); kafkaio.IsPermanent(err) && it.Status != http.StatusNotFound {
			res[mv.msg].Err = err
		} else { // 404 (document gone) or 409 (changed since read): read again and retry
			res[mv.msg].Err = fmt.Errorf("move label onto %s/%s: %w", mv.target.Index, mv.target.ID, it.Err())
		}
		mv.skip = true
	}
	w.m.docsWritten.WithLabelValues(kindLabel).Add(float64(landed))

	var dels []esbulk.Op
	var delMove []int
	for k, mv := range moves {
		if mv.skip || !mv.pendingFound {
			continue
		}
		dels = append(dels, esbulk.Op{Action: esbulk.ActionDelete, Index: w.cfg.PendingIndex, ID: mv.label.id(),
			IfSeqNo: mv.pendSeq, IfPrimaryTerm: mv.pendTerm})
		delMove = append(delMove, k)
	}
	items, err = w.bulk(ctx, dels)
	if err != nil {
		return requestErr(err)
	}
	for j, it := range items {
		// 404: someone else removed it; 409: a newer label was parked since, and its own
		// handler moves it.
		if it.OK() || it.Status == http.StatusNotFound || it.Status == http.StatusConflict {
			continue
		}
		mv := moves[delMove[j]]
		if err := w.itemErr(it); err != nil && res[mv.msg].Err == nil {
			res[mv.msg].Err = fmt.Errorf("delete pending label %s: %w", mv.label.TxID, it.Err())
		}
	}
	return nil
}

// candidates returns the monthly indices a label at time at may find its prediction in,
// newest first.
func (w *Writer) candidates(at time.Time) []string {
	last := at.Add(labelClockSkew).UTC()
	first := at.Add(-w.cfg.LabelMaxDelay).UTC()
	m := time.Date(last.Year(), last.Month(), 1, 0, 0, 0, 0, time.UTC)
	stop := time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, time.UTC)
	var out []string
	for !m.Before(stop) {
		out = append(out, IndexFor(w.cfg.IndexPrefix, m))
		m = m.AddDate(0, -1, 0)
	}
	return out
}

// lookup finds the prediction document of each label among its candidate indices (realtime),
// and, when withPending, also reads the pending-label index. found[k] is the zero DocRef when
// there is no prediction document.
func (w *Writer) lookup(ctx context.Context, labels []*labelDoc, times []time.Time, withPending bool) (found []esbulk.DocRef, docs, pend []esbulk.Doc, err error) {
	var refs []esbulk.DocRef
	span := make([][2]int, len(labels))
	for k, l := range labels {
		start := len(refs)
		cands := w.candidates(times[k])
		if !l.txTime.IsZero() {
			// The prediction is indexed by its transaction's event time: one index to look in.
			cands = []string{IndexFor(w.cfg.IndexPrefix, l.txTime)}
		}
		for _, idx := range cands {
			refs = append(refs, esbulk.DocRef{Index: idx, ID: l.id()})
		}
		span[k] = [2]int{start, len(refs)}
		if withPending {
			refs = append(refs, esbulk.DocRef{Index: w.cfg.PendingIndex, ID: l.id()})
		}
	}
	all, err := w.mget(ctx, refs, fieldLabelledAt)
	if err != nil {
		return nil, nil, nil, err
	}
	found = make([]esbulk.DocRef, len(labels))
	docs = make([]esbulk.Doc, len(labels))
	pend = make([]esbulk.Doc, len(labels))
	for k := range labels {
		for r := span[k][0]; r < span[k][1]; r++ {
			if all[r].Found {
				found[k], docs[k] = refs[r], all[r]
				break
			}
		}
		if withPending {
			pend[k] = all[span[k][1]]
		}
	}
	return found, docs, pend, nil
}

func (w *Writer) handleLabels(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
	res := make([]kafkaio.Result, len(msgs))
	// One label per transaction: the one with the latest event time (the last of equals)
	// supersedes the others of the batch.
	best := map[string]int{}
	docs := make([]*labelDoc, len(msgs))
	times := make([]time.Time, len(msgs))
	for i, m := range msgs {
		var l eventsv1.Label
		if err := decode(m, &l); err != nil {
			res[i].Err = err
			continue
		}
		at, doc, err := buildLabel(&l)
		if err != nil {
			res[i].Err = kafkaio.PermanentReason(kafkaio.ReasonValidation, err)
			continue
		}
		docs[i], times[i] = doc, at
		if b, ok := best[doc.id()]; ok && times[b].After(at) {
			continue
		}
		best[doc.id()] = i
	}
	var idx []int
	for i := range msgs {
		if docs[i] != nil && best[docs[i].id()] == i {
			idx = append(idx, i)
		}
	}
	labels := make([]*labelDoc, len(idx))
	ltimes := make([]time.Time, len(idx))
	for k, i := range idx {
		labels[k], ltimes[k] = docs[i], times[i]
	}

	found, pdocs, pend, err := w.lookup(ctx, labels, ltimes, true)
	if err != nil {
		return nil, requestErr(err)
	}
	var moves []move
	var parks []esbulk.Op
	var parkK []int
	for k, l := range labels {
		switch {
		case found[k].ID != "":
			moves = append(moves, move{msg: idx[k], label: l, target: found[k], doc: pdocs[k],
				pendingFound: pend[k].Found, pendSeq: pend[k].SeqNo, pendTerm: pend[k].PrimaryTerm})
		case pend[k].Found && newer(pend[k].Source, l):
			w.m.labelsStale.Inc()
		default:
			op := esbulk.Op{Action: esbulk.ActionIndex, Index: w.cfg.PendingIndex, ID: l.id(), Doc: l}
			if pend[k].Found {
				op.IfSeqNo, op.IfPrimaryTerm = pend[k].SeqNo, pend[k].PrimaryTerm
			}
			parks = append(parks, op)
			parkK = append(parkK, k)
		}
	}
	if err := w.moveLabels(ctx, moves, res); err != nil {
		return nil, err
	}

	items, err := w.bulk(ctx, parks)
	if err != nil {
		return nil, requestErr(err)
	}
	var parked []int // label indexes k now parked
	seq := map[int][2]int64{}
	for j, it := range items {
		k := parkK[j]
		if err := w.itemErr(it); err != nil {
			res[idx[k]].Err = err
			continue
		}
		parked = append(parked, k)
		seq[k] = [2]int64{it.SeqNo, it.PrimaryTerm}
	}
	w.m.docsWritten.WithLabelValues(kindLabelPending).Add(float64(len(parked)))
	if len(parked) > 0 {
		// Look again: the prediction may have been written between our lookup and our park,
		// after it checked the pending index.
		pl := make([]*labelDoc, len(parked))
		pt := make([]time.Time, len(parked))
		for n, k := range parked {
			pl[n], pt[n] = labels[k], ltimes[k]
		}
		found, pdocs, _, err := w.lookup(ctx, pl, pt, false)
		if err != nil {
			return nil, requestErr(err)
		}
		var late []move
		for n, k := range parked {
			if found[n].ID == "" {
				continue
			}
			late = append(late, move{msg: idx[k], label: labels[k], target: found[n], doc: pdocs[n],
				pendingFound: true, pendSeq: seq[k][0], pendTerm: seq[k][1]})
		}
		if err := w.moveLabels(ctx, late, res); err != nil {
			return nil, err
		}
	}
	return prefixResults(res), nil
}

// expireBatch is how many expired pending labels ExpirePending deletes per bulk request.
const expireBatch = 500

// ExpirePending deletes the parked labels whose event time (labelled_at) is more than
// PendingMaxAge before now, counts them in mlops_predlog_pending_labels_expired_total and
// returns how many it deleted. Only labels visible to search are considered (parked more than
// the index's refresh interval ago). It searches and deletes in batches, each delete
// conditional on the sequence number it saw (the jar-based local Elasticsearch has no
// _delete_by_query), so a label re-parked or adopted by its prediction meanwhile is left to
// that writer. A missing pending index is not an error.
func (w *Writer) ExpirePending(ctx context.Context, now time.Time) (int, error) {
	cutoff := timeString(now.Add(-w.cfg.PendingMaxAge))
	query, err := json.Marshal(map[string]any{
		"size":                expireBatch,
		"_source":             false,
		"seq_no_primary_term": true,
		"sort":                []any{map[string]any{fieldLabelledAt: "asc"}},
		"query":               map[string]any{"range": map[string]any{fieldLabelledAt: map[string]any{"lt": cutoff}}},
	})
	if err != nil {
		return 0, fmt.Errorf("encode pending expiry query: %w", err)
	}
	path := "/" + w.cfg.PendingIndex + "/_search?ignore_unavailable=true&allow_no_indices=true"
	deleted := 0
	for {
		body, err := w.es.Do(ctx, http.MethodPost, path, query)
		w.observeUp(err)
		if err != nil {
			return deleted, fmt.Errorf("search pending labels older than %s: %w", cutoff, err)
		}
		var res struct {
			Hits struct {
				Hits []struct {
					ID          string `json:"_id"`
					SeqNo       int64  `json:"_seq_no"`
					PrimaryTerm int64  `json:"_primary_term"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			return deleted, fmt.Errorf("decode pending label search: %w", err)
		}
		hits := res.Hits.Hits
		if len(hits) == 0 {
			return deleted, nil
		}
		ops := make([]esbulk.Op, len(hits))
		for i, h := range hits {
			ops[i] = esbulk.Op{Action: esbulk.ActionDelete, Index: w.cfg.PendingIndex, ID: h.ID, IfSeqNo: h.SeqNo, IfPrimaryTerm: h.PrimaryTerm}
		}
		items, err := w.bulk(ctx, ops)
		if err != nil {
			return deleted, fmt.Errorf("delete expired pending labels: %w", err)
		}
		n := 0
		for _, it := range items {
			// 404: adopted meanwhile; 409: a newer label was parked since. Both stay with
			// their writer.
			if it.OK() {
				n++
			}
		}
		deleted += n
		w.m.pendingExpired.Add(float64(n))
		if len(hits) < expireBatch || n == 0 {
			return deleted, nil
		}
		// A full batch: there may be more. Deleted documents leave search results only
		// after a refresh.
		if err := w.es.Refresh(ctx, w.cfg.PendingIndex); err != nil {
			return deleted, fmt.Errorf("refresh pending index: %w", err)
		}
	}
}
