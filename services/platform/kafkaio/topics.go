package kafkaio

import (
	"context"
	"fmt"
	"time"

	"github.com/streaming-mlops/mlops/proto/topics"
)

// TopicRole says how a topic is sized and kept. Every topic the platform creates gets its
// settings from its role through Config.TopicSpec, the one place that decides them.
type TopicRole int

const (
	// RoleStream is a keyed data topic read by a consumer group (tx.raw, tx.validated,
	// features.v1, predictions.v1, labels.v1, drift.partials): Config.Partitions partitions,
	// so a group can run that many replicas, and the broker's retention.
	RoleStream TopicRole = iota
	// RoleDeadLetter is a dead-letter topic (tx.dlq): Config.Partitions partitions (the
	// records keep their original key) and a retention of DeadLetterRetention, long enough
	// for an operator to inspect and redrive them (mlopsctl dlq).
	RoleDeadLetter
	// RoleControl is a low-volume topic of control events (drift.events): one partition,
	// so its events keep one order; the broker's retention.
	RoleControl
	// RoleAuditLog is the model registry's history (model.events): one partition (a total
	// order of the registry's changes), kept forever and never compacted.
	RoleAuditLog
	// RoleRedriveLedger records which dead letters were redriven (mlopsctl dlq redrive),
	// keyed by the letter's id: one partition, compacted (one record per letter is enough).
	RoleRedriveLedger
)

// DeadLetterRetention is how long a dead-letter topic keeps its records.
const DeadLetterRetention = 14 * 24 * time.Hour

// String names the role as docs/kafka.md does.
func (r TopicRole) String() string {
	switch r {
	case RoleStream:
		return "stream"
	case RoleDeadLetter:
		return "dead-letter"
	case RoleControl:
		return "control"
	case RoleAuditLog:
		return "audit-log"
	case RoleRedriveLedger:
		return "redrive-ledger"
	default:
		return fmt.Sprintf("TopicRole(%d)", int(r))
	}
}

// AuditLogConfigs are the topic configs of a RoleAuditLog topic: records kept forever, never
// compacted (compaction by model name would keep only the latest change). It returns a new
// map on each call.
func AuditLogConfigs() map[string]string {
	return map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
}

// TopicSpec returns the settings of a topic named name with role r: partitions and
// replication factor from c (-kafka.partitions, -kafka.replication), configs from the role.
func (c Config) TopicSpec(name string, r TopicRole) TopicSpec {
	d := c.withDefaults()
	s := TopicSpec{Name: name, Partitions: d.Partitions, ReplicationFactor: d.ReplicationFactor}
	switch r {
	case RoleDeadLetter:
		s.Configs = map[string]string{"retention.ms": fmt.Sprint(DeadLetterRetention.Milliseconds()), "cleanup.policy": "delete"}
	case RoleControl:
		s.Partitions = 1
	case RoleAuditLog:
		s.Partitions = 1
		s.Configs = AuditLogConfigs()
	case RoleRedriveLedger:
		s.Partitions = 1
		s.Configs = map[string]string{"cleanup.policy": "compact"}
	}
	return s
}

// CatalogueEntry is one topic of the platform with its default name and role.
type CatalogueEntry struct {
	Name string
	Role TopicRole
	// Services lists who creates (and so needs) the topic at startup.
	Services []string
}

// Catalogue lists every topic of the platform under its default name, in pipeline order.
// It returns a new slice on each call.
func Catalogue() []CatalogueEntry {
	return []CatalogueEntry{
		{Name: topics.TxRaw, Role: RoleStream, Services: []string{"ingestion"}},
		{Name: topics.TxValidated, Role: RoleStream, Services: []string{"ingestion", "features"}},
		{Name: topics.TxDLQ, Role: RoleDeadLetter, Services: []string{"ingestion", "features", "scoring", "predlog", "drift", "trainer"}},
		{Name: RedriveLedger(topics.TxDLQ), Role: RoleRedriveLedger, Services: []string{"mlopsctl"}},
		{Name: topics.Features, Role: RoleStream, Services: []string{"features", "scoring"}},
		{Name: topics.Predictions, Role: RoleStream, Services: []string{"scoring", "predlog", "drift"}},
		{Name: topics.Labels, Role: RoleStream, Services: []string{"predlog", "drift"}},
		{Name: DriftPartialsTopic, Role: RoleStream, Services: []string{"drift"}},
		{Name: topics.DriftEvents, Role: RoleControl, Services: []string{"drift", "trainer"}},
		{Name: topics.ModelEvents, Role: RoleAuditLog, Services: []string{"trainer", "scoring", "drift"}},
	}
}

// RedriveLedger names the redrive ledger of dead-letter topic dlq.
func RedriveLedger(dlq string) string { return dlq + ".redriven" }

// DriftPartialsTopic is the default topic of the drift service's partial window states (its
// -topic.partials).
const DriftPartialsTopic = "drift.partials"

// CatalogueSpecs returns the TopicSpec of every catalogue topic under its default name,
// sized by c.
func (c Config) CatalogueSpecs() []TopicSpec {
	cat := Catalogue()
	out := make([]TopicSpec, 0, len(cat))
	for _, e := range cat {
		out = append(out, c.TopicSpec(e.Name, e.Role))
	}
	return out
}

// RoleOf returns the role of a topic by its default name, and false for a name the catalogue
// does not know (a renamed or test topic: callers say its role themselves).
func RoleOf(name string) (TopicRole, bool) {
	for _, e := range Catalogue() {
		if e.Name == name {
			return e.Role, true
		}
	}
	return 0, false
}

// EnsureRoles creates the topics of byName (name -> role) that are missing, sized by c
// (see TopicSpec), and waits for their leaders. It is how a service ensures its own topics
// at startup; see EnsureTopics for what happens to existing topics.
func (c Config) EnsureRoles(ctx context.Context, byName map[string]TopicRole) error {
	specs := make([]TopicSpec, 0, len(byName))
	for name, r := range byName {
		specs = append(specs, c.TopicSpec(name, r))
	}
	return c.EnsureTopics(ctx, specs)
}
