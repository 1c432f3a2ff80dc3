package predlog

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
)

// Field names of the prediction document that the code refers to; the full list is the
// index template (Mappings).
const (
	fieldActual       = "actual"
	fieldLabelledAt   = "labelled_at"
	fieldLabelKind    = "label_kind"
	fieldLabelSource  = "label_source"
	fieldLabelEventID = "label_event_id"
)

// errValidation marks input that decodes but cannot become a document.
var errValidation = errors.New("invalid event")

// DocID returns the _id of the prediction document of transaction tx in model family: tx
// itself for fraud (and for an unnamed family, as before families existed), "<tx>:<family>"
// for any other, e.g. "tx-1:purchase". A transaction scored by two families (should a source
// send one id to both) so gets two documents, and each family's labels find their own.
func DocID(tx, family string) string {
	if family == "" || family == familyFraud {
		return tx
	}
	return tx + ":" + family
}

// familyFraud is the model family (feature spec name) whose documents keep the bare
// transaction id as _id.
const familyFraud = "fraud"

// labelFamily is the model family of a label kind word ("fraud", "purchase", "unspecified").
func labelFamily(kind string) string {
	if kind == "unspecified" {
		return familyFraud
	}
	return kind
}

// IndexFor returns the monthly index of a document whose event time is t: prefix-YYYY.MM
// (UTC), e.g. predictions-2026.11.
func IndexFor(prefix string, t time.Time) string {
	return prefix + "-" + t.UTC().Format("2006.01")
}

// predictionDoc is the part of the document a prediction writes. Label fields are absent, so
// an update with it never clobbers an actual that arrived first.
type predictionDoc struct {
	Timestamp    string       `json:"@timestamp"`
	EventID      string       `json:"event_id"`
	TxID         string       `json:"transaction_id"`
	AccountID    string       `json:"account_id"`
	ModelName    string       `json:"model_name"`
	ModelVersion string       `json:"model_version"`
	Task         string       `json:"task"`
	Score        float64      `json:"score"`
	Decision     string       `json:"decision"`
	Threshold    float64      `json:"threshold"`
	Amount       *float64     `json:"amount,omitempty"`
	Currency     string       `json:"currency,omitempty"`
	FeatureSpec  string       `json:"feature_spec,omitempty"`
	Features     *namedValues `json:"features,omitempty"`
	// FeatureValues holds the vector positionally when no names are known for it (an unknown
	// spec without names); missing values are null.
	FeatureValues []*float64   `json:"feature_values,omitempty"`
	Explanation   *explanation `json:"explanation,omitempty"`
	Shadow        *shadowDoc   `json:"shadow,omitempty"`
	Latency       *latencyDoc  `json:"latency,omitempty"`
	ScoredAt      string       `json:"scored_at,omitempty"`
	Path          string       `json:"path"`
	Traceparent   string       `json:"traceparent,omitempty"`
	ComputedAt    string       `json:"features_computed_at,omitempty"`

	// id is the document's _id (DocID of the transaction and the vector's spec name).
	id string
}

type explanation struct {
	BaseValue     *float64       `json:"base_value,omitempty"`
	Method        string         `json:"method,omitempty"`
	Contributions []contribution `json:"contributions,omitempty"`
}

type contribution struct {
	Feature      string   `json:"feature"`
	Value        *float64 `json:"value,omitempty"`
	Contribution *float64 `json:"contribution,omitempty"`
}

type shadowDoc struct {
	ModelName        string   `json:"model_name"`
	ModelVersion     string   `json:"model_version"`
	Score            *float64 `json:"score,omitempty"`
	Decision         string   `json:"decision"`
	Threshold        *float64 `json:"threshold,omitempty"`
	InferenceSeconds *float64 `json:"inference_seconds,omitempty"`
}

type latencyDoc struct {
	InferenceSeconds   *float64 `json:"inference_seconds,omitempty"`
	FeaturesSeconds    *float64 `json:"features_seconds,omitempty"`
	ExplanationSeconds *float64 `json:"explanation_seconds,omitempty"`
	EndToEndSeconds    *float64 `json:"end_to_end_seconds,omitempty"`
}

// labelDoc is the part of the document a label writes (and the whole pending-label document).
type labelDoc struct {
	TxID         string  `json:"transaction_id"`
	Actual       float64 `json:"actual"`
	LabelledAt   string  `json:"labelled_at"`
	LabelKind    string  `json:"label_kind"`
	LabelSource  string  `json:"label_source,omitempty"`
	LabelEventID string  `json:"label_event_id"`
	// txTime is the labelled transaction's event time when the label carries it; the
	// prediction document then lives in exactly one monthly index.
	txTime time.Time
}

// id is the _id of the label's prediction document (and of its pending-label document).
func (l *labelDoc) id() string { return DocID(l.TxID, labelFamily(l.LabelKind)) }

// labelState is what the code reads back of a document's label fields.
type labelState struct {
	LabelledAt string `json:"labelled_at"`
}

// enumWord turns an enum value name into the lower-case word after its prefix
// (DECISION_ALERT -> "alert"); the unspecified value becomes "unspecified".
func enumWord(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

func timeString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// finite returns a pointer to v, or nil for NaN and ±Inf (JSON has no such numbers; a missing
// value is left out of the document).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// buildPrediction validates p and returns its index time and document.
func buildPrediction(p *eventsv1.Prediction) (time.Time, *predictionDoc, error) {
	var errs []error
	if p.GetTransactionId() == "" {
		errs = append(errs, errors.New("transaction_id is empty"))
	}
	if !p.GetEventTime().IsValid() || p.GetEventTime().AsTime().IsZero() {
		errs = append(errs, errors.New("event_time is missing or invalid"))
	}
	if finite(p.GetScore()) == nil {
		errs = append(errs, fmt.Errorf("score %v is not finite", p.GetScore()))
	}
	if err := errors.Join(errs...); err != nil {
		return time.Time{}, nil, fmt.Errorf("prediction %q: %w: %w", p.GetTransactionId(), errValidation, err)
	}
	at := p.GetEventTime().AsTime()
	d := &predictionDoc{
		Timestamp:    timeString(at),
		EventID:      p.GetEventId(),
		TxID:         p.GetTransactionId(),
		AccountID:    p.GetAccountId(),
		ModelName:    p.GetModelName(),
		ModelVersion: p.GetModelVersion(),
		Task:         enumWord(p.GetTask().String(), "TASK_"),
		Score:        p.GetScore(),
		Decision:     enumWord(p.GetDecision().String(), "DECISION_"),
		Path:         enumWord(p.GetPath().String(), "SCORING_PATH_"),
		Traceparent:  p.GetTrace().GetTraceparent(),
	}
	if t := finite(p.GetThreshold()); t != nil {
		d.Threshold = *t
	}
	if p.GetScoredAt().IsValid() {
		d.ScoredAt = timeString(p.GetScoredAt().AsTime())
	}
	if fv := p.GetFeatures(); fv != nil {
		d.Amount = finite(fv.GetAmount())
		d.Currency = fv.GetCurrency()
		if fv.GetComputedAt().IsValid() {
			d.ComputedAt = timeString(fv.GetComputedAt().AsTime())
		}
		d.FeatureSpec, d.Features, d.FeatureValues = flattenFeatures(fv)
	}
	d.id = DocID(d.TxID, p.GetFeatures().GetSpecName())
	if e := p.GetExplanation(); e != nil {
		x := &explanation{BaseValue: finite(e.GetBaseValue()), Method: e.GetMethod()}
		for _, c := range e.GetContributions() {
			x.Contributions = append(x.Contributions, contribution{
				Feature: c.GetFeature(), Value: finite(c.GetValue()), Contribution: finite(c.GetContribution()),
			})
		}
		d.Explanation = x
	}
	if s := p.GetShadow(); s != nil {
		d.Shadow = &shadowDoc{
			ModelName: s.GetModelName(), ModelVersion: s.GetModelVersion(), Score: finite(s.GetScore()),
			Decision: enumWord(s.GetDecision().String(), "DECISION_"), Threshold: finite(s.GetThreshold()),
			InferenceSeconds: finite(s.GetInferenceSeconds()),
		}
	}
	if l := p.GetLatency(); l != nil {
		d.Latency = &latencyDoc{
			InferenceSeconds: finite(l.GetInferenceSeconds()), FeaturesSeconds: finite(l.GetFeaturesSeconds()),
			ExplanationSeconds: finite(l.GetExplanationSeconds()), EndToEndSeconds: finite(l.GetEndToEndSeconds()),
		}
	}
	return at, d, nil
}

// namedValues is the features object of a document: finite values by name, in the vector's
// order. It is a pair of slices rather than a map: building and encoding a map per document
// was a large part of predlog's CPU.
type namedValues struct {
	names  []string
	values []float64
}

// MarshalJSON renders the object for encoding/json (AppendJSON is the fast path).
func (n *namedValues) MarshalJSON() ([]byte, error) {
	return n.appendJSON(nil)
}

func (n *namedValues) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	for i, name := range n.names {
		if i > 0 {
			b = append(b, ',')
		}
		b = esbulk.AppendString(b, name)
		b = append(b, ':')
		var err error
		if b, err = esbulk.AppendFloat(b, n.values[i]); err != nil {
			return b, fmt.Errorf("feature %s: %w", name, err)
		}
	}
	return append(b, '}'), nil
}

// flattenFeatures names the values of fv: by fv.names when set, otherwise by the built-in
// feature spec (spec_name, spec_version). Missing values (NaN) are left out. When no names
// are known the values are returned positionally instead.
func flattenFeatures(fv *eventsv1.FeatureVector) (spec string, named *namedValues, positional []*float64) {
	values := fv.GetValues()
	if fv.GetSpecName() != "" {
		spec = fv.GetSpecName() + "-v" + fv.GetSpecVersion()
	}
	names := fv.GetNames()
	if len(names) != len(values) {
		names = nil
		if s, err := featurespec.ByName(spec); err == nil && s.Len() == len(values) && strconv.Itoa(s.Version) == fv.GetSpecVersion() {
			names = s.Names()
		}
	}
	if names == nil {
		if len(values) == 0 {
			return spec, nil, nil
		}
		positional = make([]*float64, len(values))
		for i, v := range values {
			positional[i] = finite(v)
		}
		return spec, nil, positional
	}
	named = &namedValues{names: make([]string, 0, len(values)), values: make([]float64, 0, len(values))}
	for i, v := range values {
		if finite(v) != nil {
			named.names = append(named.names, names[i])
			named.values = append(named.values, v)
		}
	}
	if len(named.names) == 0 {
		named = nil // as an empty map was: no features object
	}
	return spec, named, nil
}

// buildLabel validates l and returns its event time and label fields.
func buildLabel(l *eventsv1.Label) (time.Time, *labelDoc, error) {
	var errs []error
	if l.GetTransactionId() == "" {
		errs = append(errs, errors.New("transaction_id is empty"))
	}
	if !l.GetEventTime().IsValid() || l.GetEventTime().AsTime().IsZero() {
		errs = append(errs, errors.New("event_time is missing or invalid"))
	}
	if finite(l.GetLabel()) == nil {
		errs = append(errs, fmt.Errorf("label %v is not finite", l.GetLabel()))
	}
	if err := errors.Join(errs...); err != nil {
		return time.Time{}, nil, fmt.Errorf("label %q: %w: %w", l.GetTransactionId(), errValidation, err)
	}
	at := l.GetEventTime().AsTime()
	return at, &labelDoc{
		TxID:         l.GetTransactionId(),
		Actual:       l.GetLabel(),
		LabelledAt:   timeString(at),
		LabelKind:    enumWord(l.GetKind().String(), "LABEL_KIND_"),
		LabelSource:  l.GetSource(),
		LabelEventID: l.GetEventId(),
		txTime:       txTime(l),
	}, nil
}

// txTime returns the label's transaction_time, or the zero time when it is unset.
func txTime(l *eventsv1.Label) time.Time {
	if t := l.GetTransactionTime(); t.IsValid() && !t.AsTime().IsZero() {
		return t.AsTime()
	}
	return time.Time{}
}
