package flagenv

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Secret is a credential (password, token, key). Its String, GoString and LogValue never show
// the value, so printing a Config, logging it with slog or listing flag defaults in -help
// does not leak it; Reveal returns it for the one place that needs it. The zero value is
// "not set".
type Secret struct{ value string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret itself. Pass it only to the client that authenticates with it.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s.value != "" }

// String is "[redacted]" for a set secret and "" for an empty one.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v too.
func (s Secret) GoString() string { return "flagenv.Secret(" + s.String() + ")" }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// secretFlag is the state shared by the -name and -name-file flags of one secret: the literal
// value and the file's content, each from its flag or environment variable. The file wins.
type secretFlag struct {
	p        *Secret
	literal  string
	fromFile string
	fileSet  bool
	fileEnv  error // unreadable file named by the environment variable of -name-file
}

func (s *secretFlag) update() {
	if s.fileSet {
		*s.p = Secret{value: s.fromFile}
		return
	}
	*s.p = Secret{value: s.literal}
}

// secretLiteral is the flag.Value of -name.
type secretLiteral struct{ s *secretFlag }

func (v secretLiteral) Set(x string) error { v.s.literal = x; v.s.update(); return nil }
func (v secretLiteral) String() string {
	if v.s == nil || v.s.literal == "" {
		return ""
	}
	return "[redacted]"
}

// secretFile is the flag.Value of -name-file.
type secretFile struct {
	s    *secretFlag
	path *string
}

func (v secretFile) Set(path string) error {
	x, err := readSecretFile(path)
	if err != nil {
		return err
	}
	*v.path = path
	v.s.fromFile, v.s.fileSet = x, true
	v.s.update()
	return nil
}

func (v secretFile) String() string {
	if v.path == nil {
		return ""
	}
	return *v.path
}

func (v secretFile) envError() error { return v.s.fileEnv }

// readSecretFile reads a secret from path, without the trailing newline an editor or
// "echo >" leaves. An empty file is an error: it is almost certainly a mistake.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	x := strings.TrimRight(string(b), "\r\n")
	if x == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return x, nil
}

// SecretVar defines two flags for one secret: -name with fallback to the environment
// variable env (the value itself), and -name-file with fallback to env_FILE (a file holding
// it, as a mounted Kubernetes or Docker secret; one trailing newline is dropped). The file,
// when given either way, wins over the value. The file is read while flags are parsed, so a
// missing or empty file fails at startup (an unreadable env_FILE is reported by Parse, like a
// malformed environment value). The value never appears in -help or in logs.
func SecretVar(fs *flag.FlagSet, getenv func(string) string, p *Secret, name, env, usage string) *Secret {
	s := &secretFlag{p: p, literal: getenv(env)}
	path := new(string)
	if f := getenv(env + "_FILE"); f != "" {
		if x, err := readSecretFile(f); err != nil {
			s.fileEnv = fmt.Errorf("environment variable %s_FILE=%q: %w", env, f, err)
		} else {
			*path = f
			s.fromFile, s.fileSet = x, true
		}
	}
	s.update()
	fs.Var(secretLiteral{s}, name, fmt.Sprintf("%s (env %s; prefer -%s-file)", usage, env, name))
	fs.Var(secretFile{s: s, path: path}, name+"-file", fmt.Sprintf("file holding the value of -%s, wins over it (env %s_FILE)", name, env))
	return p
}
