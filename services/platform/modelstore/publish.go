package modelstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
)

// Bundle is everything a training run publishes for one model.
type Bundle struct {
	// ModelName is the registered model the bundle is meant for.
	ModelName string
	// ModelText is the LightGBM text model (model.txt).
	ModelText []byte
	// Spec is the feature layout the model was trained on.
	Spec featurespec.Spec
	// Threshold is the decision threshold for binary tasks.
	Threshold float64
	// LightGBMVersion names the library version that trained the model.
	LightGBMVersion string
	// CreatedAt is the training time; zero means now.
	CreatedAt time.Time
	// ReferenceProfile is reference_profile.json; optional.
	ReferenceProfile []byte
	// ModelCard is model_card.md; optional.
	ModelCard []byte
	// Plots maps a file name ("roc.png") to its content, stored under plots/; optional.
	Plots map[string][]byte
}

// Publish uploads b below run's artifact root in the layout of this package (manifest.json
// last, so a reader that finds the manifest finds the rest) and returns the manifest and
// the source URI to register.
func Publish(ctx context.Context, c *mlflow.Client, run mlflow.Run, b Bundle) (Manifest, string, error) {
	if err := checkName(b.ModelName); err != nil {
		return Manifest{}, "", err
	}
	if len(b.ModelText) == 0 {
		return Manifest{}, "", errors.New("publish: empty model text")
	}
	if err := b.Spec.Validate(); err != nil {
		return Manifest{}, "", fmt.Errorf("publish: %w", err)
	}
	created := b.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	m := NewManifest(b.ModelName, b.ModelText, b.Spec, b.Threshold, b.LightGBMVersion, created)
	specJSON, err := json.MarshalIndent(b.Spec, "", "  ")
	if err != nil {
		return Manifest{}, "", fmt.Errorf("publish: encode feature spec: %w", err)
	}
	manifestJSON, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, "", fmt.Errorf("publish: encode manifest: %w", err)
	}
	type file struct {
		rel  string
		data []byte
	}
	files := []file{{FileModel, b.ModelText}, {FileFeatureSpec, specJSON}}
	if b.ReferenceProfile != nil {
		files = append(files, file{FileReferenceProfile, b.ReferenceProfile})
	}
	if b.ModelCard != nil {
		files = append(files, file{FileModelCard, b.ModelCard})
	}
	for _, name := range slices.Sorted(maps.Keys(b.Plots)) {
		if name == "" || strings.ContainsAny(name, "/\\") {
			return Manifest{}, "", fmt.Errorf("publish: plot name %q must be a plain file name", name)
		}
		files = append(files, file{path.Join(DirPlots, name), b.Plots[name]})
	}
	files = append(files, file{FileManifest, manifestJSON})
	for _, f := range files {
		if err := c.LogArtifact(ctx, run.ArtifactURI, path.Join(ArtifactDir, f.rel), f.data); err != nil {
			return Manifest{}, "", fmt.Errorf("publish model %q: %w", b.ModelName, err)
		}
	}
	return m, strings.TrimSuffix(run.ArtifactURI, "/") + "/" + ArtifactDir, nil
}

// Register creates a new version of m.ModelName (creating the registered model when
// needed) from source, produced by runID, tagged with the manifest's SHA-256 and spec
// fingerprint, and waits until it is READY.
func Register(ctx context.Context, c *mlflow.Client, m Manifest, source, runID string) (mlflow.ModelVersion, error) {
	if err := m.Validate(); err != nil {
		return mlflow.ModelVersion{}, fmt.Errorf("register: %w", err)
	}
	if err := c.EnsureRegisteredModel(ctx, m.ModelName); err != nil {
		return mlflow.ModelVersion{}, fmt.Errorf("register: %w", err)
	}
	tags := map[string]string{TagModelSHA256: m.SHA256, TagSpecFingerprint: m.FeatureSpecFingerprint}
	mv, err := c.CreateModelVersion(ctx, m.ModelName, source, runID, tags)
	if err != nil {
		return mlflow.ModelVersion{}, fmt.Errorf("register: %w", err)
	}
	return mv, nil
}

// Promote points alias of model at version after checking, by loading it from MLflow,
// that the version verifies and was trained on wantSpecFingerprint. It returns the
// version the alias pointed at before ("" when unset), which a rollback promotes again.
// Promote never uses the local cache: with MLflow down there is nothing to promote.
func (s *Store) Promote(ctx context.Context, model, alias, version, wantSpecFingerprint string) (previous string, err error) {
	if err := checkAlias(alias); err != nil {
		return "", err
	}
	noCache := *s
	noCache.CacheDir = ""
	if _, err := noCache.Load(ctx, model, version, wantSpecFingerprint); err != nil {
		return "", fmt.Errorf("promote model %q version %s to %q: %w", model, version, alias, err)
	}
	cur, err := s.Client.GetVersionByAlias(ctx, model, alias)
	switch {
	case err == nil:
		previous = cur.Version
	case errors.Is(err, mlflow.ErrNotFound):
	default:
		return "", fmt.Errorf("promote model %q version %s to %q: %w", model, version, alias, err)
	}
	if err := s.Client.SetAlias(ctx, model, alias, version); err != nil {
		return previous, fmt.Errorf("promote model %q version %s to %q: %w", model, version, alias, err)
	}
	return previous, nil
}
