package modelstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/mlflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const modelName = "fraud"

// fakeMLflow is just enough of MLflow's REST API for the loader: aliases, versions and
// the artifact proxy, with failure injection.
type fakeMLflow struct {
	mu        sync.Mutex
	versions  map[string]map[string]string // version → tags
	aliases   map[string]string            // alias → version
	artifacts map[string][]byte            // proxy path → bytes
	// fail maps a URL path prefix to the status every matching request gets.
	fail map[string]int
}

func newFakeMLflow() *fakeMLflow {
	return &fakeMLflow{versions: map[string]map[string]string{}, aliases: map[string]string{}, artifacts: map[string][]byte{}, fail: map[string]int{}}
}

func source(version string) string { return "mlflow-artifacts:/1/run" + version + "/artifacts/model" }

func (f *fakeMLflow) versionDoc(v string) map[string]any {
	var tags []map[string]string
	for k, val := range f.versions[v] {
		tags = append(tags, map[string]string{"key": k, "value": val})
	}
	return map[string]any{"name": modelName, "version": v, "run_id": "run" + v, "source": source(v), "status": "READY", "tags": tags}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeMLflow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for prefix, status := range f.fail {
		if strings.HasPrefix(r.URL.Path, prefix) {
			reply(w, status, map[string]string{"error_code": "INTERNAL_ERROR", "message": "injected"})
			return
		}
	}
	q := r.URL.Query()
	notFound := func(msg string) {
		reply(w, 404, map[string]string{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": msg})
	}
	switch p := r.URL.Path; {
	case p == "/api/2.0/mlflow/registered-models/alias" && r.Method == http.MethodGet:
		v, ok := f.aliases[q.Get("alias")]
		if !ok || q.Get("name") != modelName {
			reply(w, 400, map[string]string{"error_code": "INVALID_PARAMETER_VALUE", "message": "Registered model alias " + q.Get("alias") + " not found."})
			return
		}
		reply(w, 200, map[string]any{"model_version": f.versionDoc(v)})
	case p == "/api/2.0/mlflow/registered-models/alias" && r.Method == http.MethodPost:
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if _, ok := f.versions[body["version"]]; !ok {
			notFound("no version")
			return
		}
		f.aliases[body["alias"]] = body["version"]
		reply(w, 200, map[string]any{})
	case p == "/api/2.0/mlflow/registered-models/get":
		var aliases []map[string]string
		for a, v := range f.aliases {
			aliases = append(aliases, map[string]string{"alias": a, "version": v})
		}
		reply(w, 200, map[string]any{"registered_model": map[string]any{"name": modelName, "aliases": aliases}})
	case p == "/api/2.0/mlflow/model-versions/get":
		if _, ok := f.versions[q.Get("version")]; !ok || q.Get("name") != modelName {
			notFound("Model Version not found")
			return
		}
		reply(w, 200, map[string]any{"model_version": f.versionDoc(q.Get("version"))})
	case strings.HasPrefix(p, "/api/2.0/mlflow-artifacts/artifacts/"):
		key := strings.TrimPrefix(p, "/api/2.0/mlflow-artifacts/artifacts/")
		switch r.Method {
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			f.artifacts[key] = b
			reply(w, 200, map[string]any{})
		case http.MethodGet:
			b, ok := f.artifacts[key]
			if !ok {
				notFound("No such artifact")
				return
			}
			_, _ = w.Write(b)
		}
	default:
		notFound("no such endpoint " + p)
	}
}

func (f *fakeMLflow) setFail(prefix string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == 0 {
		delete(f.fail, prefix)
		return
	}
	f.fail[prefix] = status
}

// overwrite replaces one published file of a version.
func (f *fakeMLflow) overwrite(version, name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.artifacts["1/run"+version+"/artifacts/model/"+name] = data
}

type env struct {
	fake  *fakeMLflow
	store *Store
	dir   string
}

func fastClient(url string) *mlflow.Client {
	c := mlflow.New(url)
	c.Retry = mlflow.RetryPolicy{Attempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}
	return c
}

func newEnv(t *testing.T) *env {
	t.Helper()
	fake := newFakeMLflow()
	srv := httptest.NewServer(fake)
	c := fastClient(srv.URL)
	t.Cleanup(func() {
		c.HTTP.CloseIdleConnections()
		srv.Close()
	})
	dir := t.TempDir()
	return &env{fake: fake, store: &Store{Client: c, CacheDir: dir}, dir: dir}
}

// downStore shares e's cache but talks to a closed port.
func (e *env) downStore(t *testing.T) *Store {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	c := fastClient("http://" + addr)
	t.Cleanup(c.HTTP.CloseIdleConnections)
	return &Store{Client: c, CacheDir: e.dir}
}

// modelText stands in for a LightGBM text model; its content only matters for hashing.
func modelText(version string) []byte {
	return []byte("tree\nversion=v4\nnum_class=1\n# model " + version + "\n")
}

// publish puts a version in the fake through Publish and registers it.
func (e *env) publish(t *testing.T, version string, spec featurespec.Spec, tagSHA bool) Manifest {
	t.Helper()
	run := mlflow.Run{ArtifactURI: "mlflow-artifacts:/1/run" + version + "/artifacts"}
	m, src, err := Publish(t.Context(), e.store.Client, run, Bundle{
		ModelName: modelName, ModelText: modelText(version), Spec: spec, Threshold: 0.5,
		LightGBMVersion: "4.7.0", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ModelCard: []byte("# card"), Plots: map[string][]byte{"roc.png": {0x89, 'P', 'N', 'G'}},
	})
	if err != nil {
		t.Fatalf("Publish() = %v", err)
	}
	if src != source(version) {
		t.Fatalf("Publish() source = %q, want %q", src, source(version))
	}
	tags := map[string]string{}
	if tagSHA {
		tags[TagModelSHA256] = m.SHA256
	}
	e.fake.mu.Lock()
	e.fake.versions[version] = tags
	e.fake.mu.Unlock()
	return m
}

func (e *env) setAlias(alias, version string) {
	e.fake.mu.Lock()
	defer e.fake.mu.Unlock()
	e.fake.aliases[alias] = version
}

var fraudFP = featurespec.Fraud().Fingerprint()

func TestPublishLayout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := e.publish(t, "1", featurespec.Fraud(), true)
	e.fake.mu.Lock()
	var keys []string
	for k := range e.fake.artifacts {
		keys = append(keys, k)
	}
	manifestJSON := e.fake.artifacts["1/run1/artifacts/model/manifest.json"]
	e.fake.mu.Unlock()
	want := []string{"featurespec.json", "manifest.json", "model.txt", "model_card.md", "plots/roc.png"}
	for i := range want {
		want[i] = "1/run1/artifacts/model/" + want[i]
	}
	if diff := cmp.Diff(want, keys, cmpSorted); diff != "" {
		t.Errorf("published files mismatch (-want +got):\n%s", diff)
	}
	got, err := ParseManifest(manifestJSON)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("manifest mismatch (-want +got):\n%s", diff)
	}
	if got.SHA256 != SHA256Hex(modelText("1")) || got.FeatureSpecFingerprint != fraudFP || got.Task != "binary" {
		t.Errorf("manifest = %+v, want sha of model.txt, fingerprint %s, task binary", got, fraudFP)
	}
}

var cmpSorted = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func TestChampionLoadsCachesAndFallsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(t, "1", featurespec.Fraud(), true)
	e.publish(t, "2", featurespec.Fraud(), true)
	e.setAlias(AliasChampion, "2")

	l, err := e.store.Champion(t.Context(), modelName, fraudFP)
	if err != nil {
		t.Fatalf("Champion() = %v", err)
	}
	if l.FromCache || l.Version != "2" || l.Alias != AliasChampion || l.RunID != "run2" || !bytes.Equal(l.ModelText, modelText("2")) {
		t.Errorf("Champion() = version %s alias %q run %q fromCache %v, want fresh version 2", l.Version, l.Alias, l.RunID, l.FromCache)
	}
	if l.Spec.Fingerprint() != fraudFP || l.Manifest.Threshold != 0.5 {
		t.Errorf("Champion() spec %s threshold %v", l.Spec.Fingerprint(), l.Manifest.Threshold)
	}
	ptr, err := os.ReadFile(filepath.Join(e.dir, modelName, AliasChampion))
	if err != nil || string(ptr) != "2\n" {
		t.Errorf("champion pointer = %q, %v; want \"2\\n\"", ptr, err)
	}
	cached, err := os.ReadFile(filepath.Join(e.dir, modelName, "2", FileModel))
	if err != nil || !bytes.Equal(cached, modelText("2")) {
		t.Errorf("cached model.txt = %q, %v", cached, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(e.dir, modelName, "2", ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left in the cache: %v", leftovers)
	}

	down := e.downStore(t)
	got, err := down.Champion(t.Context(), modelName, fraudFP)
	if err != nil {
		t.Fatalf("Champion() with MLflow down = %v, want the cached copy", err)
	}
	if !got.FromCache || !mlflow.IsUnavailable(got.FallbackCause) || got.Version != "2" || !bytes.Equal(got.ModelText, l.ModelText) || got.RunID != "run2" {
		t.Errorf("Champion() with MLflow down = version %s fromCache %v cause %v", got.Version, got.FromCache, got.FallbackCause)
	}
	if diff := cmp.Diff(l.Manifest, got.Manifest); diff != "" {
		t.Errorf("cached manifest mismatch (-fresh +cached):\n%s", diff)
	}

	// Load (rollback) of version 1 caches it but leaves the champion pointer alone.
	v1, err := e.store.Load(t.Context(), modelName, "1", fraudFP)
	if err != nil || v1.Version != "1" || v1.Alias != "" || v1.FromCache {
		t.Fatalf("Load(1) = version %s alias %q fromCache %v, %v", v1.Version, v1.Alias, v1.FromCache, err)
	}
	if ptr, _ := os.ReadFile(filepath.Join(e.dir, modelName, AliasChampion)); string(ptr) != "2\n" {
		t.Errorf("champion pointer after Load(1) = %q, want unchanged \"2\\n\"", ptr)
	}
	if got, err := down.Load(t.Context(), modelName, "1", fraudFP); err != nil || !got.FromCache || !bytes.Equal(got.ModelText, modelText("1")) {
		t.Errorf("Load(1) with MLflow down = fromCache %v, %v; want the cached version 1", got.FromCache, err)
	}
}

func TestFallbackWithoutCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.downStore(t).Champion(t.Context(), modelName, fraudFP)
	if !errors.Is(err, ErrNoCache) || !mlflow.IsUnavailable(err) {
		t.Errorf("Champion() with MLflow down and no cache = %v, want ErrNoCache and ErrUnavailable", err)
	}
	noDir := *e.downStore(t)
	noDir.CacheDir = ""
	if _, err := noDir.Champion(t.Context(), modelName, fraudFP); !mlflow.IsUnavailable(err) {
		t.Errorf("Champion() without CacheDir = %v, want ErrUnavailable", err)
	}
}

func TestCorruptedCacheIsNotServed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		wantErr error
	}{
		{
			name: "model bit flip",
			corrupt: func(t *testing.T, dir string) {
				p := filepath.Join(dir, FileModel)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[3] ^= 1
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrIntegrity,
		},
		{
			name: "truncated manifest",
			corrupt: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, FileManifest), []byte(`{"model_name":`), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrIntegrity,
		},
		{
			name: "spec edited",
			corrupt: func(t *testing.T, dir string) {
				b, err := json.Marshal(featurespec.Purchase())
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, FileFeatureSpec), b, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrIntegrity,
		},
		{
			name: "model removed",
			corrupt: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, FileModel)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNoCache,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.publish(t, "1", featurespec.Fraud(), true)
			e.setAlias(AliasChampion, "1")
			if _, err := e.store.Champion(t.Context(), modelName, fraudFP); err != nil {
				t.Fatal(err)
			}
			tt.corrupt(t, filepath.Join(e.dir, modelName, "1"))
			l, err := e.downStore(t).Champion(t.Context(), modelName, fraudFP)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Champion() from a damaged cache = %v (served %d bytes), want %v", err, len(l.ModelText), tt.wantErr)
			}
			if l.ModelText != nil {
				t.Error("Champion() returned model text along with an error")
			}
		})
	}
}

func TestVerificationFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(e *env)
		want    string
		wantErr error
	}{
		{
			name:    "model changed after manifest",
			setup:   func(e *env) { e.fake.overwrite("1", FileModel, []byte("tree\nsomething else\n")) },
			want:    fraudFP,
			wantErr: ErrIntegrity,
		},
		{
			name: "registry tag disagrees with manifest",
			setup: func(e *env) {
				e.fake.mu.Lock()
				e.fake.versions["1"][TagModelSHA256] = strings.Repeat("0", 64)
				e.fake.mu.Unlock()
			},
			want:    fraudFP,
			wantErr: ErrIntegrity,
		},
		{
			name: "manifest for another model",
			setup: func(e *env) {
				m := NewManifest("purchase", modelText("1"), featurespec.Fraud(), 0.5, "4.7.0", time.Now())
				b, _ := json.Marshal(m)
				e.fake.overwrite("1", FileManifest, b)
			},
			want:    fraudFP,
			wantErr: ErrIntegrity,
		},
		{
			name:    "serving another spec",
			setup:   func(e *env) {},
			want:    featurespec.Purchase().Fingerprint(),
			wantErr: ErrSpecMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.publish(t, "1", featurespec.Fraud(), true)
			e.setAlias(AliasChampion, "1")
			tt.setup(e)
			l, err := e.store.Champion(t.Context(), modelName, tt.want)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Champion() = %v, want %v", err, tt.wantErr)
			}
			if l.ModelText != nil {
				t.Error("Champion() returned model text along with an error")
			}
			if _, statErr := os.Stat(filepath.Join(e.dir, modelName, AliasChampion)); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("a rejected version moved the cached champion pointer (stat: %v)", statErr)
			}
		})
	}
}

func TestSpecMismatchNamesBoth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(t, "1", featurespec.Fraud(), false)
	e.setAlias(AliasChampion, "1")
	want := featurespec.Purchase().Fingerprint()
	_, err := e.store.Champion(t.Context(), modelName, want)
	sm, ok := errors.AsType[*SpecMismatchError](err)
	if !ok {
		t.Fatalf("Champion() = %v, want *SpecMismatchError", err)
	}
	if sm.Want != want || sm.Got != fraudFP || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fraudFP) {
		t.Errorf("SpecMismatchError = %+v (%q), want both fingerprints", sm, err)
	}
	// A cached copy for another spec is not served either.
	if _, err := e.store.Champion(t.Context(), modelName, fraudFP); err != nil {
		t.Fatal(err)
	}
	if _, err := e.downStore(t).Champion(t.Context(), modelName, want); !errors.Is(err, ErrSpecMismatch) {
		t.Errorf("Champion() from cache for another spec = %v, want ErrSpecMismatch", err)
	}
}

func TestFallbackOnlyOnOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(t, "1", featurespec.Fraud(), true)
	e.setAlias(AliasChampion, "1")
	if _, err := e.store.Champion(t.Context(), modelName, fraudFP); err != nil {
		t.Fatal(err)
	}

	// The registry says the alias is gone: an answer, not an outage.
	e.fake.mu.Lock()
	delete(e.fake.aliases, AliasChampion)
	e.fake.mu.Unlock()
	if _, err := e.store.Champion(t.Context(), modelName, fraudFP); !errors.Is(err, mlflow.ErrNotFound) {
		t.Errorf("Champion() with the alias deleted = %v, want ErrNotFound (no fallback)", err)
	}
	e.setAlias(AliasChampion, "1")

	// The artifact proxy fails with 500 after the alias resolved: serve the cached
	// copy of exactly that version.
	e.fake.setFail("/api/2.0/mlflow-artifacts/", 500)
	l, err := e.store.Champion(t.Context(), modelName, fraudFP)
	if err != nil || !l.FromCache || l.Version != "1" {
		t.Errorf("Champion() with artifacts failing = version %s fromCache %v, %v; want cached version 1", l.Version, l.FromCache, err)
	}
	e.fake.setFail("/api/2.0/mlflow-artifacts/", 0)

	// The caller's own cancellation is not an outage.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if l, err := e.store.Champion(ctx, modelName, fraudFP); !errors.Is(err, context.Canceled) || l.FromCache {
		t.Errorf("Champion() with a cancelled context = fromCache %v, %v; want context.Canceled", l.FromCache, err)
	}
}

func TestPromote(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(t, "1", featurespec.Fraud(), true)
	e.publish(t, "2", featurespec.Fraud(), true)
	ctx := t.Context()
	prev, err := e.store.Promote(ctx, modelName, AliasChampion, "1", fraudFP)
	if err != nil || prev != "" {
		t.Fatalf("Promote(1) = %q, %v; want no previous champion", prev, err)
	}
	prev, err = e.store.Promote(ctx, modelName, AliasChampion, "2", fraudFP)
	if err != nil || prev != "1" {
		t.Fatalf("Promote(2) = %q, %v; want previous 1", prev, err)
	}
	e.fake.overwrite("1", FileModel, []byte("garbage"))
	if _, err := e.store.Promote(ctx, modelName, AliasChampion, "1", fraudFP); !errors.Is(err, ErrIntegrity) {
		t.Errorf("Promote(corrupted) = %v, want ErrIntegrity", err)
	}
	e.fake.mu.Lock()
	champ := e.fake.aliases[AliasChampion]
	e.fake.mu.Unlock()
	if champ != "2" {
		t.Errorf("champion = %s after a refused promotion, want 2", champ)
	}
	if _, err := e.store.Promote(ctx, modelName, AliasChampion, "2", featurespec.Purchase().Fingerprint()); !errors.Is(err, ErrSpecMismatch) {
		t.Errorf("Promote(other spec) = %v, want ErrSpecMismatch", err)
	}
	if entries, _ := os.ReadDir(e.dir); len(entries) != 0 {
		t.Errorf("Promote wrote to the cache: %v", entries)
	}
}

func TestParseManifest(t *testing.T) {
	t.Parallel()
	good := NewManifest(modelName, []byte("x"), featurespec.Fraud(), 0.4, "4.7.0", time.Unix(0, 0))
	enc := func(m Manifest) string { b, _ := json.Marshal(m); return string(b) }
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "good", in: enc(good)},
		{name: "unknown field", in: strings.Replace(enc(good), `"task"`, `"tsak":"x","task"`, 1), wantErr: true},
		{name: "short sha", in: enc(Manifest{ModelName: "m", SHA256: "abc", FeatureSpecFingerprint: "f", Task: "binary"}), wantErr: true},
		{name: "upper-case sha", in: enc(Manifest{ModelName: "m", SHA256: strings.ToUpper(good.SHA256), FeatureSpecFingerprint: "f", Task: "binary"}), wantErr: true},
		{name: "no fingerprint", in: enc(Manifest{ModelName: "m", SHA256: good.SHA256, Task: "binary"}), wantErr: true},
		{name: "not json", in: "<html>", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseManifest([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Errorf("ParseManifest(%s) = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestArgumentChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		call func() error
	}{
		{"empty spec", func() error { _, err := e.store.Champion(t.Context(), modelName, ""); return err }},
		{"model with slash", func() error { _, err := e.store.Champion(t.Context(), "../x", fraudFP); return err }},
		{"numeric alias", func() error { _, err := e.store.LoadAlias(t.Context(), modelName, "12", fraudFP); return err }},
		{"bad version", func() error { _, err := e.store.Load(t.Context(), modelName, "1/../2", fraudFP); return err }},
		{"no client", func() error { _, err := (&Store{}).Champion(t.Context(), modelName, fraudFP); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.call(); err == nil {
				t.Error("succeeded, want error")
			}
		})
	}
}

// Scoring loads its champion at start-up and on each model event; with MLflow down it
// starts from the verified local copy.
func ExampleStore_Champion() {
	ctx := context.Background()
	store := &Store{Client: mlflow.New("http://127.0.0.1:5000"), CacheDir: "/var/lib/scoring/models"}
	l, err := store.Champion(ctx, "fraud", featurespec.Fraud().Fingerprint())
	if err != nil {
		fmt.Println("no model to serve:", err)
		return
	}
	fmt.Println("serving", l.ModelName, "version", l.Version, "from cache:", l.FromCache)
}
