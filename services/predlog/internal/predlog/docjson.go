package predlog

import (
	"fmt"

	"github.com/streaming-mlops/mlops/services/predlog/internal/esbulk"
)

// AppendJSON renders the document as encoding/json would (same fields, same omissions), by
// hand: the bulk body of every batch is built from these, and reflection-based encoding was the
// largest part of predlog's CPU per document. TestPredictionDocJSONMatchesEncodingJSON keeps the
// two in step.
func (d *predictionDoc) AppendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"@timestamp":`...)
	b = esbulk.AppendString(b, d.Timestamp)
	b = appendStringField(b, "event_id", d.EventID)
	b = appendStringField(b, "transaction_id", d.TxID)
	b = appendStringField(b, "account_id", d.AccountID)
	b = appendStringField(b, "model_name", d.ModelName)
	b = appendStringField(b, "model_version", d.ModelVersion)
	b = appendStringField(b, "task", d.Task)
	if b, err = appendFloatField(b, "score", d.Score); err != nil {
		return b, err
	}
	b = appendStringField(b, "decision", d.Decision)
	if b, err = appendFloatField(b, "threshold", d.Threshold); err != nil {
		return b, err
	}
	if b, err = appendOptFloat(b, "amount", d.Amount); err != nil {
		return b, err
	}
	b = appendOptString(b, "currency", d.Currency)
	b = appendOptString(b, "feature_spec", d.FeatureSpec)
	if d.Features != nil {
		b = append(b, `,"features":`...)
		if b, err = d.Features.appendJSON(b); err != nil {
			return b, err
		}
	}
	if len(d.FeatureValues) > 0 {
		b = append(b, `,"feature_values":[`...)
		for i, v := range d.FeatureValues {
			if i > 0 {
				b = append(b, ',')
			}
			if v == nil {
				b = append(b, "null"...)
				continue
			}
			if b, err = esbulk.AppendFloat(b, *v); err != nil {
				return b, fmt.Errorf("feature_values[%d]: %w", i, err)
			}
		}
		b = append(b, ']')
	}
	if x := d.Explanation; x != nil {
		b = append(b, `,"explanation":{`...)
		n := len(b)
		if b, err = appendOptFloat(b, "base_value", x.BaseValue); err != nil {
			return b, err
		}
		b = appendOptString(b, "method", x.Method)
		if len(x.Contributions) > 0 {
			b = append(b, `,"contributions":[`...)
			for i, c := range x.Contributions {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"feature":`...)
				b = esbulk.AppendString(b, c.Feature)
				if b, err = appendOptFloat(b, "value", c.Value); err != nil {
					return b, err
				}
				if b, err = appendOptFloat(b, "contribution", c.Contribution); err != nil {
					return b, err
				}
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = dropLeadingComma(b, n)
		b = append(b, '}')
	}
	if s := d.Shadow; s != nil {
		b = append(b, `,"shadow":{"model_name":`...)
		b = esbulk.AppendString(b, s.ModelName)
		b = appendStringField(b, "model_version", s.ModelVersion)
		if b, err = appendOptFloat(b, "score", s.Score); err != nil {
			return b, err
		}
		b = appendStringField(b, "decision", s.Decision)
		if b, err = appendOptFloat(b, "threshold", s.Threshold); err != nil {
			return b, err
		}
		if b, err = appendOptFloat(b, "inference_seconds", s.InferenceSeconds); err != nil {
			return b, err
		}
		b = append(b, '}')
	}
	if l := d.Latency; l != nil {
		b = append(b, `,"latency":{`...)
		n := len(b)
		for _, f := range []struct {
			name string
			v    *float64
		}{{"inference_seconds", l.InferenceSeconds}, {"features_seconds", l.FeaturesSeconds},
			{"explanation_seconds", l.ExplanationSeconds}, {"end_to_end_seconds", l.EndToEndSeconds}} {
			if b, err = appendOptFloat(b, f.name, f.v); err != nil {
				return b, err
			}
		}
		b = dropLeadingComma(b, n)
		b = append(b, '}')
	}
	b = appendOptString(b, "scored_at", d.ScoredAt)
	b = appendStringField(b, "path", d.Path)
	b = appendOptString(b, "traceparent", d.Traceparent)
	b = appendOptString(b, "features_computed_at", d.ComputedAt)
	return append(b, '}'), nil
}

// dropLeadingComma removes the comma the first member of an object appended from b[n:] starts
// with.
func dropLeadingComma(b []byte, n int) []byte {
	if len(b) > n && b[n] == ',' {
		return append(b[:n], b[n+1:]...)
	}
	return b
}

func appendStringField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return esbulk.AppendString(b, v)
}

func appendOptString(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendStringField(b, name, v)
}

func appendFloatField(b []byte, name string, v float64) ([]byte, error) {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	b, err := esbulk.AppendFloat(b, v)
	if err != nil {
		return b, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

func appendOptFloat(b []byte, name string, v *float64) ([]byte, error) {
	if v == nil {
		return b, nil
	}
	return appendFloatField(b, name, *v)
}
