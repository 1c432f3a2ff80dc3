package stacktest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Instance is a private instance of the local stack (scripts/stack.sh with STACK_INSTANCE),
// started by one test on free ports with its own settings (security knobs such as
// KAFKA_SECURITY or REDIS_PASSWORD), so the shared stack is never reconfigured.
type Instance struct {
	t    testing.TB
	root string
	name string
	dir  string
	env  []string
	// Ports of the components started, by name ("kafka", "redis").
	Ports map[string]int
}

// StartInstance starts components ("kafka", "redis", ...) of a private instance named name
// with the extra environment env, and stops it (removing its data unless the test failed)
// when the test ends. It needs the project's stack installation; like Require it skips the
// test without MLOPS_TEST_KAFKA_BROKERS (the sign that the stack was set up), or fails it
// when MLOPS_TEST_REQUIRE_STACK=1.
func StartInstance(t testing.TB, name string, env []string, components ...string) *Instance {
	t.Helper()
	Require(t, EnvKafkaBrokers)
	root := repoRoot(t)
	in := &Instance{t: t, root: root, name: name, Ports: map[string]int{}, env: append([]string{"STACK_INSTANCE=" + name}, env...)}
	portEnv := map[string][]string{"kafka": {"KAFKA_PORT", "KAFKA_CONTROLLER_PORT"}, "redis": {"REDIS_PORT"},
		"es": {"ES_PORT", "ES_TRANSPORT_PORT"}, "mlflow": {"MLFLOW_PORT"}, "prometheus": {"PROM_PORT"}}
	for _, c := range components {
		for i, v := range portEnv[c] {
			p := freePort(t)
			if i == 0 {
				in.Ports[c] = p
			}
			in.env = append(in.env, v+"="+strconv.Itoa(p))
		}
	}
	cache := os.Getenv("MLOPS_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	in.dir = filepath.Join(cache, "instances", name)
	t.Cleanup(func() {
		in.Ctl(append([]string{"down"}, components...)...)
		if !t.Failed() {
			_ = os.RemoveAll(in.dir)
		} else {
			t.Logf("private stack kept for inspection: %s (logs in run/<component>/log)", in.dir)
		}
	})
	in.Ctl(append([]string{"up"}, components...)...)
	return in
}

// Addr is 127.0.0.1:<port> of a started component.
func (in *Instance) Addr(component string) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.Ports[component]))
}

// Ctl runs scripts/stack.sh with args on the instance and fails the test if it fails.
func (in *Instance) Ctl(args ...string) {
	in.t.Helper()
	cmd := exec.Command(filepath.Join(in.root, "scripts", "stack.sh"), args...)
	cmd.Env = append(os.Environ(), in.env...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		in.t.Fatalf("stack.sh %s (instance %s): %v\n%s", strings.Join(args, " "), in.name, err, out)
	}
	in.t.Logf("stack.sh %s (instance %s): %v", strings.Join(args, " "), in.name, time.Since(t0).Round(100*time.Millisecond))
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// repoRoot is the directory holding scripts/stack.sh, found upwards from the test's working
// directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "stack.sh")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("scripts/stack.sh not found above the working directory")
		}
		dir = parent
	}
}
