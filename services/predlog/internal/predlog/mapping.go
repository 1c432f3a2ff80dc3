package predlog

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// Template priorities. The pending-label template is the more specific one, so it wins when a
// pending index name happens to match the prediction pattern too.
const (
	predictionTemplatePriority = 200
	pendingTemplatePriority    = 210
)

func keyword() map[string]any { return map[string]any{"type": "keyword"} }
func double() map[string]any  { return map[string]any{"type": "double"} }
func date() map[string]any    { return map[string]any{"type": "date"} }

func object(props map[string]any) map[string]any {
	return map[string]any{"properties": props}
}

// Mappings returns the explicit mappings of prediction documents. The root is strict (a field
// the code does not know is a mapping error, not a silent new field); features is an object
// of doubles named after the features of every built-in spec, and accepts new feature names
// as doubles through a dynamic template, so a new spec version needs no template change.
func Mappings() map[string]any {
	features := map[string]any{}
	for _, s := range []featurespec.Spec{featurespec.Fraud(), featurespec.Purchase()} {
		for _, name := range s.Names() {
			features[name] = double()
		}
	}
	return map[string]any{
		"dynamic": "strict",
		"dynamic_templates": []any{
			map[string]any{"features_as_double": map[string]any{
				"path_match": "features.*",
				"mapping":    double(),
			}},
		},
		"properties": map[string]any{
			"@timestamp":           date(),
			"event_id":             keyword(),
			"transaction_id":       keyword(),
			"account_id":           keyword(),
			"model_name":           keyword(),
			"model_version":        keyword(),
			"task":                 keyword(),
			"score":                double(),
			"decision":             keyword(),
			"threshold":            double(),
			"amount":               double(),
			"currency":             keyword(),
			"feature_spec":         keyword(),
			"features":             map[string]any{"type": "object", "dynamic": true, "properties": features},
			"feature_values":       double(),
			"features_computed_at": date(),
			"explanation": object(map[string]any{
				"base_value": double(),
				"method":     keyword(),
				"contributions": object(map[string]any{
					"feature":      keyword(),
					"value":        double(),
					"contribution": double(),
				}),
			}),
			"shadow": object(map[string]any{
				"model_name":        keyword(),
				"model_version":     keyword(),
				"score":             double(),
				"decision":          keyword(),
				"threshold":         double(),
				"inference_seconds": double(),
			}),
			"latency": object(map[string]any{
				"inference_seconds":   double(),
				"features_seconds":    double(),
				"explanation_seconds": double(),
				"end_to_end_seconds":  double(),
			}),
			"scored_at":       date(),
			"path":            keyword(),
			"traceparent":     keyword(),
			fieldActual:       double(),
			fieldLabelledAt:   date(),
			fieldLabelKind:    keyword(),
			fieldLabelSource:  keyword(),
			fieldLabelEventID: keyword(),
		},
	}
}

// pendingMappings are the mappings of the pending-label index: the label fields only.
func pendingMappings() map[string]any {
	return map[string]any{
		"dynamic": "strict",
		"properties": map[string]any{
			"transaction_id":  keyword(),
			fieldActual:       double(),
			fieldLabelledAt:   date(),
			fieldLabelKind:    keyword(),
			fieldLabelSource:  keyword(),
			fieldLabelEventID: keyword(),
		},
	}
}

// indexSettings are the settings of the prediction indices: one shard without replicas (a
// single node; a cluster raises number_of_replicas on the live indices) and the refresh
// interval, which bounds how long an acknowledged document stays invisible to search (never to
// predlog's own realtime reads). An empty refresh leaves refresh_interval unset: Elasticsearch
// then refreshes every second while the index is searched and not at all while nobody
// searches it (search-idle, after 30 s), and a search on an idle shard waits for a refresh,
// so it sees every acknowledged document.
func indexSettings(refresh string) map[string]any {
	s := map[string]any{
		"number_of_shards":   1,
		"number_of_replicas": 0,
	}
	if refresh != "" {
		s["refresh_interval"] = refresh
	}
	return s
}

// PredictionTemplate returns the body of the composable index template for the prediction
// indices prefix-* (one per month), which also puts every such index behind the alias prefix.
// refresh is their refresh_interval (e.g. "1s", "10s"; "" leaves Elasticsearch's default).
func PredictionTemplate(prefix, refresh string) ([]byte, error) {
	body := map[string]any{
		"index_patterns": []string{prefix + "-*"},
		"priority":       predictionTemplatePriority,
		"template": map[string]any{
			"settings": indexSettings(refresh),
			"mappings": Mappings(),
			"aliases":  map[string]any{prefix: map[string]any{}},
		},
		"_meta": map[string]any{"managed_by": "predlog"},
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode prediction template: %w", err)
	}
	return b, nil
}

// pendingRefreshInterval is the refresh interval of the pending-label index: few writes, and
// ExpirePending searches it.
const pendingRefreshInterval = "1s"

// PendingTemplate returns the body of the index template for the pending-label index.
func PendingTemplate(index string) ([]byte, error) {
	body := map[string]any{
		"index_patterns": []string{index},
		"priority":       pendingTemplatePriority,
		"template": map[string]any{
			"settings": indexSettings(pendingRefreshInterval),
			"mappings": pendingMappings(),
		},
		"_meta": map[string]any{"managed_by": "predlog"},
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode pending-label template: %w", err)
	}
	return b, nil
}

// FieldPaths returns the dotted path of every leaf field of m (a mappings object), sorted,
// e.g. "explanation.contributions.feature".
func FieldPaths(m map[string]any) []string {
	var out []string
	var walk func(prefix string, props map[string]any)
	walk = func(prefix string, props map[string]any) {
		for name, v := range props {
			def, _ := v.(map[string]any)
			path := prefix + name
			if sub, ok := def["properties"].(map[string]any); ok {
				walk(path+".", sub)
				continue
			}
			out = append(out, path)
		}
	}
	props, _ := m["properties"].(map[string]any)
	walk("", props)
	slices.Sort(out)
	return out
}
