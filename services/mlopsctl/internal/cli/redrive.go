package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// redriveChunk is how many letters one redrive step writes between its ledger records.
const redriveChunk = 100

// Ledger states.
const (
	// ledgerPending: the letter is about to be written to Target; Ends are Target's high
	// watermarks just before, so a later run can look for it there.
	ledgerPending = "pending"
	// ledgerDone: the letter was written to Target and acknowledged.
	ledgerDone = "done"
)

// ledgerEntry is the value of a redrive ledger record; its key is the letter's id and the
// latest record of a key is its state.
type ledgerEntry struct {
	State  string        `json:"state"`
	Target string        `json:"target"`
	Ends   map[int]int64 `json:"ends,omitempty"`
	Time   time.Time     `json:"time"`
}

// dlqRedrive republishes the selected dead letters to the topics they were read from
// (dlq-source-topic), with their original key, value and headers (without the dlq-* ones)
// plus a redrive-id header naming the letter, exactly once per letter however often it runs.
// The dead-letter topic's redrive ledger (kafkaio.RedriveLedger: compacted, keyed by letter
// id) records each letter as pending, with the target topic's end offsets, before it is
// written, and as done after the write was acknowledged. Done letters are skipped. A pending
// letter (a run that crashed between the two) is looked for in its target topic after the
// recorded offsets by its redrive-id header: found, it is marked done; not found, it is
// written. Two redrives of the same dead-letter topic must not run at the same time.
func dlqRedrive(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f dlqFlags
	f.register(fs, getenv, true)
	dryRun := fs.Bool("dry-run", false, "list what would be redriven, write nothing")
	all := fs.Bool("all", false, "redrive every letter when no filter and no id is given")
	limit := fs.Int("limit", 0, "redrive at most this many letters (0: no limit)")
	if err := f.parse(fs, args, time.Now()); err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("-limit %d: must not be negative", *limit)
	}
	var ids []letterID
	for _, a := range fs.Args() {
		id, err := parseLetterID(a)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	noFilter := f.reasons == "" && f.services == "" && f.sources == "" && f.since == "" && f.until == ""
	if noFilter && len(ids) == 0 && !*all {
		return errors.New("dlq redrive: select letters with -reason, -service, -source-topic, -since, -until or ids, or pass -all")
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	var letters []letter
	if len(ids) > 0 {
		for _, id := range ids {
			l, err := readLetter(ctx, f.kc, id)
			if err != nil {
				return err
			}
			if f.filter.match(l) {
				letters = append(letters, l)
			}
		}
	} else {
		var err error
		if letters, err = f.readLetters(ctx); err != nil {
			return err
		}
	}

	kc := f.kc
	kc.BatchTimeout = time.Millisecond
	state := map[string]ledgerEntry{}
	ledgers := map[string]bool{}
	for _, l := range letters {
		ledgers[kafkaio.RedriveLedger(l.id.topic)] = true
	}
	for ledger := range ledgers {
		if !*dryRun {
			if err := kc.EnsureRoles(ctx, map[string]kafkaio.TopicRole{ledger: kafkaio.RoleRedriveLedger}); err != nil {
				return fmt.Errorf("ensure redrive ledger: %w", err)
			}
		}
		err := kc.ReadTopic(ctx, ledger, func(m kafka.Message) error {
			var e ledgerEntry
			if m.Value == nil || json.Unmarshal(m.Value, &e) != nil {
				delete(state, string(m.Key)) // a tombstone (or garbage) undoes the entry
				return nil
			}
			state[string(m.Key)] = e
			return nil
		})
		if err != nil && !(*dryRun && errors.Is(err, kafka.UnknownTopicOrPartition)) {
			return fmt.Errorf("read redrive ledger %q: %w", ledger, err)
		}
	}

	p, err := kafkaio.NewProducer(kc, nil, nil)
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }() // closed below on success; Close is idempotent

	// Letters left pending by an interrupted run: written or not?
	found, err := findPending(ctx, kc, letters, state)
	if err != nil {
		return err
	}
	if !*dryRun && len(found) > 0 {
		marks := make([]kafka.Message, 0, len(found))
		for _, l := range found {
			e := state[l.id.String()]
			e.State, e.Ends, e.Time = ledgerDone, nil, time.Now().UTC()
			state[l.id.String()] = e
			marks = append(marks, ledgerRecord(l, e))
		}
		if err := p.WriteMessages(ctx, marks...); err != nil {
			return fmt.Errorf("mark %d interrupted redrives done: %w", len(marks), err)
		}
	}

	var todo []letter
	skipped, unroutable := 0, 0
	for _, l := range letters {
		switch {
		case state[l.id.String()].State == ledgerDone || slices.ContainsFunc(found, func(f letter) bool { return f.id == l.id }):
			skipped++
		case l.source.topic == "":
			unroutable++
			fmt.Fprintf(stderr, "skip %s: no %s header\n", l.id, kafkaio.HeaderDLQSourceTopic)
		default:
			todo = append(todo, l)
		}
	}
	if *limit > 0 && len(todo) > *limit {
		todo = todo[:*limit]
	}
	if *dryRun {
		for _, l := range todo {
			fmt.Fprintf(stdout, "would redrive %s -> %s\n", l.id, l.source.topic)
		}
		fmt.Fprintf(stdout, "would redrive %d, %d already redriven, %d without a source topic\n", len(todo), skipped, unroutable)
		return nil
	}

	redriven := 0
	for start := 0; start < len(todo); start += redriveChunk {
		chunk := todo[start:min(start+redriveChunk, len(todo))]
		if err := redriveOnce(ctx, kc, p, chunk); err != nil {
			return fmt.Errorf("redrive (%d done before; run again to finish): %w", redriven, err)
		}
		redriven += len(chunk)
	}
	if err := p.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "redriven %d, %d already redriven, %d without a source topic\n", redriven, skipped, unroutable)
	return nil
}

// redriveOnce writes chunk to the source topics between a pending and a done ledger record
// per letter.
func redriveOnce(ctx context.Context, kc kafkaio.Config, p *kafkaio.Producer, chunk []letter) error {
	ends := map[string]map[int]int64{}
	for _, l := range chunk {
		if _, ok := ends[l.source.topic]; ok {
			continue
		}
		e, err := kc.EndOffsets(ctx, l.source.topic)
		if err != nil {
			return fmt.Errorf("end offsets of %q: %w", l.source.topic, err)
		}
		ends[l.source.topic] = e
	}
	now := time.Now().UTC()
	pending := make([]kafka.Message, 0, len(chunk))
	out := make([]kafka.Message, 0, len(chunk))
	done := make([]kafka.Message, 0, len(chunk))
	for _, l := range chunk {
		pending = append(pending, ledgerRecord(l, ledgerEntry{State: ledgerPending, Target: l.source.topic, Ends: ends[l.source.topic], Time: now}))
		out = append(out, redriveRecord(l))
		done = append(done, ledgerRecord(l, ledgerEntry{State: ledgerDone, Target: l.source.topic, Time: now}))
	}
	if err := p.WriteMessages(ctx, pending...); err != nil {
		return fmt.Errorf("record %d letters as pending: %w", len(chunk), err)
	}
	if err := p.WriteMessages(ctx, out...); err != nil {
		return fmt.Errorf("write %d letters: %w", len(chunk), err)
	}
	if err := p.WriteMessages(ctx, done...); err != nil {
		return fmt.Errorf("record %d letters as done: %w", len(chunk), err)
	}
	return nil
}

// ledgerRecord is l's ledger record with value e.
func ledgerRecord(l letter, e ledgerEntry) kafka.Message {
	v, _ := json.Marshal(e) // strings, ints and a time: cannot fail
	return kafka.Message{Topic: kafkaio.RedriveLedger(l.id.topic), Key: []byte(l.id.String()), Value: v}
}

// findPending returns the letters whose ledger state is pending and whose redriven record is
// in the target topic after the offsets the pending entry recorded (looked up by its
// redrive-id header on every partition: a letter without a key may be on any).
func findPending(ctx context.Context, kc kafkaio.Config, letters []letter, state map[string]ledgerEntry) ([]letter, error) {
	byTarget := map[string][]letter{}
	for _, l := range letters {
		if e, ok := state[l.id.String()]; ok && e.State == ledgerPending {
			byTarget[e.Target] = append(byTarget[e.Target], l)
		}
	}
	var found []letter
	for target, ls := range byTarget {
		from := map[int]int64{}
		for _, l := range ls {
			for part, off := range state[l.id.String()].Ends {
				if cur, ok := from[part]; !ok || off < cur {
					from[part] = off
				}
			}
		}
		ranges, err := kc.Offsets(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("look for interrupted redrives in %q: %w", target, err)
		}
		seen := map[string]bool{}
		for part, r := range ranges {
			start, ok := from[part]
			if !ok {
				start = r.First // a partition added since: read it all
			}
			err := kc.ReadRange(ctx, target, part, start, r.End, func(m kafka.Message) error {
				if id, ok := kafkaio.HeaderValue(m.Headers, HeaderRedriveID); ok {
					seen[string(id)] = true
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("look for interrupted redrives in %q: %w", target, err)
			}
		}
		for _, l := range ls {
			if seen[l.id.String()] {
				found = append(found, l)
			}
		}
	}
	return found, nil
}

// redriveRecord is the record that puts l back on its source topic: the original key, value
// and headers (the dlq-* headers and an earlier redrive-id dropped) plus redrive-id.
func redriveRecord(l letter) kafka.Message {
	headers := make([]kafka.Header, 0, len(l.msg.Headers)+1)
	for _, h := range l.msg.Headers {
		if strings.HasPrefix(h.Key, "dlq-") || h.Key == HeaderRedriveID {
			continue
		}
		headers = append(headers, h)
	}
	headers = append(headers, kafka.Header{Key: HeaderRedriveID, Value: []byte(l.id.String())})
	return kafka.Message{Topic: l.source.topic, Key: l.msg.Key, Value: l.msg.Value, Headers: headers}
}
