// Package flagenv defines command-line flags that fall back to environment variables.
//
// Precedence is flag, then environment variable, then default: the environment value becomes
// the flag's default, so an explicit flag always wins. A malformed environment value (say
// KAFKA_BATCH_TIMEOUT=fast) is not ignored: Parse reports it, unless the flag was given
// explicitly on the command line. Use Parse instead of FlagSet.Parse.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// value is a flag.Value that remembers the environment variable it fell back to and whether
// that variable's text could be parsed.
type value[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
	env    string
	envErr error
}

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

func (v *value[T]) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return v.format(*v.p)
}

// IsBoolFlag lets boolean flags be given as -name without a value.
func (v *value[T]) IsBoolFlag() bool {
	_, ok := any(v.p).(*bool)
	return ok
}

func (v *value[T]) envError() error { return v.envErr }

type envErrorer interface{ envError() error }

func define[T any](fs *flag.FlagSet, getenv func(string) string, p *T, name, env string, def T, usage string,
	parse func(string) (T, error), format func(T) string) *T {
	*p = def
	v := &value[T]{p: p, parse: parse, format: format, env: env}
	if s := getenv(env); s != "" {
		if x, err := parse(s); err != nil {
			v.envErr = fmt.Errorf("environment variable %s=%q: %w", env, s, err)
		} else {
			*p = x
		}
	}
	fs.Var(v, name, fmt.Sprintf("%s (env %s)", usage, env))
	return p
}

// Strings items are comma-separated, trimmed, and empty items dropped; Duration uses Go
// duration syntax (5ms, 2s).

// String defines a string flag with fallback to the environment variable env.
func String(fs *flag.FlagSet, getenv func(string) string, name, env string, def string, usage string) *string {
	return StringVar(fs, getenv, new(string), name, env, def, usage)
}

// StringVar is String storing into p.
func StringVar(fs *flag.FlagSet, getenv func(string) string, p *string, name, env string, def string, usage string) *string {
	return define(fs, getenv, p, name, env, def, usage,
		func(s string) (string, error) { return s, nil }, func(s string) string { return s })
}

// Strings defines a []string flag with fallback to the environment variable env.
func Strings(fs *flag.FlagSet, getenv func(string) string, name, env string, def []string, usage string) *[]string {
	return StringsVar(fs, getenv, new([]string), name, env, def, usage)
}

// StringsVar is Strings storing into p.
func StringsVar(fs *flag.FlagSet, getenv func(string) string, p *[]string, name, env string, def []string, usage string) *[]string {
	return define(fs, getenv, p, name, env, def, usage,
		func(s string) ([]string, error) { return Split(s), nil }, func(v []string) string { return strings.Join(v, ",") })
}

// Int defines a int flag with fallback to the environment variable env.
func Int(fs *flag.FlagSet, getenv func(string) string, name, env string, def int, usage string) *int {
	return IntVar(fs, getenv, new(int), name, env, def, usage)
}

// IntVar is Int storing into p.
func IntVar(fs *flag.FlagSet, getenv func(string) string, p *int, name, env string, def int, usage string) *int {
	return define(fs, getenv, p, name, env, def, usage,
		strconv.Atoi, strconv.Itoa)
}

// Float64 defines a float64 flag with fallback to the environment variable env.
func Float64(fs *flag.FlagSet, getenv func(string) string, name, env string, def float64, usage string) *float64 {
	return Float64Var(fs, getenv, new(float64), name, env, def, usage)
}

// Float64Var is Float64 storing into p.
func Float64Var(fs *flag.FlagSet, getenv func(string) string, p *float64, name, env string, def float64, usage string) *float64 {
	return define(fs, getenv, p, name, env, def, usage,
		func(s string) (float64, error) { return strconv.ParseFloat(s, 64) },
		func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) })
}

// Bool defines a bool flag with fallback to the environment variable env.
func Bool(fs *flag.FlagSet, getenv func(string) string, name, env string, def bool, usage string) *bool {
	return BoolVar(fs, getenv, new(bool), name, env, def, usage)
}

// BoolVar is Bool storing into p.
func BoolVar(fs *flag.FlagSet, getenv func(string) string, p *bool, name, env string, def bool, usage string) *bool {
	return define(fs, getenv, p, name, env, def, usage,
		strconv.ParseBool, strconv.FormatBool)
}

// Duration defines a time.Duration flag with fallback to the environment variable env.
func Duration(fs *flag.FlagSet, getenv func(string) string, name, env string, def time.Duration, usage string) *time.Duration {
	return DurationVar(fs, getenv, new(time.Duration), name, env, def, usage)
}

// DurationVar is Duration storing into p.
func DurationVar(fs *flag.FlagSet, getenv func(string) string, p *time.Duration, name, env string, def time.Duration, usage string) *time.Duration {
	return define(fs, getenv, p, name, env, def, usage,
		time.ParseDuration, time.Duration.String)
}

// Parse parses args into fs and then reports every malformed environment fallback whose
// flag was not given explicitly, joined into one error.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if e, ok := f.Value.(envErrorer); ok && !explicit[f.Name] && e.envError() != nil {
			errs = append(errs, fmt.Errorf("flag -%s: %w", f.Name, e.envError()))
		}
	})
	return errors.Join(errs...)
}

// Split splits a comma-separated list, trimming spaces and dropping empty items.
func Split(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
