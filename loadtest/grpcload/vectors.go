package grpcload

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// ScoreMethod is the full name of the platform's synchronous Score RPC.
const ScoreMethod = "/mlops.scoring.v1.ScoringService/Score"

// EncodeScoreRequests encodes one ScoreRequest per row, carrying the row as the request's
// FeatureVector of spec (explain off: what a caller that only wants the decision sends).
func EncodeScoreRequests(spec featurespec.Spec, rows [][]float64, explain bool) ([][]byte, error) {
	out := make([][]byte, len(rows))
	for i, row := range rows {
		if err := spec.CheckVector(row); err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
		id := fmt.Sprintf("bench-%d", i)
		b, err := proto.Marshal(&scoringv1.ScoreRequest{Explain: explain, Features: &eventsv1.FeatureVector{
			EventId: id, TransactionId: id, AccountId: "bench", SpecName: spec.Name,
			SpecVersion: strconv.Itoa(spec.Version), SpecFingerprint: spec.Fingerprint(), Values: row}})
		if err != nil {
			return nil, fmt.Errorf("encode score request %d: %w", i, err)
		}
		out[i] = b
	}
	return out, nil
}

// EncodeV2Requests encodes one V2 ModelInferRequest per row for model.
func EncodeV2Requests(model string, rows [][]float64) [][]byte {
	out := make([][]byte, len(rows))
	for i, row := range rows {
		out[i] = EncodeV2Infer(model, "", row)
	}
	return out
}

// WriteVectorsCSV writes rows under a header of spec's feature names.
func WriteVectorsCSV(w io.Writer, spec featurespec.Spec, rows [][]float64) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(spec.Names()); err != nil {
		return err
	}
	rec := make([]string, spec.Len())
	for _, row := range rows {
		for j, v := range row {
			rec[j] = strconv.FormatFloat(v, 'g', -1, 64)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadVectorsCSV reads rows written by WriteVectorsCSV; the header must be spec's names in
// order.
func ReadVectorsCSV(r io.Reader, spec featurespec.Spec) ([][]float64, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read vectors: %w", err)
	}
	if len(recs) < 2 {
		return nil, errors.New("read vectors: no rows")
	}
	names := spec.Names()
	if len(recs[0]) != len(names) {
		return nil, fmt.Errorf("read vectors: %d columns, spec %s has %d", len(recs[0]), spec.ID(), len(names))
	}
	for j, n := range names {
		if recs[0][j] != n {
			return nil, fmt.Errorf("read vectors: column %d is %q, spec %s says %q", j, recs[0][j], spec.ID(), n)
		}
	}
	rows := make([][]float64, 0, len(recs)-1)
	for i, rec := range recs[1:] {
		row := make([]float64, len(rec))
		for j, s := range rec {
			if row[j], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("read vectors: row %d column %s: %w", i+1, names[j], err)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}
