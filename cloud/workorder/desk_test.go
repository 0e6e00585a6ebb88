package workorder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/config"
)

func TestAssignmentByShiftSkillAndLoad(t *testing.T) {
	r := newRig(t, nil, nil)
	at := func(day, hour int) time.Time { return time.Date(2025, 3, day, hour, 0, 0, 0, shanghai) }
	cases := []struct {
		device, rule string
		when         time.Time
		want         string
	}{
		{"garden-pump-1", "pump-fault", at(3, 10), "tech-garden-1"},                 // Monday day shift 08–20
		{"garden-pump-2", "pump-fault", at(3, 23), "tech-garden-2"},                 // Monday night shift 20–08
		{"garden-elevator-1", "elevator-fault", at(4, 3), "tech-garden-2"},          // night shift past midnight
		{"garden-lighting-1", "lighting-circuit-fault", at(4, 4), "pm-garden"},      // nobody with lighting on duty: manager
		{"garden-elevator-2", "elevator-trapped", at(4, 8), "tech-garden-1"},        // 08:00 the day shift starts
		{"tower-pump-1", "pump-pressure-low", at(8, 2), "tech-tower-1"},             // Saturday night, 24h technician
		{"tower-lighting-1", "lighting-circuit-fault", at(9, 15), "tech-tower-1"},   // Sunday
		{"garden-lighting-1", "lighting-circuit-fault", at(5, 19), "tech-garden-1"}, // lighting skill, day shift
	}
	for i, c := range cases {
		if i == len(cases)-1 {
			// The earlier lighting order is still open; cancel it so the alarm opens a new one.
			for _, w := range ordersOf(t, r.d, hqAdmin, Filter{Device: c.device}) {
				if _, err := r.move(pmGarden, w.ID, StateCancelled); err != nil {
					t.Fatal(err)
				}
			}
		}
		a := r.raise(c.device, c.rule, c.when)
		w := r.orderFor(a)
		if w == nil || w.Assignee != c.want || w.State != StateAssigned {
			t.Errorf("%s %s at %s: order %+v, want assigned to %s", c.device, c.rule, c.when.Format("Mon 15:04"), w, c.want)
			continue
		}
		if ev := w.History[len(w.History)-1]; ev.Action != ActionAssign || ev.Who != System || ev.Note == "" {
			t.Errorf("dispatch event %+v", ev)
		}
	}

	// Fewest open orders wins; ties go by staff id.
	b := loadBundle(t)
	b.Org.Staff = append(b.Org.Staff, config.Staff{ID: "tech-tower-0", Name: "T0", Company: "acme", Role: config.RoleTechnician,
		Projects: []string{"tower"}, Skills: []string{"pump"}, OnDuty: []config.Shift{{Days: []string{"mon"}, From: "00:00", To: "24:00"}},
		TokenHash: "sha256:" + strings.Repeat("0", 64)})
	r = newRig(t, b, nil)
	var got []string
	for i, dev := range []string{"tower-pump-1", "tower-pump-2", "tower-pump-1", "tower-pump-2"} {
		rule := "pump-fault"
		if i >= 2 {
			rule = "pump-pressure-low"
		}
		got = append(got, r.orderFor(r.raise(dev, rule, at(3, 10+i))).Assignee)
	}
	if want := "tech-tower-0,tech-tower-1,tech-tower-0,tech-tower-1"; strings.Join(got, ",") != want {
		t.Errorf("assignees %v, want %s", got, want)
	}
	// An elevator needs the elevator skill tech-tower-0 lacks.
	if w := r.orderFor(r.raise("tower-elevator-1", "elevator-trapped", at(3, 15))); w.Assignee != "tech-tower-1" {
		t.Errorf("elevator order to %s", w.Assignee)
	}
}

func TestOneOrderPerAlarmAndReopenWindow(t *testing.T) {
	r := newRig(t, nil, nil)
	a := r.raise("garden-pump-1", "pump-pressure-low", monday10)
	w := r.orderFor(a)
	if w == nil || w.Priority != 2 || w.Category != "pump" || w.Source != SourceAlarm || w.Skill != "pump" ||
		!w.SLADue.Equal(monday10.Add(2*time.Hour)) || w.RaisedAt != monday10.UTC() {
		t.Fatalf("order %+v: want P2 pump order due in 2h", w)
	}
	// The same raise delivered again changes nothing.
	n := r.log.(*memLog).len()
	r.d.AlarmEvent(context.Background(), alarm.Event{Kind: alarm.EventRaise, Alarm: a})
	if r.log.(*memLog).len() != n {
		t.Fatal("redelivered raise stored events")
	}
	// A new alarm of the same device and rule while the order is open joins it.
	a2 := r.raise("garden-pump-1", "pump-pressure-low", monday10.Add(20*time.Minute))
	if w2 := r.orderFor(a2); w2 == nil || w2.ID != w.ID || w2.AlarmID != a2.ID {
		t.Fatalf("second alarm while open: %+v, want order %s", w2, w.ID)
	}
	if got := ordersOf(t, r.d, hqAdmin, Filter{}); len(got) != 1 {
		t.Fatalf("%d orders, want 1", len(got))
	}
	for _, s := range []string{StateAccepted, StateInProgress, StateResolved} {
		if _, err := r.move(techGarden1, w.ID, s); err != nil {
			t.Fatal(err)
		}
	}
	// Re-raised 50 minutes after the resolution: within reopen_within (1h).
	r.clock.Set(monday10.Add(30 * time.Minute))
	if _, err := r.move(pmGarden, w.ID, StateClosed); err != nil {
		t.Fatal(err)
	}
	resolved := r.orderFor(a2).ResolvedAt
	a3 := r.raise("garden-pump-1", "pump-pressure-low", resolved.Add(50*time.Minute))
	w3 := r.orderFor(a3)
	if w3 == nil || w3.ID != w.ID || w3.State != StateAssigned || w3.Reopened != 1 || !w3.StartedAt.IsZero() ||
		!w3.SLADue.Equal(resolved.Add(50*time.Minute+2*time.Hour)) {
		t.Fatalf("re-raise within the window: %+v, want the same order reopened and assigned", w3)
	}
	var actions []string
	for _, ev := range w3.History {
		actions = append(actions, ev.Action+":"+ev.To)
	}
	want := "open:open,assign:assigned,alarm:assigned,transition:accepted,transition:in_progress,transition:resolved,transition:closed,reopen:open,assign:assigned"
	if strings.Join(actions, ",") != want {
		t.Errorf("history %v\nwant    %s", actions, want)
	}
	// Resolved again, then a raise two hours later: a new order.
	for _, s := range []string{StateAccepted, StateInProgress, StateResolved} {
		if _, err := r.move(techGarden1, w.ID, s); err != nil {
			t.Fatal(err)
		}
	}
	a4 := r.raise("garden-pump-1", "pump-pressure-low", r.clock.Now().Add(2*time.Hour))
	if w4 := r.orderFor(a4); w4 == nil || w4.ID == w.ID {
		t.Fatalf("re-raise after the window: %+v, want a new order", w4)
	}
	// Rules without a work order open none.
	if r.orderFor(r.raise("garden-pump-1", "pump-motor-hot", monday10)) != nil {
		t.Error("pump-motor-hot opened an order")
	}
}

// The rules file's work_orders settings: a holiday moves a next-working-day
// SLA on, and escalate_hq_after shortens the wait before HQ hears of a late
// order.
func TestWorkOrderCalendarAndHQDelay(t *testing.T) {
	b := loadBundle(t)
	b.Rules.WorkOrders = config.WorkOrderSettings{
		WorkdayStart:    "08:00",
		Calendar:        config.Calendar{Holidays: []string{"2025-03-10"}}, // the Monday after monday10's week
		EscalateHQAfter: config.D(10 * time.Minute),
		ManualSLA:       map[string]string{"p2": "2h", "p4": config.NextWorkingDay},
	}
	r := newRig(t, b, nil)
	ctx := context.Background()
	// Manual orders without an SLA of their own take manual_sla.
	for prio, want := range map[int]time.Time{
		1: monday10.Add(time.Hour),                     // the default
		2: monday10.Add(2 * time.Hour),                 // manual_sla.p2
		3: time.Date(2025, 3, 4, 8, 0, 0, 0, shanghai), // the default, next working day at workday_start
		4: time.Date(2025, 3, 4, 8, 0, 0, 0, shanghai), // manual_sla.p4
	} {
		w, err := r.d.Create(ctx, pmGarden, NewOrder{Project: "garden", Title: fmt.Sprintf("P%d 报修", prio), Priority: prio})
		if err != nil {
			t.Fatal(err)
		}
		if !w.SLADue.Equal(want) {
			t.Errorf("manual P%d due %s, want %s", prio, w.SLADue.In(shanghai), want)
		}
	}
	fri := time.Date(2025, 3, 7, 15, 0, 0, 0, shanghai)
	light := r.orderFor(r.raise("garden-lighting-1", "lighting-circuit-fault", fri))
	if want := time.Date(2025, 3, 11, 8, 0, 0, 0, shanghai); !light.SLADue.Equal(want) {
		t.Fatalf("lighting order raised Friday before a Monday holiday due %s, want Tuesday %s", light.SLADue.In(shanghai), want)
	}
	trapped := r.orderFor(r.raise("garden-elevator-1", "elevator-trapped", monday10))
	level := func() int {
		w, err := r.d.Get(context.Background(), hqAdmin, trapped.ID)
		if err != nil {
			t.Fatal(err)
		}
		return w.Escalation
	}
	r.d.checkSLA(ctx, monday10.Add(31*time.Minute))
	if level() != EscalationManager {
		t.Fatal("not escalated to the manager after the 30 minutes")
	}
	r.d.checkSLA(ctx, monday10.Add(39*time.Minute))
	if level() != EscalationManager {
		t.Fatal("escalated to HQ before escalate_hq_after")
	}
	r.d.checkSLA(ctx, monday10.Add(42*time.Minute))
	if level() != EscalationHQ {
		t.Fatal("not escalated to HQ 10 minutes after the manager")
	}
}

func TestSLAAndEscalation(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	trapped := r.orderFor(r.raise("garden-elevator-1", "elevator-trapped", monday10))
	pumpW := r.orderFor(r.raise("garden-pump-1", "pump-fault", monday10))
	if trapped.Priority != 1 || !trapped.SLADue.Equal(monday10.Add(30*time.Minute)) {
		t.Fatalf("trapped order %+v: want P1, on site within 30 minutes", trapped)
	}
	// Lighting: next working day 09:00; Friday afternoon → Monday.
	fri := time.Date(2025, 3, 7, 15, 0, 0, 0, shanghai)
	light := r.orderFor(r.raise("garden-lighting-1", "lighting-circuit-fault", fri))
	if want := time.Date(2025, 3, 10, 9, 0, 0, 0, shanghai); !light.SLADue.Equal(want) || light.Priority != 3 {
		t.Fatalf("lighting order due %s P%d, want %s P3", light.SLADue, light.Priority, want)
	}
	if _, err := r.move(techGarden1, pumpW.ID, StateAccepted); err != nil {
		t.Fatal(err)
	}
	if _, err := r.move(techGarden1, pumpW.ID, StateInProgress); err != nil {
		t.Fatal(err)
	}
	level := func(id string) int {
		w, err := r.d.Get(context.Background(), hqAdmin, id)
		if err != nil {
			t.Fatal(err)
		}
		return w.Escalation
	}
	r.d.checkSLA(ctx, monday10.Add(29*time.Minute))
	if level(trapped.ID) != 0 {
		t.Fatal("escalated before the due time")
	}
	r.d.checkSLA(ctx, monday10.Add(31*time.Minute))
	if level(trapped.ID) != EscalationManager {
		t.Fatal("not escalated to the manager after the 30 minutes")
	}
	r.d.checkSLA(ctx, monday10.Add(60*time.Minute))
	if level(trapped.ID) != EscalationManager {
		t.Fatal("escalated to HQ too early")
	}
	r.d.checkSLA(ctx, monday10.Add(91*time.Minute))
	r.d.checkSLA(ctx, monday10.Add(200*time.Minute))
	if level(trapped.ID) != EscalationHQ {
		t.Fatal("not escalated to HQ an hour later")
	}
	if level(pumpW.ID) != 0 {
		t.Error("an order in progress was escalated")
	}
	w, _ := r.d.Get(context.Background(), hqAdmin, trapped.ID)
	var esc []string
	for _, ev := range w.History {
		if ev.Action == ActionEscalate {
			esc = append(esc, ev.Note)
		}
	}
	if len(esc) != 2 || !strings.Contains(esc[0], "pm-garden") || !strings.Contains(esc[1], "HQ") {
		t.Errorf("escalation notes %q", esc)
	}
	if met, ok := w.SLAMet(monday10.Add(200 * time.Minute)); !ok || met {
		t.Errorf("SLA of the late order: met %v decided %v", met, ok)
	}
	got := strings.Join(r.notes.events(), ",")
	if strings.Count(got, "workorder.escalate") != 2 || !strings.Contains(got, "workorder.assigned") {
		t.Errorf("webhook messages %s", got)
	}
}

func TestManualOrder(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	_, err := r.d.Create(ctx, pmGarden, NewOrder{Project: "garden", Device: "tower-pump-1", Title: " ", Priority: 9, SLA: "soon", Category: "boiler"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad request: %v", err)
	}
	for _, want := range []string{`device: unknown device "tower-pump-1" in project "garden"`, "title: required", "priority: must be 1 to 4, got 9", `sla: invalid duration "soon"`, `category: unknown category "boiler"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := r.d.Create(ctx, hqViewer, NewOrder{Project: "garden", Title: "x"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("hq viewer creates: %v", err)
	}
	if _, err := r.d.Create(ctx, pmTower, NewOrder{Project: "garden", Title: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("other project's manager creates: %v", err)
	}
	w, err := r.d.Create(ctx, pmGarden, NewOrder{Project: "garden", Device: "garden-elevator-2", Title: "2号楼电梯异响", Description: "住户报修: 运行时异响", Skill: "elevator", Priority: 2})
	if err != nil {
		t.Fatal(err)
	}
	if w.Source != SourceManual || w.Category != "elevator" || w.State != StateAssigned || w.Assignee != "tech-garden-1" ||
		w.CreatedBy != "pm-garden" || !w.SLADue.Equal(monday10.Add(4*time.Hour)) || w.Severity != "major" {
		t.Errorf("manual order %+v", w)
	}
	// It shares the lifecycle.
	for _, s := range []string{StateAccepted, StateInProgress, StateResolved} {
		if _, err := r.move(techGarden1, w.ID, s); err != nil {
			t.Fatal(err)
		}
	}
	// The device's maintenance record.
	rec := deviceOrders(t, r.d, pmGarden, "garden-elevator-2", Filter{})
	if len(rec) != 1 || len(rec[0].History) != 5 {
		t.Fatalf("device record %+v", rec)
	}
	if got := deviceOrders(t, r.d, techGarden2, "garden-elevator-2", Filter{}); len(got) != 0 {
		t.Error("a technician sees an order assigned to someone else")
	}
}

func TestStorageFailureKeepsEventsForRetry(t *testing.T) {
	log := &memLog{}
	r := newRig(t, nil, log)
	log.SetFail(errors.New("down"))
	a := r.raise("garden-pump-1", "pump-fault", monday10)
	if log.len() != 0 || r.orderFor(a) == nil {
		t.Fatal("want the order in memory, not stored")
	}
	log.SetFail(nil)
	r.d.mu.Lock()
	r.d.outbox.Flush(context.Background())
	r.d.mu.Unlock()
	if log.len() != 2 {
		t.Fatalf("%d events stored after recovery, want 2", log.len())
	}
}

// raiseAfter hands the desk a raise whose earlier alarm (prev) cleared at
// cleared, as the engine reports it.
func (r *rig) raiseAfter(prev alarm.Alarm, cleared, at time.Time) alarm.Alarm {
	r.t.Helper()
	p := prev
	p.State, p.ClearedAt = alarm.StateCleared, cleared.UTC()
	r.clock.Set(cleared)
	r.d.AlarmEvent(context.Background(), alarm.Event{N: 2, Kind: alarm.EventClear, At: cleared, From: alarm.StateActive, To: alarm.StateCleared, Alarm: p})
	a := prev
	a.ID, a.RaisedAt = prev.Device+"."+prev.Rule+"."+at.Format("150405"), at.UTC()
	r.clock.Set(at)
	r.d.AlarmEvent(context.Background(), alarm.Event{N: 1, Kind: alarm.EventRaise, At: at, From: alarm.StateNormal, To: alarm.StateActive,
		Alarm: a, Arrived: at, Previous: &p})
	return a
}

// Issue 19, point 1: a second passenger trapped after the first alarm
// cleared is a new incident, although the first order is still open (and
// escalated): its own order, dispatch and 30-minute deadline, linked to
// the first.
func TestSafetyRaiseAfterClearIsANewIncident(t *testing.T) {
	r := newRig(t, nil, nil)
	first := monday10.Add(12*time.Hour + 19*time.Minute) // 22:19
	a1 := r.raise("garden-elevator-1", "elevator-trapped", first)
	w1 := r.orderFor(a1)
	if w1 == nil || w1.State != StateAssigned {
		t.Fatalf("first order %+v, want assigned", w1)
	}
	r.clock.Set(first.Add(45 * time.Minute))
	r.d.checkSLA(context.Background(), r.clock.Now()) // breached: escalated to the manager
	second := first.Add(72 * time.Minute)             // 23:31
	a2 := r.raiseAfter(a1, first.Add(25*time.Minute), second)
	w2 := r.orderFor(a2)
	if w2 == nil || w2.ID == w1.ID {
		t.Fatalf("second entrapment joined order %s; want a new order", w1.ID)
	}
	if w2.Follows != w1.ID || w2.State != StateAssigned || w2.Assignee == "" || w2.Escalation != EscalationNone ||
		!w2.SLADue.Equal(second.Add(30*time.Minute).UTC()) || !w2.RaisedAt.Equal(second.UTC()) {
		t.Errorf("second order %+v: want assigned, escalation 0, due %s, follows %s", w2, second.Add(30*time.Minute).UTC(), w1.ID)
	}
	old := r.orderFor(a1)
	if old.State != StateAssigned || old.AlarmID != a1.ID {
		t.Errorf("first order %s now %s with alarm %s; want it unchanged (assigned, %s)", old.ID, old.State, old.AlarmID, a1.ID)
	}
	if last := old.History[len(old.History)-1]; !strings.Contains(last.Note, "new incident") || !strings.Contains(last.Note, w2.ID) {
		t.Errorf("first order's last note %q, want it to name the new incident %s", last.Note, w2.ID)
	}
	n := 0
	for _, e := range r.notes.events() {
		if e == "workorder.assigned" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("webhook messages %v: want two dispatches (one per incident)", r.notes.events())
	}
	r.d.Stop()
	r.start() // the link survives a restart
	if w := r.orderFor(a2); w == nil || w.Follows != w1.ID {
		t.Errorf("after a restart the second order follows %v, want %s", w, w1.ID)
	}
}

// Issue 19, point 1, for rules that are not safety rules: a raise within
// reopen_within (1h) of the earlier alarm's clear is the same incident and
// joins the open order; a raise later than that is a new incident.
func TestRaiseAfterClearJoinsWithinTheWindowOnly(t *testing.T) {
	r := newRig(t, nil, nil)
	a1 := r.raise("garden-pump-1", "pump-pressure-low", monday10)
	w1 := r.orderFor(a1)
	a2 := r.raiseAfter(a1, monday10.Add(10*time.Minute), monday10.Add(40*time.Minute))
	if w := r.orderFor(a2); w == nil || w.ID != w1.ID {
		t.Fatalf("raise 30m after the clear: a new order, want %s (same incident)", w1.ID)
	}
	a3 := r.raiseAfter(a2, monday10.Add(50*time.Minute), monday10.Add(3*time.Hour))
	w3 := r.orderFor(a3)
	if w3 == nil || w3.ID == w1.ID || w3.Follows != w1.ID {
		t.Fatalf("raise 2h10m after the clear: order %v, want a new order following %s", w3 != nil && w3.ID == w1.ID, w1.ID)
	}
}
