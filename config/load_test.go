package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

type durations struct {
	Poll  Duration  `yaml:"poll"`
	Hold  Duration  `yaml:"hold"`
	Every *Duration `yaml:"every"`
}

func TestDurationYAML(t *testing.T) {
	var d durations
	if err := Decode([]byte("poll: 1h30m\nhold: 250ms\n"), &d); err != nil {
		t.Fatal(err)
	}
	if d.Poll.Duration != 90*time.Minute || d.Hold.Duration != 250*time.Millisecond || d.Every != nil {
		t.Fatalf("decoded %+v", d)
	}
	out, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "poll: 1h30m0s\nhold: 250ms\nevery: null\n"; string(out) != want {
		t.Fatalf("marshalled %q, want %q", out, want)
	}
	var back durations
	if err := Decode(out, &back); err != nil || back.Poll != d.Poll || back.Hold != d.Hold {
		t.Fatalf("round trip gives %+v, %v", back, err)
	}
}

func TestDurationYAMLRejects(t *testing.T) {
	var d durations
	err := Decode([]byte("poll: 10\nhold: [1s]\nevery: soon\n"), &d)
	if err == nil {
		t.Fatal("Decode accepted bad durations")
	}
	// Every bad value is reported, each with its line.
	for _, want := range []string{
		`line 1: invalid duration "10" (want a number and a unit, like "10s" or "1h30m")`,
		`line 2: duration must be a string like "10s"`,
		`line 3: invalid duration "soon"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"empty document", "", "document is empty"},
		{"only comments", "# nothing here\n", "document is empty"},
		{"unknown field", "companies: []\nstuff: 1\n", "line 2: field stuff not found in type config.Org"},
		{"wrong type", "companies: 3\n", "line 1: cannot unmarshal !!int `3` into []config.Company"},
		{"not YAML", "companies: [\n", "did not find expected node content"},
	} {
		err := Decode([]byte(c.yaml), &Org{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "cannot decode configuration: ") {
			t.Errorf("%s: Decode error = %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestLoadFileMissing(t *testing.T) {
	err := LoadFile("testdata/no-such-file.yaml", &Org{})
	if err == nil || !strings.Contains(err.Error(), "cannot read configuration") || !strings.Contains(err.Error(), "no-such-file.yaml") {
		t.Fatalf("LoadFile of a missing file: %v", err)
	}
}

func TestProblems(t *testing.T) {
	var p Problems
	if p.Err() != nil || p.Len() != 0 {
		t.Fatal("empty Problems reports an error")
	}
	p.Add("a", nil)
	p.Addf(Join(Join("companies", 0), "id"), "bad %q", "x")
	p.Add(Join(Join(Join("", "rules"), 2), "metric"), errors.New("required"))
	err := p.Err()
	var ve *ValidationError
	if !errors.As(err, &ve) || p.Len() != 2 {
		t.Fatalf("Err() = %v", err)
	}
	want := "2 configuration problem(s):\n  companies[0].id: bad \"x\"\n  rules[2].metric: required"
	if err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
	// Err returns a copy: later problems do not change it.
	p.Addf("later", "x")
	if len(ve.Problems) != 2 {
		t.Fatal("Err shares its list with Problems")
	}
}
