package window

import (
	"bytes"
	"encoding/gob"
	"fmt"
)

// wireState is the encoded form of a State: what a replica publishes as a partial window.
type wireState struct {
	Start, End, Predictions, Alerts, Labels int64
	Features                                []Hist
	Score                                   Hist
	Rows, Labelled                          wireSample
	Versions                                map[string]int64
}

type wireSample struct {
	Hashes []uint64
	Values []float64
}

func (s *Sample) wire() wireSample {
	return wireSample{Hashes: s.hashes, Values: s.values}
}

// MarshalBinary encodes the state (gob). The layout is not encoded: the reader supplies it.
func (s *State) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	w := wireState{Start: s.Start, End: s.End, Predictions: s.Predictions, Alerts: s.Alerts, Labels: s.Labels,
		Features: s.Features, Score: s.Score, Rows: s.Rows.wire(), Labelled: s.Labelled.wire(), Versions: s.Versions}
	if err := gob.NewEncoder(&buf).Encode(&w); err != nil {
		return nil, fmt.Errorf("encode window state: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeState decodes a state written by MarshalBinary for layout l, checking that its
// shape matches l.
func DecodeState(l *Layout, b []byte) (*State, error) {
	var w wireState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&w); err != nil {
		return nil, fmt.Errorf("decode window state: %w", err)
	}
	if len(w.Features) != len(l.Features) {
		return nil, fmt.Errorf("window state has %d features, layout %d", len(w.Features), len(l.Features))
	}
	for i, h := range w.Features {
		if len(h.Bins) != len(l.Features[i].Edges)+1 {
			return nil, fmt.Errorf("window state feature %d has %d bins, layout %d", i, len(h.Bins), len(l.Features[i].Edges)+1)
		}
	}
	if len(w.Score.Bins) != len(l.Score.Edges)+1 {
		return nil, fmt.Errorf("window state score has %d bins, layout %d", len(w.Score.Bins), len(l.Score.Edges)+1)
	}
	rowW, labW := len(l.Features)+1, labelledWidth
	if len(w.Rows.Values) != len(w.Rows.Hashes)*rowW || len(w.Labelled.Values) != len(w.Labelled.Hashes)*labW {
		return nil, fmt.Errorf("window state samples do not match the layout's widths")
	}
	s := NewState(l)
	s.Start, s.End, s.Predictions, s.Alerts, s.Labels = w.Start, w.End, w.Predictions, w.Alerts, w.Labels
	for i := range s.Features {
		s.Features[i] = w.Features[i]
	}
	s.Score = w.Score
	for i, h := range w.Rows.Hashes {
		s.Rows.Offer(h, w.Rows.Values[i*rowW:(i+1)*rowW])
	}
	for i, h := range w.Labelled.Hashes {
		s.Labelled.Offer(h, w.Labelled.Values[i*labW:(i+1)*labW])
	}
	if w.Versions != nil {
		s.Versions = w.Versions
	}
	return s, nil
}
