package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// redriveChunk is how many letters one redrive step writes before it records them in the
// ledger: a crash can redrive at most this many letters a second time.
const redriveChunk = 100

// ledgerEntry is the value of a redrive ledger record (its key is the letter's id).
type ledgerEntry struct {
	Target string    `json:"target"`
	Time   time.Time `json:"time"`
}

// dlqRedrive republishes the selected dead letters to the topics they were read from
// (dlq-source-topic), with their original key, value and headers (without the dlq-* ones)
// plus a redrive-id header naming the letter. Redriving is idempotent: every redriven letter
// is recorded in the dead-letter topic's redrive ledger (kafkaio.RedriveLedger, a compacted
// topic keyed by letter id), and letters already in the ledger are skipped. The ledger is
// written after the redriven records are acknowledged, redriveChunk letters at a time; a
// crash between the two writes can redrive those letters once more, which the consumers'
// own deduplication by event id absorbs (docs/kafka.md).
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
	done := map[string]bool{}
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
			if m.Value != nil { // a tombstone would undo the entry
				done[string(m.Key)] = true
			}
			return nil
		})
		if err != nil && !(*dryRun && errors.Is(err, kafka.UnknownTopicOrPartition)) {
			return fmt.Errorf("read redrive ledger %q: %w", ledger, err)
		}
	}

	var todo []letter
	skipped, unroutable := 0, 0
	for _, l := range letters {
		switch {
		case done[l.id.String()]:
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

	p, err := kafkaio.NewProducer(kc, nil, nil)
	if err != nil {
		return err
	}
	redriven := 0
	for start := 0; start < len(todo); start += redriveChunk {
		chunk := todo[start:min(start+redriveChunk, len(todo))]
		out := make([]kafka.Message, 0, len(chunk))
		marks := make([]kafka.Message, 0, len(chunk))
		now := time.Now().UTC()
		for _, l := range chunk {
			out = append(out, redriveRecord(l))
			v, _ := json.Marshal(ledgerEntry{Target: l.source.topic, Time: now})
			marks = append(marks, kafka.Message{Topic: kafkaio.RedriveLedger(l.id.topic), Key: []byte(l.id.String()), Value: v})
		}
		if err := p.WriteMessages(ctx, out...); err != nil {
			return errors.Join(fmt.Errorf("redrive (%d done before): %w", redriven, err), p.Close())
		}
		if err := p.WriteMessages(ctx, marks...); err != nil {
			return errors.Join(fmt.Errorf("record %d redriven letters in the ledger (run again to finish; they may be redriven twice): %w", len(chunk), err), p.Close())
		}
		redriven += len(chunk)
	}
	if err := p.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "redriven %d, %d already redriven, %d without a source topic\n", redriven, skipped, unroutable)
	return nil
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
