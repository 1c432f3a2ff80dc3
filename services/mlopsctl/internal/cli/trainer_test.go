package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/mlopsctl/internal/cli"
	"github.com/streaming-mlops/mlops/services/platform/datasetfile/datasetfiletest"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

const ctlToken = "ctl-test-token"

// startTrainerBinary builds the trainer command and runs it against the real stack with a
// small simulated data set, and returns its gRPC address once it is ready.
func startTrainerBinary(t *testing.T) string {
	t.Helper()
	brokers := stacktest.KafkaBrokers(t)
	mlflowURL := stacktest.MLflowURL(t)
	lib := stacktest.LightGBMLib(t)
	bin := filepath.Join(t.TempDir(), "trainer")
	build := exec.Command("go", "build", "-o", bin, "./cmd/trainer")
	build.Dir = filepath.Join("..", "..", "..", "trainer")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build trainer: %v\n%s", err, out)
	}
	grpcAddr, adminAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "-grpc.addr", grpcAddr, "-admin.addr", adminAddr, "-kafka.brokers", brokers, "-mlflow.url", mlflowURL,
		"-lightgbm.lib", lib, "-admin.tokens", "ctl-tester:"+ctlToken,
		"-data.source", "file", "-data.file", datasetfiletest.Simulate(t, "-n", "20000", "-accounts", "1000", "-warmup", "24h", "-fraud-rate", "0.03"),
		"-train.num-iterations", "150", "-drift.consume=false")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("trainer exited with %v\n%s", err, logs.String())
		}
	})
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return grpcAddr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trainer not ready within 60s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond) // polling an external process; there is nothing to wait on
	}
}

type ctl struct {
	t   *testing.T
	env map[string]string
}

func (c ctl) run(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := cli.Run(ctx, args, func(k string) string { return c.env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func (c ctl) must(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("mlopsctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func field(out, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+(\S.*)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

func TestMLOpsCtlTrainAndModels(t *testing.T) {
	addr := startTrainerBinary(t)
	model := fmt.Sprintf("ctl-fraud-%d", time.Now().UnixNano())
	// USER is what mlopsctl sends as the actor; the audit records the holder of the token
	// (ctl-tester, from the trainer's -admin.tokens) instead.
	c := ctl{t: t, env: map[string]string{"TRAINER_ADDR": addr, "MLOPS_ADMIN_TOKEN": ctlToken, "USER": "self-declared", "MLOPS_MODEL": model}}

	// Without the token, admin commands fail with a clear message.
	noTok := ctl{t: t, env: map[string]string{"TRAINER_ADDR": addr, "USER": "x", "MLOPS_MODEL": model}}
	if _, _, err := noTok.run("train", "-quiet"); err == nil || !strings.Contains(err.Error(), "not authorized") {
		t.Fatalf("train without token = %v, want 'not authorized'", err)
	}

	out, stderr, err := c.run("train", "-reason", "first model")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "train [") || !strings.Contains(stderr, "binary_logloss=") {
		t.Errorf("train printed no progress bar on stderr:\n%s", stderr)
	}
	if field(out, "version") != "1" || field(out, "promoted") != "true" || field(out, "auc") == "" {
		t.Fatalf("train output:\n%s", out)
	}
	t1 := time.Now()

	out = c.must("train", "-quiet", "-param", "num_iterations=1", "-param", "num_leaves=2", "-reason", "weak")
	if field(out, "version") != "2" || field(out, "promoted") != "false" {
		t.Fatalf("weak train output:\n%s", out)
	}

	list := c.must("models", "list")
	if !regexp.MustCompile(`(?m)^`+model+`\s+1\s+champion\s`).MatchString(list) || !regexp.MustCompile(`(?m)^`+model+`\s+2\s+-\s`).MatchString(list) {
		t.Errorf("models list:\n%s", list)
	}
	desc := c.must("models", "describe", "1")
	if field(desc, "aliases") != "champion" || field(desc, "feature spec") != "fraud v1" || len(field(desc, "sha256")) != 64 {
		t.Errorf("models describe 1:\n%s", desc)
	}

	if _, _, err := c.run("models", "promote", "2"); err == nil || !strings.Contains(err.Error(), "-reason") {
		t.Errorf("promote without reason = %v", err)
	}
	out = c.must("models", "promote", "2", "-reason", "canary looks good")
	if !strings.Contains(out, "PROMOTED") {
		t.Errorf("promote output:\n%s", out)
	}
	t2 := time.Now()
	out = c.must("models", "rollback", "-reason", "latency regression")
	if !regexp.MustCompile(`ROLLED_BACK\s+champion\s+2\s+1\s+ctl-tester`).MatchString(out) {
		t.Errorf("rollback output:\n%s", out)
	}
	if _, _, err := c.run("models", "rollback", "-to", "1", "-reason", "again"); err == nil || !strings.Contains(err.Error(), "not possible now") {
		t.Errorf("rollback to the champion = %v, want a 'not possible now' error", err)
	}

	hist := c.must("models", "history", "-alias", "champion")
	if n := strings.Count(hist, model); n != 3 {
		t.Errorf("history has %d champion changes, want 3:\n%s", n, hist)
	}
	for _, tc := range []struct {
		at   time.Time
		want string
	}{{t1, "version 1 held"}, {t2, "version 2 held"}, {time.Now(), "version 1 held"}, {time.Unix(1, 0), "no version held"}} {
		out := c.must("models", "asof", tc.at.UTC().Format(time.RFC3339Nano))
		if !strings.HasPrefix(out, tc.want) {
			t.Errorf("asof %v = %q, want %q", tc.at, out, tc.want)
		}
	}

	// Errors are explained.
	if _, _, err := c.run("models", "describe", "99"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("describe 99 = %v", err)
	}
	if _, _, err := c.run("models", "asof", "yesterday"); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("asof yesterday = %v", err)
	}
	down := ctl{t: t, env: map[string]string{"TRAINER_ADDR": servicetest.FreeAddr(t), "MLOPSCTL_TIMEOUT": "2s"}}
	if _, _, err := down.run("models", "list"); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("list against a closed port = %v, want 'unreachable'", err)
	}
}
