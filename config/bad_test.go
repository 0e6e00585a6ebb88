package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Demo files the org cases are checked against.
const (
	demoOrg       = "../configs/org.yaml"
	demoTariffs   = "../configs/tariffs.yaml"
	demoTemplates = "../configs/templates"
	demoRules     = "../configs/rules.yaml"
)

// TestBadConfigs loads every file under testdata/bad/<kind>/ and compares
// what the loader reports with the file's own header comments:
//
//	# want: <path>: <problem>        one line per validation problem, in order
//	# want-error: <text>             the decode error contains this text
//
// Adding a case needs no Go code. Org files are loaded with the demo
// tariffs, templates and rules, so their references are checked too.
func TestBadConfigs(t *testing.T) {
	loaders := map[string]func(path string) error{
		"org": func(path string) error {
			_, err := LoadBundle(path, demoTariffs, demoTemplates, demoRules)
			return err
		},
		"tariffs":   func(path string) error { return LoadFile(path, &TariffFile{}) },
		"rules":     func(path string) error { return LoadFile(path, &RuleFile{}) },
		"templates": func(path string) error { return LoadFile(path, &Template{}) },
	}
	files, err := filepath.Glob("testdata/bad/*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata/bad: %v", err)
	}
	for _, path := range files {
		kind := filepath.Base(filepath.Dir(path))
		load := loaders[kind]
		if load == nil {
			t.Fatalf("%s: no loader for %q cases", path, kind)
		}
		t.Run(kind+"/"+strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			wantProblems, wantErrors := readWants(t, path)
			err := load(path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			var ve *ValidationError
			if len(wantProblems) > 0 {
				if !errors.As(err, &ve) {
					t.Fatalf("error %v is not a validation error", err)
				}
				if ve.File != path {
					t.Errorf("ValidationError.File = %q, want %q", ve.File, path)
				}
				if !reflect.DeepEqual(ve.Problems, wantProblems) {
					t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(ve.Problems, "\n  "), strings.Join(wantProblems, "\n  "))
				}
			}
			if len(wantErrors) > 0 && errors.As(err, &ve) {
				t.Fatalf("got validation problems %q, want a decode error", ve.Problems)
			}
			for _, w := range wantErrors {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func readWants(t *testing.T, path string) (problems, errs []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			problems = append(problems, w)
		} else if w, ok := strings.CutPrefix(line, "# want-error: "); ok {
			errs = append(errs, w)
		}
	}
	if len(problems) == 0 && len(errs) == 0 {
		t.Fatalf("%s has no \"# want:\" or \"# want-error:\" line", path)
	}
	return problems, errs
}

// TestLoadTemplatesReportsEveryFile checks that the problems of all template
// files come back together, each prefixed with its file.
func TestLoadTemplatesReportsEveryFile(t *testing.T) {
	_, err := LoadTemplates("testdata/templates_dir")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("LoadTemplates error %v is not a validation error", err)
	}
	dir := filepath.Join("testdata", "templates_dir")
	want := []string{
		filepath.Join(dir, "b-meter.yaml") + `: duplicate template id "meter-a" (also "Meter A")`,
		filepath.Join(dir, "c-pump.yaml") + `: points[0].type: unknown type "int64" (want bool, int16, uint16, int32, uint32, float32 or float64)`,
		filepath.Join(dir, "d-typo.yaml") + `: cannot decode configuration: yaml: unmarshal errors:` + "\n" +
			`  line 5: field point not found in type config.Template`,
	}
	if !reflect.DeepEqual(ve.Problems, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(ve.Problems, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestLoadTemplatesNoFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadTemplates(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("LoadTemplates of an empty folder: %v", err)
	}
}
