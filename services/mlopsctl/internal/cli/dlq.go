package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1" // registers the event messages for show
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// Services are the values the dlq-service header takes with the services' default client ids
// (each service's -kafka.client-id defaults to its name; both scoring instances are "scoring").
var knownServices = []string{"ingestion", "features", "scoring", "predlog", "drift", "trainer"}

// HeaderRedriveID names the dead letter a redriven record came from: <dlq topic>/<partition>/<offset>.
// It is also the key of the redrive ledger.
const HeaderRedriveID = "redrive-id"

// letterID locates one dead letter.
type letterID struct {
	topic     string
	partition int
	offset    int64
}

func (id letterID) String() string { return fmt.Sprintf("%s/%d/%d", id.topic, id.partition, id.offset) }

// parseLetterID parses <dlq topic>/<partition>/<offset> (the topic may contain slashes).
func parseLetterID(s string) (letterID, error) {
	i := strings.LastIndexByte(s, '/')
	j := -1
	if i > 0 {
		j = strings.LastIndexByte(s[:i], '/')
	}
	if j <= 0 {
		return letterID{}, fmt.Errorf("dead letter id %q: want <dlq topic>/<partition>/<offset>", s)
	}
	p, err1 := strconv.Atoi(s[j+1 : i])
	o, err2 := strconv.ParseInt(s[i+1:], 10, 64)
	if err1 != nil || err2 != nil || p < 0 || o < 0 {
		return letterID{}, fmt.Errorf("dead letter id %q: partition and offset must be non-negative integers", s)
	}
	return letterID{topic: s[:j], partition: p, offset: o}, nil
}

// letter is one dead letter with its dlq-* headers decoded.
type letter struct {
	id       letterID
	msg      kafka.Message
	reason   string
	service  string
	errText  string
	source   letterID // topic, partition and offset the record was read from
	time     time.Time
	hasTime  bool
	redrived string // the redrive-id header, when the letter is itself a redriven record that failed again
}

func newLetter(m kafka.Message) letter {
	h := func(k string) string { v, _ := kafkaio.HeaderValue(m.Headers, k); return string(v) }
	l := letter{
		id:       letterID{topic: m.Topic, partition: m.Partition, offset: m.Offset},
		msg:      m,
		reason:   h(kafkaio.HeaderDLQReason),
		service:  h(kafkaio.HeaderDLQService),
		errText:  h(kafkaio.HeaderDLQError),
		redrived: h(HeaderRedriveID),
	}
	l.source.topic = h(kafkaio.HeaderDLQSourceTopic)
	l.source.partition, _ = strconv.Atoi(h(kafkaio.HeaderDLQSourcePartition))
	l.source.offset, _ = strconv.ParseInt(h(kafkaio.HeaderDLQSourceOffset), 10, 64)
	if t, err := time.Parse(time.RFC3339Nano, h(kafkaio.HeaderDLQTime)); err == nil {
		l.time, l.hasTime = t, true
	} else if !m.Time.IsZero() {
		l.time, l.hasTime = m.Time, true // the record's own timestamp
	}
	return l
}

// dlqFilter selects dead letters. Empty lists and zero times match everything.
type dlqFilter struct {
	reasons, services, sources []string
	since, until               time.Time
}

// parseFilter builds a filter from the flag values: comma-separated reasons, services and
// source topics; since and until as RFC 3339 times or durations back from now ("2h").
func parseFilter(reasons, services, sources, since, until string, now time.Time) (dlqFilter, error) {
	f := dlqFilter{reasons: splitList(reasons), services: splitList(services), sources: splitList(sources)}
	var errs []error
	for _, s := range f.services {
		if !slices.Contains(knownServices, s) {
			errs = append(errs, fmt.Errorf("unknown service %q: want one of %s", s, strings.Join(knownServices, ", ")))
		}
	}
	var err error
	if f.since, err = parseTimeFlag("since", since, now); err != nil {
		errs = append(errs, err)
	}
	if f.until, err = parseTimeFlag("until", until, now); err != nil {
		errs = append(errs, err)
	}
	if !f.since.IsZero() && !f.until.IsZero() && !f.since.Before(f.until) {
		errs = append(errs, fmt.Errorf("bad time range: -since %s is not before -until %s", f.since.Format(time.RFC3339), f.until.Format(time.RFC3339)))
	}
	return f, errors.Join(errs...)
}

// parseTimeFlag parses an RFC 3339 time, or a positive duration meaning that long before now.
func parseTimeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("bad time range: -%s %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a positive duration before now (90m)", name, v)
	}
	return now.Add(-d), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (f dlqFilter) match(l letter) bool {
	if len(f.reasons) > 0 && !slices.Contains(f.reasons, l.reason) {
		return false
	}
	if len(f.services) > 0 && !slices.Contains(f.services, l.service) {
		return false
	}
	if len(f.sources) > 0 && !slices.Contains(f.sources, l.source.topic) {
		return false
	}
	if !f.since.IsZero() && (!l.hasTime || l.time.Before(f.since)) {
		return false
	}
	if !f.until.IsZero() && (!l.hasTime || !l.time.Before(f.until)) {
		return false
	}
	return true
}

// dlqFlags are the flags every dlq command shares.
type dlqFlags struct {
	// kc holds the shared Kafka flags (brokers, TLS, SASL), registered like the services'.
	kc                         kafkaio.Config
	topics                     string
	reasons, services, sources string
	since, until               string
	timeout                    time.Duration
	filter                     dlqFilter
	topicList                  []string
}

func (f *dlqFlags) register(fs *flag.FlagSet, getenv func(string) string, filters bool) {
	f.kc = kafkaio.Config{ClientID: "mlopsctl", GroupID: "mlopsctl", Brokers: []string{"127.0.0.1:9092"}}
	f.kc.RegisterFlags(fs, getenv)
	flagenv.StringVar(fs, getenv, &f.topics, "dlq.topics", "DLQ_TOPICS", topics.TxDLQ, "dead-letter topics to read, comma-separated (every service's -kafka.dlq-topic)")
	flagenv.DurationVar(fs, getenv, &f.timeout, "timeout", "MLOPSCTL_TIMEOUT", 30*time.Second, "deadline of the command")
	if filters {
		fs.StringVar(&f.reasons, "reason", "", "only these dlq-reason values, comma-separated (decode, validation, spec_mismatch, duplicate, panic, ...)")
		fs.StringVar(&f.services, "service", "", "only letters of these services, comma-separated ("+strings.Join(knownServices, ", ")+")")
		fs.StringVar(&f.sources, "source-topic", "", "only letters read from these topics, comma-separated")
		fs.StringVar(&f.since, "since", "", "only letters dead-lettered at or after this RFC 3339 time or this long ago (2h)")
		fs.StringVar(&f.until, "until", "", "only letters dead-lettered before this RFC 3339 time or this long ago")
	}
}

// parse parses args and the filter; now is the reference of relative times.
func (f *dlqFlags) parse(fs *flag.FlagSet, args []string, now time.Time) error {
	if err := flagenv.Parse(fs, args); err != nil {
		return err
	}
	f.topicList = splitList(f.topics)
	if err := f.kc.Validate(); err != nil {
		return err
	}
	if len(f.topicList) == 0 {
		return errors.New("-dlq.topics: no dead-letter topic")
	}
	var err error
	f.filter, err = parseFilter(f.reasons, f.services, f.sources, f.since, f.until, now)
	return err
}

// readLetters returns the letters of every dead-letter topic that match f, in topic,
// partition and offset order.
func (f *dlqFlags) readLetters(ctx context.Context) ([]letter, error) {
	var out []letter
	for _, t := range f.topicList {
		err := f.kc.ReadTopic(ctx, t, func(m kafka.Message) error {
			if l := newLetter(m); f.filter.match(l) {
				out = append(out, l)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read dead-letter topic %q: %w", t, err)
		}
	}
	return out, nil
}

func dlq(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: mlopsctl dlq list|show|redrive [flags]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "list":
		return dlqList(ctx, args[1:], getenv, stdout, stderr)
	case "show":
		return dlqShow(ctx, args[1:], getenv, stdout, stderr)
	case "redrive":
		return dlqRedrive(ctx, args[1:], getenv, stdout, stderr)
	default:
		return fmt.Errorf("unknown dlq command %q: %s", args[0], usage)
	}
}

func dlqList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f dlqFlags
	f.register(fs, getenv, true)
	asJSON := fs.Bool("json", false, "one JSON object per letter instead of a table")
	if err := f.parse(fs, args, time.Now()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	letters, err := f.readLetters(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, l := range letters {
			if err := enc.Encode(l.summary()); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tSERVICE\tREASON\tSOURCE\tKEY\tERROR")
	for _, l := range letters {
		ts := "-"
		if l.hasTime {
			ts = l.time.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.id, ts, dash(l.service), dash(l.reason), l.source, dash(printable(l.msg.Key, 24)), dash(oneLine(l.errText, 80)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d dead letters\n", len(letters))
	return nil
}

// letterSummary is the JSON form of a letter in list -json.
type letterSummary struct {
	ID          string    `json:"id"`
	Time        time.Time `json:"time,omitzero"`
	Service     string    `json:"service"`
	Reason      string    `json:"reason"`
	SourceTopic string    `json:"source_topic"`
	Source      string    `json:"source"`
	Key         string    `json:"key"`
	Error       string    `json:"error"`
	RedriveID   string    `json:"redrive_id,omitempty"`
}

func (l letter) summary() letterSummary {
	return letterSummary{ID: l.id.String(), Time: l.time, Service: l.service, Reason: l.reason, SourceTopic: l.source.topic,
		Source: l.source.String(), Key: printable(l.msg.Key, 256), Error: l.errText, RedriveID: l.redrived}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine flattens s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		s = string(r[:n-1]) + "…"
	}
	return s
}

// printable returns b as text when it is valid UTF-8 without control characters, otherwise
// as hex; at most n bytes of it.
func printable(b []byte, n int) string {
	if utf8.Valid(b) && !bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return oneLine(string(b), n)
	}
	if len(b) > n/2 {
		return "0x" + hex.EncodeToString(b[:n/2]) + "…"
	}
	return "0x" + hex.EncodeToString(b)
}

func dlqShow(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f dlqFlags
	f.register(fs, getenv, false)
	if err := f.parse(fs, args, time.Now()); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: mlopsctl dlq show [flags] <dlq topic>/<partition>/<offset> (an ID from mlopsctl dlq list)")
	}
	id, err := parseLetterID(fs.Arg(0))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	l, err := readLetter(ctx, f.kc, id)
	if err != nil {
		return err
	}
	return printLetter(stdout, l)
}

// readLetter reads the one dead letter at id.
func readLetter(ctx context.Context, kc kafkaio.Config, id letterID) (letter, error) {
	ranges, err := kc.Offsets(ctx, id.topic)
	if err != nil {
		return letter{}, fmt.Errorf("dead letter %s: %w", id, err)
	}
	r, ok := ranges[id.partition]
	if !ok {
		return letter{}, fmt.Errorf("dead letter %s: topic %q has no partition %d", id, id.topic, id.partition)
	}
	if id.offset < r.First || id.offset >= r.End {
		return letter{}, fmt.Errorf("dead letter %s: no such offset (partition %d holds offsets %d to %d)", id, id.partition, r.First, r.End-1)
	}
	var found *kafka.Message
	err = kc.ReadRange(ctx, id.topic, id.partition, id.offset, id.offset+1, func(m kafka.Message) error {
		if m.Offset == id.offset {
			found = &m
		}
		return nil
	})
	if err != nil {
		return letter{}, fmt.Errorf("dead letter %s: %w", id, err)
	}
	if found == nil {
		return letter{}, fmt.Errorf("dead letter %s: no such record (deleted by compaction?)", id)
	}
	return newLetter(*found), nil
}

// printLetter writes l's headers and its payload: indented JSON, or the protobuf message of
// its source topic's contract in protojson, or a hex dump.
func printLetter(w io.Writer, l letter) error {
	var b strings.Builder
	fmt.Fprintf(&b, "id:        %s\n", l.id)
	fmt.Fprintf(&b, "key:       %s\n", dash(printable(l.msg.Key, 256)))
	fmt.Fprintf(&b, "timestamp: %s\n", l.msg.Time.UTC().Format(time.RFC3339Nano))
	b.WriteString("headers:\n")
	for _, h := range l.msg.Headers {
		fmt.Fprintf(&b, "  %s: %s\n", h.Key, printable(h.Value, 2048))
	}
	kind, body := decodePayload(l)
	fmt.Fprintf(&b, "payload (%d bytes, %s):\n%s\n", len(l.msg.Value), kind, body)
	_, err := io.WriteString(w, b.String())
	return err
}

// decodePayload renders the value of l for a person and says how it was read.
func decodePayload(l letter) (kind, body string) {
	v := l.msg.Value
	ct, _ := kafkaio.HeaderValue(l.msg.Headers, kafkaio.HeaderContentType)
	if string(ct) == kafkaio.ContentTypeJSON || (len(ct) == 0 && json.Valid(v) && len(bytes.TrimSpace(v)) > 0 && bytes.TrimSpace(v)[0] == '{') {
		var out bytes.Buffer
		if json.Indent(&out, v, "", "  ") == nil {
			return "json", out.String()
		}
	}
	if mt := valueType(l.source.topic); mt != nil && (len(ct) == 0 || string(ct) == kafkaio.ContentTypeProtobuf) {
		msg := mt.New().Interface()
		if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(v, msg); err == nil {
			if out, err := (protojson.MarshalOptions{Multiline: true, Indent: "  "}).Marshal(msg); err == nil {
				return "protobuf " + string(mt.Descriptor().FullName()), string(out)
			}
		}
	}
	if utf8.Valid(v) {
		return "text, not decodable as " + describeType(l.source.topic), string(v)
	}
	return "binary, not decodable as " + describeType(l.source.topic), hex.Dump(v)
}

// valueType returns the message type of topic's values by the event contracts, matching the
// topic by its default name or by a "-<default name>" suffix (prefixed test topics).
func valueType(topic string) protoreflect.MessageType {
	for _, s := range topics.Specs() {
		if s.ValueType == "" || (topic != s.Name && !strings.HasSuffix(topic, "-"+s.Name)) {
			continue
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(s.ValueType))
		if err == nil {
			return mt
		}
	}
	return nil
}

func describeType(topic string) string {
	if mt := valueType(topic); mt != nil {
		return string(mt.Descriptor().FullName())
	}
	return "JSON (source topic " + strconv.Quote(topic) + " has no contract)"
}
