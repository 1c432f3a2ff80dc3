// Package featurespec is the single, versioned definition of the model
// features shared by training and serving.
//
// A Spec names the features of one model family (fraud, purchase), their
// order in the feature vector, their value type and their valid range. Its
// Fingerprint identifies the exact vector layout: a model stores the
// fingerprint (and the JSON spec) it was trained with, and scoring refuses a
// model whose spec does not Check against the spec it serves.
//
// The package also holds the computations themselves, so that the feature
// service, the trainer and the simulator run the very same code:
//   - fraud features: AccountState (per-account online state), Compute (pure,
//     read-only, allocation-free) and Apply (state update);
//   - purchase features: ComputePurchase (stateless, from a session).
//
// Version must be bumped whenever the meaning or computation of any feature
// changes, even when names and order stay the same: the fingerprint only
// covers what can be checked mechanically (name, version, task, feature
// names, order and types).
package featurespec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrMismatch is returned (wrapped) by Spec.Check when two specs describe
// different feature vectors.
var ErrMismatch = errors.New("feature spec mismatch")

// Type is the value type of a feature. All values travel as float64 in the
// vector; the type documents what values are legal.
type Type string

// Feature value types.
const (
	// TypeFloat is any real number within [Min, Max].
	TypeFloat Type = "float"
	// TypeInt is a whole number within [Min, Max].
	TypeInt Type = "int"
	// TypeBool is 0 or 1.
	TypeBool Type = "bool"
)

// Task is the learning task a spec feeds.
type Task string

// Learning tasks.
const (
	// TaskBinary is binary classification (label 0 or 1).
	TaskBinary Task = "binary"
	// TaskRegression is regression on a real-valued target.
	TaskRegression Task = "regression"
)

// Feature describes one position of the feature vector.
type Feature struct {
	// Name is unique within a spec, lower snake case.
	Name string `json:"name"`
	// Type is the value type.
	Type Type `json:"type"`
	// Min and Max bound the valid range (inclusive). Values outside it are
	// data-quality violations.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Description states the semantics and units.
	Description string `json:"description"`
}

// InRange reports whether v is a legal value of f: finite, within [Min, Max],
// whole for TypeInt and 0 or 1 for TypeBool.
func (f Feature) InRange(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < f.Min || v > f.Max {
		return false
	}
	switch f.Type {
	case TypeInt:
		return v == math.Trunc(v)
	case TypeBool:
		return v == 0 || v == 1
	}
	return true
}

// Spec is a named, versioned, ordered list of features.
type Spec struct {
	// Name is the model family, for example "fraud".
	Name string `json:"name"`
	// Version is bumped on any change of names, order or semantics.
	Version int `json:"version"`
	// Task is the learning task.
	Task Task `json:"task"`
	// Features in vector order.
	Features []Feature `json:"features"`
}

// ID is the human-readable identity, for example "fraud-v1".
func (s Spec) ID() string {
	return s.Name + "-v" + strconv.Itoa(s.Version)
}

// Fingerprint identifies the vector layout: ID plus the first 16 hex digits
// of the SHA-256 of the name, version, task and the ordered (name, type)
// pairs, for example "fraud-v1-3f2a...". Ranges and descriptions are not
// covered.
func (s Spec) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d\n%s\n", s.Name, s.Version, s.Task)
	for _, f := range s.Features {
		fmt.Fprintf(h, "%s\t%s\n", f.Name, f.Type)
	}
	return s.ID() + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Len is the number of features.
func (s Spec) Len() int { return len(s.Features) }

// Names returns the feature names in vector order.
func (s Spec) Names() []string {
	names := make([]string, len(s.Features))
	for i, f := range s.Features {
		names[i] = f.Name
	}
	return names
}

// Index returns the position of the named feature, or -1.
func (s Spec) Index(name string) int {
	for i, f := range s.Features {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// Validate checks the spec itself: a name, a positive version, a known
// task, at least one feature, unique non-empty names, known types and
// Min <= Max.
func (s Spec) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("spec name is empty"))
	}
	if s.Version <= 0 {
		errs = append(errs, fmt.Errorf("spec version %d is not positive", s.Version))
	}
	if s.Task != TaskBinary && s.Task != TaskRegression {
		errs = append(errs, fmt.Errorf("unknown task %q", s.Task))
	}
	if len(s.Features) == 0 {
		errs = append(errs, errors.New("spec has no features"))
	}
	seen := make(map[string]int, len(s.Features))
	for i, f := range s.Features {
		if f.Name == "" {
			errs = append(errs, fmt.Errorf("feature %d has no name", i))
		}
		if j, dup := seen[f.Name]; dup {
			errs = append(errs, fmt.Errorf("feature %q at positions %d and %d", f.Name, j, i))
		}
		seen[f.Name] = i
		switch f.Type {
		case TypeFloat, TypeInt, TypeBool:
		default:
			errs = append(errs, fmt.Errorf("feature %q has unknown type %q", f.Name, f.Type))
		}
		if !(f.Min <= f.Max) {
			errs = append(errs, fmt.Errorf("feature %q has min %v > max %v", f.Name, f.Min, f.Max))
		}
	}
	return errors.Join(errs...)
}

// Check reports whether other describes the same vector as s (same
// fingerprint). If not, the error wraps ErrMismatch and names every
// difference: identity, task, features missing or extra, and features at a
// different position or with a different type.
func (s Spec) Check(other Spec) error {
	if s.Fingerprint() == other.Fingerprint() {
		return nil
	}
	var diffs []string
	if s.Name != other.Name || s.Version != other.Version {
		diffs = append(diffs, fmt.Sprintf("identity %s vs %s", s.ID(), other.ID()))
	}
	if s.Task != other.Task {
		diffs = append(diffs, fmt.Sprintf("task %q vs %q", s.Task, other.Task))
	}
	if len(s.Features) != len(other.Features) {
		diffs = append(diffs, fmt.Sprintf("%d vs %d features", len(s.Features), len(other.Features)))
	}
	var missing, extra, moved, retyped []string
	for i, f := range s.Features {
		j := other.Index(f.Name)
		switch {
		case j < 0:
			missing = append(missing, f.Name)
		case j != i:
			moved = append(moved, fmt.Sprintf("%s at %d vs %d", f.Name, i, j))
		}
		if j >= 0 && other.Features[j].Type != f.Type {
			retyped = append(retyped, fmt.Sprintf("%s %s vs %s", f.Name, f.Type, other.Features[j].Type))
		}
	}
	for _, f := range other.Features {
		if s.Index(f.Name) < 0 {
			extra = append(extra, f.Name)
		}
	}
	if len(missing) > 0 {
		diffs = append(diffs, "missing in other: "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		diffs = append(diffs, "extra in other: "+strings.Join(extra, ", "))
	}
	if len(moved) > 0 {
		diffs = append(diffs, "order: "+strings.Join(moved, ", "))
	}
	if len(retyped) > 0 {
		diffs = append(diffs, "type: "+strings.Join(retyped, ", "))
	}
	if len(diffs) == 0 {
		// Same content, different fingerprint: cannot happen for the
		// fields hashed, kept for safety.
		diffs = append(diffs, "fingerprint "+s.Fingerprint()+" vs "+other.Fingerprint())
	}
	return fmt.Errorf("%w: want %s, got %s: %s", ErrMismatch, s.Fingerprint(), other.Fingerprint(), strings.Join(diffs, "; "))
}

// CheckVector reports whether v has the spec's length and every value is
// InRange. It returns the first violation.
func (s Spec) CheckVector(v []float64) error {
	if len(v) != len(s.Features) {
		return fmt.Errorf("vector has %d values, spec %s has %d features", len(v), s.ID(), len(s.Features))
	}
	for i, f := range s.Features {
		if !f.InRange(v[i]) {
			return fmt.Errorf("feature %q value %v outside [%v, %v] (%s)", f.Name, v[i], f.Min, f.Max, f.Type)
		}
	}
	return nil
}

// specJSON is the wire form; it adds the fingerprint so a reader of the
// MLflow artifact sees it without running code.
type specJSON struct {
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	Task        Task      `json:"task"`
	Fingerprint string    `json:"fingerprint"`
	Features    []Feature `json:"features"`
}

// MarshalJSON encodes the spec with its fingerprint.
func (s Spec) MarshalJSON() ([]byte, error) {
	return json.Marshal(specJSON{Name: s.Name, Version: s.Version, Task: s.Task, Fingerprint: s.Fingerprint(), Features: s.Features})
}

// UnmarshalJSON decodes a spec, validates it and, when the document carries
// a fingerprint, verifies that it matches the decoded content.
func (s *Spec) UnmarshalJSON(data []byte) error {
	var w specJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("decode feature spec: %w", err)
	}
	got := Spec{Name: w.Name, Version: w.Version, Task: w.Task, Features: w.Features}
	if err := got.Validate(); err != nil {
		return fmt.Errorf("invalid feature spec: %w", err)
	}
	if w.Fingerprint != "" && w.Fingerprint != got.Fingerprint() {
		return fmt.Errorf("feature spec fingerprint %q does not match its content (%q)", w.Fingerprint, got.Fingerprint())
	}
	*s = got
	return nil
}

// ByName returns the built-in spec with the given ID ("fraud-v1",
// "purchase-v1") or name ("fraud", "purchase", meaning the current version).
func ByName(name string) (Spec, error) {
	for _, s := range []Spec{Fraud(), Purchase()} {
		if name == s.Name || name == s.ID() {
			return s, nil
		}
	}
	return Spec{}, fmt.Errorf("unknown feature spec %q", name)
}
