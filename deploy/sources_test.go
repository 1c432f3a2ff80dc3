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

// platformImport matches an import of a platform package.
var platformImport = regexp.MustCompile(`"github\.com/streaming-mlops/mlops/services/platform/([a-z0-9/]+)"`)

// platformSources returns the sources of the platform packages the given sources import,
// directly or through other platform packages.
func platformSources(t *testing.T, srcs map[string]string) map[string]string {
	t.Helper()
	all := goSources(t, filepath.Join(servicesDir, "platform"))
	byPkg := map[string]map[string]string{}
	for path, src := range all {
		pkg := filepath.ToSlash(filepath.Dir(strings.TrimPrefix(path, filepath.Join(servicesDir, "platform")+string(filepath.Separator))))
		if byPkg[pkg] == nil {
			byPkg[pkg] = map[string]string{}
		}
		byPkg[pkg][path] = src
	}
	out := map[string]string{}
	seen := map[string]bool{}
	var visit func(map[string]string)
	visit = func(files map[string]string) {
		for _, src := range files {
			for _, m := range platformImport.FindAllStringSubmatch(src, -1) {
				if seen[m[1]] {
					continue
				}
				seen[m[1]] = true
				for p, s := range byPkg[m[1]] {
					out[p] = s
				}
				visit(byPkg[m[1]])
			}
		}
	}
	visit(srcs)
	return out
}

// flagsOf scans a binary's module, and the platform packages it imports, for flag definitions.
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
	add(platformSources(t, own))
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

// metricInfo is what the scan learns about one metric family.
type metricInfo struct {
	histogram bool
	// labels are the variable label names; labelsKnown is false when the definition names
	// them through identifiers the scan does not resolve.
	labels      []string
	labelsKnown bool
}

// exportedMetrics returns the metric families the services register. Every instrument in this
// code base is created from prometheus.*Opts with a literal Name and no Namespace or
// Subsystem, followed for a vector by []string{...} of its label names; the scan requires
// exactly that, so a new style of definition fails the test instead of being missed.
func exportedMetrics(t *testing.T) map[string]metricInfo {
	t.Helper()
	nameField := regexp.MustCompile(`(\w+)Opts\{\s*(?://[^\n]*\n\s*)*Name:\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	labelList := regexp.MustCompile(`^\s*,\s*\[\]string\{([^}]*)\}`)
	quoted := regexp.MustCompile(`^"([a-zA-Z_][a-zA-Z0-9_]*)"$`)
	out := map[string]metricInfo{}
	for path, src := range goSources(t, servicesDir) {
		for _, bad := range []string{"Namespace:", "Subsystem:", "BuildFQName("} {
			if strings.Contains(src, bad) && strings.Contains(src, "prometheus") {
				t.Fatalf("%s uses %s: the metric scan in deploy/sources_test.go only reads literal Name fields; extend it", path, bad)
			}
		}
		for _, loc := range nameField.FindAllStringSubmatchIndex(src, -1) {
			kind, name := src[loc[2]:loc[3]], src[loc[4]:loc[5]]
			info := metricInfo{labelsKnown: true}
			switch kind {
			case "Counter", "Gauge", "Summary", "Untyped":
			case "Histogram":
				info.histogram = true
			default:
				continue
			}
			// The label names follow the Opts literal: find its closing brace.
			end := closingBrace(src, strings.Index(src[loc[0]:], "{")+loc[0])
			if end < 0 {
				t.Fatalf("%s: no end of the Opts literal of %s", path, name)
			}
			if m := labelList.FindStringSubmatch(src[end+1:]); m != nil {
				for _, l := range strings.Split(m[1], ",") {
					l = strings.TrimSpace(l)
					if l == "" {
						continue
					}
					if q := quoted.FindStringSubmatch(l); q != nil {
						info.labels = append(info.labels, q[1])
					} else {
						info.labelsKnown = false
					}
				}
			}
			out[name] = info
		}
		if strings.Contains(src, "collectors.NewGoCollector()") {
			for _, n := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_gc_duration_seconds"} {
				out[n] = metricInfo{labelsKnown: true}
			}
		}
		if strings.Contains(src, "collectors.NewProcessCollector(") {
			for _, n := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} {
				out[n] = metricInfo{labelsKnown: true}
			}
		}
	}
	if len(out) < 20 {
		t.Fatalf("the scan found only %d metrics: %v", len(out), out)
	}
	return out
}

// closingBrace returns the index of the brace closing the one at open, skipping string
// literals, or -1.
func closingBrace(src string, open int) int {
	depth := 0
	for i := open; i < len(src); i++ {
		switch src[i] {
		case '"', '`':
			q := src[i]
			for i++; i < len(src) && src[i] != q; i++ {
				if q == '"' && src[i] == '\\' {
					i++
				}
			}
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}
