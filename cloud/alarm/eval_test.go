package alarm

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	gwGarden = "gw-garden-1"
	pump     = "garden-pump-1"
	pressure = "outlet_pressure_bar"
	lowRule  = "pump-pressure-low" // garden: below 2.2 (project override), for 30s, hysteresis 0.2, min_hold 1m
)

func TestThresholdWaitsForDurationAndClearsBeyondHysteresisAfterHold(t *testing.T) {
	r := newRig(t, nil, nil)
	s := time.Second
	r.read(gwGarden, pump, pressure, 0, 3.0)
	r.read(gwGarden, pump, pressure, 10*s, 1.8) // pending from 10s
	r.read(gwGarden, pump, pressure, 20*s, 1.7)
	r.read(gwGarden, pump, pressure, 30*s, 1.7)
	if got := r.log.count(EventRaise, lowRule); got != 0 {
		t.Fatalf("raised after 20s of a 30s condition: %v", r.log.kinds())
	}
	r.read(gwGarden, pump, pressure, 40*s, 1.6)
	a := r.active(pump, lowRule)
	if a == nil {
		t.Fatalf("no active alarm after 30s below 2.2; events %v", r.log.kinds())
	}
	if want := fmt.Sprintf("%s.%s.%d", pump, lowRule, t0.Add(10*s).UnixMilli()); a.ID != want {
		t.Errorf("alarm id %q, want %q", a.ID, want)
	}
	if !a.RaisedAt.Equal(t0.Add(40*s)) || a.Value != 1.6 || a.Severity != "major" || a.Category != "pump" || !a.WorkOrder {
		t.Errorf("alarm %+v: want raised at +40s with value 1.6, major, pump, work order", a)
	}
	ev := r.log.Events()[0]
	if ev.Kind != EventRaise || ev.From != StateNormal || ev.To != StateActive || ev.Value != 1.6 || !ev.ReadingTS.Equal(t0.Add(40*s)) {
		t.Errorf("raise event %+v: want normal→active with the causing reading 1.6 at +40s", ev)
	}
	// Inside the hysteresis band (2.2 … 2.4): still active.
	r.read(gwGarden, pump, pressure, 50*s, 2.3)
	r.read(gwGarden, pump, pressure, 60*s, 2.5) // clearing from 60s
	for at := 70 * s; at < 120*s; at += 10 * s {
		r.read(gwGarden, pump, pressure, at, 2.5)
	}
	if r.active(pump, lowRule) == nil {
		t.Fatalf("cleared before min_hold (1m) of recovered pressure: %v", r.log.kinds())
	}
	r.read(gwGarden, pump, pressure, 120*s, 2.5)
	if r.active(pump, lowRule) != nil {
		t.Fatalf("still active after 1m beyond the hysteresis: %v", r.log.kinds())
	}
	last := r.log.Events()[len(r.log.Events())-1]
	if last.Kind != EventClear || !last.At.Equal(t0.Add(120*s)) || last.Alarm.State != StateCleared || last.Value != 2.5 {
		t.Errorf("last event %+v: want clear at +120s with value 2.5", last)
	}
	if got := strings.Join(r.log.kinds(), ","); got != "raise pump-pressure-low garden-pump-1,clear pump-pressure-low garden-pump-1" {
		t.Errorf("events %s", got)
	}
}

func TestOscillatingValueRaisesOneAlarm(t *testing.T) {
	r := newRig(t, nil, nil)
	s := time.Second
	// 20 minutes of a pressure that spends 40 s of every minute below the
	// limit and 20 s well above it (beyond the hysteresis).
	at := time.Duration(0)
	for ; at < 20*time.Minute; at += 10 * s {
		v := 1.9
		if at%time.Minute >= 40*s {
			v = 2.5
		}
		r.read(gwGarden, pump, pressure, at, v)
		r.tick(at + 5*s)
	}
	if got := r.log.count(EventRaise, lowRule); got != 1 {
		t.Fatalf("%d raises while oscillating, want 1: %v", got, r.log.kinds())
	}
	if got := r.log.count(EventClear, lowRule); got != 0 {
		t.Fatalf("cleared while oscillating: %v", r.log.kinds())
	}
	a := r.active(pump, lowRule)
	if a == nil || a.Count < 15 {
		t.Fatalf("alarm %+v: want active with the repeats counted", a)
	}
	// Stable recovery clears it once.
	for end := at + 70*s; at <= end; at += 10 * s {
		r.read(gwGarden, pump, pressure, at, 2.6)
	}
	if got := r.log.count(EventClear, lowRule); got != 1 {
		t.Fatalf("%d clears after recovery, want 1: %v", got, r.log.kinds())
	}

	// A trapped-passenger flag flapping every 10 s (the rule has no
	// min_hold, so the engine's default hold applies).
	for at = 0; at < 10*time.Minute; at += 10 * s {
		r.read(gwGarden, "garden-elevator-1", "trapped", 30*time.Minute+at, float64((at/(10*s))%2))
	}
	if got := r.log.count(EventRaise, "elevator-trapped"); got != 1 {
		t.Fatalf("%d trapped alarms from a flapping flag, want 1", got)
	}
}

func TestForTimerRaisesWithoutFurtherReadings(t *testing.T) {
	r := newRig(t, nil, nil)
	r.read(gwGarden, pump, pressure, 0, 1.5)
	r.tick(29 * time.Second)
	if r.active(pump, lowRule) != nil {
		t.Fatal("raised before 30s")
	}
	r.tick(31 * time.Second)
	a := r.active(pump, lowRule)
	if a == nil {
		t.Fatal("a low pressure reported once and then unchanged (deadband) did not raise after 30s")
	}
	if !a.RaisedAt.Equal(t0.Add(30*time.Second)) || a.Value != 1.5 || !a.ReadingTS.Equal(t0) {
		t.Errorf("alarm %+v: want raised at +30s caused by the reading at +0s", a)
	}
	// The hold runs on the timer too.
	r.read(gwGarden, pump, pressure, 40*time.Second, 3)
	r.tick(99 * time.Second)
	if r.active(pump, lowRule) == nil {
		t.Fatal("cleared before the 1m hold")
	}
	r.tick(101 * time.Second)
	if r.active(pump, lowRule) != nil {
		t.Fatal("not cleared 1m after recovery")
	}
	if n := r.log.count(EventClear, lowRule); n != 1 {
		t.Fatalf("%d clear events", n)
	}
	for _, ev := range r.log.Events() {
		if ev.Kind == EventClear && ev.Alarm.Rule == lowRule && !ev.At.Equal(t0.Add(100*time.Second)) {
			t.Errorf("clear event %+v: want at +100s", ev)
		}
	}
}

func TestStateRules(t *testing.T) {
	r := newRig(t, nil, nil)
	s := time.Second
	el := "garden-elevator-1"
	// Trapped passenger: immediate, critical.
	r.read(gwGarden, el, "trapped", 0, 1)
	a := r.active(el, "elevator-trapped")
	if a == nil || a.Severity != "critical" {
		t.Fatalf("trapped alarm %+v: want active critical at once", a)
	}
	r.read(gwGarden, el, "trapped", 10*s, 0)
	r.read(gwGarden, el, "trapped", 39*s, 0)
	if r.active(el, "elevator-trapped") == nil {
		t.Fatal("cleared before the default 30s hold")
	}
	r.read(gwGarden, el, "trapped", 40*s, 0)
	if r.active(el, "elevator-trapped") != nil {
		t.Fatal("trapped alarm not cleared after 30s of flag 0")
	}

	// Fault code ≠ 0 for 10s; a new code while active updates the alarm.
	r.read(gwGarden, el, "fault_code", 100*s, 0)
	r.read(gwGarden, el, "fault_code", 110*s, 3)
	r.read(gwGarden, el, "fault_code", 115*s, 3)
	if r.active(el, "elevator-fault") != nil {
		t.Fatal("fault raised before 10s")
	}
	r.read(gwGarden, el, "fault_code", 120*s, 3)
	r.read(gwGarden, el, "fault_code", 130*s, 7)
	a = r.active(el, "elevator-fault")
	if a == nil || a.Value != 7 || a.N != 2 {
		t.Fatalf("fault alarm %+v: want active with code 7 after an update", a)
	}
	if got := r.log.count(EventUpdate, "elevator-fault"); got != 1 {
		t.Errorf("%d update events, want 1", got)
	}
	// Pump fault: not_in [0].
	r.read(gwGarden, pump, "fault_code", 0, 3)
	if a := r.active(pump, "pump-fault"); a == nil || a.Value != 3 {
		t.Fatalf("pump fault %+v: want active with code 3", a)
	}
}

func TestRateRule(t *testing.T) {
	r := newRig(t, nil, nil)
	m := time.Minute
	r.read(gwGarden, pump, "running", 0, 1) // the rule's condition: while running
	r.read(gwGarden, pump, "motor_temp_c", 0, 40)
	r.read(gwGarden, pump, "motor_temp_c", m, 41) // 1 °C/min
	if r.active(pump, "pump-temp-rising") != nil {
		t.Fatal("raised at 1 °C/min (limit 5)")
	}
	r.read(gwGarden, pump, "motor_temp_c", 2*m, 50) // 9 °C/min
	if a := r.active(pump, "pump-temp-rising"); a == nil || a.Severity != "warning" {
		t.Fatalf("no warning at 9 °C/min: %v", r.log.kinds())
	}
	r.read(gwGarden, pump, "motor_temp_c", 3*m, 50.5)
	r.tick(3*m + 29*time.Second)
	if r.active(pump, "pump-temp-rising") == nil {
		t.Fatal("cleared before the default 30s hold")
	}
	r.tick(3*m + 30*time.Second)
	if r.active(pump, "pump-temp-rising") != nil {
		t.Fatal("not cleared 30s after the rise slowed to 0.5 °C/min")
	}
}

func TestOverrides(t *testing.T) {
	b := loadBundle(t)
	_, tower, _ := b.Org.FindProject("tower")
	below := 1.5
	forDur := b.Rules.Rule(lowRule).For
	forDur.Duration = 0
	tower.RuleOverrides = append(tower.RuleOverrides,
		config_override(lowRule, "tower-pump-1", &below, &forDur, false),
		config_override("pump-motor-hot", "tower-pump-2", nil, nil, true))
	r := newRig(t, b, nil)
	desc := func(dev string) string {
		d, err := r.e.Thresholds(dev)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(d, "\n")
	}
	if d := desc("garden-pump-1"); !strings.Contains(d, "pump-pressure-low (threshold, major) metric=outlet_pressure_bar below=2.2 for=30s") {
		t.Errorf("garden pump (project override 2.2):\n%s", d)
	}
	if d := desc("tower-pump-2"); !strings.Contains(d, "below=2 for=30s") || strings.Contains(d, "pump-motor-hot") {
		t.Errorf("tower pump 2 (rule default 2.0, motor-hot disabled):\n%s", d)
	}
	if d := desc("tower-pump-1"); !strings.Contains(d, "below=1.5 hysteresis") {
		t.Errorf("tower pump 1 (device override 1.5, no wait):\n%s", d)
	}
	if _, err := r.e.Thresholds("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown device: %v", err)
	}
	r.read("gw-tower-1", "tower-pump-1", pressure, 0, 1.8)
	r.read("gw-tower-1", "tower-pump-2", pressure, 0, 1.8)
	r.read("gw-tower-1", "tower-pump-1", pressure, time.Second, 1.4)
	if r.active("tower-pump-2", lowRule) != nil {
		t.Error("tower-pump-2 raised before its 30s")
	}
	if r.active("tower-pump-1", lowRule) == nil {
		t.Error("tower-pump-1 did not raise at once below its own 1.5")
	}
	r.read("gw-tower-1", "tower-pump-2", "motor_temp_c", 0, 99)
	r.tick(5 * time.Minute)
	if r.active("tower-pump-2", "pump-motor-hot") != nil {
		t.Error("disabled rule raised")
	}
}

// Issue 19, point 6: five returns below the limit are five occurrences,
// also when the pressure recovered only into the hysteresis band before a
// dip (the edge reports by exception: a recovery seen as 2.3 then 2.5
// before the next dip). The band delays clearing; it must not hide a dip.
func TestEveryReturnBelowTheLimitCountsARepeat(t *testing.T) {
	r := newRig(t, nil, nil)
	s := time.Second
	r.read(gwGarden, pump, pressure, 0, 1.8)
	r.read(gwGarden, pump, pressure, 30*s, 1.8) // raise: occurrence 1
	if r.active(pump, lowRule) == nil {
		t.Fatalf("no alarm: %v", r.log.kinds())
	}
	at := 40 * s
	recoveries := [][]float64{
		{2.5},      // beyond the band
		{2.3},      // inside the band only
		{2.5, 2.3}, // beyond, then back into the band
		{2.3, 2.5}, // band, then beyond
	}
	for _, rec := range recoveries {
		for _, v := range rec {
			r.read(gwGarden, pump, pressure, at, v)
			at += 5 * s
		}
		r.read(gwGarden, pump, pressure, at, 1.7) // the next dip
		at += 5 * s
	}
	a := r.active(pump, lowRule)
	if a == nil {
		t.Fatalf("alarm cleared while flapping: %v", r.log.kinds())
	}
	if a.Count != 5 || r.log.count(EventRepeat, lowRule) != 4 || r.log.count(EventRaise, lowRule) != 1 {
		t.Errorf("count %d, %d repeats, %d raises for 5 dips; want 5, 4, 1: %v", a.Count,
			r.log.count(EventRepeat, lowRule), r.log.count(EventRaise, lowRule), r.log.kinds())
	}
	// Staying below the limit is one occurrence, not one per reading.
	r.read(gwGarden, pump, pressure, at, 1.6)
	if a := r.active(pump, lowRule); a.Count != 5 {
		t.Errorf("count %d after a second reading of the same dip, want 5", a.Count)
	}
}

// Issue 19, point 1: a raise after a clear carries the earlier alarm (with
// its clear time) to the sinks, also after a restart, so the work-order
// service can tell a new incident from the same problem coming back.
func TestRaiseCarriesThePreviousAlarm(t *testing.T) {
	r := newRig(t, nil, nil)
	s := time.Second
	el := "garden-elevator-1"
	r.read(gwGarden, el, "trapped", 0, 1)
	r.read(gwGarden, el, "trapped", 10*s, 0)
	r.read(gwGarden, el, "trapped", 40*s, 0) // cleared at +40s
	r.e.Stop()
	r2 := newRig(t, r.b, r.log) // a restart on the same log
	r2.read(gwGarden, el, "trapped", 72*time.Minute, 1)
	var raise *Event
	for i := range r2.events {
		if ev := &r2.events[i]; ev.Kind == EventRaise && ev.Alarm.Rule == "elevator-trapped" {
			raise = ev
		}
	}
	if raise == nil {
		t.Fatalf("no second raise: %v", r2.log.kinds())
	}
	p := raise.Previous
	if p == nil || p.State != StateCleared || !p.ClearedAt.Equal(t0.Add(40*s)) || p.ID == raise.Alarm.ID {
		t.Errorf("raise's previous alarm %+v: want the first alarm, cleared at +40s", p)
	}
}
