// Package ingest validates raw transactions from tx.raw and gRPC Ingest and publishes them to
// tx.validated, sending bad input to tx.dlq.
//
// Both paths share one pipeline: decode (JSON or protobuf, see Decoder), validate (see
// Validator), deduplicate transaction ids within a window (see Dedup), stamp ingested_at
// (and event_id when the producer left it empty), and publish the protobuf Transaction keyed
// by account_id with acks=all. A Kafka record that fails goes to the dead-letter topic with
// reason decode, validation or duplicate; a gRPC transaction that fails is answered
// accepted=false with its field errors.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	ingestv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/ingest/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/run"
)

// Limits of IngestStream.
const (
	// maxStreamErrors caps IngestStreamResponse.errors (the contract says at most 100).
	maxStreamErrors = 100
	// streamFlush is how many accepted transactions of a stream are published together.
	streamFlush = 256
)

// Server is the ingestion service: the gRPC IngestService and the tx.raw handler. It is safe
// for concurrent use. Create it with New and Close it after every actor has stopped.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	cfg       Config
	logger    *slog.Logger
	reg       prometheus.Registerer
	now       func() time.Time
	validator *Validator
	dedup     *Dedup
	metrics   *metrics
	producer  *kafkaio.Producer

	topicsReady atomic.Bool
}

// Option customises a Server.
type Option func(*Server)

// WithClock sets the clock used for event_time checks, ingested_at and the dedup window.
// Default: time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// New returns the ingestion service for a validated cfg. It does no I/O: the producer
// connects on first use and ConsumerActor creates the topics. reg receives the
// mlops_ingestion_* and shared mlops_kafka_* instruments.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	p, err := kafkaio.NewProducer(cfg.Kafka, logger, reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		logger:   logger,
		reg:      reg,
		now:      time.Now,
		dedup:    NewDedup(cfg.DedupWindow, cfg.DedupSize),
		metrics:  newMetrics(reg),
		producer: p,
	}
	for _, o := range opts {
		o(s)
	}
	s.validator = NewValidator(cfg.Limits, s.now)
	logger.Info("configuration",
		"input_topics", cfg.Kafka.Topics, "validated_topic", cfg.ValidatedTopic, "dlq_topic", cfg.Kafka.DLQTopic,
		"group", cfg.Kafka.GroupID, "brokers", cfg.Kafka.Brokers, "partitions", cfg.Kafka.Partitions,
		"unknown_fields", cfg.UnknownFields.String(), "dedup_window", cfg.DedupWindow, "dedup_size", cfg.DedupSize,
		"max_record_bytes", cfg.Limits.MaxRecordBytes, "max_amount", cfg.Limits.MaxAmount,
		"max_future_skew", cfg.Limits.MaxFutureSkew, "max_age", cfg.Limits.MaxAge)
	return s, nil
}

// Register adds the server to a gRPC server.
func (s *Server) Register(g *grpc.Server) { ingestv1.RegisterIngestServiceServer(g, s) }

// Close flushes and closes the gRPC path's producer. Call it once every actor has
// returned; it is safe to call more than once.
func (s *Server) Close() error { return s.producer.Close() }

// TopicsReady is a readiness check: it passes once ConsumerActor has ensured the topics.
func (s *Server) TopicsReady(context.Context) error {
	if !s.topicsReady.Load() {
		return errors.New("topics not ensured yet")
	}
	return nil
}

// ConsumerActor returns the actor that creates the input, validated and dead-letter topics
// when missing (retrying until Kafka answers or ctx ends) and then consumes the input topics
// with the tx.raw handler until ctx ends.
func (s *Server) ConsumerActor() run.Actor {
	return run.Actor{Name: "ingest-consumer", Run: func(ctx context.Context) error {
		if err := s.ensureTopics(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c, err := kafkaio.NewConsumer(s.cfg.Kafka, s.RawHandler(), s.logger, s.reg)
		if err != nil {
			return err
		}
		return c.Run(ctx)
	}}
}

// ensureTopics creates the service's topics, retrying with capped backoff until it
// succeeds or ctx ends.
func (s *Server) ensureTopics(ctx context.Context) error {
	names := append(append([]string{}, s.cfg.Kafka.Topics...), s.cfg.ValidatedTopic, s.cfg.Kafka.DLQTopic)
	roles := map[string]kafkaio.TopicRole{s.cfg.ValidatedTopic: kafkaio.RoleStream, s.cfg.Kafka.DLQTopic: kafkaio.RoleDeadLetter}
	for _, t := range s.cfg.Kafka.Topics {
		roles[t] = kafkaio.RoleStream
	}
	delay := 200 * time.Millisecond
	for {
		attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.cfg.Kafka.EnsureRoles(attempt, roles)
		cancel()
		if err == nil {
			s.topicsReady.Store(true)
			s.logger.Info("topics ready", "topics", names)
			return nil
		}
		s.logger.Warn("ensure topics failed, retrying", "topics", names, "backoff", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("ensure topics %v: %w", names, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// Ingest validates and publishes one transaction. An invalid transaction is answered
// accepted=false with its field errors (the IngestService contract); a request without a
// transaction is INVALID_ARGUMENT with a BadRequest detail; a failed publish is
// UNAVAILABLE, safe to retry with the same transaction.
func (s *Server) Ingest(ctx context.Context, req *ingestv1.IngestRequest) (*ingestv1.IngestResponse, error) {
	tx := req.GetTransaction()
	if tx == nil {
		return nil, invalidArgument(FieldError{"transaction", CodeRequired, "transaction: required"})
	}
	parent := traceHeaders(ctx)
	rec, fieldErrs := s.prepare(tx, parent)
	if len(fieldErrs) > 0 {
		return nil, invalidArgument(fieldErrs...)
	}
	if err := s.producer.WriteMessages(ctx, rec); err != nil {
		s.metrics.event(sourceGRPC, outcomeError).Inc()
		return nil, publishStatus(ctx, err)
	}
	s.metrics.event(sourceGRPC, outcomeOK).Inc()
	return &ingestv1.IngestResponse{Accepted: true, TransactionId: tx.GetTransactionId(), EventId: tx.GetEventId()}, nil
}

// IngestStream validates a client stream of transactions, publishes the valid ones (in
// groups, each acknowledged before the summary is sent) and answers with a summary. Invalid
// transactions are counted and reported (the first 100), not fatal; a failed publish ends
// the stream with UNAVAILABLE, and the client may resend the whole stream.
func (s *Server) IngestStream(stream grpc.ClientStreamingServer[ingestv1.IngestStreamRequest, ingestv1.IngestStreamResponse]) error {
	ctx := stream.Context()
	parent := traceHeaders(ctx)
	resp := &ingestv1.IngestStreamResponse{}
	pending := make([]kafka.Message, 0, streamFlush)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := s.producer.WriteMessages(ctx, pending...); err != nil {
			s.metrics.event(sourceGRPC, outcomeError).Add(float64(len(pending)))
			return publishStatus(ctx, err)
		}
		s.metrics.event(sourceGRPC, outcomeOK).Add(float64(len(pending)))
		resp.Accepted += int64(len(pending))
		pending = pending[:0]
		return nil
	}
	for i := int64(0); ; i++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		tx := req.GetTransaction()
		var fieldErrs []FieldError
		var rec kafka.Message
		if tx == nil {
			fieldErrs = []FieldError{{"transaction", CodeRequired, "transaction: required"}}
			s.metrics.reject(sourceGRPC, topics.ReasonValidation, fieldErrs)
		} else {
			rec, fieldErrs = s.prepare(tx, parent)
		}
		if len(fieldErrs) > 0 {
			resp.Rejected++
			if len(resp.Errors) < maxStreamErrors {
				resp.Errors = append(resp.Errors, &ingestv1.RejectedTransaction{Index: i, TransactionId: tx.GetTransactionId(), Errors: toProto(fieldErrs)})
			}
			continue
		}
		if pending = append(pending, rec); len(pending) == streamFlush {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return stream.SendAndClose(resp)
}

// prepare runs a transaction received over gRPC through the pipeline and returns the record
// to publish, or its field errors (already counted).
func (s *Server) prepare(tx *eventsv1.Transaction, parent []kafka.Header) (kafka.Message, []FieldError) {
	start := time.Now()
	content, err := proto.MarshalOptions{Deterministic: true}.Marshal(tx)
	if err != nil {
		fe := []FieldError{{"transaction", CodeFormat, "transaction: cannot be encoded: " + err.Error()}}
		s.metrics.reject(sourceGRPC, topics.ReasonValidation, fe)
		return kafka.Message{}, fe
	}
	if len(content) > s.cfg.Limits.MaxRecordBytes {
		fe := []FieldError{{"transaction", CodeLength, fmt.Sprintf("transaction: %d bytes encoded exceeds the limit of %d", len(content), s.cfg.Limits.MaxRecordBytes)}}
		s.metrics.reject(sourceGRPC, topics.ReasonValidation, fe)
		return kafka.Message{}, fe
	}
	if err := checkUnknown(s.cfg.UnknownFields, tx); err != nil {
		fe := []FieldError{{"transaction", CodeUnknownField, "transaction: " + err.Error()}}
		s.metrics.reject(sourceGRPC, topics.ReasonDecode, fe)
		return kafka.Message{}, fe
	}
	if fe := s.validator.Validate(tx, nil); len(fe) > 0 {
		s.metrics.reject(sourceGRPC, topics.ReasonValidation, fe)
		return kafka.Message{}, fe
	}
	s.metrics.validation.Observe(time.Since(start).Seconds())
	now := s.now()
	sighting := Sighting{EventID: s.dedup.HashString(tx.GetEventId()), Content: s.dedup.Hash(content)}
	if s.dedup.Observe(tx.GetTransactionId(), sighting, now) {
		fe := []FieldError{duplicateError(tx.GetTransactionId(), s.cfg.DedupWindow)}
		s.metrics.reject(sourceGRPC, ReasonDuplicate, fe)
		return kafka.Message{}, fe
	}
	if tx.GetEventId() == "" {
		// Derived from the content, so a client's retry of the same transaction gets the
		// same event id.
		tx.EventId = eventid.Derived("grpc", content)
	}
	stamp(tx, now, nil)
	value, err := proto.Marshal(tx)
	if err != nil { // cannot happen: the same message encoded above
		fe := []FieldError{{"transaction", CodeFormat, "transaction: cannot be encoded: " + err.Error()}}
		s.metrics.reject(sourceGRPC, topics.ReasonValidation, fe)
		return kafka.Message{}, fe
	}
	return kafkaio.NewRecord(s.cfg.ValidatedTopic, []byte(tx.GetAccountId()), value, topics.ContentTypeProtobuf, parent), nil
}

func duplicateError(id string, window time.Duration) FieldError {
	return FieldError{"transaction_id", CodeDuplicate, fmt.Sprintf("transaction_id: %q was already ingested from a different record within the last %v", truncate(id), window)}
}

// checkUnknown applies the unknown-fields policy u to a message decoded from protobuf.
func checkUnknown(u UnknownFields, tx *eventsv1.Transaction) error {
	d := Decoder{unknown: u}
	return d.checkUnknown(tx)
}

// stamp sets ingested_at to now, reusing ts when it is not nil.
func stamp(tx *eventsv1.Transaction, now time.Time, ts *timestamppb.Timestamp) {
	if ts == nil {
		ts = &timestamppb.Timestamp{}
	}
	ts.Seconds, ts.Nanos = now.Unix(), int32(now.Nanosecond())
	tx.IngestedAt = ts
}

// traceHeaders returns the W3C trace context of an incoming gRPC call as Kafka headers, so
// the published record continues the caller's trace.
func traceHeaders(ctx context.Context) []kafka.Header {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	tp := md.Get(topics.HeaderTraceparent)
	if len(tp) == 0 {
		return nil
	}
	return kafkaio.TraceHeaders(tp[0], strings.Join(md.Get(topics.HeaderTracestate), ","))
}

func toProto(fe []FieldError) []*ingestv1.FieldError {
	out := make([]*ingestv1.FieldError, len(fe))
	for i, f := range fe {
		out[i] = &ingestv1.FieldError{Field: f.Field, Code: f.Code, Message: f.Message}
	}
	return out
}

// invalidArgument returns an INVALID_ARGUMENT status with a BadRequest detail listing fe.
func invalidArgument(fe ...FieldError) error {
	br := &errdetails.BadRequest{}
	msgs := make([]string, 0, len(fe))
	for _, f := range fe {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Message, Reason: strings.ToUpper(f.Code)})
		msgs = append(msgs, f.Message)
	}
	st := status.New(codes.InvalidArgument, strings.Join(msgs, "; "))
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// publishStatus maps a failed publish to a gRPC status: the caller's cancellation or
// deadline as such, anything else UNAVAILABLE (retryable).
func publishStatus(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Errorf(codes.Unavailable, "publish to kafka: %v", err)
}
