package kafkaio

import (
	"errors"

	"github.com/streaming-mlops/mlops/proto/topics"
)

// Reasons for dead-lettering, the values of the dlq-reason header and of the reason label of
// mlops_kafka_dlq_messages_total. The event contracts (proto/topics) define the shared ones;
// handlers may use others from there (topics.ReasonSpecMismatch), but keep the set small and
// fixed: it is a metric label.
const (
	// ReasonDecode: the record's bytes could not be decoded.
	ReasonDecode = topics.ReasonDecode
	// ReasonValidation: the record decoded but its content is not acceptable.
	ReasonValidation = topics.ReasonValidation
	// ReasonPanic: the handler panicked on the record.
	ReasonPanic = "panic"
	// ReasonHandler: the handler broke its contract (for example returned more results than
	// records).
	ReasonHandler = "handler"
	// ReasonPermanent is the reason of an error marked with Permanent without a reason.
	ReasonPermanent = topics.ReasonPermanent
)

// PermanentError marks an error that retrying cannot fix: the record goes to the dead-letter
// topic and is committed. Create one with Permanent or PermanentReason.
type PermanentError struct {
	// Reason is a short word from a small fixed set (ReasonDecode, ReasonValidation, ...).
	Reason string
	// Err is the underlying error.
	Err error
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent error (" + e.Reason + ")"
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent with reason ReasonPermanent. Permanent(nil) is nil.
func Permanent(err error) error { return PermanentReason(ReasonPermanent, err) }

// PermanentReason marks err as permanent with the given dead-letter reason. An empty reason
// means ReasonPermanent. PermanentReason(reason, nil) is nil.
func PermanentReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	if reason == "" {
		reason = ReasonPermanent
	}
	return &PermanentError{Reason: reason, Err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked permanent.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// Reason returns the dead-letter reason of a permanent err, or "" when err is not permanent
// (that is, transient) or nil.
func Reason(err error) string {
	var pe *PermanentError
	if !errors.As(err, &pe) {
		return ""
	}
	if pe.Reason == "" {
		return ReasonPermanent
	}
	return pe.Reason
}
