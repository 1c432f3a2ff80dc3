package scoring

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	"github.com/streaming-mlops/mlops/services/platform/eventid"
)

// Errors the scoring core returns; the stream handler and the gRPC boundary map them.
var (
	// ErrNoModel means no champion is loaded yet.
	ErrNoModel = errors.New("no model loaded")
	// ErrSpecMismatch means a vector was computed for another feature spec than the model's.
	ErrSpecMismatch = errors.New("feature spec mismatch")
	// ErrInvalidFeatures means a vector cannot be scored (wrong length).
	ErrInvalidFeatures = errors.New("invalid features")
)

// scorer holds what scoring one vector needs besides the models. It is safe for concurrent
// use.
type scorer struct {
	sampleRate float64
	topK       int
	m          *metrics
	now        func() time.Time
	// contrib pools SHAP output buffers (len = features + 1) across calls.
	contrib sync.Pool
}

// checkVector reports whether fv can be scored by m.
func checkVector(m *Model, fv *eventsv1.FeatureVector) error {
	if fv.GetSpecName() != m.Spec.Name || fv.GetSpecVersion() != m.specVersion {
		return fmt.Errorf("%w: vector of spec %s version %q, model %s version %s serves %s", ErrSpecMismatch,
			fv.GetSpecName(), fv.GetSpecVersion(), m.Name, m.Version, m.Spec.ID())
	}
	if n := len(fv.GetValues()); n != m.Spec.Len() {
		return fmt.Errorf("%w: vector has %d values, spec %s has %d features", ErrInvalidFeatures, n, m.Spec.ID(), m.Spec.Len())
	}
	return nil
}

// request is one vector to score.
type request struct {
	fv      *eventsv1.FeatureVector
	path    eventsv1.ScoringPath
	explain bool // explanation asked for regardless of the policy
	// deferExplain leaves the policy's explanation (alerts, the sample) to the caller, which
	// computes it off the request path; an explanation asked for (explain) is still computed.
	deferExplain bool
	featuresSec  float64
	traceparent  string
	tracestate   string
	eventID      string // "" means derived from the vector's event id and the model version
}

// score scores r with champ (and chall in shadow, when not nil) and returns the prediction.
// It validates fv first.
func (s *scorer) score(champ, chall *Model, r request) (*eventsv1.Prediction, error) {
	fv := r.fv
	if err := checkVector(champ, fv); err != nil {
		champ.obs.invalid.Inc()
		return nil, err
	}
	start := s.now()
	sc, err := champ.predictor.Predict(fv.GetValues())
	infer := s.now().Sub(start).Seconds()
	if err != nil {
		champ.obs.errored.Inc()
		return nil, fmt.Errorf("predict with model %q version %s: %w", champ.Name, champ.Version, err)
	}
	decision := champ.decide(sc)
	s.m.observe(champ.obs, sc, infer, decision)

	p := &eventsv1.Prediction{
		EventId:       r.eventID,
		EventTime:     fv.GetEventTime(),
		TransactionId: fv.GetTransactionId(),
		AccountId:     fv.GetAccountId(),
		ModelName:     champ.Name,
		ModelVersion:  champ.Version,
		Task:          champ.Task,
		Score:         sc,
		Decision:      decision,
		Threshold:     champ.Threshold,
		Features:      fv,
		Path:          r.path,
		Latency:       &eventsv1.Latency{InferenceSeconds: infer, FeaturesSeconds: r.featuresSec},
	}
	if p.EventId == "" {
		p.EventId = predictionID(fv.GetEventId(), champ.Version, r.path)
	}
	switch {
	case r.traceparent != "":
		p.Trace = &eventsv1.TraceContext{Traceparent: r.traceparent, Tracestate: r.tracestate}
	case fv.GetTrace() != nil:
		p.Trace = fv.GetTrace()
	}
	if r.explain || (!r.deferExplain && s.owesExplanation(p)) {
		es := s.now()
		ex, err := s.explain(champ, fv.GetValues())
		if err != nil {
			// The score stands; an explanation is best effort.
			champ.obs.errored.Inc()
		} else {
			p.Explanation = ex
			p.Latency.ExplanationSeconds = s.now().Sub(es).Seconds()
		}
	}
	if chall != nil && checkVector(chall, fv) == nil {
		cs := s.now()
		if csc, err := chall.predictor.Predict(fv.GetValues()); err == nil {
			p.Shadow = &eventsv1.ShadowPrediction{
				ModelName: chall.Name, ModelVersion: chall.Version, Score: csc, Decision: chall.decide(csc),
				Threshold: chall.Threshold, InferenceSeconds: s.now().Sub(cs).Seconds(),
			}
		} else {
			chall.obs.errored.Inc()
		}
	}
	now := s.now()
	p.ScoredAt = timestamppb.New(now)
	if ing := fv.GetIngestedAt(); ing != nil {
		if d := now.Sub(ing.AsTime()).Seconds(); d >= 0 {
			p.Latency.EndToEndSeconds = d
		}
	}
	return p, nil
}

// owesExplanation reports whether the explanation policy gives p an explanation in the
// prediction log: every alert, and a deterministic sample of the rest.
func (s *scorer) owesExplanation(p *eventsv1.Prediction) bool {
	return p.Decision == eventsv1.Decision_DECISION_ALERT || sampled(p.GetTransactionId(), s.sampleRate)
}

// explain computes the SHAP contributions of row and keeps the top k by absolute value.
func (s *scorer) explain(m *Model, row []float64) (*eventsv1.Explanation, error) {
	n := len(row) + 1
	bp, _ := s.contrib.Get().(*[]float64)
	if bp == nil || cap(*bp) < n {
		b := make([]float64, n)
		bp = &b
	}
	buf := (*bp)[:n]
	defer s.contrib.Put(bp)
	if _, err := m.explainer.PredictInto(buf, row); err != nil {
		return nil, fmt.Errorf("explain with model %q version %s: %w", m.Name, m.Version, err)
	}
	var idx [16]int
	top := topK(buf[:len(row)], min(s.topK, len(idx)), idx[:0])
	ex := &eventsv1.Explanation{BaseValue: buf[len(row)], Method: "tree_shap", Contributions: make([]*eventsv1.Contribution, len(top))}
	for i, j := range top {
		ex.Contributions[i] = &eventsv1.Contribution{Feature: m.names[j], Value: row[j], Contribution: buf[j]}
	}
	return ex, nil
}

// topK appends to idx the indices of the k entries of c with the largest absolute values,
// in descending order of |c| (ties: lower index first), and returns it. It does not allocate
// when cap(idx) >= k.
func topK(c []float64, k int, idx []int) []int {
	for i, v := range c {
		a := math.Abs(v)
		// position of i among the kept ones
		pos := len(idx)
		for pos > 0 && math.Abs(c[idx[pos-1]]) < a {
			pos--
		}
		if pos >= k {
			continue
		}
		if len(idx) < k {
			idx = append(idx, 0)
		}
		copy(idx[pos+1:], idx[pos:len(idx)-1])
		idx[pos] = i
	}
	return idx
}

// sampled decides deterministically from id whether a prediction falls in the sample of
// rate, so a redelivered record gets the same answer.
func sampled(id string, rate float64) bool {
	if rate <= 0 {
		return false
	}
	if rate >= 1 {
		return true
	}
	return float64(mix64(fnv64(id, 14695981039346656037))>>11)/(1<<53) < rate
}

// mix64 is the splitmix64 finaliser: FNV-1a alone leaves the high bits of ids that differ
// only in their last characters (tx-1, tx-2, ...) correlated.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func fnv64(s string, h uint64) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// predictionID derives the prediction's event id from the vector's event id, the model
// version and the path, so re-scoring a redelivered record yields the same id. A vector
// without an event id gets a random one.
func predictionID(eventID, version string, path eventsv1.ScoringPath) string {
	if eventID == "" {
		return eventid.New()
	}
	return eventid.Derived("scoring", []byte(eventID), []byte(version), []byte{byte(path)})
}
