package alarm

import (
	"context"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Issue 19, point 3: both pumps of the garden's duty/standby set report the
// one header's pressure. A pressure loss is one alarm, for the group
// (org.yaml groups), not one per pump; the pumps' own alarms of the rule
// are gone, their other rules stay.
func TestGroupRaisesOneAlarmForASharedMeasurement(t *testing.T) {
	r := newRig(t, loadBundleWithGroups(t), nil)
	s := time.Second
	for at := time.Duration(0); at <= 40*s; at += 10 * s {
		r.read(gwGarden, "garden-pump-1", pressure, at, 1.5)
		r.read(gwGarden, "garden-pump-2", pressure, at+s, 1.5)
	}
	if n := r.log.count(EventRaise, lowRule); n != 1 {
		t.Fatalf("%d pressure raises for one header, want 1: %v", n, r.log.kinds())
	}
	a := r.active("garden-pumpset", lowRule)
	if a == nil || a.Device != "garden-pumpset" || a.Project != "garden" || a.Category != "pump" || !a.WorkOrder {
		t.Fatalf("group alarm %+v: want garden-pumpset, garden, pump, with a work order", a)
	}
	if r.active("garden-pump-1", lowRule) != nil || r.active("garden-pump-2", lowRule) != nil {
		t.Error("a pump got its own pressure alarm besides the group's")
	}
	// The group's alarm follows both pumps' readings: recovery reported
	// by either clears it after the hold.
	for at := 50 * s; at <= 120*s; at += 10 * s {
		r.read(gwGarden, "garden-pump-2", pressure, at, 3.0)
	}
	if r.active("garden-pumpset", lowRule) != nil {
		t.Errorf("group alarm still active after a minute of recovered pressure: %v", r.log.kinds())
	}
	// The pumps keep their own rules (a fault is a pump's own).
	r.read(gwGarden, "garden-pump-2", "fault_code", 130*s, 3)
	if r.active("garden-pump-2", "pump-fault") == nil {
		t.Error("pump-fault no longer raises for the pump itself")
	}
	if th, err := r.e.Thresholds("garden-pumpset"); err != nil || len(th) != 1 {
		t.Errorf("group rules %v, %v: want the one group rule", th, err)
	}
}

// Issue 19, point 3: a rule with a condition on another metric of the same
// device (pump-temp-rising only while running) ignores the stopped pump's
// readings: a stopped motor cooling fast raises nothing, a running one
// warming fast does.
func TestRuleConditionOnAnotherMetric(t *testing.T) {
	r := newRig(t, nil, nil)
	m := time.Minute
	rule := "pump-temp-rising"
	r.read(gwGarden, "garden-pump-2", "running", 0, 0)
	r.read(gwGarden, "garden-pump-2", "motor_temp_c", 0, 70)
	r.read(gwGarden, "garden-pump-2", "motor_temp_c", m, 55) // stopped: cooling 15 °C/min
	r.read(gwGarden, "garden-pump-2", "motor_temp_c", 2*m, 40)
	if r.active("garden-pump-2", rule) != nil {
		t.Fatalf("a stopped pump raised %s: %v", rule, r.log.kinds())
	}
	r.read(gwGarden, "garden-pump-1", "running", 0, 1)
	r.read(gwGarden, "garden-pump-1", "motor_temp_c", 0, 40)
	r.read(gwGarden, "garden-pump-1", "motor_temp_c", m, 52) // running: 12 °C/min
	if r.active("garden-pump-1", rule) == nil {
		t.Fatalf("a running pump warming 12 °C/min raised nothing: %v", r.log.kinds())
	}
	// It stops: the condition no longer holds, the alarm clears after the hold.
	r.read(gwGarden, "garden-pump-1", "running", 2*m, 0)
	r.read(gwGarden, "garden-pump-1", "motor_temp_c", 2*m, 45)
	r.read(gwGarden, "garden-pump-1", "motor_temp_c", 3*m, 38)
	if r.active("garden-pump-1", rule) != nil {
		t.Errorf("still active after the pump stopped: %v", r.log.kinds())
	}
}

// Configuration mistakes in groups and conditions are reported with their
// path, every one of them.
func TestGroupAndConditionValidation(t *testing.T) {
	b := loadBundleWithGroups(t)
	pr := &b.Org.Companies[0].Projects[0]
	pr.Groups = append(pr.Groups, config.DeviceGroup{ID: "garden-pump-1", Devices: []string{"garden-pump-1", "nowhere"}, Rules: []string{"device-stale", "nope"}})
	var p config.Problems
	b.Org.Validate(&p)
	b.CheckRefs(&p)
	b.Rules.Rules[0].When = &config.RuleWhen{Metric: "trapped"}
	b.Rules.Rules[0].InhibitedBy = []string{"elevator-trapped", "nope"}
	b.Rules.Validate(&p)
	err := p.Err()
	for _, want := range []string{
		`groups[1].id: "garden-pump-1" is a device id`,
		`groups[1].devices[1]: unknown device "nowhere"`,
		`groups[1].rules[0]: rule "device-stale" is a stale rule`,
		`groups[1].rules[1]: unknown rule "nope"`,
		`rules[0].when.metric: "trapped" is the rule's own metric`,
		`rules[0].when: needs in, above or below`,
		`rules[0].inhibited_by[0]: a rule cannot inhibit itself`,
		`rules[0].inhibited_by[1]: unknown rule "nope"`,
	} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("problems %v: want %q", err, want)
		}
	}
}

// Issue 19's figure, one alarm per physical fault: a pump that trips
// (dry run) lets the set's pressure fall, and a burst pipe first lowers the
// set's pressure and then trips the pump. configs/rules.yaml makes
// pump-fault and the group's pump-pressure-low inhibit each other: the
// first alarm stands for the fault, the other condition raises nothing for
// as long as it lasts.
func TestOnePumpFaultRaisesOneAlarm(t *testing.T) {
	s := time.Second
	t.Run("dry run: trip first", func(t *testing.T) {
		r := newRig(t, loadBundleWithGroups(t), nil)
		r.read(gwGarden, "garden-pump-1", "fault_code", 0, 0)
		r.read(gwGarden, "garden-pump-1", "fault_code", 20*s, 1)
		for at := 5 * s; at <= 60*s; at += 5 * s {
			r.read(gwGarden, "garden-pump-1", pressure, at, 0.3)
			r.read(gwGarden, "garden-pump-2", pressure, at+s, 0.3)
		}
		if r.active("garden-pump-1", "pump-fault") == nil || r.log.count(EventRaise, lowRule) != 0 {
			t.Fatalf("events %v: want the trip's alarm only", r.log.kinds())
		}
		// Pressure back, then low again while the pump is still tripped:
		// the trip's alarm still stands for it.
		for at := 65 * s; at <= 200*s; at += 5 * s {
			v := 3.0
			if at > 150*s {
				v = 1.5
			}
			r.read(gwGarden, "garden-pump-2", pressure, at, v)
		}
		if n := r.log.count(EventRaise, lowRule); n != 0 {
			t.Errorf("%d pressure raises while the pump's trip alarm is active: %v", n, r.log.kinds())
		}
	})
	t.Run("burst pipe: pressure first", func(t *testing.T) {
		r := newRig(t, loadBundleWithGroups(t), nil)
		r.read(gwGarden, "garden-pump-1", "fault_code", 0, 0)
		for at := s; at <= 95*s; at += 5 * s {
			r.read(gwGarden, "garden-pump-1", pressure, at, 0.8)
			r.read(gwGarden, "garden-pump-2", pressure, at+s, 0.8)
		}
		r.read(gwGarden, "garden-pump-1", "fault_code", 96*s, 3)
		if r.active("garden-pumpset", lowRule) == nil || r.log.count(EventRaise, "pump-fault") != 0 {
			t.Fatalf("events %v: want the set's pressure alarm only", r.log.kinds())
		}
		// The standby restores the pressure; the set's alarm clears after
		// its hold. The trip lasts without a break: still no second alarm.
		for at := 100 * s; at <= 220*s; at += 5 * s {
			r.read(gwGarden, "garden-pump-2", pressure, at, 3.0)
		}
		r.read(gwGarden, "garden-pump-1", "fault_code", 221*s, 3)
		if r.active("garden-pumpset", lowRule) != nil || r.log.count(EventRaise, "pump-fault") != 0 {
			t.Fatalf("events %v: want the set's alarm cleared and no trip alarm", r.log.kinds())
		}
		// Reset, and a new trip later: a new fault, its own alarm.
		r.read(gwGarden, "garden-pump-1", "fault_code", 230*s, 0)
		r.read(gwGarden, "garden-pump-1", "fault_code", 240*s, 2)
		if r.active("garden-pump-1", "pump-fault") == nil {
			t.Errorf("a new trip after the reset raised nothing: %v", r.log.kinds())
		}
	})
}

// Both pumps' low pressure in one batch (the edge sends a poll round of the
// set together) is one alarm: the second reading used to raise a second
// alarm of the group before the first was applied to its tracker
// (TestAlarmsPerInjectedFault saw two identical pumpset alarms). The same
// holds for several breaching readings of one device in one batch.
func TestOneBatchWithSeveralBreachingReadingsRaisesOnce(t *testing.T) {
	r := newRig(t, loadBundleWithGroups(t), nil)
	s := time.Second
	for at := time.Duration(0); at <= 40*s; at += 10 * s {
		ts := t0.Add(at)
		r.clock.Set(ts)
		b := &protocol.Batch{Epoch: 1, Gateway: gwGarden, Seq: uint64(at / time.Millisecond), SentAt: ts.UnixMilli(),
			Readings: []protocol.Reading{
				{Device: "garden-pump-1", Metric: pressure, TS: ts.UnixMilli(), Value: 0.8},
				{Device: "garden-pump-2", Metric: pressure, TS: ts.UnixMilli() + 1, Value: 0.83},
				{Device: "garden-pump-1", Metric: pressure, TS: ts.UnixMilli() + 500, Value: 0.81},
			}}
		r.e.ObserveBatch(context.Background(), r.gw(gwGarden), b, ts)
	}
	if n := r.log.count(EventRaise, lowRule); n != 1 {
		t.Fatalf("%d pressure raises from batches of both pumps, want 1: %v", n, r.log.kinds())
	}
	if n := len(alarmsOf(t, r.e, hqAdmin, Filter{Device: "garden-pumpset", State: StateActive})); n != 1 {
		t.Fatalf("%d active pumpset alarms, want 1", n)
	}
}
