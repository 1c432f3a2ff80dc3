// Package topics names the Kafka topics, record headers and content types
// that make up the platform's event contracts (docs/contracts.md). Every
// service uses these constants instead of spelling the strings itself.
//
// The payload of each topic is a message of package mlops.events.v1,
// generated under gen/go/mlops/events/v1; Specs ties the two together.
package topics

// Topic names.
const (
	// TxRaw receives transactions from source systems, as protobuf or JSON
	// (see HeaderContentType). Key: account_id.
	TxRaw = "tx.raw"
	// TxValidated holds transactions that passed validation, as protobuf.
	// Key: account_id.
	TxValidated = "tx.validated"
	// TxDLQ holds records that could not be processed: the original key,
	// value and headers plus the HeaderDLQ* headers. Key: the original key.
	TxDLQ = "tx.dlq"
	// Features holds computed feature vectors. Key: account_id.
	Features = "features.v1"
	// Predictions holds predictions. Key: transaction_id.
	Predictions = "predictions.v1"
	// Labels holds ground-truth labels. Key: transaction_id.
	Labels = "labels.v1"
	// DriftEvents holds drift events. Key: model_name.
	DriftEvents = "drift.events"
	// ModelEvents holds model registry changes. Key: model_name.
	ModelEvents = "model.events"
)

// Content types, the values of HeaderContentType.
const (
	// ContentTypeProtobuf marks a value in protobuf binary wire format. It is
	// the default when a record has no content-type header.
	ContentTypeProtobuf = "application/x-protobuf"
	// ContentTypeJSON marks a value in protobuf's canonical JSON mapping
	// (protojson). Accepted on TxRaw only.
	ContentTypeJSON = "application/json"
)

// Header names. Kafka header keys are case-sensitive: use these exactly.
const (
	// HeaderContentType names the encoding of the record value.
	HeaderContentType = "content-type"
	// HeaderTraceparent carries the W3C traceparent of the producing span.
	HeaderTraceparent = "traceparent"
	// HeaderTracestate carries the W3C tracestate, when there is one.
	HeaderTracestate = "tracestate"

	// HeaderDLQReason is a short machine-readable cause; see the Reason*
	// constants.
	HeaderDLQReason = "dlq-reason"
	// HeaderDLQError is the error message, UTF-8, truncated to 1 KiB.
	HeaderDLQError = "dlq-error"
	// HeaderDLQSourceTopic is the topic the record was read from.
	HeaderDLQSourceTopic = "dlq-source-topic"
	// HeaderDLQSourcePartition is its partition, in decimal.
	HeaderDLQSourcePartition = "dlq-source-partition"
	// HeaderDLQSourceOffset is its offset, in decimal.
	HeaderDLQSourceOffset = "dlq-source-offset"
	// HeaderDLQService is the service that dead-lettered it, e.g. "ingestion".
	HeaderDLQService = "dlq-service"
	// HeaderDLQTime is when it was dead-lettered, RFC 3339 with nanoseconds
	// in UTC.
	HeaderDLQTime = "dlq-time"
)

// Values of HeaderDLQReason.
const (
	// ReasonDecode: the value could not be decoded (bad protobuf or JSON, or
	// an unknown content type).
	ReasonDecode = "decode"
	// ReasonValidation: the value decoded but failed validation.
	ReasonValidation = "validation"
	// ReasonSpecMismatch: a feature vector's spec does not match the model's.
	ReasonSpecMismatch = "spec_mismatch"
	// ReasonPermanent: any other error the handler marked permanent.
	ReasonPermanent = "permanent"
)

// Spec describes one topic's contract.
type Spec struct {
	// Name is the topic name.
	Name string
	// KeyField names the payload field whose value is the record key
	// (empty for TxDLQ, which keeps the original key).
	KeyField string
	// ValueType is the full protobuf name of the value's message, e.g.
	// "mlops.events.v1.Transaction"; empty for TxDLQ, whose value is the
	// original bytes.
	ValueType string
	// ContentTypes lists the accepted values of HeaderContentType; the first
	// is what the platform's own producers write.
	ContentTypes []string
}

// Specs returns the contract of every topic, in pipeline order. It returns a
// new slice on each call; callers may modify it.
func Specs() []Spec {
	proto := func() []string { return []string{ContentTypeProtobuf} }
	return []Spec{
		{Name: TxRaw, KeyField: "account_id", ValueType: "mlops.events.v1.Transaction",
			ContentTypes: []string{ContentTypeProtobuf, ContentTypeJSON}},
		{Name: TxValidated, KeyField: "account_id", ValueType: "mlops.events.v1.Transaction", ContentTypes: proto()},
		{Name: TxDLQ},
		{Name: Features, KeyField: "account_id", ValueType: "mlops.events.v1.FeatureVector", ContentTypes: proto()},
		{Name: Predictions, KeyField: "transaction_id", ValueType: "mlops.events.v1.Prediction", ContentTypes: proto()},
		{Name: Labels, KeyField: "transaction_id", ValueType: "mlops.events.v1.Label", ContentTypes: proto()},
		{Name: DriftEvents, KeyField: "model_name", ValueType: "mlops.events.v1.DriftEvent", ContentTypes: proto()},
		{Name: ModelEvents, KeyField: "model_name", ValueType: "mlops.events.v1.ModelEvent", ContentTypes: proto()},
	}
}
