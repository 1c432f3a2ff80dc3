package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
)

// closedLoop is what the two closed-loop scenarios (fraud and purchase) share: the model,
// its services and how the test publishes the changed traffic.
type closedLoop struct {
	model, v1, brokers, driftTopic string
	window, maxDrift               int
	tc                             trainerv1.TrainerServiceClient
	dc                             driftv1.DriftServiceClient
	trainer, drift, scoring        *proc
	// publish sends n more changed events (and their due labels); sent counts every event
	// published so far and scored the prediction documents of the model.
	publish func(n int)
	sent    func() int
	scored  func() int
}

func (c *closedLoop) windows(ctx context.Context) int {
	ws, err := c.dc.ListWindows(ctx, &driftv1.ListWindowsRequest{ModelName: c.model, Limit: 200})
	if err != nil {
		return 0
	}
	return len(ws.GetWindows())
}

// clean waits until the clean traffic (everything sent so far) is scored and at least
// windows windows are judged, and fails on any drift event.
func (c *closedLoop) clean(t *testing.T, ctx context.Context, windows int, timeout time.Duration) {
	t.Helper()
	want := c.sent()
	waitFor(t, ctx, timeout, fmt.Sprintf("the clean traffic scored and %d windows judged", windows), func() (bool, string) {
		n, w := c.scored(), c.windows(ctx)
		return n >= want && w >= windows, fmt.Sprintf("scored %d/%d, windows %d\n%s", n, want, w, c.drift.tail())
	})
	if events := readDriftEvents(t, c.brokers, c.driftTopic); len(events) > 0 {
		t.Fatalf("%d drift events on clean traffic, first: %s", len(events), events[0].GetMessage())
	}
}

// untilPromoted publishes the changed traffic window by window until the trainer promoted a
// version other than v1, and returns it. The trainer waits for the labels of the changed
// traffic: after maxDrift events the test stops sending and gives it 5 minutes; while a
// challenger is in its shadow period it keeps sending (the shadow needs live traffic). It
// checks that the first drift event recommending a retrain came within 2 windows of the
// change (+1 in flight), that exactly one did, and that the promotion names the shadow
// period's verdict.
func (c *closedLoop) untilPromoted(t *testing.T, ctx context.Context) string {
	t.Helper()
	closedBefore := c.windows(ctx)
	var firstEventWindow int
	var v2 string
	waitUntil := time.Time{}
	for published := 0; v2 == ""; {
		if published >= c.maxDrift && waitUntil.IsZero() {
			waitUntil = time.Now().Add(5 * time.Minute)
		}
		if !waitUntil.IsZero() && time.Now().After(waitUntil) {
			t.Fatalf("no new champion 5 minutes after %d changed events; model history:\n%s\n%s\n%s", published,
				modelHistory(ctx, c.tc, c.model), c.trainer.tail(), c.drift.tail())
		}
		if shadowing := inShadow(ctx, c.tc, c.model); waitUntil.IsZero() || shadowing {
			n := c.window
			if shadowing {
				n = 500
				waitUntil = time.Now().Add(5 * time.Minute)
			}
			c.publish(n)
			published += n
			want := c.sent()
			waitFor(t, ctx, 2*time.Minute, "the changed traffic scored", func() (bool, string) {
				n := c.scored()
				return n >= want, fmt.Sprintf("scored %d/%d\n%s", n, want, c.scoring.tail())
			})
		} else {
			time.Sleep(2 * time.Second) // waiting on the trainer, an external process
		}
		if firstEventWindow == 0 {
			for _, ev := range readDriftEvents(t, c.brokers, c.driftTopic) {
				if ev.GetRetrain() {
					firstEventWindow = c.windows(ctx) - closedBefore
					t.Logf("drift event after %d changed windows: %s", firstEventWindow, ev.GetMessage())
				}
			}
		}
		if h, err := c.tc.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: c.model, Alias: "champion"}); err == nil {
			for _, e := range h.GetEvents() {
				if e.GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED && e.GetToVersion() != c.v1 {
					v2 = e.GetToVersion()
					t.Logf("promoted version %s: %s", v2, e.GetReason())
					if !strings.Contains(e.GetReason(), "shadow passed") {
						t.Errorf("promotion reason %q: want the shadow period's verdict", e.GetReason())
					}
				}
			}
		}
	}
	if firstEventWindow == 0 || firstEventWindow > 3 { // the window that crossed, plus the one confirming it, plus one in flight
		t.Errorf("drift flagged %d windows after the change, want within 2 (+1 in flight)", firstEventWindow)
	}
	retrains := 0
	for _, ev := range readDriftEvents(t, c.brokers, c.driftTopic) {
		if ev.GetRetrain() {
			retrains++
		}
	}
	if retrains != 1 {
		t.Errorf("%d drift events recommended retraining, want exactly 1", retrains)
	}
	waitFor(t, ctx, time.Minute, "scoring to serve the new champion", func() (bool, string) {
		for line := range strings.Lines(scrapeText(c.scoring.admin)) {
			if strings.HasPrefix(line, "mlops_scoring_model_info{") && strings.Contains(line, `alias="champion"`) && strings.Contains(line, `model_version="`+v2+`"`) {
				return true, ""
			}
		}
		return false, c.scoring.tail()
	})
	return v2
}

// untilLabelled waits until every event sent is a prediction document with its label; labels
// are joined more slowly than predictions are written (a lookup and an update each), so it
// waits while the count keeps growing.
func (c *closedLoop) untilLabelled(t *testing.T, ctx context.Context, esURL, index string) {
	t.Helper()
	q := fmt.Sprintf(`{"query":{"bool":{"filter":[{"term":{"model_name":%q}},{"exists":{"field":"actual"}}]}}}`, c.model)
	for most, stalled := -1, time.Now(); ; {
		n, sent := c.scored(), c.sent()
		l, _ := esCount(esURL, index, q)
		if n == sent && l >= sent {
			return
		}
		if l > most {
			most, stalled = l, time.Now()
		}
		if time.Since(stalled) > time.Minute || ctx.Err() != nil {
			t.Fatalf("scored %d/%d, labelled %d/%d, no progress for a minute", n, sent, l, sent)
		}
		time.Sleep(time.Second) // polling Elasticsearch, an external system
	}
}
