package kafkaio

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Tail reads topic from its current end on every partition, without a consumer group (so
// every replica of a service sees every record and nothing is committed), and calls handle
// with each record until ctx is done. It is meant for low-volume control topics such as
// model.events. ready, if not nil, is called once every partition is positioned at its end:
// records published after that are seen. handle is called from one goroutine per
// partition. Read errors are logged and retried; Tail returns when ctx is done.
func Tail(ctx context.Context, cfg Config, topic string, logger *slog.Logger, ready func(), handle func(kafka.Message)) {
	var offsets map[int]int64
	backoff := 100 * time.Millisecond
	for warned := false; ; {
		var err error
		if offsets, err = cfg.EndOffsets(ctx, topic); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if !warned {
			logger.Warn("topic not tailed yet; retrying", "topic", topic, "err", err)
			warned = true
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for p, off := range offsets {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: cfg.Brokers, Topic: topic, Partition: p, MaxWait: 500 * time.Millisecond,
			Dialer:         cfg.mustDialer(),
			ReadBackoffMin: 100 * time.Millisecond, ReadBackoffMax: time.Second,
		})
		if err := r.SetOffset(off); err != nil {
			logger.Warn("partition not tailed", "topic", topic, "partition", p, "err", err)
			_ = r.Close()
			continue
		}
		wg.Go(func() {
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					logger.Warn("tail read failed; retrying", "topic", topic, "partition", p, "err", err)
					if !sleepCtx(ctx, time.Second) {
						return
					}
					continue
				}
				handle(m)
			}
		})
	}
	if ready != nil {
		ready()
	}
}
