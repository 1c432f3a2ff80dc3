// Package kafkaio is the one way services talk to Kafka: a producer that waits for every
// acknowledgement, a consumer loop that commits an offset only after everything produced for
// the record was acknowledged, a dead-letter queue for bad input, topic administration, and
// the shared Kafka flags and metrics.
//
// Delivery is at-least-once. The consumer loop fetches a batch, hands it to a BatchHandler
// (or a per-message Handler), writes every returned output record with acks=all in one call,
// and then commits the highest offset per partition. An error marked with Permanent sends the
// original record to the dead-letter topic (with headers naming the reason, the source topic,
// partition and offset) and is then committed; any other error is retried with capped
// exponential backoff and jitter until it succeeds or the service shuts down, and nothing
// after it on its partition is committed in the meantime. A panicking handler is recovered,
// counted and treated as a permanent error with reason "panic".
//
// docs/kafka.md describes the semantics, headers, metrics and flags for operators.
package kafkaio
