package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// StateVersion is the version of the counter state file format.
const StateVersion = 1

// State is what a building's devices keep across restarts, as real meters
// keep their registers in non-volatile memory: the value of every
// cumulative counter (template points and fields marked counter: true),
// by device id and metric, and the virtual time they were taken at (for
// information).
type State struct {
	Version     int                           `json:"version"`
	VirtualTime time.Time                     `json:"virtual_time"`
	Devices     map[string]map[string]float64 `json:"devices"`
}

// ReadState reads and checks a state file. A missing file is an error
// that matches fs.ErrNotExist; any other problem names the file.
func ReadState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read state file: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("cannot read state file %q: corrupt: the file is empty", path)
	}
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("cannot read state file %q: corrupt: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("cannot read state file %q: corrupt: data after the JSON object", path)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("cannot read state file %q: %w", path, err)
	}
	return &s, nil
}

// check reports the first thing that makes a state unusable.
func (s *State) check() error {
	if s.Version != StateVersion {
		return fmt.Errorf("unsupported version %d (want %d)", s.Version, StateVersion)
	}
	if s.VirtualTime.IsZero() {
		return errors.New("virtual_time is missing")
	}
	for _, id := range sortedKeys(s.Devices) {
		for _, metric := range sortedMetrics(s.Devices[id]) {
			if v := s.Devices[id][metric]; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return fmt.Errorf("devices.%s.%s: counter must be a number >= 0, got %v", id, metric, v)
			}
		}
	}
	return nil
}

// WriteFile writes the state atomically: to a temporary file in the same
// directory, synced, then renamed over path, and the directory synced, so
// a crash leaves either the old or the new state, never a torn one.
func (s *State) WriteFile(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode state for %q: %w", path, err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write state file %q: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("cannot write state file %q: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write state file %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write state file %q: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("cannot sync directory of state file %q: %w", path, err)
		}
	}
	return nil
}

// State returns the building's counters now: every counter its templates
// declare and its models simulate.
func (b *Building) State() *State {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &State{Version: StateVersion, VirtualTime: b.simTime, Devices: map[string]map[string]float64{}}
	for _, d := range b.devices {
		cs := d.model.counters()
		vals := map[string]float64{}
		for _, metric := range templateMetrics(d.tmpl) {
			if c := cs[metric]; c != nil && isCounter(d.tmpl, metric) {
				vals[metric] = c.v
			}
		}
		if len(vals) > 0 {
			s.Devices[d.cfg.ID] = vals
		}
	}
	return s
}

// SaveState writes the building's counters to its state file (Config.StateFile);
// it does nothing when there is none.
func (b *Building) SaveState() error {
	if b.cfg.StateFile == "" {
		return nil
	}
	return b.State().WriteFile(b.cfg.StateFile)
}

// restoreState sets the counters from the state file, if the building has
// one and it exists. Devices and metrics the file lacks keep their initial
// values; entries the building does not simulate are ignored with a
// warning. Called by New before the models settle.
func (b *Building) restoreState() error {
	path := b.cfg.StateFile
	if path == "" {
		return nil
	}
	s, err := ReadState(path)
	if errors.Is(err, fs.ErrNotExist) {
		b.log.Info("no state file yet: counters start from their initial values", "state_file", path)
		return nil
	}
	if err != nil {
		return err
	}
	restored := 0
	for _, id := range sortedKeys(s.Devices) {
		d := b.byID[id]
		if d == nil {
			b.log.Warn("state of unknown device ignored", "state_file", path, "device", id)
			continue
		}
		cs := d.model.counters()
		for _, metric := range sortedMetrics(s.Devices[id]) {
			c := cs[metric]
			if c == nil || !isCounter(d.tmpl, metric) {
				b.log.Warn("state of a counter not simulated ignored", "state_file", path, "device", id, "metric", metric)
				continue
			}
			c.set(s.Devices[id][metric])
			restored++
		}
	}
	b.log.Info("device counters restored", "state_file", path, "counters", restored,
		"taken_at", s.VirtualTime.In(b.cfg.Location).Format(time.RFC3339))
	if s.VirtualTime.After(b.simTime) {
		b.log.Warn("state file was taken after the virtual start time; counters continue from it",
			"state_file", path, "taken_at", s.VirtualTime.Format(time.RFC3339), "start", b.simTime.Format(time.RFC3339))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
