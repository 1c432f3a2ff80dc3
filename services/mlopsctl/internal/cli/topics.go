package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
)

// topicsCmd runs mlopsctl topics ensure|list: the platform's topic catalogue
// (kafkaio.Catalogue) created with its settings, or listed with what the cluster has.
func topicsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: mlopsctl topics ensure|list [flags]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("topics "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The shared Kafka flags (brokers, -kafka.partitions, -kafka.replication, TLS, SASL),
	// registered like the services' so the same values size the same topics.
	kc := kafkaio.Config{ClientID: "mlopsctl", GroupID: "mlopsctl", Brokers: []string{"127.0.0.1:9092"}}
	kc.RegisterFlags(fs, getenv)
	prefix := fs.String("prefix", "", "prepend this to every topic name (a separate set of topics, e.g. for a test)")
	timeout := flagenv.Duration(fs, getenv, "timeout", "MLOPSCTL_TIMEOUT", 60*time.Second, "deadline of the command")
	switch args[0] {
	case "ensure", "list":
	default:
		return fmt.Errorf("unknown topics command %q: %s", args[0], usage)
	}
	if err := flagenv.Parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("topics %s: unexpected arguments %q", args[0], fs.Args())
	}
	if err := kc.Validate(); err != nil {
		return err
	}
	if kc.Partitions <= 0 {
		return fmt.Errorf("-kafka.partitions %d: must be positive", kc.Partitions)
	}
	specs := kc.CatalogueSpecs()
	for i := range specs {
		specs[i].Name = *prefix + specs[i].Name
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if args[0] == "ensure" {
		if err := kc.EnsureTopics(ctx, specs); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tROLE\tWANT PARTITIONS\tPARTITIONS\tCONFIGS\tUSED BY")
	short := 0
	for i, e := range kafkaio.Catalogue() {
		s := specs[i]
		have := "missing"
		if parts, err := kc.PartitionIDs(ctx, s.Name); err == nil {
			have = fmt.Sprint(len(parts))
			if len(parts) < s.Partitions {
				have += " (fewer)"
				short++
			}
		}
		var cfgs []string
		for _, k := range slices.Sorted(maps.Keys(s.Configs)) {
			cfgs = append(cfgs, k+"="+s.Configs[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, e.Role, s.Partitions, have, dash(strings.Join(cfgs, ",")), strings.Join(e.Services, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if short > 0 {
		fmt.Fprintf(stderr, "%d topics have fewer partitions than configured: existing topics are never changed; see docs/kafka.md (sizing) before adding partitions to a keyed topic\n", short)
	}
	return nil
}
