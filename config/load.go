// Package config is the one configuration loader for the edge agent, the
// cloud and the device simulator: strict YAML decoding, typed durations, and
// validation that reports every problem with its path.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in YAML as "10s", "5m", "1h30m".
type Duration struct{ time.Duration }

// D is shorthand for building a Duration in code.
func D(d time.Duration) Duration { return Duration{d} }

// UnmarshalYAML parses a Go duration string. Its errors are *yaml.TypeError,
// so decoding goes on and reports every bad value of the document together.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: duration must be a string like \"10s\"", n.Line)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration %q (want a number and a unit, like \"10s\" or \"1h30m\")", n.Line, n.Value)}}
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Problems collects validation problems, each with the path of the value at
// fault ("projects[1].tariff: unknown tariff \"x\"").
type Problems struct{ list []string }

// Addf records a problem at path.
func (p *Problems) Addf(path, format string, args ...any) {
	p.list = append(p.list, path+": "+fmt.Sprintf(format, args...))
}

// Add records err at path when it is not nil.
func (p *Problems) Add(path string, err error) {
	if err != nil {
		p.list = append(p.list, path+": "+err.Error())
	}
}

// Len is the number of problems recorded.
func (p *Problems) Len() int { return len(p.list) }

// Err returns nil without problems, otherwise a *ValidationError listing all.
func (p *Problems) Err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Problems: append([]string(nil), p.list...)}
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct {
	File     string
	Problems []string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.File != "" {
		fmt.Fprintf(&b, "%s: ", e.File)
	}
	fmt.Fprintf(&b, "%d configuration problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	return b.String()
}

// Join builds a path element: Join("projects", 1) = "projects[1]",
// Join("a", "b") = "a.b".
func Join(base string, elem any) string {
	switch v := elem.(type) {
	case int:
		return fmt.Sprintf("%s[%d]", base, v)
	default:
		if base == "" {
			return fmt.Sprint(v)
		}
		return base + "." + fmt.Sprint(v)
	}
}

// Validator is implemented by configuration types that check themselves.
type Validator interface {
	Validate(p *Problems)
}

// Decode strictly decodes YAML into v (unknown fields are errors) and runs
// v's validation when it implements Validator.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("cannot decode configuration: document is empty")
		}
		return fmt.Errorf("cannot decode configuration: %w", err)
	}
	if val, ok := v.(Validator); ok {
		var p Problems
		val.Validate(&p)
		return p.Err()
	}
	return nil
}

// LoadFile reads path and decodes it with Decode. Validation errors carry the
// file name.
func LoadFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read configuration: %w", err)
	}
	if err := Decode(data, v); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.File = path
			return ve
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// sortedKeys returns a map's keys in order, for deterministic problem lists.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
