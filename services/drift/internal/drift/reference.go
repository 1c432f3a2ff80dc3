package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/streaming-mlops/mlops/services/drift/internal/window"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/profile"
)

// Reference is one champion's reference, ready to compare windows with.
type Reference struct {
	Model, Version, RunID string
	SpecFingerprint       string
	Names                 []string
	Layout                *window.Layout
	Ref                   *window.Reference
	Profile               *profile.Profile
}

// ReferenceSource loads the reference of a model's current champion.
type ReferenceSource interface {
	Load(ctx context.Context, model string) (*Reference, error)
}

// registrySource loads references from the MLflow registry: the champion alias's version,
// its manifest (threshold, task, spec fingerprint), its feature spec (valid ranges) and its
// reference_profile.json.
type registrySource struct {
	client *mlflow.Client
	cfg    Config
}

// Load resolves the champion of model and builds its reference.
func (r registrySource) Load(ctx context.Context, model string) (*Reference, error) {
	mv, err := r.client.GetVersionByAlias(ctx, model, modelstore.AliasChampion)
	if err != nil {
		return nil, fmt.Errorf("resolve champion of %q: %w", model, err)
	}
	get := func(name string) ([]byte, error) {
		b, err := r.client.DownloadArtifact(ctx, mv.Source, name)
		if err != nil {
			return nil, fmt.Errorf("fetch %s of %q version %s: %w", name, model, mv.Version, err)
		}
		return b, nil
	}
	manJSON, err := get(modelstore.FileManifest)
	if err != nil {
		return nil, err
	}
	man, err := modelstore.ParseManifest(manJSON)
	if err != nil {
		return nil, fmt.Errorf("manifest of %q version %s: %w", model, mv.Version, err)
	}
	specJSON, err := get(modelstore.FileFeatureSpec)
	if err != nil {
		return nil, err
	}
	var spec featurespec.Spec
	if err := json.Unmarshal(specJSON, &spec); err != nil {
		return nil, fmt.Errorf("feature spec of %q version %s: %w", model, mv.Version, err)
	}
	profJSON, err := get(modelstore.FileReferenceProfile)
	if err != nil {
		return nil, err
	}
	prof, err := profile.Unmarshal(profJSON)
	if err != nil {
		return nil, fmt.Errorf("reference profile of %q version %s: %w", model, mv.Version, err)
	}
	ref, err := NewReference(model, mv.Version, mv.RunID, spec, man.Threshold, prof, r.cfg)
	if err != nil {
		return nil, fmt.Errorf("reference of %q version %s: %w", model, mv.Version, err)
	}
	return ref, nil
}

// NewReference builds a Reference from a champion's spec, threshold and profile. The
// profile must describe the spec's features in order.
func NewReference(model, version, runID string, spec featurespec.Spec, threshold float64, prof *profile.Profile, cfg Config) (*Reference, error) {
	if prof.SpecFingerprint != spec.Fingerprint() {
		return nil, fmt.Errorf("profile is for spec %s, model for %s", prof.SpecFingerprint, spec.Fingerprint())
	}
	if len(prof.Features) != spec.Len() {
		return nil, fmt.Errorf("profile has %d features, spec %d", len(prof.Features), spec.Len())
	}
	if prof.Score == nil {
		return nil, fmt.Errorf("profile has no score distribution")
	}
	l := &window.Layout{SampleSize: cfg.WindowCount, LabelledSize: cfg.LabelledSample}
	ref := &window.Reference{
		Regression: spec.Task == featurespec.TaskRegression, Threshold: threshold, AlertRate: prof.AlertRate,
		ReviewCost: cfg.ReviewCost, MinCount: int64(cfg.MinCount), MinLabels: int64(cfg.MinLabels),
		ReferenceAUC: metric(prof.Holdout, "auc"), ReferenceMSE: metric(prof.Holdout, "mse"), ReferenceEstAUC: math.NaN(), ReferenceEstFloor: math.NaN(),
	}
	switch {
	case prof.Platt != nil:
		ref.Calibration = *prof.Platt
		if prof.EstimatedAUC > 0 && prof.EstimatedAUCFloor > 0 {
			ref.ReferenceEstAUC, ref.ReferenceEstFloor = prof.EstimatedAUC, prof.EstimatedAUCFloor
		}
	case prof.Calibration != nil:
		// An older profile: isotonic only; its estimate has no reference to compare with.
		ref.Calibration = *prof.Calibration
	}
	names := spec.Names()
	for i, f := range spec.Features {
		d := &prof.Features[i]
		if d.Name != f.Name {
			return nil, fmt.Errorf("profile feature %d is %q, spec says %q", i, d.Name, f.Name)
		}
		l.Features = append(l.Features, window.Column{Name: f.Name, Edges: d.Edges, Min: f.Min, Max: f.Max})
		ref.Features = append(ref.Features, refColumn(d))
	}
	l.Score = window.Column{Name: "score", Edges: prof.Score.Edges}
	if spec.Task == featurespec.TaskBinary {
		l.Score.Max = 1
	}
	ref.Score = refColumn(prof.Score)
	return &Reference{Model: model, Version: version, RunID: runID, SpecFingerprint: spec.Fingerprint(),
		Names: names, Layout: l, Ref: ref, Profile: prof}, nil
}

func refColumn(d *profile.Distribution) window.RefColumn {
	c := window.RefColumn{Fractions: d.Fractions, Sample: d.Sample}
	if a := d.Alarm; a != nil {
		c.PSI, c.KS, c.JS, c.CalibratedAt = a.PSI, a.KS, a.JS, a.WindowSize
	}
	return c
}

func metric(m map[string]float64, k string) float64 {
	if v, ok := m[k]; ok {
		return v
	}
	return math.NaN()
}
