package sim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// counterMetrics lists the counters a device's template declares.
func counterMetrics(b *Building, id string) []string {
	d := b.byID[id]
	var ms []string
	for _, m := range templateMetrics(d.tmpl) {
		if isCounter(d.tmpl, m) {
			ms = append(ms, m)
		}
	}
	return ms
}

func stateConfig(path string) *Config {
	cfg := testConfig()
	cfg.StateFile = path
	return cfg
}

func TestStateContinuesAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	a := startBuilding(t, stateConfig(path))
	st, err := ReadState(path)
	if err != nil {
		t.Fatalf("Start did not write the state file: %v", err)
	}
	if !st.VirtualTime.Equal(testStart) {
		t.Errorf("state at Start taken at %s, want %s", st.VirtualTime, testStart)
	}
	before := advance(t, a, 3*time.Hour)
	a.Stop()
	a.Stop()

	st, err = ReadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.VirtualTime.Equal(a.Now()) {
		t.Errorf("state at Stop taken at %s, want %s", st.VirtualTime, a.Now())
	}
	n := 0
	for _, dc := range a.cfg.Devices {
		ms := counterMetrics(a, dc.ID)
		if len(st.Devices[dc.ID]) != len(ms) {
			t.Errorf("%s: state holds %v, want the counters %v", dc.ID, st.Devices[dc.ID], ms)
		}
		for _, m := range ms {
			if got, want := st.Devices[dc.ID][m], before[dc.ID][m]; got != want {
				t.Errorf("%s %s: saved %v, the device read %v", dc.ID, m, got, want)
			}
			n++
		}
	}
	if n < 9 {
		t.Fatalf("only %d counters in the test building", n)
	}

	// A second run (its clock starts where the first one did) continues
	// from the saved counters, not from the initial values.
	b := startBuilding(t, stateConfig(path))
	start := advance(t, b, 0)
	for id, ms := range st.Devices {
		for m, v := range ms {
			if start[id][m] != v {
				t.Errorf("restart: %s %s starts at %v, saved %v", id, m, start[id][m], v)
			}
		}
	}
	if st.Devices["lift"]["trips"] == 0 || st.Devices["meter"]["energy_import_kwh"] == 0 {
		t.Fatalf("counters did not move in 3 hours: %v", st.Devices)
	}
	later := advance(t, b, time.Hour)
	for id, ms := range st.Devices {
		for m, v := range ms {
			if later[id][m] < v {
				t.Errorf("restart: %s %s fell from %v to %v", id, m, v, later[id][m])
			}
		}
	}
	if later["meter"]["energy_import_kwh"] <= st.Devices["meter"]["energy_import_kwh"] {
		t.Error("the meter did not count on after the restart")
	}
}

func TestStateKeepsInitialForAbsentDevices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(path, []byte(`{"version": 1, "virtual_time": "2026-09-16T07:00:00+08:00",
  "devices": {"lift": {"trips": 5000}, "ghost": {"energy_kwh": 1}, "meter": {"power_total_w": 3}}}`), 0o644)
	cfg := stateConfig(path)
	cfg.Devices[3].Initial = map[string]float64{"trips": 10, "energy_kwh": 20} // lift
	cfg.Devices[1].Initial = map[string]float64{"run_hours": 30}               // pump-1
	b := newBuilding(t, cfg)
	v := advance(t, b, 0)
	if v["lift"]["trips"] != 5000 || v["lift"]["energy_kwh"] != 20 || v["pump-1"]["run_hours"] != 30 {
		t.Errorf("lift trips %v (state 5000), energy %v (initial 20), pump-1 run hours %v (initial 30)",
			v["lift"]["trips"], v["lift"]["energy_kwh"], v["pump-1"]["run_hours"])
	}
}

func TestStateSavedPeriodically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	cfg := stateConfig(path)
	cfg.StateInterval.Duration = 20 * time.Millisecond
	b := startBuilding(t, cfg)
	now := advance(t, b, time.Hour)
	var st *State
	eventually(t, 10*time.Second, "the state file to reach the virtual time", func() bool {
		s, err := ReadState(path)
		if err != nil {
			t.Fatalf("state file read while it is being saved: %v", err)
		}
		st = s
		return s.VirtualTime.Equal(b.Now())
	})
	if st.Devices["meter"]["energy_import_kwh"] != now["meter"]["energy_import_kwh"] {
		t.Errorf("saved %v, the meter reads %v", st.Devices["meter"]["energy_import_kwh"], now["meter"]["energy_import_kwh"])
	}
	b.Stop()
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestStateFileProblems(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":      "",
		"truncated":  `{"version": 1, "virtual_time": "2026-09-16T07:00:00+08:00", "devices": {"lift": {"trips": 50`,
		"not json":   "trips=5000\n",
		"version":    `{"version": 2, "virtual_time": "2026-09-16T07:00:00+08:00", "devices": {}}`,
		"no version": `{"virtual_time": "2026-09-16T07:00:00+08:00", "devices": {}}`,
		"no time":    `{"version": 1, "devices": {}}`,
		"negative":   `{"version": 1, "virtual_time": "2026-09-16T07:00:00+08:00", "devices": {"lift": {"trips": -1}}}`,
		"string":     `{"version": 1, "virtual_time": "2026-09-16T07:00:00+08:00", "devices": {"lift": {"trips": "many"}}}`,
		"other file": `{"gateway": "gw-garden-1", "version": 1, "virtual_time": "2026-09-16T07:00:00+08:00", "devices": {}}`,
		"trailing":   `{"version": 1, "virtual_time": "2026-09-16T07:00:00+08:00", "devices": {}} {}`,
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		os.WriteFile(path, []byte(content), 0o644)
		_, err := New(stateConfig(path), loadTemplates(t), testLogger(t))
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "state file") {
			t.Errorf("%s: New says %v, want an error naming %s", name, err, path)
		}
	}

	// A state file that cannot be written fails Start, not the last save.
	path := filepath.Join(dir, "missing-dir", "state.json")
	b := newBuilding(t, stateConfig(path))
	err := b.Start(context.Background())
	b.Stop()
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Start with an unwritable state file: %v", err)
	}
}

func TestLoadConfigStateFileRelative(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.yaml")
	os.WriteFile(path, []byte(`
state_file: run/b.state.json
state_interval: 30s
devices:
  - {id: m1, template: sdm630, listen: "127.0.0.1:0"}
`), 0o644)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateFile != filepath.Join(dir, "run", "b.state.json") || cfg.StateInterval.Duration != 30*time.Second ||
		cfg.Templates != filepath.Join(dir, DefaultTemplates) {
		t.Errorf("state_file %q, state_interval %s, templates %q", cfg.StateFile, cfg.StateInterval, cfg.Templates)
	}
}
