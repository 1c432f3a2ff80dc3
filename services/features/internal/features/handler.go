package features

import (
	"context"
	"errors"
	"fmt"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/store"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// ErrConflict is returned (wrapped, transient) for a transaction whose account kept changing
// under the service: every compare-and-set attempt lost against another writer.
var ErrConflict = errors.New("account state changed concurrently")

// maxCASAttempts bounds the load-compute-commit rounds of one batch before the losing
// accounts are reported as transient failures (the consumer loop then retries them).
const maxCASAttempts = 5

// item is one transaction on its way through apply.
type item struct {
	tx *eventsv1.Transaction
	in featurespec.Input
	// shop marks a shop event (commerce set): it gets the purchase vector, computed
	// statelessly, and never touches the account's fraud state.
	shop bool
	// traceparent and tracestate to put into a newly computed vector.
	traceparent, tracestate string

	// value is the encoded FeatureVector (new or stored), replay whether it was stored.
	value  []byte
	replay bool
	// err is the item's failure: permanent (kafkaio.Permanent) or transient.
	err error
}

// account groups the items of one account, in input order.
type account struct {
	id    string
	items []*item
}

// HandleBatch is the kafkaio.BatchHandler of tx.validated: it decodes and validates each
// Transaction, loads the state of every account of the batch from Redis in one pipelined
// round trip, computes the fraud vectors in order (featurespec.Step), writes all states back
// in a second round trip (compare-and-set per account) and returns one FeatureVector record
// per transaction for the output topic, keyed by account id, with the input's trace context.
//
// A shop event (commerce set, IsShopEvent) gets the purchase vector instead (spec
// purchase-v1, PurchaseVector): stateless, so it needs no Redis, and it is not folded into
// the account's fraud state (fraud training never saw shop sessions). It is not fraud-scored:
// the payment of a purchase comes through the gateway as a transaction of its own. A replay
// computes the same values with the same event id.
//
// Undecodable and invalid transactions fail permanently (dead-letter reasons decode and
// validation), as do the transactions of an account whose stored state cannot be decoded
// (reason permanent; an operator must repair the key). Redis being unreachable is a
// transient batch error. A transaction already applied (a redelivery) is not applied again:
// the vector stored for it is returned, byte for byte the one published the first time.
func (s *Server) HandleBatch(ctx context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
	results := make([]kafkaio.Result, len(msgs))
	items := make([]*item, len(msgs))
	valid := make([]*item, 0, len(msgs))
	backing := make([]item, len(msgs)) // one allocation for the batch's items
	for i := range msgs {
		it := &backing[i]
		if err := decodeRecord(&msgs[i], it); err != nil {
			s.m.invalid.Inc()
			results[i].Err = err
			continue
		}
		items[i] = it
		if it.shop {
			s.purchaseValue(it)
			if it.err != nil {
				s.m.invalid.Inc()
			}
			continue
		}
		valid = append(valid, it)
	}
	if err := s.apply(ctx, valid); err != nil {
		return nil, err
	}
	for i, it := range items {
		if it == nil {
			continue
		}
		if it.err != nil {
			results[i].Err = it.err
			if !kafkaio.IsPermanent(it.err) {
				return results[:i+1], nil // the rest is handed back after a backoff
			}
			continue
		}
		tp, ts := it.traceparent, it.tracestate
		if it.replay {
			tp, ts = traceOf(it.value)
		}
		results[i].Output = []kafka.Message{
			kafkaio.NewRecord(s.cfg.OutputTopic, []byte(it.tx.GetAccountId()), it.value, kafkaio.ContentTypeProtobuf, kafkaio.TraceHeaders(tp, ts)),
		}
	}
	return results, nil
}

// decodeRecord decodes and validates one tx.validated record into it (a zero item).
func decodeRecord(m *kafka.Message, it *item) error {
	if ct, ok := kafkaio.HeaderValue(m.Headers, kafkaio.HeaderContentType); ok && string(ct) != kafkaio.ContentTypeProtobuf {
		return kafkaio.PermanentReason(kafkaio.ReasonDecode, fmt.Errorf("content type %q at offset %d: want %s", ct, m.Offset, kafkaio.ContentTypeProtobuf))
	}
	tx := &eventsv1.Transaction{}
	if err := proto.Unmarshal(m.Value, tx); err != nil {
		return kafkaio.PermanentReason(kafkaio.ReasonDecode, fmt.Errorf("decode Transaction at offset %d: %w", m.Offset, err))
	}
	it.tx, it.shop = tx, IsShopEvent(tx)
	if !it.shop {
		in, err := InputFromTransaction(tx)
		if err != nil {
			return kafkaio.PermanentReason(kafkaio.ReasonValidation, err)
		}
		it.in = in
	}
	if it.traceparent, it.tracestate = kafkaio.TraceContext(m.Headers); it.traceparent == "" {
		it.traceparent = string(kafkaio.NewTraceparent())
	}
	return nil
}

// apply computes the vectors of items and folds the new transactions into their accounts'
// state, idempotently: per account it loads the state and the stored vectors of the items'
// transaction ids, answers already-applied transactions (stored, or earlier in items) with
// their stored vector, steps the state through the others in order, and commits state and
// vectors with a compare-and-set on the account's version, reloading and recomputing the
// accounts whose commit lost a race. An account whose state the service wrote last (the
// state cache) is not loaded on the first attempt: its write is computed on the remembered
// state and applies only if Redis still holds exactly that state and none of its
// transactions was applied already; otherwise the account is reloaded like a lost race.
// Each item ends with value set or err set. apply returns an error (transient) only when
// Redis fails; some accounts may then have been committed, which a retry finds out.
func (s *Server) apply(ctx context.Context, items []*item) error {
	if len(items) == 0 {
		return nil
	}
	var todo []*account
	byID := make(map[string]*account, len(items))
	for _, it := range items {
		a := byID[it.tx.GetAccountId()]
		if a == nil {
			a = &account{id: it.tx.GetAccountId()}
			byID[a.id] = a
			todo = append(todo, a)
		}
		a.items = append(a.items, it)
	}
	out := make([]float64, featurespec.FraudLen)
	scratch := s.snaps.Get().(*[]store.Snapshot)
	defer s.snaps.Put(scratch)
	for attempt := 0; attempt < maxCASAttempts && len(todo) > 0; attempt++ {
		if cap(*scratch) < len(todo) {
			*scratch = append((*scratch)[:cap(*scratch)], make([]store.Snapshot, len(todo)-cap(*scratch))...)
		}
		snaps := (*scratch)[:len(todo)]
		// Remembered accounts first (snaps[:nCached], their Base in bases), then the ones
		// to load, in the order of reqs.
		bases := make([]string, len(todo))
		nCached := 0
		if attempt == 0 {
			for k, a := range todo {
				e, ok := s.cache.get(a.id)
				if !ok {
					continue
				}
				todo[k], todo[nCached] = todo[nCached], a
				if !fromCache(&snaps[nCached], e, len(a.items)) {
					s.cache.forget(a.id)
					continue
				}
				bases[nCached] = e.encoded
				nCached++
			}
			s.m.cacheHits.Add(float64(nCached))
		}
		if nCached < len(todo) {
			reqs := make([]store.LoadRequest, 0, len(todo)-nCached)
			for _, a := range todo[nCached:] {
				ids := make([]string, len(a.items))
				for j, it := range a.items {
					ids[j] = it.tx.GetTransactionId()
				}
				reqs = append(reqs, store.LoadRequest{Account: a.id, TxIDs: ids})
			}
			if err := s.store.Load(ctx, reqs, snaps[nCached:]); err != nil {
				return err
			}
		}
		writes := make([]store.Write, 0, len(todo))
		written := make([]*account, 0, len(todo))
		for k, a := range todo {
			w, err := s.step(a, &snaps[k], out)
			if err != nil {
				return err
			}
			w.Base = bases[k]
			if len(w.TxIDs) > 0 {
				writes = append(writes, w)
				written = append(written, a)
			}
		}
		applied, err := s.store.Commit(ctx, writes)
		if err != nil {
			for _, a := range written { // outcome unknown
				s.cache.forget(a.id)
			}
			return err
		}
		todo = todo[:0]
		for i, ok := range applied {
			a := written[i]
			if ok {
				s.cache.put(a.id, writes[i].Version+1, writes[i].Encoded)
				continue
			}
			s.cache.forget(a.id)
			if writes[i].Base != "" {
				s.m.cacheStale.Inc()
			} else {
				s.m.conflicts.Inc()
			}
			todo = append(todo, a)
		}
	}
	for _, a := range todo {
		for _, it := range a.items {
			it.value, it.err = nil, fmt.Errorf("account %q, transaction %q: %w after %d attempts", a.id, it.tx.GetTransactionId(), ErrConflict, maxCASAttempts)
		}
	}
	for _, it := range items {
		if it.err == nil && it.replay {
			s.m.replays.Inc()
		}
	}
	return nil
}

// fromCache fills snap with the remembered state e, as if loaded, with no stored vector for
// any of the account's n transactions (the write's compare-and-set checks that). It reports
// false when e does not decode (snap is then unspecified).
func fromCache(snap *store.Snapshot, e cachedState, n int) bool {
	if err := snap.State.UnmarshalBinary([]byte(e.encoded)); err != nil {
		return false
	}
	snap.Version, snap.StateBytes, snap.Err = e.version, len(e.encoded), nil
	snap.Vectors = snap.Vectors[:0]
	for range n {
		snap.Vectors = append(snap.Vectors, nil)
	}
	return true
}

// step computes a's items against snap (mutating snap.State) and returns the write that
// commits the new transactions (none when every item was a replay or failed).
func (s *Server) step(a *account, snap *store.Snapshot, out []float64) (store.Write, error) {
	w := store.Write{Account: a.id, Version: snap.Version, State: &snap.State}
	if snap.Err != nil {
		s.m.badState.Inc()
		s.logger.Error("account state in redis cannot be decoded; its transactions go to the dlq", "account", a.id, "err", snap.Err)
		for _, it := range a.items {
			it.value, it.replay, it.err = nil, false, kafkaio.Permanent(snap.Err)
		}
		return w, nil
	}
	now := s.now()
	for j, it := range a.items {
		it.value, it.replay, it.err = nil, false, nil
		if v := snap.Vectors[j]; v != nil {
			it.value, it.replay = v, true
			continue
		}
		if prev := earlier(a.items[:j], it.tx.GetTransactionId()); prev != nil {
			it.value, it.replay = prev.value, true
			continue
		}
		start := time.Now()
		err := featurespec.Step(&snap.State, it.in, out)
		s.m.compute.Observe(time.Since(start).Seconds())
		if err != nil {
			it.err = kafkaio.PermanentReason(kafkaio.ReasonValidation, fmt.Errorf("transaction %q: %w", it.tx.GetTransactionId(), err))
			continue
		}
		v, err := s.encodeVector(it, out, now)
		if err != nil {
			return store.Write{}, err
		}
		it.value = v
		w.TxIDs = append(w.TxIDs, it.tx.GetTransactionId())
		w.Vectors = append(w.Vectors, v)
	}
	return w, nil
}

// earlier returns the first of items with transaction id tx that has a value, or nil.
func earlier(items []*item, tx string) *item {
	for _, it := range items {
		if it.value != nil && it.tx.GetTransactionId() == tx {
			return it
		}
	}
	return nil
}

// purchaseValue computes the purchase vector of the shop event it and sets it.value, or
// it.err (permanent, reason validation) when the event cannot be converted.
func (s *Server) purchaseValue(it *item) {
	out := make([]float64, featurespec.PurchaseLen)
	start := time.Now()
	err := PurchaseVector(it.tx, out)
	s.m.compute.Observe(time.Since(start).Seconds())
	if err != nil {
		it.err = kafkaio.PermanentReason(kafkaio.ReasonValidation, err)
		return
	}
	it.value, it.err = s.encodeVector(it, out, s.now())
}

// vector builds the FeatureVector of it with values (not copied: the caller leaves them
// alone while the vector is in use): the fraud spec's, or the purchase spec's for a shop
// event. A shop event's vector id is derived from its transaction
// id, so a replay (which recomputes it) publishes the same id.
func (s *Server) vector(it *item, values []float64, now time.Time) *eventsv1.FeatureVector {
	sp := &s.fraud
	id := ""
	if it.shop {
		sp = &s.purchase
		id = eventid.Derived("features", []byte(it.tx.GetTransactionId()), []byte(sp.fingerprint))
	} else {
		id = eventid.New()
	}
	fv := &eventsv1.FeatureVector{
		EventId:         id,
		EventTime:       it.tx.GetEventTime(),
		TransactionId:   it.tx.GetTransactionId(),
		AccountId:       it.tx.GetAccountId(),
		SpecName:        sp.spec.Name,
		SpecVersion:     sp.version,
		SpecFingerprint: sp.fingerprint,
		Values:          values,
		ComputedAt:      timestamppb.New(now),
		Amount:          it.tx.GetAmount(),
		Currency:        it.tx.GetCurrency(),
		IngestedAt:      it.tx.GetIngestedAt(),
	}
	if it.traceparent != "" {
		fv.Trace = &eventsv1.TraceContext{Traceparent: it.traceparent, Tracestate: it.tracestate}
	}
	return fv
}

// encodeVector returns the protobuf encoding of it's vector.
func (s *Server) encodeVector(it *item, values []float64, now time.Time) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.vector(it, values, now))
	if err != nil {
		return nil, fmt.Errorf("encode FeatureVector of transaction %q: %w", it.tx.GetTransactionId(), err)
	}
	return b, nil
}

// traceOf returns the trace context stored in an encoded FeatureVector ("" when it has none
// or does not decode).
func traceOf(value []byte) (traceparent, tracestate string) {
	var fv eventsv1.FeatureVector
	if proto.Unmarshal(value, &fv) != nil {
		return "", ""
	}
	return fv.GetTrace().GetTraceparent(), fv.GetTrace().GetTracestate()
}
