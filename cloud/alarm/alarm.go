// Package alarm turns readings, gateway status and gateway events into
// alarms: one state machine per (device, rule) that raises after the rule's
// "for" duration, clears beyond its hysteresis once the condition has stayed
// away for the rule's minimum hold, and keeps acknowledgement apart from
// state. Every transition is an Event kept in an append-only log (ClickHouse
// table alarm_events) together with the reading that caused it; the engine
// rebuilds its state from that log at start, so a restart duplicates nothing
// and loses nothing. It holds the active and recent alarms in memory and
// reads older ones back from the log (Config.Window, History).
// docs/alarms.md describes the behaviour for operators.
package alarm

import (
	"errors"
	"fmt"
	"time"
)

// Alarm states.
const (
	StateNormal  = "normal" // no alarm; used as the from-state of a raise
	StateActive  = "active"
	StateCleared = "cleared"
)

// Event kinds.
const (
	EventRaise  = "raise"  // the condition held for the rule's duration: a new alarm
	EventRepeat = "repeat" // the condition came back while the alarm was clearing
	EventUpdate = "update" // a state alarm's code changed while active
	EventClear  = "clear"  // the condition stayed away for the hold time
	// EventEscalate: a later stage of the same problem (a rule that
	// escalates the alarm's rule) raised; the alarm took its rule,
	// severity and work order.
	EventEscalate = "escalate"
	EventAck      = "ack" // a person acknowledged the alarm
)

// CategoryGateway is the category of gateway alarms (offline, queue overflow);
// device alarms take the device kind as their category.
const CategoryGateway = "gateway"

// Errors returned by the engine's query and command methods.
var (
	ErrNotFound   = errors.New("alarm not found")
	ErrNotStarted = errors.New("alarm engine not started")
	ErrForbidden  = errors.New("not allowed for this role")
)

// Alarm is one occurrence of a rule's condition on a device or gateway, from
// raise to clear. There is at most one active alarm per (device, rule).
type Alarm struct {
	ID        string    `json:"id"`
	Company   string    `json:"company"`
	Project   string    `json:"project"`
	Gateway   string    `json:"gateway"`
	Device    string    `json:"device,omitempty"` // empty for gateway alarms
	Category  string    `json:"category"`         // device kind, or "gateway"
	Rule      string    `json:"rule"`
	RuleName  string    `json:"rule_name"`
	RuleKind  string    `json:"rule_kind"`
	Severity  string    `json:"severity"`
	Metric    string    `json:"metric,omitempty"`
	State     string    `json:"state"` // active or cleared
	Acked     bool      `json:"acked"`
	AckedBy   string    `json:"acked_by,omitempty"`
	AckedAt   time.Time `json:"acked_at,omitzero"`
	RaisedAt  time.Time `json:"raised_at"`
	ClearedAt time.Time `json:"cleared_at,omitzero"`
	// Value is the value of the reading that raised the alarm (the latest
	// code for a state alarm that changed code while active).
	Value     float64   `json:"value"`
	ReadingTS time.Time `json:"reading_ts"` // time of the reading behind the latest event
	Count     int       `json:"count"`      // occurrences of the condition during this alarm
	WorkOrder bool      `json:"work_order"` // the rule opens a work order
	Seq       uint64    `json:"seq"`        // feed sequence of the latest event
	N         uint32    `json:"events"`     // number of events so far
}

// Subject is the device the alarm is about, or its gateway for gateway alarms.
func (a *Alarm) Subject() string {
	if a.Device != "" {
		return a.Device
	}
	return a.Gateway
}

// Event is one transition of one alarm. (AlarmID, N) identifies it, so
// storing an event twice changes nothing.
type Event struct {
	Seq  uint64    `json:"seq"`  // feed sequence, monotonic across all alarm and work-order events
	N    uint32    `json:"n"`    // 1 for the raise, then 2, 3, …
	Kind string    `json:"kind"` // raise, repeat, update, clear, ack
	At   time.Time `json:"at"`   // device time for raise/clear, wall clock for ack
	From string    `json:"from"` // state before
	To   string    `json:"to"`   // state after
	Who  string    `json:"who,omitempty"`
	Note string    `json:"note,omitempty"`
	// Value and ReadingTS are the reading that caused the event.
	Value     float64   `json:"value"`
	ReadingTS time.Time `json:"reading_ts,omitzero"`
	Alarm     Alarm     `json:"alarm"` // the alarm after the event
	// Arrived is when the causing reading reached ingest (not stored); the
	// work-order service measures dispatch latency from it.
	Arrived time.Time `json:"-"`
	// Previous is, for a raise, the earlier alarm of the same subject and
	// rule when the engine knows it (cleared): the work-order service
	// decides from its clear time whether the raise is a new incident.
	Previous *Alarm `json:"-"`
}

// alarmID is deterministic: the subject, the rule and the device time at
// which the condition began. Re-evaluating the same readings after a restart
// yields the same id.
func alarmID(subject, rule string, sinceMS int64) string {
	return fmt.Sprintf("%s.%s.%d", subject, rule, sinceMS)
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
