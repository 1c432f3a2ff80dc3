package trainer

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// AuditLog is the registry's audit history: the model.events topic itself. Every alias
// change (and every registration and rejection) is published there, keyed by model name,
// with acks=all; the topic keeps records forever (retention.ms=-1, cleanup.policy=delete,
// never compacted, since compaction by model name would keep only the latest change).
// History and AsOf read the topic back from its first offset up to the high watermark taken
// at the start of the call: a bounded read, no consumer group, nothing committed.
// See docs/trainer.md for why the topic and not a separate store.
//
// An AuditLog is safe for concurrent use.
type AuditLog struct {
	kafka       kafkaio.Config // brokers, TLS and SASL
	topic       string
	producer    *kafkaio.Producer
	readTimeout time.Duration
}

// NewAuditLog returns the audit log on topic of the brokers of kc, reached with kc's TLS and
// SASL settings. It does no I/O; p is used to publish and is not closed by the AuditLog.
func NewAuditLog(kc kafkaio.Config, topic string, p *kafkaio.Producer, readTimeout time.Duration) *AuditLog {
	return &AuditLog{kafka: kc, topic: topic, producer: p, readTimeout: readTimeout}
}

// Ensure creates the topic when missing (one partition: a total order of the registry's
// changes) and sets its retention to forever when it exists already (e.g. auto-created
// with the broker's default retention).
func (a *AuditLog) Ensure(ctx context.Context) error {
	if err := a.kafka.EnsureRoles(ctx, map[string]kafkaio.TopicRole{a.topic: kafkaio.RoleAuditLog}); err != nil {
		return fmt.Errorf("ensure audit topic: %w", err)
	}
	transport, err := a.kafka.Transport()
	if err != nil {
		return err
	}
	transport.ClientID = "trainer-admin"
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(a.kafka.Brokers...), Timeout: 30 * time.Second, Transport: transport}
	res := kafka.IncrementalAlterConfigsRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: a.topic}
	configs := kafkaio.AuditLogConfigs()
	for _, k := range []string{"cleanup.policy", "retention.bytes", "retention.ms"} {
		res.Configs = append(res.Configs, kafka.IncrementalAlterConfigsRequestConfig{Name: k, Value: configs[k], ConfigOperation: kafka.ConfigOperationSet})
	}
	resp, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{res}})
	if err != nil {
		return fmt.Errorf("set retention of audit topic %q: %w", a.topic, err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("set retention of audit topic %q: %w", a.topic, r.Error)
		}
	}
	return nil
}

// Publish writes ev (keyed by its model name) and returns once all in-sync replicas have it.
func (a *AuditLog) Publish(ctx context.Context, ev *eventsv1.ModelEvent) error {
	b, err := proto.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode model event: %w", err)
	}
	rec := kafkaio.NewRecord(a.topic, []byte(ev.GetModelName()), b, kafkaio.ContentTypeProtobuf, nil)
	if err := a.producer.WriteMessages(ctx, rec); err != nil {
		return fmt.Errorf("publish model event %s: %w", ev.GetEventId(), err)
	}
	return nil
}

// Events returns the events of model (every model when model is empty) in the order they
// were published, oldest first. Records that do not decode are skipped.
func (a *AuditLog) Events(ctx context.Context, model string) ([]*eventsv1.ModelEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, a.readTimeout)
	defer cancel()
	ranges, err := a.kafka.Offsets(ctx, a.topic)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	var out []*eventsv1.ModelEvent
	for p, r := range ranges {
		err := a.kafka.ReadRange(ctx, a.topic, p, r.First, r.End, func(m kafka.Message) error {
			if model == "" || string(m.Key) == model {
				ev := &eventsv1.ModelEvent{}
				if proto.Unmarshal(m.Value, ev) == nil && ev.GetModelName() != "" {
					out = append(out, ev)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
	}
	// One partition per key keeps each model's events in publish order; across models (and
	// partitions) order by event time.
	slices.SortStableFunc(out, func(x, y *eventsv1.ModelEvent) int {
		return x.GetEventTime().AsTime().Compare(y.GetEventTime().AsTime())
	})
	return out, nil
}

// movesAlias reports whether ev changes which version holds an alias.
func movesAlias(ev *eventsv1.ModelEvent) bool {
	switch ev.GetType() {
	case eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED, eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK,
		eventsv1.ModelEventType_MODEL_EVENT_TYPE_ALIAS_REMOVED:
		return true
	}
	return false
}

// AsOfResult answers which version held an alias at a time.
type AsOfResult struct {
	Found   bool
	Version string
	// Since moved the alias to Version; Until moved it away (nil while it still holds).
	Since, Until *eventsv1.ModelEvent
}

// AsOf finds, in events (any order), the version alias of model pointed at at time t: the
// to_version of the latest alias change at or before t. An alias removed, or never set, by
// then is not found.
func AsOf(events []*eventsv1.ModelEvent, model, alias string, t time.Time) AsOfResult {
	var moves []*eventsv1.ModelEvent
	for _, ev := range events {
		if ev.GetModelName() == model && ev.GetAlias() == alias && movesAlias(ev) {
			moves = append(moves, ev)
		}
	}
	slices.SortStableFunc(moves, func(x, y *eventsv1.ModelEvent) int {
		return cmp.Compare(x.GetEventTime().AsTime().UnixNano(), y.GetEventTime().AsTime().UnixNano())
	})
	var res AsOfResult
	for i, ev := range moves {
		if ev.GetEventTime().AsTime().After(t) {
			break
		}
		res = AsOfResult{Found: ev.GetToVersion() != "", Version: ev.GetToVersion(), Since: ev}
		if i+1 < len(moves) {
			res.Until = moves[i+1]
		}
	}
	if !res.Found {
		res.Version = ""
	}
	return res
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
