package alarm

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

// overheat plays the simulator's over-temperature fault on garden-pump-1
// (devices/sim/pump.go: the motor heats from 55 °C toward 130 °C with a
// 240 s time constant and trips at 100 °C, then cools toward 26 °C with
// 900 s), one reading of each metric every 10 s from `from` to `to`.
func overheat(r *rig, from, to time.Duration) {
	const trip = 220 * time.Second // 55 + 75(1 - e^(-t/240)) reaches 100 °C
	for at := from; at <= to; at += 10 * time.Second {
		temp, running, code := 130-75*math.Exp(-at.Seconds()/240), 1.0, 0.0
		if at >= trip {
			hot := 130 - 75*math.Exp(-trip.Seconds()/240)
			temp, running, code = 26+(hot-26)*math.Exp(-(at-trip).Seconds()/900), 0, 3
		}
		r.read(gwGarden, pump, "running", at, running)
		r.read(gwGarden, pump, "fault_code", at, code)
		r.read(gwGarden, pump, "motor_temp_c", at, temp)
	}
}

// kindsOf lists the events of alarm id as "kind rule severity".
func kindsOf(l *memLog) []string {
	var out []string
	for _, ev := range l.Events() {
		out = append(out, ev.Kind+" "+ev.Alarm.Rule+" "+ev.Alarm.Severity)
	}
	return out
}

// Issue 19: an overheating motor met three rules one after the other
// (pump-temp-rising warning, pump-motor-hot minor, pump-fault major with a
// work order) and raised three alarms. configs/rules.yaml makes the later
// stages escalate the earlier: one alarm whose severity rises, with the
// order once the pump has tripped.
func TestOverheatingMotorIsOneAlarmThatEscalates(t *testing.T) {
	r := newRig(t, nil, nil)
	overheat(r, 0, 600*time.Second)
	want := []string{
		"raise pump-temp-rising warning",
		"escalate pump-motor-hot minor",
		"escalate pump-fault major",
	}
	if got := kindsOf(r.log); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	evs := r.log.Events()
	id := evs[0].Alarm.ID
	if !strings.HasPrefix(id, pump+".pump-temp-rising.") {
		t.Errorf("alarm id %q", id)
	}
	for _, ev := range evs {
		if ev.Alarm.ID != id || ev.Alarm.State != StateActive {
			t.Errorf("event %s of alarm %s (%s): want every step on the one active alarm %s", ev.Kind, ev.Alarm.ID, ev.Alarm.State, id)
		}
	}
	if n := evs[2].Note; n != "pump-motor-hot (minor) → pump-fault (major)" {
		t.Errorf("escalation note %q", n)
	}
	// The minor stage raised after its "for" (1m above 85 °C, reached at
	// about 122 s), the trip at 220 s.
	if at := evs[1].At.Sub(t0); at < 180*time.Second || at > 190*time.Second {
		t.Errorf("escalated to minor at %s", at)
	}
	if at := evs[2].At.Sub(t0); at != 220*time.Second {
		t.Errorf("escalated to major at %s, want the trip at 220s", at)
	}
	a := r.active(pump, "pump-fault")
	if a == nil || a.ID != id || a.Severity != "major" || !a.WorkOrder || a.RuleName == "" {
		t.Fatalf("alarm %+v: want %s as pump-fault, major, with a work order", a, id)
	}
	if r.active(pump, "pump-motor-hot") != nil || r.active(pump, "pump-temp-rising") != nil {
		t.Error("an earlier stage is still listed as an active alarm of its own")
	}
	if got := len(alarmsOf(t, r.e, hqAdmin, Filter{Device: pump})); got != 1 {
		t.Errorf("%d alarms of %s, want 1", got, pump)
	}

	// The fault is reset: the alarm clears after pump-fault's hold; the
	// motor, cooling, raises nothing.
	r.read(gwGarden, pump, "fault_code", 610*time.Second, 0)
	r.read(gwGarden, pump, "fault_code", 650*time.Second, 0)
	if got, want := kindsOf(r.log), "clear pump-fault major"; len(got) != 4 || got[3] != want {
		t.Fatalf("events %q, want a fourth: %q", got, want)
	}

	// A new overheating later is a new alarm.
	r2 := newRig(t, nil, nil)
	overheat(r2, 0, 150*time.Second)
	if got := kindsOf(r2.log); !slices.Equal(got, []string{"raise pump-temp-rising warning"}) {
		t.Fatalf("a fresh rig: events %q", got)
	}
}

// An escalated alarm goes back to the tracker of its current stage after a
// restart: the earlier stages' conditions, still holding, raise nothing.
func TestEscalatedAlarmAfterRestart(t *testing.T) {
	log := &memLog{}
	r := newRig(t, nil, log)
	overheat(r, 0, 200*time.Second) // warning, then minor
	if got := kindsOf(log); len(got) != 2 || got[1] != "escalate pump-motor-hot minor" {
		t.Fatalf("before the restart: events %q", got)
	}
	r.e.Stop()

	r2 := newRig(t, nil, log)
	overheat(r2, 150*time.Second, 300*time.Second)
	want := []string{"raise pump-temp-rising warning", "escalate pump-motor-hot minor", "escalate pump-fault major"}
	if got := kindsOf(log); !slices.Equal(got, want) {
		t.Fatalf("after the restart: events %q, want %q", got, want)
	}
}

// Escalation links are checked: known rules, one way, never to a lower
// severity, no gateway rules.
func TestEscalatesValidation(t *testing.T) {
	b := loadBundle(t)
	idx := func(id string) int {
		return slices.IndexFunc(b.Rules.Rules, func(r config.Rule) bool { return r.ID == id })
	}
	tr, gw := idx("pump-temp-rising"), idx("gateway-offline")
	b.Rules.Rules[tr].Escalates = []string{"pump-motor-hot", "nope", "pump-temp-rising", "elevator-trapped"}
	b.Rules.Rules[gw].Escalates = []string{"device-stale"}
	var p config.Problems
	b.Rules.Validate(&p)
	err := p.Err()
	path := func(i, j int) string { return fmt.Sprintf("rules[%d].escalates[%d]", i, j) }
	for _, want := range []string{
		path(tr, 0) + `: rule "pump-motor-hot" escalates this rule: escalation goes one way`,
		path(tr, 1) + `: unknown rule "nope"`,
		path(tr, 2) + `: a rule cannot escalate itself`,
		path(tr, 3) + `: rule "elevator-trapped" is more severe (critical) than this rule (warning): a rule escalates only to a severity at least as high`,
		path(gw, 0) + `: gateway rules neither escalate nor are escalated`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("problems %v: want %q", err, want)
		}
	}
}
