package flagenv_test

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
)

func TestSecretVar(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		wantErr string
	}{
		{name: "unset"},
		{name: "env", env: map[string]string{"PW": "from-env"}, want: "from-env"},
		{name: "flag beats env", env: map[string]string{"PW": "from-env"}, args: []string{"-pw", "from-flag"}, want: "from-flag"},
		{name: "env file", env: map[string]string{"PW_FILE": file}, want: "from-file"},
		{name: "file beats value", env: map[string]string{"PW": "from-env"}, args: []string{"-pw-file", file}, want: "from-file"},
		{name: "missing env file", env: map[string]string{"PW_FILE": file + ".nope"}, wantErr: "PW_FILE"},
		{name: "explicit file flag overrides broken env file", env: map[string]string{"PW_FILE": file + ".nope"}, args: []string{"-pw-file", file}, want: "from-file"},
		{name: "empty file", args: []string{"-pw-file", empty}, wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(new(bytes.Buffer))
			var s flagenv.Secret
			flagenv.SecretVar(fs, func(k string) string { return tt.env[k] }, &s, "pw", "PW", "password")
			err := flagenv.Parse(fs, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Reveal() != tt.want {
				t.Errorf("Reveal() = %q, want %q", s.Reveal(), tt.want)
			}
		})
	}
}

// The value never shows: not in -help (whose defaults come from the environment), not in
// fmt's verbs, not in slog.
func TestSecretNeverPrinted(t *testing.T) {
	t.Parallel()
	const pw = "hunter2-very-secret"
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var help bytes.Buffer
	fs.SetOutput(&help)
	var s flagenv.Secret
	flagenv.SecretVar(fs, func(k string) string { return map[string]string{"PW": pw}[k] }, &s, "pw", "PW", "password")
	fs.PrintDefaults()
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("configured", "pw", s, "cfg", struct{ PW flagenv.Secret }{s})
	out := help.String() + logged.String() + fmt.Sprintf("%v %+v %#v %s", s, s, s, s)
	if strings.Contains(out, pw) {
		t.Fatalf("secret printed:\n%s", out)
	}
	if s.Reveal() != pw || !s.IsSet() {
		t.Fatalf("Reveal() = %q, want the secret", s.Reveal())
	}
}
