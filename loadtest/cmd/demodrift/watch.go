package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	driftv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/drift/v1"
	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	trainerv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/trainer/v1"
)

// windowWatch prints each drift window once, when it closes.
type windowWatch struct {
	dc    driftv1.DriftServiceClient
	model string
	n     *narrator
	last  int64
}

func (w *windowWatch) report(ctx context.Context) {
	resp, err := w.dc.ListWindows(ctx, &driftv1.ListWindowsRequest{ModelName: w.model, Limit: 50})
	if err != nil {
		return
	}
	ws := resp.GetWindows()
	for i := len(ws) - 1; i >= 0; i-- { // newest first on the wire
		s := ws[i]
		if s.GetId() <= w.last {
			continue
		}
		w.last = s.GetId()
		line := fmt.Sprintf("window %d (v%s, %d predictions):", s.GetId(), s.GetModelVersion(), s.GetWindow().GetCount())
		p := s.GetPerformance()
		if p.EstimatedAuc != nil {
			line += fmt.Sprintf(" estimated AUC %.3f", p.GetEstimatedAuc())
		}
		if p.Auc != nil {
			line += fmt.Sprintf(" · AUC %.3f on %d labels", p.GetAuc(), p.GetLabelledCount())
		}
		line += fmt.Sprintf(" · alert rate %.1f%%", 100*p.GetAlertRate())
		if len(s.GetDriftedFeatures()) > 0 {
			line += " · over threshold: " + strings.Join(s.GetDriftedFeatures(), ", ")
		} else {
			line += " · every feature within its threshold"
		}
		w.n.say("  %s", line)
	}
}

// eventWatch follows the drift events and the model's audit history.
type eventWatch struct {
	tc                  trainerv1.TrainerServiceClient
	model               string
	n                   *narrator
	driftTopic, brokers string
	driftOffset         int64
	seen                map[string]bool
}

// driftEvents prints the drift events published since the last call (the topic has one
// partition).
func (e *eventWatch) driftEvents(ctx context.Context) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{e.brokers}, Topic: e.driftTopic, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(e.driftOffset); err != nil {
		return
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			return
		}
		e.driftOffset = m.Offset + 1
		var ev eventsv1.DriftEvent
		if proto.Unmarshal(m.Value, &ev) != nil {
			continue
		}
		if !ev.GetRetrain() { // the same shift seen by more statistics: one line each, briefly
			e.n.say("  also drifting: %s", ev.GetMessage())
			continue
		}
		e.n.say("DRIFT DETECTED (two windows in a row), retraining recommended: %s", ev.GetMessage())
		if cs := ev.GetChangeStart(); cs != nil {
			e.n.say("  the change began at %s (sim time); the trainer reads the logged predictions from there", cs.AsTime().Format("Jan 2 15:04"))
		}
	}
}

// inShadow reports whether a version is in its shadow period (the newest challenger event
// set the alias).
func (e *eventWatch) inShadow(ctx context.Context) bool {
	h, err := e.tc.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: e.model, Alias: "challenger"})
	return err == nil && len(h.GetEvents()) > 0 && h.GetEvents()[0].GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED
}

// report prints the model events not printed yet, oldest first, and returns the version
// that replaced v1 as champion ("" while none has).
func (e *eventWatch) report(ctx context.Context, v1 string) string {
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	h, err := e.tc.GetHistory(ctx, &trainerv1.GetHistoryRequest{ModelName: e.model})
	if err != nil {
		return ""
	}
	champion := ""
	evs := h.GetEvents()
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		if ev.GetAlias() == "champion" && ev.GetType() == eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED && ev.GetToVersion() != v1 {
			champion = ev.GetToVersion()
		}
		if e.seen[ev.GetEventId()] {
			continue
		}
		e.seen[ev.GetEventId()] = true
		switch ev.GetType() {
		case eventsv1.ModelEventType_MODEL_EVENT_TYPE_REGISTERED:
			if ev.GetToVersion() != v1 {
				e.n.say("version %s trained and registered: %s", ev.GetToVersion(), metricLine(ev.GetMetrics()))
			}
		case eventsv1.ModelEventType_MODEL_EVENT_TYPE_PROMOTED:
			if ev.GetAlias() == "challenger" {
				e.n.say("version %s beat version %s on the same recent holdout; now in SHADOW: scored beside it on live traffic", ev.GetToVersion(), v1)
			} else if ev.GetToVersion() != v1 {
				e.n.say("PROMOTED version %s (was %s), because: %s", ev.GetToVersion(), ev.GetFromVersion(), ev.GetReason())
			}
		case eventsv1.ModelEventType_MODEL_EVENT_TYPE_REJECTED:
			e.n.say("version %s NOT promoted: %s", ev.GetToVersion(), ev.GetReason())
		case eventsv1.ModelEventType_MODEL_EVENT_TYPE_ROLLED_BACK:
			e.n.say("ROLLED BACK %s -> %s: %s", ev.GetFromVersion(), ev.GetToVersion(), ev.GetReason())
		case eventsv1.ModelEventType_MODEL_EVENT_TYPE_ALIAS_REMOVED:
			e.n.say("shadow period over for version %s", ev.GetFromVersion())
		}
	}
	return champion
}

// logWatch narrates the trainer's progress from its log (JSON lines).
type logWatch struct {
	path   string
	n      *narrator
	offset int64
}

func (l *logWatch) report() {
	f, err := os.Open(l.path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(l.offset, io.SeekStart); err != nil {
		return
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil { // a partial last line is read again next time
			return
		}
		l.offset += int64(len(line))
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		msg, _ := rec["msg"].(string)
		switch msg {
		case "retrain started":
			l.n.say("trainer: retraining %v (data from %v, %v)", rec["trigger"], rec["window_from"], rec["window_origin"])
		case "waiting for labelled data":
			l.n.say("trainer: waiting for the labels of the changed traffic (%v)", rec["have"])
		case "shadow period started":
			l.n.say("trainer: shadow period — waiting for %v live predictions scored by both versions", rec["predictions"])
		case "shadow period finished":
			l.n.say("trainer: shadow verdict on %v live predictions (%v labelled): %v %v %.4f vs champion %.4f", rec["predictions"], rec["labelled"],
				rec["basis"], rec["metric"], num(rec["challenger_value"]), num(rec["champion_value"]))
		case "retrain finished":
			l.n.say("trainer: run finished in %v", time.Duration(num(rec["duration"])).Round(time.Second))
		}
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// metricLine formats the headline metrics of a model.
func metricLine(m map[string]float64) string {
	var parts []string
	for _, k := range []string{"auc", "pr_auc", "precision", "recall", "mse"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.3f", k, v))
		}
	}
	if len(parts) == 0 {
		for _, k := range slices.Sorted(maps.Keys(m))[:min(3, len(m))] {
			parts = append(parts, fmt.Sprintf("%s %.3f", k, m[k]))
		}
	}
	return "holdout " + strings.Join(parts, ", ")
}

func mustDial(addr string) *grpc.ClientConn {
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err) // only malformed addresses fail here, and ours come from net.Listen
	}
	return c
}

func esCount(base, index, query string) (int, error) {
	resp, err := http.Post(strings.TrimRight(base, "/")+"/"+index+"/_count?ignore_unavailable=true&allow_no_indices=true", "application/json", strings.NewReader(query))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Count int `json:"count"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("count: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	return r.Count, nil
}

func scrape(admin string) string {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// servesVersion reports whether scoring's metrics show version as the loaded champion.
func servesVersion(metrics, version string) bool {
	for line := range strings.Lines(metrics) {
		if strings.HasPrefix(line, "mlops_scoring_model_info{") && strings.Contains(line, `alias="champion"`) &&
			strings.Contains(line, `model_version="`+version+`"`) {
			return true
		}
	}
	return false
}

// metricSum adds the samples of a metric family.
func metricSum(metrics, name string) float64 {
	var sum float64
	for line := range strings.Lines(metrics) {
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
