// Package workorder opens, dispatches and tracks work orders: automatically
// for alarms whose rule asks for one, and manually for repair requests
// staff enter. Every transition (who, when, from, to, note, photo) is an
// event in an append-only log (ClickHouse table workorder_events); the
// current state of an order is its latest event, rebuilt into memory at
// start for the orders still being worked on and the recent ones (older
// ones are read back from the log: Config.Window, History). The same log
// gives each device its maintenance record.
package workorder

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/config"
)

// States of a work order.
const (
	StateOpen       = "open"
	StateAssigned   = "assigned"
	StateAccepted   = "accepted"
	StateInProgress = "in_progress"
	StateResolved   = "resolved"
	StateClosed     = "closed"
	StateCancelled  = "cancelled"
)

// States lists every state in lifecycle order.
var States = []string{StateOpen, StateAssigned, StateAccepted, StateInProgress, StateResolved, StateClosed, StateCancelled}

// Actions recorded in the history. Besides the state changes people make
// (Action "transition") the system records openings, automatic
// assignments, reopenings, escalations and alarm notes.
const (
	ActionOpen       = "open"       // created (by the system for an alarm, or by staff)
	ActionAssign     = "assign"     // automatic dispatch
	ActionTransition = "transition" // a person moved the order
	ActionReopen     = "reopen"     // the alarm re-raised within the reopen window
	ActionEscalate   = "escalate"   // SLA breached: escalated to the manager, then HQ
	ActionAlarm      = "alarm"      // the linked alarm re-raised or cleared (no state change)
)

// Sources of work orders.
const (
	SourceAlarm  = "alarm"
	SourceManual = "manual"
)

// System is the "who" of transitions the service makes itself.
const System = "system"

// Escalation levels.
const (
	EscalationNone    = 0
	EscalationManager = 1
	EscalationHQ      = 2
)

// WorkOrder is the current state of one work order.
type WorkOrder struct {
	ID          string    `json:"id"`
	Company     string    `json:"company"`
	Project     string    `json:"project"`
	Device      string    `json:"device,omitempty"` // device, or gateway id for gateway alarms; "" when none
	Category    string    `json:"category"`         // device kind, "gateway", or "other"
	Source      string    `json:"source"`           // alarm or manual
	AlarmID     string    `json:"alarm_id,omitempty"`
	Rule        string    `json:"rule,omitempty"`
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	Severity    string    `json:"severity"`
	Priority    int       `json:"priority"` // 1 (critical) … 4 (warning)
	Skill       string    `json:"skill,omitempty"`
	State       string    `json:"state"`
	Assignee    string    `json:"assignee,omitempty"`
	CreatedBy   string    `json:"created_by"`
	OpenedAt    time.Time `json:"opened_at"`
	// RaisedAt is when the problem began: the alarm's raise, or the opening
	// of a manual order. Response and resolution times count from it.
	RaisedAt   time.Time `json:"raised_at"`
	AssignedAt time.Time `json:"assigned_at,omitzero"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	// ArrivedAt is when the assignee scanned in on site (ActionArrive);
	// cleared when the order changes hands.
	ArrivedAt  time.Time `json:"arrived_at,omitzero"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	ClosedAt   time.Time `json:"closed_at,omitzero"`
	// SLADue is when someone must be on site (work in progress).
	SLADue     time.Time `json:"sla_due"`
	Escalation int       `json:"escalation"` // 0 none, 1 manager, 2 HQ
	Reopened   int       `json:"reopened"`
	// Follows is the earlier order of the same device and rule when this
	// one is a new incident after it (a second passenger trapped). It is
	// kept in the opening event's note (" (new incident after wo-…)").
	Follows string  `json:"follows,omitempty"`
	Seq     uint64  `json:"seq"`
	N       uint32  `json:"events"`
	History []Event `json:"history,omitempty"`
}

// Open reports whether the order still needs work.
func (w *WorkOrder) Open() bool {
	switch w.State {
	case StateResolved, StateClosed, StateCancelled:
		return false
	}
	return true
}

// OnSiteAt is when someone was first on site: the recorded arrival, or the
// start of work when that came first or no arrival was recorded. Zero
// when neither happened.
func (w *WorkOrder) OnSiteAt() time.Time {
	if !w.ArrivedAt.IsZero() && (w.StartedAt.IsZero() || w.ArrivedAt.Before(w.StartedAt)) {
		return w.ArrivedAt
	}
	return w.StartedAt
}

// SLAMet reports whether someone was on site (arrival or start of work) by
// the due time; ok is false while that is still undecided (not on site and
// not yet due) or for cancelled orders.
func (w *WorkOrder) SLAMet(now time.Time) (met, ok bool) {
	switch on := w.OnSiteAt(); {
	case w.State == StateCancelled:
		return false, false
	case !on.IsZero():
		return !on.After(w.SLADue), true
	case now.After(w.SLADue):
		return false, true
	}
	return false, false
}

// Event is one entry of an order's history. (OrderID, N) identifies it.
type Event struct {
	OrderID string    `json:"order_id"`
	N       uint32    `json:"n"`
	Seq     uint64    `json:"seq"`
	Action  string    `json:"action"`
	At      time.Time `json:"at"`
	Who     string    `json:"who"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Note    string    `json:"note,omitempty"`
	Photo   string    `json:"photo,omitempty"` // reference to a photo kept elsewhere
	// Photos are the stored photos the step carried (package photo).
	Photos   []photo.Photo `json:"photos,omitempty"`
	Assignee string        `json:"assignee,omitempty"` // assignee after the event
	// Order is the order after the event, without its history.
	Order WorkOrder `json:"order"`
}

// transitions is the lifecycle: for each state, the states a person may
// move an order to. Assigned → assigned is a reassignment.
var transitions = map[string][]string{
	StateOpen:       {StateAssigned, StateCancelled},
	StateAssigned:   {StateAssigned, StateAccepted, StateCancelled},
	StateAccepted:   {StateAssigned, StateInProgress, StateCancelled},
	StateInProgress: {StateAssigned, StateResolved, StateCancelled},
	StateResolved:   {StateInProgress, StateClosed},
	StateClosed:     {},
	StateCancelled:  {},
}

// Allowed returns the states a person may move an order in state from to.
func Allowed(from string) []string { return slices.Clone(transitions[from]) }

// Errors of the service's commands.
var (
	ErrNotFound  = errors.New("work order not found")
	ErrForbidden = errors.New("not allowed")
	ErrInvalid   = errors.New("invalid request")
	// ErrTransition is wrapped by *TransitionError.
	ErrTransition = errors.New("invalid transition")
)

// TransitionError is a transition the lifecycle does not allow from the
// order's state. The API answers it with 409 and Allowed.
type TransitionError struct {
	ID, From, To string
	Allowed      []string
}

func (e *TransitionError) Error() string {
	allowed := "none: the order is final"
	if len(e.Allowed) > 0 {
		allowed = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("cannot move work order %q from %s to %q: allowed: %s", e.ID, e.From, e.To, allowed)
}

// Unwrap makes errors.Is(err, ErrTransition) true.
func (e *TransitionError) Unwrap() error { return ErrTransition }

// stepAction is the access action a move from state from to state to
// takes (the lifecycle has already allowed it): accepting, starting and
// resolving are the assignee's work; assigning, reassigning, sending
// resolved work back, closing and cancelling are managing the order.
// Package access says who may take which.
func stepAction(from, to string) access.Action {
	switch {
	case to == StateAccepted || to == StateResolved:
		return access.Work
	case to == StateInProgress && from == StateAccepted:
		return access.Work
	}
	return access.Manage
}

// Moves lists the states the lifecycle allows w to move to next that a
// principal for whom may answers may take: what a page offers as buttons.
// The desk's Transition applies the same rule.
func Moves(may func(access.Action, access.Resource) bool, w *WorkOrder) []string {
	var out []string
	for _, to := range transitions[w.State] {
		if may(stepAction(w.State, to), w.Resource()) {
			out = append(out, to)
		}
	}
	return out
}

// Resource is where the order belongs, for access decisions.
func (w *WorkOrder) Resource() access.Resource {
	return access.Resource{Kind: access.KindWorkOrder, Company: w.Company, Project: w.Project, Assignee: w.Assignee}
}

// priority maps a severity to a priority: critical → 1 … warning → 4.
func priority(severity string) int {
	if i := slices.Index(config.Severities, severity); i >= 0 {
		return i + 1
	}
	return len(config.Severities)
}

// severityOf maps a priority back to a severity.
func severityOf(p int) string {
	if p >= 1 && p <= len(config.Severities) {
		return config.Severities[p-1]
	}
	return config.Severities[len(config.Severities)-1]
}
