package alarm

import (
	"context"
	"fmt"

	"github.com/plantroom/plantroom/cloud/access"
)

// apply turns transitions into events, updating the alarms and publishing
// the events to the feed.
func (e *Engine) apply(trs []transition) []Event {
	if len(trs) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	evs := make([]Event, 0, len(trs))
	for _, tr := range trs {
		t, r, s := tr.t, tr.t.rule, tr.t.subject
		var a, prev *Alarm
		from, to := StateActive, StateActive
		kind, note := tr.kind, ""
		switch tr.kind {
		case EventRaise:
			if low := t.escalating(); low != nil {
				if t.alarm != nil && t.alarm.State == StateCleared {
					prev = t.alarm
				}
				a, note = e.escalate(t, low, tr.in)
				kind = EventEscalate
				break
			}
			subj := s.device
			if subj == "" {
				subj = s.gateway
			}
			a = &Alarm{
				ID: alarmID(subj, r.ID, t.pendingSince), Company: s.company, Project: s.project, Gateway: s.gateway,
				Device: s.device, Category: s.category, Rule: r.ID, RuleName: r.Name, RuleKind: r.Kind,
				Severity: r.Severity, Metric: r.Metric, State: StateActive, RaisedAt: msTime(tr.at),
				Value: tr.in.value, ReadingTS: msTime(tr.in.ts), Count: 1, WorkOrder: r.WorkOrder != nil,
			}
			if old := e.alarms[a.ID]; old != nil {
				// Same subject, rule and start: this alarm was raised before.
				t.alarm = old
				t.pendingSince = 0
				continue
			}
			from = StateNormal
			if t.alarm != nil && t.alarm.State == StateCleared {
				prev = t.alarm
			}
			t.alarm = a
			t.pendingSince = 0
			e.alarms[a.ID] = a
		case EventRepeat:
			a = t.alarm
			a.Count++
			a.ReadingTS = msTime(tr.in.ts)
		case EventUpdate:
			a = t.alarm
			a.Value = tr.in.value
			a.ReadingTS = msTime(tr.in.ts)
		case EventClear:
			a = t.alarm
			to = StateCleared
			a.State = StateCleared
			a.ClearedAt = msTime(tr.at)
			a.ReadingTS = msTime(tr.in.ts)
			t.clearingSince, t.pendingSince = 0, 0
		default:
			panic("BUG: unknown transition " + tr.kind)
		}
		ev := Event{Kind: kind, At: msTime(tr.at), From: from, To: to, Note: note, Value: tr.in.value, ReadingTS: msTime(tr.in.ts)}
		if !tr.in.replay {
			ev.Arrived = tr.in.arrived
		}
		if prev != nil {
			p := *prev
			ev.Previous = &p
		}
		evs = append(evs, e.record(a, ev))
	}
	return evs
}

// escalate hands the active alarm of tracker low to t, whose rule
// escalates low's: the alarm takes t's rule, severity and metric, and keeps
// its work order once it has one. low's condition is held back for as
// long as it lasts (and while the alarm is active, see inhibit). It
// returns the alarm and the event's note. e.mu must be held.
func (e *Engine) escalate(t, low *tracker, in input) (*Alarm, string) {
	a, r := low.alarm, t.rule
	note := fmt.Sprintf("%s (%s) → %s (%s)", a.Rule, a.Severity, r.ID, r.Severity)
	a.Rule, a.RuleName, a.RuleKind, a.Severity, a.Metric = r.ID, r.Name, r.Kind, r.Severity, r.Metric
	a.WorkOrder = a.WorkOrder || r.WorkOrder != nil
	a.Value, a.ReadingTS = in.value, msTime(in.ts)
	low.alarm, low.pendingSince, low.clearingSince, low.away, low.inhibited = nil, 0, 0, false, true
	t.alarm, t.pendingSince, t.clearingSince, t.away = a, 0, 0, false
	return a, note
}

// record numbers an event of alarm a, publishes it and returns it with the
// alarm's snapshot. e.mu must be held.
func (e *Engine) record(a *Alarm, ev Event) Event {
	a.N++
	ev.N = a.N
	e.feed.Publish(func(seq uint64) Item {
		a.Seq = seq
		ev.Seq = seq
		ev.Alarm = *a
		return eventItem(ev)
	})
	e.m.events.WithLabelValues(ev.Kind, a.Severity).Inc()
	return ev
}

// commit stores events (queueing them for retry when storage fails) and
// hands them to the sinks and the notifier. e.procMu must be held.
func (e *Engine) commit(ctx context.Context, evs []Event) {
	if len(evs) == 0 {
		return
	}
	e.outbox.Add(ctx, evs)
	for _, ev := range evs {
		for _, s := range e.cfg.Sinks {
			s.AlarmEvent(ctx, ev)
		}
		if e.cfg.Notifier != nil && (ev.Kind == EventRaise || ev.Kind == EventEscalate || ev.Kind == EventClear) {
			e.cfg.Notifier.Notify(message(ev))
		}
	}
}

// Ack acknowledges an alarm for the viewer. Acknowledging twice is not an
// error and records nothing new.
func (e *Engine) Ack(ctx context.Context, v Viewer, id, note string) (Alarm, error) {
	if !e.isRunning() {
		return Alarm{}, ErrNotStarted
	}
	e.procMu.Lock()
	defer e.procMu.Unlock()
	if err := e.hold(ctx, id); err != nil {
		return Alarm{}, fmt.Errorf("cannot acknowledge alarm %q: %w", id, err)
	}
	e.mu.Lock()
	a := e.alarms[id]
	if a == nil || !v.Sees(a.Resource()) {
		e.mu.Unlock()
		return Alarm{}, fmt.Errorf("cannot acknowledge alarm %q: %w", id, ErrNotFound)
	}
	if !v.May(access.Acknowledge, a.Resource()) {
		e.mu.Unlock()
		return Alarm{}, fmt.Errorf("cannot acknowledge alarm %q: role %s: %w", id, v.Role, ErrForbidden)
	}
	if a.Acked {
		out := *a
		e.mu.Unlock()
		return out, nil
	}
	now := e.cfg.Now().UTC()
	a.Acked, a.AckedBy, a.AckedAt = true, v.Staff, now
	ev := e.record(a, Event{Kind: EventAck, At: now, From: a.State, To: a.State, Who: v.Staff, Note: note,
		Value: a.Value, ReadingTS: a.ReadingTS, Arrived: now})
	out := *a
	e.mu.Unlock()
	e.commit(ctx, []Event{ev})
	return out, nil
}

// hold brings a stored alarm the engine no longer holds back into memory
// (to acknowledge it); the eviction lets it go again. e.procMu must be
// held.
func (e *Engine) hold(ctx context.Context, id string) error {
	e.mu.RLock()
	held := e.alarms[id] != nil
	e.mu.RUnlock()
	if held || e.hist == nil {
		return nil
	}
	a, ok, err := e.hist.FindAlarm(ctx, id)
	if err != nil || !ok {
		return err
	}
	e.mu.Lock()
	if e.alarms[id] == nil {
		e.alarms[id] = &a
	}
	e.mu.Unlock()
	return nil
}
