package modelstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// fileRegistry records where a cached version came from.
const fileRegistry = "registry.json"

type registryRecord struct {
	Name   string `json:"name"`
	Ver    string `json:"version"`
	RunID  string `json:"run_id"`
	Source string `json:"source"`
	// TagSHA256 is the version's TagModelSHA256 at download time ("" when not set).
	TagSHA256 string `json:"tag_sha256,omitempty"`
}

func (s *Store) versionDir(model, version string) string {
	return filepath.Join(s.CacheDir, model, version)
}

// writeFileAtomic writes data to path through a temporary file in the same directory,
// synced before the rename, so readers see the old file or the complete new one.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// writeCache stores the files of a verified version; manifest.json goes last because
// readCache treats a version without one as absent.
func (s *Store) writeCache(l Loaded) error {
	dir := s.versionDir(l.ModelName, l.Version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	rec, err := json.MarshalIndent(registryRecord{Name: l.ModelName, Ver: l.Version, RunID: l.RunID, Source: l.Source, TagSHA256: l.tagSHA}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", fileRegistry, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{FileModel, l.ModelText},
		{FileFeatureSpec, l.SpecJSON},
		{fileRegistry, rec},
		{FileManifest, l.manifestJSON},
	} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("cache model %q version %s: %w", l.ModelName, l.Version, err)
		}
	}
	return nil
}

// writePointer records that alias of model names version.
func (s *Store) writePointer(model, alias, version string) error {
	return writeFileAtomic(filepath.Join(s.CacheDir, model, alias), []byte(version+"\n"))
}

// readPointer returns the version the local alias pointer names.
func (s *Store) readPointer(model, alias string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.CacheDir, model, alias))
	if err != nil {
		return "", fmt.Errorf("read cached alias %q of model %q: %w", alias, model, err)
	}
	v := strings.TrimSpace(string(b))
	if !versionRE.MatchString(v) {
		return "", fmt.Errorf("cached alias %q of model %q holds %q, not a version", alias, model, v)
	}
	return v, nil
}

// readCache loads and re-verifies a cached version.
func (s *Store) readCache(model, version, wantSpec string) (Loaded, error) {
	dir := s.versionDir(model, version)
	files := map[string][]byte{}
	for _, name := range []string{FileManifest, FileModel, FileFeatureSpec, fileRegistry} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return Loaded{}, fmt.Errorf("read cached model %q version %s: %w", model, version, err)
		}
		files[name] = b
	}
	var rec registryRecord
	if err := json.Unmarshal(files[fileRegistry], &rec); err != nil {
		return Loaded{}, fmt.Errorf("cached model %q version %s: %w: %s: %w", model, version, ErrIntegrity, fileRegistry, err)
	}
	if rec.Name != model || rec.Ver != version {
		return Loaded{}, fmt.Errorf("cached model %q version %s: %w: %s names %q version %s", model, version, ErrIntegrity, fileRegistry, rec.Name, rec.Ver)
	}
	v, err := verify(model, version, files[FileModel], files[FileManifest], files[FileFeatureSpec], rec.TagSHA256, wantSpec)
	if err != nil {
		return Loaded{}, fmt.Errorf("cached copy: %w", err)
	}
	return Loaded{
		ModelName: model, Version: version, RunID: rec.RunID, Source: rec.Source,
		ModelText: files[FileModel], SpecJSON: files[FileFeatureSpec], Spec: v.spec, Manifest: v.manifest,
		manifestJSON: files[FileManifest], tagSHA: rec.TagSHA256,
	}, nil
}
