// Package modelstore publishes trained models to MLflow in the project's artifact layout
// and loads them back for serving: resolve an alias (normally "champion") to a model
// version, download the LightGBM text model and its manifest, verify the model's SHA-256
// and the feature-spec fingerprint, and keep a verified local cache so a service can start
// and serve while MLflow is down.
//
// The layout, below a run's artifact root (docs/mlflow.md):
//
//	model/model.txt               LightGBM text model
//	model/featurespec.json        featurespec.Spec (JSON, with its fingerprint)
//	model/manifest.json           Manifest: sha256 of model.txt, spec fingerprint, task, threshold, ...
//	model/reference_profile.json  drift reference (opaque here)
//	model/model_card.md           human-readable card
//	model/plots/*.png             evaluation plots
//
// A model version's source is "<run artifact URI>/model".
package modelstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// Names of the artifact layout.
const (
	// ArtifactDir is the directory below the run's artifact root that a version's source
	// points at.
	ArtifactDir          = "model"
	FileModel            = "model.txt"
	FileFeatureSpec      = "featurespec.json"
	FileManifest         = "manifest.json"
	FileReferenceProfile = "reference_profile.json"
	FileModelCard        = "model_card.md"
	DirPlots             = "plots"
)

// Aliases and tags used on registered models.
const (
	// AliasChampion marks the version that serves.
	AliasChampion = "champion"
	// AliasChallenger marks a version that may be shadow-scored.
	AliasChallenger = "challenger"
	// TagModelSHA256 on a model version repeats Manifest.SHA256. It lives in MLflow's
	// database, apart from the artifact store, so a loader can cross-check the manifest.
	TagModelSHA256 = "mlops.model_sha256"
	// TagSpecFingerprint on a model version repeats Manifest.FeatureSpecFingerprint.
	TagSpecFingerprint = "mlops.feature_spec_fingerprint"
)

// Sentinel errors for conditions a caller acts on.
var (
	// ErrSpecMismatch means the model was trained on another feature layout than the
	// caller serves; *SpecMismatchError names both fingerprints.
	ErrSpecMismatch = errors.New("feature spec mismatch")
	// ErrIntegrity means the files of a version do not agree with each other (SHA-256 of
	// model.txt, spec fingerprint, model name): the version must not be served.
	ErrIntegrity = errors.New("model integrity check failed")
	// ErrNoCache means MLflow was unreachable and no verified local copy exists.
	ErrNoCache = errors.New("no cached model")
)

// SpecMismatchError says which fingerprints differ. It matches ErrSpecMismatch.
type SpecMismatchError struct {
	Model, Version string
	// Want is the fingerprint the caller serves; Got the one the model was trained on.
	Want, Got string
}

func (e *SpecMismatchError) Error() string {
	return fmt.Sprintf("model %q version %s was trained on feature spec %q, but this service serves %q", e.Model, e.Version, e.Got, e.Want)
}

// Is matches ErrSpecMismatch.
func (e *SpecMismatchError) Is(target error) bool { return target == ErrSpecMismatch }

// Manifest describes a published model; it is model/manifest.json.
type Manifest struct {
	// ModelName is the registered model's name.
	ModelName string `json:"model_name"`
	// Version is the registry version when known at writing time; normally empty, since
	// the manifest is uploaded before the version exists. Loaders use the registry's.
	Version string `json:"version,omitempty"`
	// SHA256 is the lower-case hex SHA-256 of model.txt.
	SHA256 string `json:"sha256"`
	// FeatureSpecFingerprint is featurespec.Spec.Fingerprint() of featurespec.json.
	FeatureSpecFingerprint string `json:"feature_spec_fingerprint"`
	// Task is the learning task (featurespec.Task), e.g. "binary".
	Task string `json:"task"`
	// Threshold is the decision threshold on the score for binary tasks.
	Threshold float64 `json:"threshold"`
	// CreatedAt is when the model was trained (UTC).
	CreatedAt time.Time `json:"created_at"`
	// LightGBMVersion is the version of LightGBM that trained the model.
	LightGBMVersion string `json:"lightgbm_version"`
}

// SHA256Hex returns the lower-case hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// NewManifest builds the manifest of modelText trained on spec.
func NewManifest(modelName string, modelText []byte, spec featurespec.Spec, threshold float64, lightgbmVersion string, createdAt time.Time) Manifest {
	return Manifest{
		ModelName:              modelName,
		SHA256:                 SHA256Hex(modelText),
		FeatureSpecFingerprint: spec.Fingerprint(),
		Task:                   string(spec.Task),
		Threshold:              threshold,
		CreatedAt:              createdAt.UTC(),
		LightGBMVersion:        lightgbmVersion,
	}
}

// Validate checks that the manifest is complete.
func (m Manifest) Validate() error {
	var errs []error
	if m.ModelName == "" {
		errs = append(errs, errors.New("model_name is empty"))
	}
	if len(m.SHA256) != 64 || strings.ToLower(m.SHA256) != m.SHA256 {
		errs = append(errs, fmt.Errorf("sha256 %q is not 64 lower-case hex digits", m.SHA256))
	} else if _, err := hex.DecodeString(m.SHA256); err != nil {
		errs = append(errs, fmt.Errorf("sha256 %q is not hex", m.SHA256))
	}
	if m.FeatureSpecFingerprint == "" {
		errs = append(errs, errors.New("feature_spec_fingerprint is empty"))
	}
	if m.Task == "" {
		errs = append(errs, errors.New("task is empty"))
	}
	return errors.Join(errs...)
}

// ParseManifest decodes and validates manifest.json; unknown fields are rejected so a
// typo in a producer does not silently drop a field.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("decode manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("invalid manifest: %w", err)
	}
	return m, nil
}

// verified is the outcome of checking one version's files.
type verified struct {
	manifest Manifest
	spec     featurespec.Spec
}

// verify checks that the files of model version agree with each other, with the
// registry's SHA-256 tag (when set) and with the spec the caller serves.
func verify(model, version string, modelText, manifestJSON, specJSON []byte, tagSHA, wantSpec string) (verified, error) {
	m, err := ParseManifest(manifestJSON)
	if err != nil {
		return verified{}, fmt.Errorf("model %q version %s: %w: %w", model, version, ErrIntegrity, err)
	}
	if m.ModelName != model {
		return verified{}, fmt.Errorf("model %q version %s: %w: manifest names model %q", model, version, ErrIntegrity, m.ModelName)
	}
	if got := SHA256Hex(modelText); got != m.SHA256 {
		return verified{}, fmt.Errorf("model %q version %s: %w: sha256 of %s is %s, manifest says %s", model, version, ErrIntegrity, FileModel, got, m.SHA256)
	}
	if tagSHA != "" && tagSHA != m.SHA256 {
		return verified{}, fmt.Errorf("model %q version %s: %w: registry tag %s=%s, manifest says %s", model, version, ErrIntegrity, TagModelSHA256, tagSHA, m.SHA256)
	}
	var spec featurespec.Spec
	if err := json.Unmarshal(specJSON, &spec); err != nil {
		return verified{}, fmt.Errorf("model %q version %s: %w: %s: %w", model, version, ErrIntegrity, FileFeatureSpec, err)
	}
	if fp := spec.Fingerprint(); fp != m.FeatureSpecFingerprint {
		return verified{}, fmt.Errorf("model %q version %s: %w: %s has fingerprint %s, manifest says %s", model, version, ErrIntegrity, FileFeatureSpec, fp, m.FeatureSpecFingerprint)
	}
	if m.FeatureSpecFingerprint != wantSpec {
		return verified{}, &SpecMismatchError{Model: model, Version: version, Want: wantSpec, Got: m.FeatureSpecFingerprint}
	}
	return verified{manifest: m, spec: spec}, nil
}
