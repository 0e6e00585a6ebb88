package report

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

const minute = int64(60 * 1000) // one minute in ms

var t0 = time.Date(2026, 9, 16, 8, 0, 0, 0, time.UTC).UnixMilli()

func rd(device, metric string, at int64, v float64) protocol.Reading {
	return protocol.Reading{Device: device, Metric: metric, TS: t0 + at, Value: v}
}

// step is one reading fed to the filter and whether it must be kept.
type step struct {
	at   int64 // ms after t0
	v    float64
	keep bool
	why  string
}

func run(t *testing.T, f *Filter, metric string, deadband float64, counter bool, steps []step) {
	t.Helper()
	for i, s := range steps {
		if got := f.Keep(rd("dev", metric, s.at, s.v), deadband, counter); got != s.keep {
			t.Errorf("%s step %d (t+%ds, %v, %s): kept = %v, want %v", metric, i, s.at/1000, s.v, s.why, got, s.keep)
		}
	}
}

func TestDeadband(t *testing.T) {
	f := NewFilter(5 * time.Minute)
	run(t, f, "power_kw", 0.1, false, []step{
		{0, 10.00, true, "first value"},
		{10e3, 10.05, false, "within deadband"},
		{20e3, 9.95, false, "within deadband below"},
		{30e3, 10.10, true, "exactly the deadband"},
		{40e3, 10.15, false, "measured from 10.10, the last sent"},
		{50e3, 10.19, false, "drift of 0.09 from the last sent"},
		{60e3, 10.21, true, "drift adds up to 0.11"},
		{70e3, -5, true, "big drop"},
		{80e3, -5.05, false, "negative values, within deadband"},
		{70e3 + 5*minute, -5.05, true, "heartbeat after the last sent"},
		{80e3 + 5*minute, -5.05, false, "unchanged, heartbeat restarted"},
	})
}

func TestAnyChange(t *testing.T) {
	f := NewFilter(5 * time.Minute)
	// A coded state (deadband 0): every change, nothing else until the heartbeat.
	run(t, f, "door", 0, false, []step{
		{0, 0, true, "first"},
		{1e3, 0, false, "same"},
		{2e3, 1, true, "opening"},
		{3e3, 2, true, "open"},
		{4e3, 2, false, "still open"},
		{5e3, 0, true, "closed"},
		{5e3 + 5*minute - 1, 0, false, "a millisecond before the heartbeat"},
		{5e3 + 5*minute, 0, true, "heartbeat"},
	})
}

func TestCounter(t *testing.T) {
	f := NewFilter(5 * time.Minute)
	// A counter is sent on every change, whatever the deadband says.
	run(t, f, "energy_kwh", 10, true, []step{
		{0, 1000.00, true, "first"},
		{10e3, 1000.01, true, "smallest increment"},
		{20e3, 1000.01, false, "unchanged"},
		{30e3, 1000.02, true, "increment"},
		{40e3, 0.03, true, "meter replaced: reset"},
		{40e3 + 5*minute, 0.03, true, "heartbeat of an idle counter"},
		{40e3 + 6*minute, 0.03, false, "idle"},
	})
}

func TestQualityClockAndFirst(t *testing.T) {
	f := NewFilter(time.Hour)
	r := rd("dev", "flow", 0, 5)
	if !f.Keep(r, 1, false) {
		t.Fatal("first value not kept")
	}
	r.TS += 1000
	r.Quality = protocol.QualityUncertain
	if !f.Keep(r, 1, false) {
		t.Error("a change of quality was held back")
	}
	r.TS += 1000
	if f.Keep(r, 1, false) {
		t.Error("same value and quality kept")
	}
	r.TS -= 10 * minute
	if !f.Keep(r, 1, false) {
		t.Error("a reading older than the last sent (clock set back) was held back")
	}
	r.TS += 1000
	if f.Keep(r, 1, false) {
		t.Error("after the clock step the heartbeat runs from the new time")
	}
	// Metrics and devices are independent.
	if !f.Keep(rd("dev", "pressure", 0, 5), 1, false) || !f.Keep(rd("other", "flow", 0, 5), 1, false) {
		t.Error("first value of another metric or device held back")
	}
	nan := rd("dev", "flow", 5000, math.NaN())
	if !f.Keep(nan, 1, false) || !f.Keep(nan, 1, false) {
		t.Error("NaN held back: the filter must pass it on for the queue to reject and count")
	}
	again := rd("dev", "flow", 6000, 5)
	again.Quality = protocol.QualityUncertain
	if f.Keep(again, 1, false) {
		t.Error("NaN was remembered as the last sent value")
	}
}

func TestHeartbeatOff(t *testing.T) {
	f := NewFilter(0)
	for i := int64(0); i < 5; i++ {
		if !f.Keep(rd("dev", "x", i, 1), 100, false) {
			t.Fatalf("heartbeat 0: reading %d held back", i)
		}
	}
}

func TestResetAndRetain(t *testing.T) {
	f := NewFilter(time.Hour)
	for _, d := range []string{"a", "b", "c"} {
		for _, m := range []string{"x", "y"} {
			f.Keep(rd(d, m, 0, 1), 0, false)
		}
	}
	if s := f.Stats(); s.Entries != 6 || s.Kept != 6 {
		t.Fatalf("stats = %+v", s)
	}
	if f.Keep(rd("a", "x", 1000, 1), 0, false) {
		t.Fatal("unchanged value kept")
	}
	f.ResetDevice("a")
	if !f.Keep(rd("a", "x", 2000, 1), 0, false) {
		t.Error("after ResetDevice the next value was held back")
	}
	f.Retain(func(id string) bool { return id == "a" })
	if s := f.Stats(); s.Entries != 1 || s.Suppressed != 1 {
		t.Errorf("after Retain(a): %+v, want the one entry of a", s)
	}
	if !f.Keep(rd("b", "x", 3000, 1), 0, false) {
		t.Error("a device dropped by Retain was still remembered")
	}
}

func TestApply(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	ts, err := config.LoadTemplates(filepath.Join(filepath.Dir(file), "..", "..", "configs", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	specs := Specs(ts["pump-vfd"])
	if s := specs["energy_kwh"]; !s.Counter {
		t.Errorf("pump energy_kwh spec = %+v, want a counter", s)
	}
	if s := specs["frequency_hz"]; s.Deadband != 0.2 {
		t.Errorf("pump frequency_hz spec = %+v, want deadband 0.2", s)
	}
	if s := Specs(ts["tasmota-plug"]); !s["energy_kwh"].Counter || len(s) != 5 {
		t.Errorf("tasmota specs = %v", s)
	}
	f := NewFilter(5 * time.Minute)
	poll := func(at int64, freq, kwh, fault float64) []string {
		rs := []protocol.Reading{
			rd("pump", "frequency_hz", at, freq), rd("pump", "energy_kwh", at, kwh),
			rd("pump", "fault_code", at, fault), rd("pump", "unknown_metric", at, 1),
		}
		var out []string
		for _, r := range f.Apply(rs, specs) {
			out = append(out, r.Metric)
		}
		return out
	}
	check := func(got []string, want string) {
		t.Helper()
		if fmt.Sprint(got) != want {
			t.Errorf("kept %v, want %s", got, want)
		}
	}
	check(poll(0, 45.00, 100.00, 0), "[frequency_hz energy_kwh fault_code unknown_metric]")
	check(poll(10e3, 45.10, 100.00, 0), "[unknown_metric]")
	check(poll(20e3, 45.10, 100.01, 0), "[energy_kwh unknown_metric]")
	check(poll(30e3, 45.30, 100.01, 3), "[frequency_hz fault_code unknown_metric]")
	if s := f.Stats(); s.Entries != 3 {
		t.Errorf("entries = %d, want 3: a metric without a spec is not remembered", s.Entries)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := NewFilter(time.Minute)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprintf("dev-%d", g)
			for i := int64(0); i < 1000; i++ {
				f.Keep(rd(dev, "x", i*1000, float64(i/10)), 0, false)
				if i%250 == 0 {
					f.ResetDevice(dev)
				}
			}
		}()
	}
	wg.Wait()
	s := f.Stats()
	// Per device: 100 distinct values, plus a resend after each of the 4
	// resets (i = 0, 250, 500, 750; the next value is unchanged).
	if s.Kept != 8*(100+4) || s.Kept+s.Suppressed != 8000 || s.Entries != 8 {
		t.Errorf("stats = %+v", s)
	}
}
