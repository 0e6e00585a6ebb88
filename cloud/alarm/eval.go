package alarm

import (
	"math"
	"slices"
	"time"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/config"
)

// input is one observation fed to a tracker: a reading, or a status or event
// translated into one.
type input struct {
	ts      int64 // ms; device time for readings, gateway or arrival time otherwise
	value   float64
	metric  string
	arrived time.Time
	replay  bool // re-evaluated from storage at start
}

// transition is a decision of a tracker; the engine turns it into an Event.
type transition struct {
	t    *tracker
	kind string
	at   int64 // ms
	in   input
}

// tracker is the state machine of one rule on one subject:
//
//	normal ─condition─▶ pending ─held for "for"─▶ active ─clear condition─▶ clearing ─held for min_hold─▶ cleared (normal)
//	                      ▲  │ condition gone           ▲                        │ condition back: repeat
//	                      └──┘                          └────────────────────────┘
//
// Acknowledgement is independent of these states.
type tracker struct {
	rule    *boundRule
	subject *subject

	lastTS      int64 // time of the latest input evaluated (ms)
	lastArrived time.Time
	last        input
	prev        input // previous reading (rate rules)
	hasPrev     bool
	walk        *counterWalk // counter_discontinuity rules

	pendingSince  int64 // start of the condition while pending, 0 otherwise
	clearingSince int64 // start of the clear condition while clearing, 0 otherwise
	// away is set while an active alarm's condition is absent (a reading
	// beyond the limit, inside the hysteresis band or past it): its return
	// is a repeat. The band only delays clearing; it does not hide a dip.
	away bool
	// inhibited is set while a condition that would have raised is held
	// back by an active alarm of a rule in the rule's inhibited_by; it lasts
	// until the condition breaks.
	inhibited bool
	alarm     *Alarm
}

func (t *tracker) active() bool { return t.alarm != nil && t.alarm.State == StateActive }

// conditions evaluates a reading: raise reports that the alarm condition
// holds, clear that the value is back beyond the hysteresis. ok is false
// when the reading cannot be judged (the first reading of a rate rule).
func (t *tracker) conditions(in input) (raise, clear, ok bool) {
	r := t.rule
	v := in.value
	switch r.Kind {
	case config.RuleThreshold:
		raise = (r.Above != nil && v > *r.Above) || (r.Below != nil && v < *r.Below)
		clear = (r.Above == nil || v <= *r.Above-r.Hysteresis) && (r.Below == nil || v >= *r.Below+r.Hysteresis)
		return raise, clear, true
	case config.RuleState:
		if len(r.In) > 0 {
			raise = slices.Contains(r.In, v)
		} else {
			raise = !slices.Contains(r.NotIn, v)
		}
		return raise, !raise, true
	case config.RuleRate:
		prev, had := t.prev, t.hasPrev
		t.prev, t.hasPrev = in, true
		if !had || in.ts <= prev.ts {
			return false, false, false
		}
		rate := math.Abs(v-prev.value) / (float64(in.ts-prev.ts) / 60000)
		limit := *r.RatePerMinute
		return rate > limit, rate <= limit-r.Hysteresis, true
	case config.RuleCounterDiscontinuity:
		if t.walk == nil {
			return false, false, false
		}
		kind, decided := t.walk.observe(in.ts, v)
		if !decided {
			return false, false, false
		}
		return kind == energy.EventDiscontinuity, kind != energy.EventDiscontinuity, true
	}
	return false, false, false
}

// step advances the state machine with one input.
func (t *tracker) step(in input, raise, clear bool) []transition {
	t.lastTS, t.lastArrived, t.last = in.ts, in.arrived, in
	if !t.active() {
		t.clearingSince, t.away = 0, false
		if !raise {
			t.pendingSince, t.inhibited = 0, false
			return nil
		}
		if t.pendingSince == 0 {
			t.pendingSince = in.ts
		}
		if in.ts-t.pendingSince >= t.rule.wait.Milliseconds() && !t.inhibit() {
			return []transition{{t: t, kind: EventRaise, at: in.ts, in: in}}
		}
		return nil
	}
	if clear {
		t.away = true
		if t.clearingSince == 0 {
			t.clearingSince = in.ts
		}
		if in.ts-t.clearingSince >= t.rule.hold.Milliseconds() {
			return []transition{{t: t, kind: EventClear, at: in.ts, in: in}}
		}
		return nil
	}
	// Not beyond the hysteresis: the hold starts again at the next clear
	// reading. A reading inside the band is still away from the condition.
	t.clearingSince = 0
	wasAway := t.away
	t.away = !raise
	switch {
	case raise && wasAway:
		return []transition{{t: t, kind: EventRepeat, at: in.ts, in: in}}
	case raise && t.rule.Kind == config.RuleState && in.value != t.alarm.Value:
		return []transition{{t: t, kind: EventUpdate, at: in.ts, in: in}}
	}
	return nil
}

// inhibit reports whether a raise due now is held back: the condition
// began to be held back earlier and has not broken since, or an alarm of a
// rule the rule names in inhibited_by, or of a rule that escalates it, is
// active on the same device, on a group it belongs to or on a member of
// the group it is.
func (t *tracker) inhibit() bool {
	ids := t.rule.heldBy
	if t.inhibited || len(ids) == 0 {
		return t.inhibited
	}
	s := t.subject
	for _, o := range append(append([]*subject{s}, s.groups...), s.members...) {
		for _, x := range o.trackers {
			if x != t && x.active() && slices.Contains(ids, x.rule.ID) {
				t.inhibited = true
				return true
			}
		}
	}
	return false
}

// escalating returns the tracker whose active alarm a raise of t takes
// over: of the rules t escalates, the one with an active alarm on the same
// subject (the most severe when there are several), or nil.
func (t *tracker) escalating() *tracker {
	if len(t.rule.Escalates) == 0 {
		return nil
	}
	var low *tracker
	for _, x := range t.subject.trackers {
		if x == t || !x.active() || !slices.Contains(t.rule.Escalates, x.rule.ID) {
			continue
		}
		if low == nil || slices.Index(config.Severities, x.alarm.Severity) < slices.Index(config.Severities, low.alarm.Severity) {
			low = x
		}
	}
	return low
}

// occurred handles a one-off occurrence (a queue overflow): it raises, or
// repeats an active alarm, and starts the quiet period after which the alarm
// clears.
func (t *tracker) occurred(in input) []transition {
	t.lastTS, t.lastArrived, t.last = in.ts, in.arrived, in
	t.clearingSince = in.ts
	if t.active() {
		return []transition{{t: t, kind: EventRepeat, at: in.ts, in: in}}
	}
	t.pendingSince = in.ts
	return []transition{{t: t, kind: EventRaise, at: in.ts, in: in}}
}

// tick advances the timers: a pending condition raises once it has lasted
// the rule's "for", a clearing alarm clears once the hold has passed, both
// measured in the input's time base, extrapolated by the wall-clock time
// since the latest input arrived.
func (t *tracker) tick(now time.Time) []transition {
	if t.lastArrived.IsZero() {
		return nil
	}
	est := t.lastTS + now.Sub(t.lastArrived).Milliseconds()
	if !t.active() {
		if w := t.rule.wait.Milliseconds(); t.pendingSince != 0 && est-t.pendingSince >= w && !t.inhibit() {
			return []transition{{t: t, kind: EventRaise, at: t.pendingSince + w, in: t.last}}
		}
		return nil
	}
	if h := t.rule.hold.Milliseconds(); t.clearingSince != 0 && est-t.clearingSince >= h {
		return []transition{{t: t, kind: EventClear, at: t.clearingSince + h, in: t.last}}
	}
	return nil
}
