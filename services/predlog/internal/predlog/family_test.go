package predlog_test

import (
	"testing"
	"time"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

func TestDocID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ tx, family, want string }{
		{"tx-1", "fraud", "tx-1"},
		{"tx-1", "", "tx-1"},
		{"tx-1", "purchase", "tx-1:purchase"},
	} {
		if got := predlog.DocID(tt.tx, tt.family); got != tt.want {
			t.Errorf("DocID(%q, %q) = %q, want %q", tt.tx, tt.family, got, tt.want)
		}
	}
}

// purchasePrediction is a regression prediction of the purchase model for txID.
func purchasePrediction(txID string, score float64) *eventsv1.Prediction {
	p := prediction(txID, 7)
	p.ModelName, p.Task, p.Score, p.Decision, p.Shadow = "purchase", eventsv1.Task_TASK_REGRESSION, score, eventsv1.Decision_DECISION_PASS, nil
	p.Features.SpecName, p.Features.Values = "purchase", make([]float64, featurespec.PurchaseLen)
	p.Explanation = &eventsv1.Explanation{BaseValue: 0.2, Method: "tree_shap", Contributions: []*eventsv1.Contribution{{Feature: "cart_items", Value: 0, Contribution: -0.1}}}
	return p
}

// TestFamiliesGetTheirOwnDocuments: a fraud and a purchase prediction of one transaction id
// are two documents (tx and tx:purchase); a purchase label joins the purchase document (also
// when it arrives first and is parked), a fraud label the fraud document.
func TestFamiliesGetTheirOwnDocuments(t *testing.T) {
	t.Parallel()
	te := newTestES(t)
	w, _ := te.writer(t)
	h := w.Handler(predTopic, labelTopic)
	const tx = "tx-family"
	purchaseLabel := label(tx, 1, 2*time.Hour)
	purchaseLabel.Kind, purchaseLabel.EventId = eventsv1.LabelKind_LABEL_KIND_PURCHASE, "label-purchase"
	handleOK(t, h, record(t, labelTopic, tx, purchaseLabel, 0)) // parked: no purchase document yet
	handleOK(t, h, record(t, predTopic, tx, prediction(tx, 7), 0))
	handleOK(t, h, record(t, labelTopic, tx, label(tx, 0, 3*time.Hour), 1)) // fraud label: joins at once
	handleOK(t, h, record(t, predTopic, tx, purchasePrediction(tx, 0.37), 1))

	docs := te.search(t)
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2 (fraud and purchase): %v", len(docs), docs)
	}
	fraud, purchase := docs[tx], docs[tx+":purchase"]
	if fraud["model_name"] != "fraud" || fraud["actual"] != 0.0 || fraud["label_kind"] != "fraud" {
		t.Errorf("fraud document: model %v actual %v kind %v", fraud["model_name"], fraud["actual"], fraud["label_kind"])
	}
	if purchase["model_name"] != "purchase" || purchase["task"] != "regression" || purchase["score"] != 0.37 ||
		purchase["actual"] != 1.0 || purchase["label_kind"] != "purchase" || purchase["transaction_id"] != tx || purchase["explanation"] == nil {
		t.Errorf("purchase document: %v", purchase)
	}
	if n := te.countPending(t); n != 0 {
		t.Errorf("%d labels left in the pending index, want 0", n)
	}
}
