package mlflow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Model version registration states.
const (
	VersionPendingRegistration = "PENDING_REGISTRATION"
	VersionFailedRegistration  = "FAILED_REGISTRATION"
	VersionReady               = "READY"
)

// ModelVersion is one version of a registered model.
type ModelVersion struct {
	Name    string
	Version string // MLflow's decimal version number, "1", "2", ...
	RunID   string
	// Source is where the version's files live, e.g.
	// "mlflow-artifacts:/1/<run id>/artifacts/model"; DownloadArtifact accepts it.
	Source        string
	Status        string
	StatusMessage string
	Description   string
	Tags          map[string]string
	// Aliases is filled by GetModelVersion and GetVersionByAlias, not by
	// SearchModelVersions (MLflow omits aliases there).
	Aliases   []string
	CreatedAt time.Time
	UpdatedAt time.Time
	Number    int64 // Version parsed as an integer, for ordering
}

type wireVersion struct {
	Name                 string     `json:"name"`
	Version              string     `json:"version"`
	RunID                string     `json:"run_id"`
	Source               string     `json:"source"`
	Status               string     `json:"status"`
	StatusMessage        string     `json:"status_message"`
	Description          string     `json:"description"`
	Tags                 []keyValue `json:"tags"`
	Aliases              []string   `json:"aliases"`
	CreationTimestamp    millis     `json:"creation_timestamp"`
	LastUpdatedTimestamp millis     `json:"last_updated_timestamp"`
}

func (w wireVersion) version() ModelVersion {
	n, _ := strconv.ParseInt(w.Version, 10, 64)
	return ModelVersion{
		Name: w.Name, Version: w.Version, RunID: w.RunID, Source: w.Source,
		Status: w.Status, StatusMessage: w.StatusMessage, Description: w.Description,
		Tags: kvMap(w.Tags), Aliases: w.Aliases,
		CreatedAt: w.CreationTimestamp.time(), UpdatedAt: w.LastUpdatedTimestamp.time(),
		Number: n,
	}
}

// RegisteredModel is a registered model with its aliases.
type RegisteredModel struct {
	Name        string
	Description string
	Tags        map[string]string
	// Aliases maps alias → version.
	Aliases map[string]string
}

// EnsureRegisteredModel creates the registered model name unless it exists.
func (c *Client) EnsureRegisteredModel(ctx context.Context, name string) error {
	err := c.post(ctx, "registered-models/create", map[string]string{"name": name}, nil)
	if err == nil || errors.Is(err, ErrAlreadyExists) {
		return nil
	}
	return fmt.Errorf("create registered model %q: %w", name, err)
}

// GetRegisteredModel returns a registered model and its aliases.
func (c *Client) GetRegisteredModel(ctx context.Context, name string) (RegisteredModel, error) {
	var resp struct {
		RegisteredModel struct {
			Name        string     `json:"name"`
			Description string     `json:"description"`
			Tags        []keyValue `json:"tags"`
			Aliases     []struct {
				Alias   string `json:"alias"`
				Version string `json:"version"`
			} `json:"aliases"`
		} `json:"registered_model"`
	}
	if err := c.get(ctx, "registered-models/get", url.Values{"name": {name}}, &resp); err != nil {
		return RegisteredModel{}, fmt.Errorf("get registered model %q: %w", name, err)
	}
	rm := resp.RegisteredModel
	out := RegisteredModel{Name: rm.Name, Description: rm.Description, Tags: kvMap(rm.Tags), Aliases: make(map[string]string, len(rm.Aliases))}
	for _, a := range rm.Aliases {
		out.Aliases[a.Alias] = a.Version
	}
	return out, nil
}

// CreateModelVersion registers source (normally Run.ArtifactURI + "/model") produced by
// run runID as a new version of model name, with tags, and waits (polling, bounded by
// Client.RegisterWait and ctx) until the version is READY. A version that ends in
// FAILED_REGISTRATION is returned with an error matching ErrRegistrationFailed.
func (c *Client) CreateModelVersion(ctx context.Context, name, source, runID string, tags map[string]string) (ModelVersion, error) {
	body := struct {
		Name   string     `json:"name"`
		Source string     `json:"source"`
		RunID  string     `json:"run_id,omitempty"`
		Tags   []keyValue `json:"tags,omitempty"`
	}{Name: name, Source: source, RunID: runID, Tags: keyValues(tags)}
	var resp struct {
		ModelVersion wireVersion `json:"model_version"`
	}
	if err := c.post(ctx, "model-versions/create", body, &resp); err != nil {
		return ModelVersion{}, fmt.Errorf("create version of model %q from %s: %w", name, source, err)
	}
	mv := resp.ModelVersion.version()
	return c.waitReady(ctx, mv)
}

// waitReady polls a version until it leaves PENDING_REGISTRATION.
func (c *Client) waitReady(ctx context.Context, mv ModelVersion) (ModelVersion, error) {
	wait := c.RegisterWait
	if wait <= 0 {
		wait = DefaultRegisterWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	delay := 100 * time.Millisecond
	for {
		switch mv.Status {
		case VersionReady, "":
			// "" : servers that do not report status register synchronously.
			return mv, nil
		case VersionFailedRegistration:
			return mv, fmt.Errorf("model %q version %s: %w: %s", mv.Name, mv.Version, ErrRegistrationFailed, mv.StatusMessage)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return mv, fmt.Errorf("wait for model %q version %s to be ready: %w", mv.Name, mv.Version, ctx.Err())
		case <-deadline.C:
			t.Stop()
			return mv, fmt.Errorf("model %q version %s still %s after %s: %w", mv.Name, mv.Version, mv.Status, wait, ErrUnavailable)
		case <-t.C:
		}
		delay = min(delay*2, 2*time.Second)
		next, err := c.GetModelVersion(ctx, mv.Name, mv.Version)
		if err != nil {
			return mv, err
		}
		mv = next
	}
}

// GetModelVersion returns one version of a model (with its aliases).
func (c *Client) GetModelVersion(ctx context.Context, name, version string) (ModelVersion, error) {
	var resp struct {
		ModelVersion wireVersion `json:"model_version"`
	}
	if err := c.get(ctx, "model-versions/get", url.Values{"name": {name}, "version": {version}}, &resp); err != nil {
		return ModelVersion{}, fmt.Errorf("get model %q version %s: %w", name, version, err)
	}
	return resp.ModelVersion.version(), nil
}

// SearchModelVersions returns every version of model name, newest first, following
// MLflow's pagination. Aliases are not filled (use GetRegisteredModel).
func (c *Client) SearchModelVersions(ctx context.Context, name string) ([]ModelVersion, error) {
	// MLflow's filter grammar quotes strings with single quotes; reject a quote rather
	// than guess its escaping.
	if strings.ContainsAny(name, `'"`) {
		return nil, fmt.Errorf("search versions of model %q: quotes in model names are not supported", name)
	}
	var out []ModelVersion
	token := ""
	for page := 0; ; page++ {
		if page >= 1000 {
			return nil, fmt.Errorf("search versions of model %q: more than 1000 pages", name)
		}
		q := url.Values{
			"filter":      {"name='" + name + "'"},
			"max_results": {"1000"},
			"order_by":    {"version_number DESC"},
		}
		if token != "" {
			q.Set("page_token", token)
		}
		var resp struct {
			ModelVersions []wireVersion `json:"model_versions"`
			NextPageToken string        `json:"next_page_token"`
		}
		if err := c.get(ctx, "model-versions/search", q, &resp); err != nil {
			return nil, fmt.Errorf("search versions of model %q: %w", name, err)
		}
		for _, w := range resp.ModelVersions {
			out = append(out, w.version())
		}
		if resp.NextPageToken == "" {
			break
		}
		token = resp.NextPageToken
	}
	// The server already orders; sort again so the contract does not depend on it.
	slices.SortStableFunc(out, func(a, b ModelVersion) int { return cmp.Compare(b.Number, a.Number) })
	return out, nil
}

// SetAlias points alias at version of model name, moving it if it pointed elsewhere.
// MLflow reserves "latest" and "v<number>" as alias names.
func (c *Client) SetAlias(ctx context.Context, name, alias, version string) error {
	body := map[string]string{"name": name, "alias": alias, "version": version}
	if err := c.post(ctx, "registered-models/alias", body, nil); err != nil {
		return fmt.Errorf("set alias %q of model %q to version %s: %w", alias, name, version, err)
	}
	return nil
}

// DeleteAlias removes alias from model name. Deleting an alias that is not set succeeds.
func (c *Client) DeleteAlias(ctx context.Context, name, alias string) error {
	// MLflow reads the parameters of DELETE from a JSON body, not the query string.
	body := map[string]string{"name": name, "alias": alias}
	if err := c.do(ctx, request{method: "DELETE", path: apiPrefix + "registered-models/alias", body: body}); err != nil {
		return fmt.Errorf("delete alias %q of model %q: %w", alias, name, err)
	}
	return nil
}

// GetVersionByAlias returns the version alias points at. An alias that is not set (or a
// model that does not exist) is an error matching ErrNotFound.
func (c *Client) GetVersionByAlias(ctx context.Context, name, alias string) (ModelVersion, error) {
	var resp struct {
		ModelVersion wireVersion `json:"model_version"`
	}
	err := c.get(ctx, "registered-models/alias", url.Values{"name": {name}, "alias": {alias}}, &resp)
	if err == nil {
		return resp.ModelVersion.version(), nil
	}
	if errors.Is(err, ErrInvalidParameter) {
		// MLflow 3 answers a missing alias with 400 INVALID_PARAMETER_VALUE, the same code
		// as a malformed request. Tell them apart without parsing the message: ask the
		// model for its aliases.
		rm, gerr := c.GetRegisteredModel(ctx, name)
		if gerr == nil {
			if _, set := rm.Aliases[alias]; !set {
				return ModelVersion{}, &AliasNotFoundError{Model: name, Alias: alias, Err: err}
			}
		}
	}
	return ModelVersion{}, fmt.Errorf("get alias %q of model %q: %w", alias, name, err)
}

// AliasNotFoundError says an alias is not set on a model; it matches ErrNotFound.
type AliasNotFoundError struct {
	Model, Alias string
	// Err is MLflow's answer.
	Err error
}

func (e *AliasNotFoundError) Error() string {
	return fmt.Sprintf("alias %q of model %q is not set: %v", e.Alias, e.Model, e.Err)
}

// Is matches ErrNotFound.
func (e *AliasNotFoundError) Is(target error) bool { return target == ErrNotFound }

// Unwrap returns MLflow's answer.
func (e *AliasNotFoundError) Unwrap() error { return e.Err }

// SetModelVersionTag sets tag key=value on version of model name.
func (c *Client) SetModelVersionTag(ctx context.Context, name, version, key, value string) error {
	body := map[string]string{"name": name, "version": version, "key": key, "value": value}
	if err := c.post(ctx, "model-versions/set-tag", body, nil); err != nil {
		return fmt.Errorf("set tag %q on model %q version %s: %w", key, name, version, err)
	}
	return nil
}
