package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/mlopsctl/internal/cli"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

// TestTopicsEnsureFreshCluster runs mlopsctl topics ensure against the real broker with a
// prefix no topic has yet (a fresh cluster as far as the platform's names go) and checks that
// every catalogue topic, the shared dead-letter topic included, exists with the configured
// partitions and its role's configs; a second run changes nothing.
func TestTopicsEnsureFreshCluster(t *testing.T) {
	t.Parallel()
	brokers := stacktest.KafkaBrokers(t)
	prefix := kafkaiotest.UniqueName("topicstest") + "-"
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		args = append(args, "-kafka.brokers", brokers, "-kafka.partitions", "5", "-kafka.replication", "1", "-prefix", prefix)
		if err := cli.Run(ctx, args, func(string) string { return "" }, &out, &errOut); err != nil {
			t.Fatalf("mlopsctl %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	if out := run("topics", "list"); strings.Count(out, "missing") != len(kafkaio.Catalogue()) {
		t.Fatalf("before ensure, list should show every topic missing:\n%s", out)
	}
	run("topics", "ensure")
	out := run("topics", "ensure") // idempotent
	if strings.Contains(out, "missing") || strings.Contains(out, "fewer") {
		t.Errorf("after ensure:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bl := strings.Split(brokers, ",")
	want := kafkaio.Config{Partitions: 5, ReplicationFactor: 1}
	for _, e := range kafkaio.Catalogue() {
		spec := want.TopicSpec(prefix+e.Name, e.Role)
		ids, err := kafkaio.Partitions(ctx, bl, spec.Name)
		if err != nil {
			t.Errorf("%s: %v", spec.Name, err)
			continue
		}
		if len(ids) != spec.Partitions {
			t.Errorf("%s (%s) has %d partitions, want %d", spec.Name, e.Role, len(ids), spec.Partitions)
		}
		if len(spec.Configs) == 0 {
			continue
		}
		names := make([]string, 0, len(spec.Configs))
		for k := range spec.Configs {
			names = append(names, k)
		}
		got, err := kafkaiotest.TopicConfigs(ctx, bl, spec.Name, names...)
		if err != nil {
			t.Errorf("%s: %v", spec.Name, err)
			continue
		}
		for k, v := range spec.Configs {
			if got[k] != v {
				t.Errorf("%s: config %s = %q, want %q", spec.Name, k, got[k], v)
			}
		}
	}
	if !strings.Contains(out, prefix+"tx.dlq ") || !strings.Contains(out, "scoring") {
		t.Errorf("list does not show the dead-letter topic used by scoring:\n%s", out)
	}
}
