package flagenv_test

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantDur time.Duration
		wantStr string
		wantLst []string
		wantErr string
	}{
		{name: "defaults", wantDur: 5 * time.Millisecond, wantStr: "localhost:9092", wantLst: []string{"a"}},
		{name: "env", env: map[string]string{"D": "2s", "S": "k:1", "L": "x, y,,z"}, wantDur: 2 * time.Second, wantStr: "k:1", wantLst: []string{"x", "y", "z"}},
		{name: "flag beats env", args: []string{"-d=3s", "-s=f:2"}, env: map[string]string{"D": "2s", "S": "k:1"}, wantDur: 3 * time.Second, wantStr: "f:2", wantLst: []string{"a"}},
		{name: "malformed env", env: map[string]string{"D": "fast"}, wantErr: `environment variable D="fast"`},
		{name: "malformed env overridden by flag", args: []string{"-d=1s"}, env: map[string]string{"D": "fast"}, wantDur: time.Second, wantStr: "localhost:9092", wantLst: []string{"a"}},
		{name: "malformed flag", args: []string{"-d=soon"}, wantErr: "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			getenv := env(tt.env)
			d := flagenv.Duration(fs, getenv, "d", "D", 5*time.Millisecond, "a duration")
			s := flagenv.String(fs, getenv, "s", "S", "localhost:9092", "a string")
			l := flagenv.Strings(fs, getenv, "l", "L", []string{"a"}, "a list")
			err := flagenv.Parse(fs, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse() = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if *d != tt.wantDur || *s != tt.wantStr {
				t.Errorf("got d=%v s=%q, want d=%v s=%q", *d, *s, tt.wantDur, tt.wantStr)
			}
			if diff := cmp.Diff(tt.wantLst, *l); diff != "" {
				t.Errorf("list (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTypedFlags(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	getenv := env(map[string]string{"N": "7", "F": "0.25", "B": "true"})
	n := flagenv.Int(fs, getenv, "n", "N", 1, "int")
	f := flagenv.Float64(fs, getenv, "f", "F", 0.8, "float")
	b := flagenv.Bool(fs, getenv, "b", "B", false, "bool")
	if err := flagenv.Parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if *n != 7 || *f != 0.25 || !*b {
		t.Errorf("got n=%d f=%v b=%v", *n, *f, *b)
	}
	if err := flagenv.Parse(fs, []string{"-b=false"}); err != nil || *b {
		t.Errorf("explicit -b=false: err=%v b=%v", err, *b)
	}
}

func ExampleDuration() {
	fs := flag.NewFlagSet("scoring", flag.ContinueOnError)
	getenv := func(k string) string { return map[string]string{"KAFKA_BATCH_TIMEOUT": "10ms"}[k] }
	flush := flagenv.Duration(fs, getenv, "kafka.batch-timeout", "KAFKA_BATCH_TIMEOUT", 5*time.Millisecond, "producer flush interval")
	_ = flagenv.Parse(fs, nil)
	fmt.Println(*flush)
	// Output: 10ms
}
