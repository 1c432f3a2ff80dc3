package ingest

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// RawHandler returns a new handler of tx.raw records for the kafkaio consumer loop: each
// valid record becomes a protobuf Transaction on the validated topic, keyed by account_id,
// with the record's trace context; each invalid one is a permanent error with reason
// decode, validation or duplicate, which the loop dead-letters with the original bytes and
// headers. A redelivery of a record (same topic, partition and offset) is published again.
//
// The handler keeps scratch space; the loop calls it from one goroutine at a time, which is
// what it needs. Make one per consumer.
func (s *Server) RawHandler() kafkaio.BatchHandler {
	h := &rawHandler{s: s, dec: NewDecoder(s.cfg.UnknownFields), tx: &eventsv1.Transaction{}}
	return h.handle
}

type rawHandler struct {
	s       *Server
	dec     *Decoder
	tx      *eventsv1.Transaction
	ingest  timestamppb.Timestamp
	errs    []FieldError
	origin  []byte // scratch for the origin hash
	arena   []byte // output values and keys of the current batch
	marshal proto.MarshalOptions
}

func (h *rawHandler) handle(_ context.Context, msgs []kafka.Message) ([]kafkaio.Result, error) {
	h.s.metrics.countReceived(msgs)
	res := make([]kafkaio.Result, len(msgs))
	outs := make([]kafka.Message, len(msgs))
	// One allocation holds every output value and key of the batch: a protobuf value is
	// no larger than the JSON it came from, plus the ingestion stamp and event id.
	size := 0
	for i := range msgs {
		size += len(msgs[i].Value) + 96
	}
	h.arena = make([]byte, 0, size)
	ok := 0
	for i := range msgs {
		if err := h.one(&msgs[i], &outs[i]); err != nil {
			res[i].Err = err
			continue
		}
		res[i].Output = outs[i : i+1 : i+1]
		ok++
	}
	h.arena = nil
	h.s.metrics.event(sourceKafka, outcomeOK).Add(float64(ok))
	return res, nil
}

// one handles record m; on success *out is the record to publish.
func (h *rawHandler) one(m *kafka.Message, out *kafka.Message) error {
	s := h.s
	start := time.Now()
	if len(m.Value) > s.cfg.Limits.MaxRecordBytes {
		fe := []FieldError{{"record", CodeLength, fmt.Sprintf("record: %d bytes exceeds the limit of %d", len(m.Value), s.cfg.Limits.MaxRecordBytes)}}
		return h.reject(m, topics.ReasonValidation, fe, &ValidationError{Fields: fe})
	}
	ct, hasCT := kafkaio.HeaderValue(m.Headers, topics.HeaderContentType)
	tx := h.tx
	if err := h.dec.Decode(ct, hasCT, m.Value, tx); err != nil {
		return h.reject(m, topics.ReasonDecode, nil, err)
	}
	h.errs = s.validator.Validate(tx, h.errs[:0])
	if len(h.errs) > 0 {
		fe := slices.Clone(h.errs)
		return h.reject(m, topics.ReasonValidation, fe, &ValidationError{Fields: fe})
	}
	s.metrics.validation.Observe(time.Since(start).Seconds())

	now := s.now()
	h.origin = append(append(h.origin[:0], m.Topic...), 0)
	h.origin = binary.BigEndian.AppendUint32(h.origin, uint32(m.Partition))
	h.origin = binary.BigEndian.AppendUint64(h.origin, uint64(m.Offset))
	sighting := Sighting{Origin: s.dedup.Hash(h.origin), EventID: s.dedup.HashString(tx.GetEventId()), Content: s.dedup.Hash(m.Value)}
	if s.dedup.Observe(tx.GetTransactionId(), sighting, now) {
		fe := []FieldError{duplicateError(tx.GetTransactionId(), s.cfg.DedupWindow)}
		return h.reject(m, ReasonDuplicate, fe, &ValidationError{Fields: fe})
	}
	if tx.GetEventId() == "" {
		// Derived from the record's position, so a redelivery gets the same event id.
		tx.EventId = eventid.Derived("kafka", h.origin)
	}
	stamp(tx, now, &h.ingest)

	n := len(h.arena)
	var err error
	h.arena, err = h.marshal.MarshalAppend(h.arena, tx)
	if err != nil {
		s.metrics.event(sourceKafka, outcomeError).Inc()
		return kafkaio.Permanent(fmt.Errorf("encode transaction %q from %s: %w", truncate(tx.GetTransactionId()), position(m), err))
	}
	value := h.arena[n:len(h.arena):len(h.arena)]
	n = len(h.arena)
	h.arena = append(h.arena, tx.GetAccountId()...)
	key := h.arena[n:len(h.arena):len(h.arena)]
	*out = kafkaio.NewRecord(s.cfg.ValidatedTopic, key, value, topics.ContentTypeProtobuf, m.Headers)
	return nil
}

// reject counts an invalid record and returns the permanent error that dead-letters it.
func (h *rawHandler) reject(m *kafka.Message, reason string, fe []FieldError, err error) error {
	h.s.metrics.reject(sourceKafka, reason, fe)
	return kafkaio.PermanentReason(reason, fmt.Errorf("%s: %w", position(m), err))
}

// position names a record for error messages.
func position(m *kafka.Message) string {
	return m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)
}
