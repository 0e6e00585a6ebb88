package workorder

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/notify"
	"github.com/plantroom/plantroom/config"
)

// AlarmEvent opens, reopens or annotates work orders for alarm events; the
// alarm engine calls it for every event, in order. An alarm already handled
// (a redelivered event) changes nothing.
func (d *Desk) AlarmEvent(ctx context.Context, ev alarm.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return
	}
	switch ev.Kind {
	case alarm.EventRaise:
		evs := d.onRaise(ev)
		d.commit(ctx, evs)
		if len(evs) > 0 && !ev.Arrived.IsZero() {
			d.m.dispatch.Observe(d.cfg.Now().Sub(ev.Arrived).Seconds())
		}
	case alarm.EventEscalate:
		// A later stage of the same problem: the alarm's order, when it
		// has one, says so and takes the new severity; an alarm that now
		// asks for an order gets one as at a raise.
		if w := d.open[d.byAlarm[ev.Alarm.ID]]; w != nil && w.AlarmID == ev.Alarm.ID {
			if p := priority(ev.Alarm.Severity); p < w.Priority {
				w.Severity, w.Priority = ev.Alarm.Severity, p
			}
			note := fmt.Sprintf("alarm %s escalated: %s", ev.Alarm.ID, ev.Note)
			d.commit(ctx, []Event{d.record(w, Event{Action: ActionAlarm, At: ev.At, Who: System, From: w.State, Note: note}, w.Assignee)})
			return
		}
		evs := d.onRaise(ev)
		d.commit(ctx, evs)
		if len(evs) > 0 && !ev.Arrived.IsZero() {
			d.m.dispatch.Observe(d.cfg.Now().Sub(ev.Arrived).Seconds())
		}
	case alarm.EventClear:
		id := d.byAlarm[ev.Alarm.ID]
		if w := d.open[id]; w != nil && w.AlarmID == ev.Alarm.ID {
			note := fmt.Sprintf("alarm %s cleared", ev.Alarm.ID)
			d.commit(ctx, []Event{d.record(w, Event{Action: ActionAlarm, At: ev.At, Who: System, From: w.State, Note: note}, w.Assignee)})
		}
	}
}

// onRaise handles a raise, or an escalation of an alarm without an
// order. d.mu must be held.
func (d *Desk) onRaise(ev alarm.Event) []Event {
	a := ev.Alarm
	if !a.WorkOrder {
		return nil
	}
	rule := d.cfg.Rules.Rule(a.Rule)
	if rule == nil || rule.WorkOrder == nil {
		return nil
	}
	if _, done := d.byAlarm[a.ID]; done {
		return nil
	}
	spec := rule.WorkOrder
	// The deadline runs from the raise, or from the escalation that
	// brought the alarm to a rule with an order.
	raised := a.RaisedAt
	if ev.Kind == alarm.EventEscalate {
		raised = ev.At
	}
	now := d.cfg.Now().UTC()
	_, p, ok := d.cfg.Org.FindProject(a.Project)
	if !ok {
		return nil
	}
	due := slaDue(raised, spec.SLA.Duration, spec.SLAWorkingDay, &d.cfg.Rules.WorkOrders, p.Location)
	prev := d.orders[d.latest[a.Subject()+"/"+a.Rule]]
	var follows []Event
	if prev != nil {
		switch incident := newIncident(rule, prev, ev); {
		case !incident && prev.Open():
			// The same problem: the new alarm joins the open order.
			d.byAlarm[a.ID] = prev.ID
			prev.AlarmID = a.ID
			note := fmt.Sprintf("alarm %s raised again (value %v) while the order is open", a.ID, a.Value)
			return []Event{d.record(prev, Event{Action: ActionAlarm, At: now, Who: System, From: prev.State, Note: note}, prev.Assignee)}
		case !rule.Safety && prev.State != StateCancelled && spec.ReopenWithin.Duration > 0 && !prev.ResolvedAt.IsZero() &&
			raised.Sub(prev.ResolvedAt) <= spec.ReopenWithin.Duration:
			d.byAlarm[a.ID] = prev.ID
			note := fmt.Sprintf("alarm %s raised again %s after the order was resolved (reopen window %s)",
				a.ID, raised.Sub(prev.ResolvedAt).Round(time.Second), spec.ReopenWithin)
			from, assignee := prev.State, prev.Assignee
			prev.State, prev.AlarmID, prev.RaisedAt, prev.SLADue = StateOpen, a.ID, raised, due
			prev.Escalation, prev.Reopened = EscalationNone, prev.Reopened+1
			prev.AcceptedAt, prev.StartedAt, prev.ResolvedAt, prev.ClosedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			evs := []Event{d.record(prev, Event{Action: ActionReopen, At: now, Who: System, From: from, Note: note}, assignee)}
			if ev, ok := d.dispatch(prev, now); ok {
				evs = append(evs, ev)
			}
			return evs
		}
		if prev.Open() {
			// A new incident while the earlier order is still open: the
			// earlier order says so and goes on; the new one has its own
			// dispatch and deadline.
			note := fmt.Sprintf("new incident: alarm %s raised after alarm %s had cleared; new order wo-%s", a.ID, prev.AlarmID, a.ID)
			follows = append(follows, d.record(prev, Event{Action: ActionAlarm, At: now, Who: System, From: prev.State, Note: note}, prev.Assignee))
		}
	}
	w := &WorkOrder{
		ID: "wo-" + a.ID, Company: a.Company, Project: a.Project, Device: a.Subject(), Category: a.Category,
		Source: SourceAlarm, AlarmID: a.ID, Rule: a.Rule, Title: a.RuleName, Description: alarmDescription(a),
		Severity: a.Severity, Priority: priority(a.Severity), Skill: spec.Skill, State: StateOpen, CreatedBy: System,
		OpenedAt: now, RaisedAt: raised, SLADue: due,
	}
	note := "opened for alarm " + a.ID
	if prev != nil {
		w.Follows = prev.ID
		note += followsNote + prev.ID + ")"
	}
	d.byAlarm[a.ID] = w.ID
	evs := append(follows, d.record(w, Event{Action: ActionOpen, At: now, Who: System, From: "", Note: note}, ""))
	if ev, ok := d.dispatch(w, now); ok {
		evs = append(evs, ev)
	}
	return evs
}

// followsNote introduces, in the opening note of a new incident's order,
// the order it follows. The link is the column follows of the order's
// events; restore reads it from the note for orders stored before that
// column existed.
const followsNote = " (new incident after "

// followsOf returns the order an opening note names as the one it follows.
func followsOf(ev Event) string {
	if ev.Action != ActionOpen {
		return ""
	}
	_, rest, ok := strings.Cut(ev.Note, followsNote)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ")")
	return id
}

// newIncident reports whether a raise is a new incident rather than the
// problem of the device's latest order for the rule coming back: always for
// a safety rule; otherwise when the earlier alarm had cleared more than the
// rule's reopen_within before this raise (any clear, without a window).
// An order whose alarm's clear the engine did not report keeps the problem
// (and the order) as it was. A resolved order is reopened instead when the
// raise falls within reopen_within of its resolution (the fix did not hold),
// except for safety rules.
func newIncident(rule *config.Rule, prev *WorkOrder, ev alarm.Event) bool {
	if rule.Safety {
		return true
	}
	p := ev.Previous
	if p == nil || p.ID != prev.AlarmID || p.State != alarm.StateCleared || p.ClearedAt.IsZero() {
		return false
	}
	raised := ev.Alarm.RaisedAt
	if ev.Kind == alarm.EventEscalate {
		raised = ev.At
	}
	return raised.Sub(p.ClearedAt) > rule.WorkOrder.ReopenWithin.Duration
}

func alarmDescription(a alarm.Alarm) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s", a.RuleName, a.Subject())
	if a.Metric != "" {
		fmt.Fprintf(&b, ": %s = %v", a.Metric, a.Value)
	}
	fmt.Fprintf(&b, " at %s", a.RaisedAt.UTC().Format(time.RFC3339))
	return b.String()
}

var stateLabel = map[string]string{
	StateOpen: "待派单", StateAssigned: "已派单", StateAccepted: "已接单", StateInProgress: "处理中",
	StateResolved: "已解决", StateClosed: "已关闭", StateCancelled: "已取消",
}

// message renders the events webhooks hear about: dispatch, reopening,
// escalation, resolution, cancellation.
func (d *Desk) message(ev Event) (notify.Message, bool) {
	w := ev.Order
	var what string
	switch {
	case ev.To == StateAssigned && (ev.Action == ActionAssign || ev.Action == ActionTransition):
		what = "派单 / assigned to " + d.staffName(w.Assignee)
	case ev.Action == ActionReopen:
		what = "重开 / reopened"
	case ev.Action == ActionEscalate:
		what = "超时升级 / escalated"
	case ev.To == StateResolved && ev.From != StateResolved:
		what = "已解决 / resolved"
	case ev.To == StateCancelled && ev.From != StateCancelled:
		what = "已取消 / cancelled"
	default:
		return notify.Message{}, false
	}
	// Titles, names and notes are user-supplied: escaped in the markdown,
	// kept on one line in the plain title.
	title := notify.Line(fmt.Sprintf("[P%d] 工单 %s: %s", w.Priority, what, w.Title))
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n", notify.Markdown(title))
	fmt.Fprintf(&b, "> 工单 order: %s (%s)\n", notify.Markdown(w.ID), stateLabel[w.State])
	fmt.Fprintf(&b, "> 项目 project: %s\n", notify.Markdown(w.Project))
	if w.Device != "" {
		fmt.Fprintf(&b, "> 设备 device: %s\n", notify.Markdown(w.Device))
	}
	fmt.Fprintf(&b, "> 处理人 assignee: %s\n", notify.Markdown(d.staffName(w.Assignee)))
	fmt.Fprintf(&b, "> 到场时限 on site by: %s", w.SLADue.Format(time.RFC3339))
	if ev.Note != "" {
		fmt.Fprintf(&b, "\n> %s", notify.Markdown(ev.Note))
	}
	return notify.Message{
		ID: fmt.Sprintf("workorder/%s/%d", w.ID, ev.N), Event: "workorder." + eventName(ev), Company: w.Company, Project: w.Project,
		Severity: w.Severity, Title: title, Text: b.String(), At: ev.At, Data: ev,
	}, true
}

func eventName(ev Event) string {
	if ev.Action == ActionTransition || ev.Action == ActionAssign {
		return ev.To
	}
	return ev.Action
}

func (d *Desk) staffName(id string) string {
	if id == "" {
		return "-"
	}
	if s := d.roster.find(id); s != nil && s.Name != "" {
		return s.Name + " (" + id + ")"
	}
	return id
}

var _ alarm.Sink = (*Desk)(nil)
