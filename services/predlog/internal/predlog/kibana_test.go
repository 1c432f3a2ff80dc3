package predlog_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

// kibanaObjects is the saved-objects file of deploy/kibana, relative to this package.
var kibanaObjects = filepath.Join("..", "..", "..", "..", "deploy", "kibana", "saved_objects.ndjson")

// kqlField matches the field of a KQL term such as `decision:alert` or `actual : 0`.
var kqlField = regexp.MustCompile(`([A-Za-z_@][\w.@]*)\s*:`)

// TestKibanaSavedObjects checks that every line of the NDJSON is a saved object, that every
// reference resolves inside the file, and that every field the objects use (aggregation
// fields, columns, sort, time fields, KQL queries, also inside the JSON-encoded attributes)
// exists in the index template.
func TestKibanaSavedObjects(t *testing.T) {
	t.Parallel()
	f, err := os.Open(kibanaObjects)
	if err != nil {
		t.Fatalf("open saved objects: %v", err)
	}
	defer f.Close()
	known := map[string]bool{}
	for _, p := range predlog.FieldPaths(predlog.Mappings()) {
		known[p] = true
	}
	type object struct {
		ID         string         `json:"id"`
		Type       string         `json:"type"`
		Attributes map[string]any `json:"attributes"`
		References []struct {
			Name string `json:"name"`
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"references"`
	}
	var objs []object
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var o object
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		if o.ID == "" || o.Type == "" || o.Attributes["title"] == "" {
			t.Errorf("line %d: id %q type %q title %v: all required", line, o.ID, o.Type, o.Attributes["title"])
		}
		objs = append(objs, o)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	types := map[string]int{}
	for _, o := range objs {
		if _, dup := ids[o.ID]; dup {
			t.Errorf("duplicate id %s", o.ID)
		}
		ids[o.ID] = o.Type
		types[o.Type]++
	}
	for typ, min := range map[string]int{"index-pattern": 1, "search": 2, "visualization": 3, "dashboard": 1} {
		if types[typ] < min {
			t.Errorf("%d objects of type %s, want at least %d", types[typ], typ, min)
		}
	}
	for _, o := range objs {
		refNames := map[string]bool{}
		for _, r := range o.References {
			refNames[r.Name] = true
			if ids[r.ID] != r.Type {
				t.Errorf("%s: reference %s -> %s %s not in the file", o.ID, r.Name, r.Type, r.ID)
			}
		}
		fields, refs := usedFields(t, o.ID, o.Attributes)
		for _, f := range fields {
			if !known[f] {
				t.Errorf("%s uses field %q, which the index template does not map", o.ID, f)
			}
		}
		for _, r := range refs {
			if !refNames[r] {
				t.Errorf("%s: %s names reference %q, which it does not declare", o.ID, "indexRefName/panelRefName", r)
			}
		}
		if o.Type == "index-pattern" && !strings.HasPrefix(o.Attributes["title"].(string), "predictions") {
			t.Errorf("data view %s targets %v, want predictions*", o.ID, o.Attributes["title"])
		}
	}
}

// usedFields walks attributes, decoding JSON-encoded strings, and returns the fields and the
// reference names it uses.
func usedFields(t *testing.T, id string, attrs map[string]any) (fields, refs []string) {
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(k, c)
			}
		case []any:
			for _, c := range x {
				if key == "sort" {
					if pair, ok := c.([]any); ok && len(pair) > 0 {
						fields = append(fields, pair[0].(string))
					}
					continue
				}
				if key == "columns" {
					fields = append(fields, c.(string))
					continue
				}
				walk(key, c)
			}
		case string:
			switch key {
			case "field", "time_field", "timeFieldName":
				fields = append(fields, x)
			case "indexRefName", "panelRefName":
				refs = append(refs, x)
			case "query":
				for _, m := range kqlField.FindAllStringSubmatch(x, -1) {
					fields = append(fields, m[1])
				}
			case "searchSourceJSON", "visState", "panelsJSON", "optionsJSON", "uiStateJSON":
				var inner any
				if err := json.Unmarshal([]byte(x), &inner); err != nil {
					t.Errorf("%s: %s is not JSON: %v", id, key, err)
					return
				}
				walk(key, inner)
			}
		}
	}
	for k, v := range attrs {
		walk(k, v)
	}
	return fields, refs
}
