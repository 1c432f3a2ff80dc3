package mlflow_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// realClient returns a client for the real MLflow named by MLOPS_TEST_MLFLOW_URL.
func realClient(t *testing.T) *mlflow.Client {
	t.Helper()
	c := mlflow.New(stacktest.MLflowURL(t))
	t.Cleanup(c.HTTP.CloseIdleConnections)
	return c
}

// unique gives names that do not collide across runs against a long-lived server.
func unique(t *testing.T, prefix string) string {
	t.Helper()
	return fmt.Sprintf("%s-%d-%s", prefix, time.Now().UnixNano(), rand.Text()[:6])
}

// TestMLflowFlow walks the whole tracking and registry flow against the real server:
// experiment, run, params/metrics/tags, artifact round trip, two registered versions,
// and the champion alias set, moved, read and deleted.
func TestMLflowFlow(t *testing.T) {
	t.Parallel()
	c := realClient(t)
	ctx := t.Context()

	expName := unique(t, "test-flow")
	expID, err := c.EnsureExperiment(ctx, expName)
	if err != nil {
		t.Fatalf("EnsureExperiment() = %v", err)
	}
	again, err := c.EnsureExperiment(ctx, expName)
	if err != nil || again != expID {
		t.Fatalf("second EnsureExperiment() = %q, %v; want %q", again, err, expID)
	}

	run, err := c.CreateRun(ctx, expID, "train-1", map[string]string{"mlops.spec": "fraud-v1"})
	if err != nil {
		t.Fatalf("CreateRun() = %v", err)
	}
	if run.Status != mlflow.RunRunning || run.ArtifactURI == "" || run.Tags["mlops.spec"] != "fraud-v1" {
		t.Fatalf("CreateRun() = %+v, want a RUNNING run with an artifact URI and the tag", run)
	}
	ts := time.UnixMilli(1_750_000_000_123)
	metrics := []mlflow.Metric{
		{Key: "auc", Value: 0.81, Step: 0, Timestamp: ts},
		{Key: "auc", Value: 0.87, Step: 1, Timestamp: ts.Add(time.Second)},
		{Key: "logloss", Value: 0.31, Step: 1},
	}
	params := map[string]string{"num_leaves": "31", "learning_rate": "0.05"}
	if err := c.LogBatch(ctx, run.ID, params, metrics, map[string]string{"stage": "eval"}); err != nil {
		t.Fatalf("LogBatch() = %v", err)
	}
	if err := c.LogParam(ctx, run.ID, "seed", "42"); err != nil {
		t.Fatalf("LogParam() = %v", err)
	}
	if err := c.LogParam(ctx, run.ID, "seed", "43"); !errors.Is(err, mlflow.ErrInvalidParameter) {
		t.Errorf("changing a logged param = %v, want ErrInvalidParameter", err)
	}

	// Artifacts: every byte value, a nested path and a name with a space.
	model := make([]byte, 0, 70_000)
	for i := range 70_000 {
		model = append(model, byte(i*7))
	}
	files := map[string][]byte{
		"model/model.txt":     model,
		"model/manifest.json": []byte(`{"sha256":"x"}`),
		"model/plots/a b.png": {0x89, 'P', 'N', 'G', 0, 0xff},
		"model/empty.txt":     {},
	}
	for p, b := range files {
		if err := c.LogArtifact(ctx, run.ArtifactURI, p, b); err != nil {
			t.Fatalf("LogArtifact(%q) = %v", p, err)
		}
	}
	for p, want := range files {
		got, err := c.DownloadArtifact(ctx, run.ArtifactURI, p)
		if err != nil {
			t.Fatalf("DownloadArtifact(%q) = %v", p, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("DownloadArtifact(%q) returned %d bytes differing from the %d uploaded", p, len(got), len(want))
		}
	}
	if _, err := c.DownloadArtifact(ctx, run.ArtifactURI, "model/missing.txt"); !errors.Is(err, mlflow.ErrNotFound) {
		t.Errorf("DownloadArtifact(missing) = %v, want ErrNotFound", err)
	}
	listing, err := c.ListArtifacts(ctx, run.ArtifactURI, "model")
	if err != nil {
		t.Fatalf("ListArtifacts() = %v", err)
	}
	gotList := map[string]mlflow.FileInfo{}
	for _, f := range listing {
		gotList[f.Path] = f
	}
	if f := gotList["model/model.txt"]; f.IsDir || f.Size != int64(len(model)) {
		t.Errorf("ListArtifacts() entry for model.txt = %+v, want a %d-byte file", f, len(model))
	}
	if f, ok := gotList["model/plots"]; !ok || !f.IsDir {
		t.Errorf("ListArtifacts() = %+v, want the model/plots directory", listing)
	}

	if err := c.FinishRun(ctx, run.ID, mlflow.RunFinished); err != nil {
		t.Fatalf("FinishRun() = %v", err)
	}
	got, err := c.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatalf("GetRun() = %v", err)
	}
	if got.Status != mlflow.RunFinished || got.EndTime.IsZero() {
		t.Errorf("GetRun() status %s end %v, want FINISHED with an end time", got.Status, got.EndTime)
	}
	if got.Params["num_leaves"] != "31" || got.Params["seed"] != "42" || got.Tags["stage"] != "eval" {
		t.Errorf("GetRun() params %v tags %v, want the logged ones", got.Params, got.Tags)
	}
	if m := got.Metrics["auc"]; m.Value != 0.87 || m.Step != 1 || !m.Timestamp.Equal(ts.Add(time.Second)) {
		t.Errorf("GetRun() latest auc = %+v, want 0.87 at step 1, %v", m, ts.Add(time.Second))
	}
	if _, err := c.GetRun(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, mlflow.ErrNotFound) || mlflow.ErrorCode(err) != mlflow.CodeResourceDoesNotExist {
		t.Errorf("GetRun(unknown) = %v (code %q), want RESOURCE_DOES_NOT_EXIST", err, mlflow.ErrorCode(err))
	}

	// Registry.
	name := unique(t, "test-model")
	for range 2 {
		if err := c.EnsureRegisteredModel(ctx, name); err != nil {
			t.Fatalf("EnsureRegisteredModel() = %v", err)
		}
	}
	source := run.ArtifactURI + "/model"
	v1, err := c.CreateModelVersion(ctx, name, source, run.ID, map[string]string{"mlops.model_sha256": "abc"})
	if err != nil {
		t.Fatalf("CreateModelVersion() = %v", err)
	}
	v2, err := c.CreateModelVersion(ctx, name, source, run.ID, nil)
	if err != nil {
		t.Fatalf("CreateModelVersion() = %v", err)
	}
	if v1.Version != "1" || v2.Version != "2" || v1.Status != mlflow.VersionReady || v1.Source != source || v1.RunID != run.ID {
		t.Fatalf("versions = %+v, %+v; want READY versions 1 and 2 of %s", v1, v2, source)
	}
	// A version's source is a valid artifact URI; so is runs:/.
	for _, uri := range []string{v1.Source, "runs:/" + run.ID + "/model"} {
		b, err := c.DownloadArtifact(ctx, uri, "model.txt")
		if err != nil || !bytes.Equal(b, model) {
			t.Errorf("DownloadArtifact(%s, model.txt) = %d bytes, %v; want the uploaded model", uri, len(b), err)
		}
	}

	if _, err := c.GetVersionByAlias(ctx, name, "champion"); !errors.Is(err, mlflow.ErrNotFound) {
		t.Errorf("GetVersionByAlias() before any alias = %v, want ErrNotFound", err)
	}
	if err := c.SetAlias(ctx, name, "champion", v1.Version); err != nil {
		t.Fatalf("SetAlias() = %v", err)
	}
	if mv, err := c.GetVersionByAlias(ctx, name, "champion"); err != nil || mv.Version != "1" || mv.Tags["mlops.model_sha256"] != "abc" {
		t.Errorf("GetVersionByAlias() = %+v, %v; want version 1 with its tag", mv, err)
	}
	if err := c.SetAlias(ctx, name, "champion", v2.Version); err != nil {
		t.Fatalf("SetAlias(move) = %v", err)
	}
	if mv, err := c.GetVersionByAlias(ctx, name, "champion"); err != nil || mv.Version != "2" {
		t.Errorf("GetVersionByAlias() after move = %+v, %v; want version 2", mv, err)
	}
	if err := c.SetAlias(ctx, name, "challenger", v1.Version); err != nil {
		t.Fatalf("SetAlias(challenger) = %v", err)
	}
	rm, err := c.GetRegisteredModel(ctx, name)
	if err != nil || rm.Aliases["champion"] != "2" || rm.Aliases["challenger"] != "1" {
		t.Errorf("GetRegisteredModel() = %+v, %v; want champion→2, challenger→1", rm, err)
	}
	if err := c.SetAlias(ctx, name, "champion", "99"); !errors.Is(err, mlflow.ErrNotFound) {
		t.Errorf("SetAlias(unknown version) = %v, want ErrNotFound", err)
	}

	if err := c.SetModelVersionTag(ctx, name, v2.Version, "mlops.promoted_by", "test"); err != nil {
		t.Fatalf("SetModelVersionTag() = %v", err)
	}
	mv, err := c.GetModelVersion(ctx, name, v2.Version)
	if err != nil || mv.Tags["mlops.promoted_by"] != "test" || len(mv.Aliases) != 1 || mv.Aliases[0] != "champion" {
		t.Errorf("GetModelVersion() = %+v, %v; want the tag and alias champion", mv, err)
	}
	versions, err := c.SearchModelVersions(ctx, name)
	if err != nil {
		t.Fatalf("SearchModelVersions() = %v", err)
	}
	if len(versions) != 2 || versions[0].Version != "2" || versions[1].Version != "1" {
		t.Errorf("SearchModelVersions() = %+v, want versions 2 then 1", versions)
	}

	if err := c.DeleteAlias(ctx, name, "champion"); err != nil {
		t.Fatalf("DeleteAlias() = %v", err)
	}
	if _, err := c.GetVersionByAlias(ctx, name, "champion"); !errors.Is(err, mlflow.ErrNotFound) {
		t.Errorf("GetVersionByAlias() after delete = %v, want ErrNotFound", err)
	}
	if _, err := c.GetModelVersion(ctx, name+"-nope", "1"); !errors.Is(err, mlflow.ErrNotFound) {
		t.Errorf("GetModelVersion(unknown model) = %v, want ErrNotFound", err)
	}
}

// TestMLflowEnsureExperimentConcurrent races several creators of one experiment.
func TestMLflowEnsureExperimentConcurrent(t *testing.T) {
	t.Parallel()
	c := realClient(t)
	name := unique(t, "test-race")
	ids := make([]string, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i], errs[i] = c.EnsureExperiment(t.Context(), name) })
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Errorf("EnsureExperiment #%d = %q, %v; want %q", i, ids[i], errs[i], ids[0])
		}
	}
}
