package workorder

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/config"
)

// escalate hands the desk the escalation of alarm a to rule at t, as the
// engine records it (cloud/alarm: the alarm takes the rule's severity and,
// once it has one, a work order).
func (r *rig) escalate(a alarm.Alarm, rule string, at time.Time) alarm.Alarm {
	r.t.Helper()
	ru := r.b.Rules.Rule(rule)
	note := a.Rule + " (" + a.Severity + ") → " + rule + " (" + ru.Severity + ")"
	a.Rule, a.RuleName, a.RuleKind, a.Severity, a.Metric = ru.ID, ru.Name, ru.Kind, ru.Severity, ru.Metric
	a.WorkOrder = a.WorkOrder || ru.WorkOrder != nil
	a.N++
	r.clock.Set(at)
	r.d.AlarmEvent(context.Background(), alarm.Event{N: a.N, Kind: alarm.EventEscalate, At: at, From: alarm.StateActive, To: alarm.StateActive, Note: note, Alarm: a, Arrived: at})
	return a
}

// Issue 19: an overheating motor is one alarm that escalates from a
// warning to the pump's trip; its order opens when the alarm reaches the
// rule that asks for one, with the deadline from then.
func TestEscalationOpensTheOrderOnce(t *testing.T) {
	r := newRig(t, nil, nil)
	a := r.raise("garden-pump-1", "pump-temp-rising", monday10)
	a = r.escalate(a, "pump-motor-hot", monday10.Add(3*time.Minute))
	if r.orderFor(a) != nil {
		t.Fatal("an order before the alarm reached a rule with one")
	}
	tripped := monday10.Add(220 * time.Second)
	a = r.escalate(a, "pump-fault", tripped)
	w := r.orderFor(a)
	if w == nil {
		t.Fatal("no order when the alarm escalated to pump-fault")
	}
	if w.Rule != "pump-fault" || w.Severity != "major" || w.Priority != 2 || w.AlarmID != a.ID || !w.SLADue.Equal(tripped.Add(2*time.Hour)) {
		t.Errorf("order %+v: want pump-fault, major, P2, for alarm %s, due 2h after the trip", w, a.ID)
	}
	if n := len(ordersOf(t, r.d, pmGarden, Filter{})); n != 1 {
		t.Errorf("%d orders, want 1", n)
	}
}

// An alarm that already has its order keeps it when it escalates: the
// order says so and takes the higher severity.
func TestEscalationKeepsTheOrder(t *testing.T) {
	b := loadBundle(t)
	hot := b.Rules.Rule("pump-motor-hot")
	hot.WorkOrder = &config.WorkOrderSpec{SLA: config.D(4 * time.Hour), Skill: "pump"}
	r := newRig(t, b, nil)
	a := r.raise("garden-pump-1", "pump-motor-hot", monday10)
	w := r.orderFor(a)
	if w == nil || w.Priority != 3 {
		t.Fatalf("order %+v: want one of priority 3 (minor)", w)
	}
	a = r.escalate(a, "pump-fault", monday10.Add(time.Minute))
	w2 := r.orderFor(a)
	if w2 == nil || w2.ID != w.ID || w2.Severity != "major" || w2.Priority != 2 {
		t.Fatalf("after the escalation: order %+v, want %s with severity major, P2", w2, w.ID)
	}
	if n := len(ordersOf(t, r.d, pmGarden, Filter{})); n != 1 {
		t.Errorf("%d orders, want 1", n)
	}
	h, err := r.d.Get(context.Background(), pmGarden, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := h.History[len(h.History)-1]; last.Action != ActionAlarm || !strings.Contains(last.Note, "escalated: pump-motor-hot (minor) → pump-fault (major)") {
		t.Errorf("last step %+v: want a note of the escalation", last)
	}
}
