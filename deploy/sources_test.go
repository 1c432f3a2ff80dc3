package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// What the tests know about the services comes from their Go sources, read as text: the
// deploy module cannot import the services' internal packages, and building them (cgo,
// LightGBM) would make a manifest check slow. The scans below are narrow on purpose and fail
// loudly when the code takes a shape they do not understand.

// servicesDir is the services' source tree, relative to this module.
const servicesDir = "../services"

// binaries are the service commands an image can run: mlops/<binary>.
var binaries = []string{"ingestion", "features", "scoring", "predlog", "drift", "trainer"}

// flagSet is what a binary accepts: flag names and their environment variables.
type flagSet struct {
	flags map[string]bool
	envs  map[string]bool
	// adminAddr and grpcAddr are the defaults of -admin.addr and -grpc.addr ("" when the
	// binary serves no gRPC).
	adminAddr, grpcAddr string
}

var (
	// flagEnvPair matches the name and environment variable arguments of every flagenv
	// definition: flagenv.StringVar(fs, getenv, &c.X, "kafka.brokers", "KAFKA_BROKERS", ...).
	flagEnvPair = regexp.MustCompile(`flagenv\.\w+\([^"]*?"([a-z][a-z0-9.-]*)",\s*"([A-Z][A-Z0-9_]*)"`)
	// secretVar matches flagenv.SecretVar, which also defines -<name>-file and <ENV>_FILE.
	secretVar = regexp.MustCompile(`flagenv\.SecretVar\([^"]*?"([a-z][a-z0-9.-]*)",\s*"([A-Z][A-Z0-9_]*)"`)
	// baseFlags matches the service's call of service.Base.RegisterFlags with its name and
	// default admin and gRPC addresses.
	baseFlags = regexp.MustCompile(`Base\.RegisterFlags\(fs, getenv, "([a-z-]+)", "([^"]*)", "([^"]*)"\)`)
)

// goSources returns the non-test Go files under dir.
func goSources(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasSuffix(d.Name(), "test")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[path] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("read Go sources under %s: %v", dir, err)
	}
	return out
}

// flagsOf scans a binary's module and the platform module for flag definitions. The
// platform's shared flags (kafkaio, telemetry, service base, TLS, ...) are accepted for every
// binary: each service registers the ones it uses, and an unused one is at worst ignored.
func flagsOf(t *testing.T, binary string) flagSet {
	t.Helper()
	fsx := flagSet{flags: map[string]bool{}, envs: map[string]bool{}}
	add := func(srcs map[string]string) {
		for _, src := range srcs {
			for _, m := range flagEnvPair.FindAllStringSubmatch(src, -1) {
				fsx.flags[m[1]], fsx.envs[m[2]] = true, true
			}
			for _, m := range secretVar.FindAllStringSubmatch(src, -1) {
				fsx.flags[m[1]+"-file"], fsx.envs[m[2]+"_FILE"] = true, true
			}
		}
	}
	own := goSources(t, filepath.Join(servicesDir, binary))
	add(own)
	add(goSources(t, filepath.Join(servicesDir, "platform")))
	found := 0
	for _, src := range own {
		for _, m := range baseFlags.FindAllStringSubmatch(src, -1) {
			if m[1] != binary {
				t.Fatalf("%s registers its base flags as %q", binary, m[1])
			}
			fsx.adminAddr, fsx.grpcAddr = m[2], m[3]
			found++
		}
	}
	if found != 1 {
		t.Fatalf("%s: found %d calls of Base.RegisterFlags(fs, getenv, name, admin, grpc), want 1 (the scan in sources_test.go needs updating)", binary, found)
	}
	// The base flags themselves (registered through variables, not literals).
	for _, f := range []string{"admin.addr", "log.level", "shutdown.timeout"} {
		if !fsx.flags[f] {
			t.Fatalf("%s: the scan found no -%s flag; sources_test.go needs updating", binary, f)
		}
	}
	if fsx.grpcAddr != "" {
		fsx.flags["grpc.addr"], fsx.envs["GRPC_ADDR"] = true, true
	} else {
		delete(fsx.flags, "grpc.addr")
		delete(fsx.envs, "GRPC_ADDR")
	}
	return fsx
}

// exportedMetrics returns the metric families the services register, mapped to whether each
// is a histogram. Every instrument in this code base is created from prometheus.*Opts with a
// literal Name and no Namespace or Subsystem; the scan requires exactly that, so a new style
// of definition fails the test instead of being missed.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	nameField := regexp.MustCompile(`(\w+)Opts\{\s*(?://[^\n]*\n\s*)*Name:\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	out := map[string]bool{}
	for path, src := range goSources(t, servicesDir) {
		for _, bad := range []string{"Namespace:", "Subsystem:", "BuildFQName("} {
			if strings.Contains(src, bad) && strings.Contains(src, "prometheus") {
				t.Fatalf("%s uses %s: the metric scan in deploy/sources_test.go only reads literal Name fields; extend it", path, bad)
			}
		}
		for _, m := range nameField.FindAllStringSubmatch(src, -1) {
			switch m[1] {
			case "Counter", "Gauge", "Summary", "Untyped":
				out[m[2]] = false
			case "Histogram":
				out[m[2]] = true
			}
		}
		if strings.Contains(src, "collectors.NewGoCollector()") {
			out["go_goroutines"] = false
			out["go_memstats_heap_inuse_bytes"] = false
			out["go_gc_duration_seconds"] = false
		}
		if strings.Contains(src, "collectors.NewProcessCollector(") {
			out["process_cpu_seconds_total"] = false
			out["process_resident_memory_bytes"] = false
			out["process_open_fds"] = false
		}
	}
	if len(out) < 20 {
		t.Fatalf("the scan found only %d metrics: %v", len(out), out)
	}
	return out
}
