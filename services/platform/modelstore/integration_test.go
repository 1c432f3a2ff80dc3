package modelstore_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
	"github.com/streaming-mlops/mlops/services/platform/modelstore"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// TestModelStoreChampionRoundTrip publishes two versions to the real MLflow, promotes
// them in turn, loads the champion, then loads it again with MLflow unreachable.
func TestModelStoreChampionRoundTrip(t *testing.T) {
	t.Parallel()
	c := mlflow.New(stacktest.MLflowURL(t))
	t.Cleanup(c.HTTP.CloseIdleConnections)
	ctx := t.Context()
	spec := featurespec.Fraud()
	fp := spec.Fingerprint()
	name := fmt.Sprintf("test-modelstore-%d-%s", time.Now().UnixNano(), rand.Text()[:6])

	expID, err := c.EnsureExperiment(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string][]byte{}
	for _, want := range []string{"1", "2"} {
		run, err := c.CreateRun(ctx, expID, "train-"+want, nil)
		if err != nil {
			t.Fatal(err)
		}
		text := []byte(fmt.Sprintf("tree\nversion=v4\n# %s %s\n", name, want))
		m, source, err := modelstore.Publish(ctx, c, run, modelstore.Bundle{
			ModelName: name, ModelText: text, Spec: spec, Threshold: 0.35, LightGBMVersion: "4.7.0",
			ReferenceProfile: []byte(`{"features":{}}`), ModelCard: []byte("# " + name),
			Plots: map[string][]byte{"roc.png": {0x89, 'P', 'N', 'G', 0x0d, 0x0a}},
		})
		if err != nil {
			t.Fatalf("Publish() = %v", err)
		}
		if err := c.FinishRun(ctx, run.ID, mlflow.RunFinished); err != nil {
			t.Fatal(err)
		}
		mv, err := modelstore.Register(ctx, c, m, source, run.ID)
		if err != nil {
			t.Fatalf("Register() = %v", err)
		}
		if mv.Version != want || mv.Tags[modelstore.TagModelSHA256] != m.SHA256 || mv.Tags[modelstore.TagSpecFingerprint] != fp {
			t.Fatalf("Register() = %+v, want version %s tagged with sha and fingerprint", mv, want)
		}
		plots, err := c.ListArtifacts(ctx, mv.Source, modelstore.DirPlots)
		if err != nil || len(plots) != 1 || plots[0].Path != "plots/roc.png" {
			t.Errorf("ListArtifacts(plots) = %+v, %v; want plots/roc.png", plots, err)
		}
		texts[want] = text
	}

	cacheDir := t.TempDir()
	store := &modelstore.Store{Client: c, CacheDir: cacheDir}
	prev, err := store.Promote(ctx, name, modelstore.AliasChampion, "1", fp)
	if err != nil || prev != "" {
		t.Fatalf("Promote(1) = %q, %v", prev, err)
	}
	l, err := store.Champion(ctx, name, fp)
	if err != nil {
		t.Fatalf("Champion() = %v", err)
	}
	if l.Version != "1" || l.FromCache || !bytes.Equal(l.ModelText, texts["1"]) || l.Manifest.Threshold != 0.35 {
		t.Errorf("Champion() = version %s fromCache %v threshold %v, want fresh version 1", l.Version, l.FromCache, l.Manifest.Threshold)
	}

	prev, err = store.Promote(ctx, name, modelstore.AliasChampion, "2", fp)
	if err != nil || prev != "1" {
		t.Fatalf("Promote(2) = %q, %v; want previous 1", prev, err)
	}
	l, err = store.Champion(ctx, name, fp)
	if err != nil || l.Version != "2" || !bytes.Equal(l.ModelText, texts["2"]) {
		t.Fatalf("Champion() after promotion = version %s, %v; want version 2", l.Version, err)
	}
	if _, err := store.Champion(ctx, name, featurespec.Purchase().Fingerprint()); err == nil {
		t.Error("Champion() for the purchase spec succeeded, want ErrSpecMismatch")
	}

	// MLflow unreachable: a closed port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	down := mlflow.New("http://" + addr)
	down.Retry = mlflow.RetryPolicy{Attempts: 2, BaseDelay: time.Millisecond}
	t.Cleanup(down.HTTP.CloseIdleConnections)
	offline := &modelstore.Store{Client: down, CacheDir: cacheDir}
	cached, err := offline.Champion(ctx, name, fp)
	if err != nil {
		t.Fatalf("Champion() with MLflow unreachable = %v, want the cached copy", err)
	}
	if !cached.FromCache || cached.Version != "2" || !bytes.Equal(cached.ModelText, texts["2"]) || cached.Manifest != l.Manifest {
		t.Errorf("cached Champion() = version %s fromCache %v, want cached version 2 equal to the fresh one", cached.Version, cached.FromCache)
	}
	if v1, err := offline.Load(ctx, name, "1", fp); err != nil || !v1.FromCache || !bytes.Equal(v1.ModelText, texts["1"]) {
		t.Errorf("Load(1) with MLflow unreachable = fromCache %v, %v; want the cached version 1", v1.FromCache, err)
	}
}
