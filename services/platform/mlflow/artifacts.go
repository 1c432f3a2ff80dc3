package mlflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// ErrUnsupportedArtifactURI means an artifact URI is neither "mlflow-artifacts:" (the
// server's artifact proxy) nor "runs:/": the client cannot reach such a store directly.
var ErrUnsupportedArtifactURI = errors.New("mlflow: unsupported artifact URI (want mlflow-artifacts:/ or runs:/; run the server with --serve-artifacts)")

// FileInfo describes one artifact.
type FileInfo struct {
	// Path is relative to the artifact URI that was listed, e.g. "model/model.txt".
	Path  string
	IsDir bool
	// Size in bytes; 0 for directories.
	Size int64
}

// cleanRel validates an artifact path relative to an artifact root: non-empty, no leading
// slash, no "." or ".." segments, no backslashes.
func cleanRel(rel string, allowEmpty bool) (string, error) {
	if rel == "" {
		if allowEmpty {
			return "", nil
		}
		return "", errors.New("empty artifact path")
	}
	if strings.HasPrefix(rel, "/") || strings.Contains(rel, `\`) {
		return "", fmt.Errorf("artifact path %q must be relative and use forward slashes", rel)
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(rel, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("artifact path %q has an empty, \".\" or \"..\" segment", rel)
		}
	}
	return strings.TrimSuffix(rel, "/"), nil
}

// proxyPath resolves an artifact URI to the path below the server's artifact proxy root.
// "runs:/<run id>/<path>" is resolved through GetRun.
func (c *Client) proxyPath(ctx context.Context, artifactURI string) (string, error) {
	if rest, ok := strings.CutPrefix(artifactURI, "runs:/"); ok {
		runID, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
		if runID == "" {
			return "", fmt.Errorf("artifact URI %q has no run id", artifactURI)
		}
		run, err := c.GetRun(ctx, runID)
		if err != nil {
			return "", fmt.Errorf("resolve %q: %w", artifactURI, err)
		}
		if strings.HasPrefix(run.ArtifactURI, "runs:/") {
			return "", fmt.Errorf("resolve %q: run artifact URI %q: %w", artifactURI, run.ArtifactURI, ErrUnsupportedArtifactURI)
		}
		base, err := c.proxyPath(ctx, run.ArtifactURI)
		if err != nil {
			return "", err
		}
		if sub, err = cleanRel(sub, true); err != nil {
			return "", fmt.Errorf("resolve %q: %w", artifactURI, err)
		}
		return joinPath(base, sub), nil
	}
	rest, ok := strings.CutPrefix(artifactURI, "mlflow-artifacts:")
	if !ok {
		return "", fmt.Errorf("artifact URI %q: %w", artifactURI, ErrUnsupportedArtifactURI)
	}
	// Either "mlflow-artifacts:/1/<run>/artifacts" or, with an authority,
	// "mlflow-artifacts://host:port/1/<run>/artifacts"; the authority is ignored because
	// the proxy is always the server this client talks to.
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		_, p, _ := strings.Cut(after, "/")
		rest = p
	}
	return strings.Trim(rest, "/"), nil
}

func joinPath(base, rel string) string {
	switch {
	case rel == "":
		return base
	case base == "":
		return rel
	}
	return base + "/" + rel
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// LogArtifact uploads data as relPath below artifactURI (normally Run.ArtifactURI),
// replacing any artifact already at that path.
func (c *Client) LogArtifact(ctx context.Context, artifactURI, relPath string, data []byte) error {
	rel, err := cleanRel(relPath, false)
	if err != nil {
		return fmt.Errorf("log artifact: %w", err)
	}
	base, err := c.proxyPath(ctx, artifactURI)
	if err != nil {
		return fmt.Errorf("log artifact %q: %w", relPath, err)
	}
	if data == nil {
		data = []byte{}
	}
	err = c.do(ctx, request{method: http.MethodPut, path: artifactPrefix + "/" + escapePath(joinPath(base, rel)), raw: data})
	if err != nil {
		return fmt.Errorf("log artifact %q to %s: %w", relPath, artifactURI, err)
	}
	return nil
}

// DownloadArtifact returns the bytes of relPath below artifactURI, which may be a run's
// artifact URI, a model version's source ("mlflow-artifacts:/..." or "runs:/<id>/...").
// A missing artifact is ErrNotFound.
func (c *Client) DownloadArtifact(ctx context.Context, artifactURI, relPath string) ([]byte, error) {
	rel, err := cleanRel(relPath, false)
	if err != nil {
		return nil, fmt.Errorf("download artifact: %w", err)
	}
	base, err := c.proxyPath(ctx, artifactURI)
	if err != nil {
		return nil, fmt.Errorf("download artifact %q: %w", relPath, err)
	}
	var data []byte
	err = c.do(ctx, request{method: http.MethodGet, path: artifactPrefix + "/" + escapePath(joinPath(base, rel)), rawOut: &data})
	if err != nil {
		return nil, fmt.Errorf("download artifact %q from %s: %w", relPath, artifactURI, err)
	}
	return data, nil
}

// ListArtifacts lists the direct children of dir below artifactURI (dir "" is the root).
// Paths in the result are relative to artifactURI. Listing a missing directory returns
// an empty list, as MLflow does.
func (c *Client) ListArtifacts(ctx context.Context, artifactURI, dir string) ([]FileInfo, error) {
	rel, err := cleanRel(dir, true)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	base, err := c.proxyPath(ctx, artifactURI)
	if err != nil {
		return nil, fmt.Errorf("list artifacts %q: %w", dir, err)
	}
	var resp struct {
		Files []struct {
			Path     string `json:"path"`
			IsDir    bool   `json:"is_dir"`
			FileSize millis `json:"file_size"`
		} `json:"files"`
	}
	q := url.Values{"path": {joinPath(base, rel)}}
	if err := c.do(ctx, request{method: http.MethodGet, path: artifactPrefix, query: q, out: &resp}); err != nil {
		return nil, fmt.Errorf("list artifacts %q in %s: %w", dir, artifactURI, err)
	}
	out := make([]FileInfo, 0, len(resp.Files))
	for _, f := range resp.Files {
		// The proxy answers with names relative to the listed directory.
		out = append(out, FileInfo{Path: path.Join(rel, f.Path), IsDir: f.IsDir, Size: int64(f.FileSize)})
	}
	return out, nil
}
