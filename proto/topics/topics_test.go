package topics_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1" // registers the event messages
	"github.com/streaming-mlops/mlops/proto/topics"
)

// TestSpecsMatchGeneratedMessages checks every topic's contract against the
// generated descriptors: the value type exists, carries the event envelope
// (event_id, event_time) and has the field the key is taken from.
func TestSpecsMatchGeneratedMessages(t *testing.T) {
	t.Parallel()
	for _, spec := range topics.Specs() {
		t.Run(spec.Name, func(t *testing.T) {
			t.Parallel()
			if spec.ValueType == "" {
				if spec.Name != topics.TxDLQ {
					t.Fatalf("only %s may have an opaque value, %s has no ValueType", topics.TxDLQ, spec.Name)
				}
				return
			}
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(spec.ValueType))
			if err != nil {
				t.Fatalf("value type %q: %v", spec.ValueType, err)
			}
			md, ok := d.(protoreflect.MessageDescriptor)
			if !ok {
				t.Fatalf("value type %q is a %T, want a message", spec.ValueType, d)
			}
			checkField(t, md, "event_id", protoreflect.StringKind, "")
			checkField(t, md, "event_time", protoreflect.MessageKind, "google.protobuf.Timestamp")
			checkField(t, md, protoreflect.Name(spec.KeyField), protoreflect.StringKind, "")
			if len(spec.ContentTypes) == 0 || spec.ContentTypes[0] != topics.ContentTypeProtobuf {
				t.Errorf("ContentTypes = %q, want %q first", spec.ContentTypes, topics.ContentTypeProtobuf)
			}
		})
	}
}

func checkField(t *testing.T, md protoreflect.MessageDescriptor, name protoreflect.Name, kind protoreflect.Kind, msg protoreflect.FullName) {
	t.Helper()
	fd := md.Fields().ByName(name)
	switch {
	case fd == nil:
		t.Errorf("%s has no field %q", md.FullName(), name)
	case fd.Kind() != kind || fd.Cardinality() == protoreflect.Repeated:
		t.Errorf("%s.%s is %v %v, want singular %v", md.FullName(), name, fd.Cardinality(), fd.Kind(), kind)
	case msg != "" && fd.Message().FullName() != msg:
		t.Errorf("%s.%s is a %s, want %s", md.FullName(), name, fd.Message().FullName(), msg)
	}
}

// TestEveryEventTopicListed checks that each message of mlops.events.v1 that
// has the event envelope is the value of some topic or is DeadLetter (which
// travels as headers, not as a value), so no event type is left without a home.
func TestEveryEventTopicListed(t *testing.T) {
	t.Parallel()
	valueTypes := map[protoreflect.FullName]bool{"mlops.events.v1.DeadLetter": true}
	for _, spec := range topics.Specs() {
		valueTypes[protoreflect.FullName(spec.ValueType)] = true
	}
	var events int
	protoregistry.GlobalFiles.RangeFilesByPackage("mlops.events.v1", func(fd protoreflect.FileDescriptor) bool {
		msgs := fd.Messages()
		for i := range msgs.Len() {
			md := msgs.Get(i)
			if md.Fields().ByName("event_id") == nil || md.Fields().ByName("event_time") == nil {
				continue
			}
			events++
			if !valueTypes[md.FullName()] {
				t.Errorf("%s has the event envelope but no topic carries it", md.FullName())
			}
		}
		return true
	})
	if events < 7 {
		t.Errorf("found %d event messages in mlops.events.v1, want at least 7 (is the package registered?)", events)
	}
}

func TestSpecNamesUnique(t *testing.T) {
	t.Parallel()
	var names []string
	for _, spec := range topics.Specs() {
		if slices.Contains(names, spec.Name) {
			t.Errorf("topic %q listed twice", spec.Name)
		}
		names = append(names, spec.Name)
	}
	want := []string{topics.TxRaw, topics.TxValidated, topics.TxDLQ, topics.Features,
		topics.Predictions, topics.Labels, topics.DriftEvents, topics.ModelEvents}
	if !slices.Equal(names, want) {
		t.Errorf("Specs() names = %q, want %q", names, want)
	}
}

func TestSpecsReturnsFreshSlices(t *testing.T) {
	t.Parallel()
	a := topics.Specs()
	a[0].Name = "changed"
	a[0].ContentTypes[0] = "changed"
	a[3].ContentTypes[0] = "changed"
	if a[4].ContentTypes[0] != topics.ContentTypeProtobuf {
		t.Errorf("Specs() entries share ContentTypes: %+v", a)
	}
	b := topics.Specs()
	if b[0].Name != topics.TxRaw || b[0].ContentTypes[0] != topics.ContentTypeProtobuf ||
		b[3].ContentTypes[0] != topics.ContentTypeProtobuf {
		t.Errorf("Specs() shares state between calls: %+v", b)
	}
}
