package predlog_test

import (
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
)

// A label whose prediction never comes must not wait in the pending index forever: past
// PendingMaxAge (from its event time) it is deleted and counted; younger ones stay and are
// still adopted by their prediction.
func TestPendingLabelsExpire(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	te.cfg.PendingMaxAge = 7 * 24 * time.Hour
	w, reg := te.writer(t)
	h := w.Handler(predTopic, labelTopic)
	// Event times baseTime+1h (old) and baseTime+9d (young); "now" is baseTime+10d.
	handleOK(t, h,
		record(t, labelTopic, "tx-old", label("tx-old", 1, time.Hour), 0),
		record(t, labelTopic, "tx-young", label("tx-young", 1, 9*24*time.Hour), 1))
	if n := te.countPending(t); n != 2 {
		t.Fatalf("%d labels pending, want 2", n)
	}

	n, err := w.ExpirePending(ctxT(t), baseTime.Add(10*24*time.Hour))
	if err != nil {
		t.Fatalf("ExpirePending: %v", err)
	}
	if n != 1 {
		t.Errorf("ExpirePending deleted %d labels, want 1", n)
	}
	if n := te.countPending(t); n != 1 {
		t.Errorf("%d labels pending after expiry, want 1 (the young one)", n)
	}
	if got := kafkaiotest.MetricValue(reg, "mlops_predlog_pending_labels_expired_total", nil); got != 1 {
		t.Errorf("mlops_predlog_pending_labels_expired_total = %v, want 1", got)
	}

	// The young label still lands on its prediction; the expired one is gone for good.
	handleOK(t, h, record(t, predTopic, "tx-young", prediction("tx-young", 3), 0),
		record(t, predTopic, "tx-old", prediction("tx-old", 4), 1))
	docs := te.search(t)
	if docs["tx-young"]["actual"] != 1.0 {
		t.Errorf("tx-young document %v, want actual 1", docs["tx-young"])
	}
	if _, ok := docs["tx-old"]["actual"]; ok {
		t.Errorf("tx-old document %v carries the expired label", docs["tx-old"])
	}
	if n := te.countPending(t); n != 0 {
		t.Errorf("%d labels pending at the end, want 0", n)
	}

	// Nothing left to expire; a missing pending index is not an error either.
	if n, err := w.ExpirePending(ctxT(t), baseTime.Add(10*24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second ExpirePending = %d, %v; want 0, nil", n, err)
	}
	te2 := newTestES(t)
	w2, _ := te2.writer(t)
	if _, err := w2.ExpirePending(ctxT(t), time.Now()); err != nil {
		t.Errorf("ExpirePending without a pending index: %v", err)
	}
}
