package modelstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
)

// Store loads verified model versions from MLflow and caches them on local disk.
//
// Cache layout: CacheDir/<model>/<version>/{model.txt, featurespec.json, manifest.json,
// registry.json} and one pointer file per alias, CacheDir/<model>/<alias>, holding the
// version number. Every file is written to a temporary file and renamed into place, and
// a version's manifest.json is written last, so a crash leaves either the old state or a
// complete new one. A Store is safe for concurrent use, also by several processes
// sharing CacheDir.
type Store struct {
	// Client reaches MLflow. Required.
	Client *mlflow.Client
	// CacheDir holds the local copies. Empty disables caching (and the fallback).
	CacheDir string
	// Logger receives Warn records about cache writes that failed and fallbacks taken.
	// Default: discard.
	Logger *slog.Logger
}

// Loaded is a verified model version ready to serve.
type Loaded struct {
	ModelName string
	Version   string
	// Alias is the alias that was resolved ("" when loaded by version).
	Alias string
	// RunID and Source locate the version in MLflow.
	RunID, Source string
	// ModelText is the LightGBM text model; its SHA-256 equals Manifest.SHA256.
	ModelText []byte
	// SpecJSON is featurespec.json as published; Spec is it decoded.
	SpecJSON []byte
	Spec     featurespec.Spec
	Manifest Manifest
	// FromCache is true when MLflow was unavailable and the local copy was served.
	FromCache bool
	// FallbackCause is the MLflow error that led to the cache (nil unless FromCache).
	FallbackCause error

	manifestJSON []byte // manifest.json as downloaded, cached byte for byte
	tagSHA       string // the version's TagModelSHA256, "" when not set
}

func (s *Store) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

var (
	versionRE = regexp.MustCompile(`^[0-9]+$`)
	aliasRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// checkName rejects model names that cannot be one path segment.
func checkName(model string) error {
	if model == "" || model == "." || model == ".." || strings.ContainsAny(model, "/\\\x00") {
		return fmt.Errorf("model name %q cannot be used as a directory name", model)
	}
	return nil
}

func checkAlias(alias string) error {
	if !aliasRE.MatchString(alias) || versionRE.MatchString(alias) {
		return fmt.Errorf("alias %q: want letters, digits, '_' or '-', not only digits", alias)
	}
	return nil
}

// Champion loads the version the "champion" alias points at; see LoadAlias.
func (s *Store) Champion(ctx context.Context, model, wantSpecFingerprint string) (Loaded, error) {
	return s.LoadAlias(ctx, model, AliasChampion, wantSpecFingerprint)
}

// LoadAlias resolves alias of model to a version, downloads model.txt, featurespec.json and
// manifest.json from the version's source, verifies them (SHA-256, spec fingerprint
// against the manifest and against wantSpecFingerprint), caches them and moves the
// local alias pointer.
//
// Errors: a version whose files disagree is ErrIntegrity and one trained on another spec
// is *SpecMismatchError (ErrSpecMismatch); neither is ever served from anywhere. When
// MLflow is unavailable (mlflow.ErrUnavailable), the cached copy is re-verified and
// returned with FromCache set; without one the error matches both
// mlflow.ErrUnavailable and ErrNoCache. Other MLflow errors (an alias that is not set,
// mlflow.ErrNotFound) are returned as they are: the registry answered, so the cache is
// not consulted.
func (s *Store) LoadAlias(ctx context.Context, model, alias, wantSpecFingerprint string) (Loaded, error) {
	if err := s.check(model, wantSpecFingerprint); err != nil {
		return Loaded{}, err
	}
	if err := checkAlias(alias); err != nil {
		return Loaded{}, err
	}
	mv, err := s.Client.GetVersionByAlias(ctx, model, alias)
	if err != nil {
		if s.canFallBack(ctx, err) {
			return s.fallback(model, alias, "", wantSpecFingerprint, err)
		}
		return Loaded{}, fmt.Errorf("resolve alias %q of model %q: %w", alias, model, err)
	}
	l, err := s.fetch(ctx, mv, wantSpecFingerprint)
	if err != nil {
		if s.canFallBack(ctx, err) {
			return s.fallback(model, alias, mv.Version, wantSpecFingerprint, err)
		}
		return Loaded{}, err
	}
	l.Alias = alias
	if s.CacheDir != "" {
		if err := s.writeCache(l); err != nil {
			s.logger().WarnContext(ctx, "model cache not updated; serving from mlflow", "model", model, "model_version", l.Version, "err", err)
		} else if err := s.writePointer(model, alias, l.Version); err != nil {
			s.logger().WarnContext(ctx, "model cache alias pointer not updated", "model", model, "alias", alias, "model_version", l.Version, "err", err)
		}
	}
	return l, nil
}

// Load loads one version of model (for rollback or a challenger), verified as in
// LoadAlias, and caches it without moving any alias pointer. When MLflow is unavailable
// the cached copy of that version is served.
func (s *Store) Load(ctx context.Context, model, version, wantSpecFingerprint string) (Loaded, error) {
	if err := s.check(model, wantSpecFingerprint); err != nil {
		return Loaded{}, err
	}
	if !versionRE.MatchString(version) {
		return Loaded{}, fmt.Errorf("model version %q is not a number", version)
	}
	mv, err := s.Client.GetModelVersion(ctx, model, version)
	if err == nil {
		var l Loaded
		l, err = s.fetch(ctx, mv, wantSpecFingerprint)
		if err == nil {
			if s.CacheDir != "" {
				if cerr := s.writeCache(l); cerr != nil {
					s.logger().WarnContext(ctx, "model cache not updated; serving from mlflow", "model", model, "model_version", version, "err", cerr)
				}
			}
			return l, nil
		}
	}
	if s.canFallBack(ctx, err) {
		return s.fallback(model, "", version, wantSpecFingerprint, err)
	}
	return Loaded{}, fmt.Errorf("load model %q version %s: %w", model, version, err)
}

func (s *Store) check(model, wantSpec string) error {
	if s.Client == nil {
		return errors.New("modelstore: Store has no Client")
	}
	if wantSpec == "" {
		return errors.New("modelstore: the feature spec fingerprint to serve is required")
	}
	return checkName(model)
}

// canFallBack reports whether err is an outage (not the caller's cancellation, not an
// authoritative answer) and a cache exists to fall back to.
func (s *Store) canFallBack(ctx context.Context, err error) bool {
	return s.CacheDir != "" && ctx.Err() == nil && mlflow.IsUnavailable(err)
}

// fetch downloads and verifies the files of mv.
func (s *Store) fetch(ctx context.Context, mv mlflow.ModelVersion, wantSpec string) (Loaded, error) {
	files := make(map[string][]byte, 3)
	for _, name := range []string{FileManifest, FileFeatureSpec, FileModel} {
		b, err := s.Client.DownloadArtifact(ctx, mv.Source, name)
		if err != nil {
			return Loaded{}, fmt.Errorf("fetch model %q version %s: %w", mv.Name, mv.Version, err)
		}
		files[name] = b
	}
	v, err := verify(mv.Name, mv.Version, files[FileModel], files[FileManifest], files[FileFeatureSpec], mv.Tags[TagModelSHA256], wantSpec)
	if err != nil {
		return Loaded{}, err
	}
	return Loaded{
		ModelName: mv.Name, Version: mv.Version, RunID: mv.RunID, Source: mv.Source,
		ModelText: files[FileModel], SpecJSON: files[FileFeatureSpec], Spec: v.spec, Manifest: v.manifest,
		manifestJSON: files[FileManifest], tagSHA: mv.Tags[TagModelSHA256],
	}, nil
}

// fallback serves the cached copy of version (or, when version is "", of the version the
// local alias pointer names) after an MLflow outage described by cause.
func (s *Store) fallback(model, alias, version, wantSpec string, cause error) (Loaded, error) {
	if version == "" {
		v, err := s.readPointer(model, alias)
		if err != nil {
			return Loaded{}, fmt.Errorf("load model %q alias %q: %w (%w: %w)", model, alias, cause, ErrNoCache, err)
		}
		version = v
	}
	l, err := s.readCache(model, version, wantSpec)
	if err != nil {
		if errors.Is(err, ErrIntegrity) || errors.Is(err, ErrSpecMismatch) {
			return Loaded{}, fmt.Errorf("mlflow unavailable (%v) and the cached copy is unusable: %w", cause, err) //nolint:errorlint // the cache problem is the error callers act on
		}
		return Loaded{}, fmt.Errorf("load model %q version %s: %w (%w: %w)", model, version, cause, ErrNoCache, err)
	}
	l.Alias, l.FromCache, l.FallbackCause = alias, true, cause
	s.logger().Warn("mlflow unavailable; serving the verified cached model", "model", model, "alias", alias, "model_version", version, "err", cause)
	return l, nil
}
