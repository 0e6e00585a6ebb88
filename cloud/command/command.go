// Package command is the cloud's side of remote control (issue #16): it
// checks a requested command against the device's template before anything
// is sent, builds the protocol.Command for the gateway's "…/down/cmd", and
// follows a command's states
//
//	accepted → sent → applied | failed | rejected | expired
//
// from the gateway's result events (protocol.EventCommand).
//
// Check and the life cycle are the checked core; Desk (desk.go) runs it:
// it takes requests from the API (routes in commandhttp), keeps every
// state change in ClickHouse (store.go), publishes on the broker and
// follows the ingest's result events.
package command

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// States of a command. Accepted and Sent are the cloud's own; the final
// four are the gateway's (protocol.Command*).
const (
	StateAccepted = "accepted" // checked and recorded, not yet published
	StateSent     = "sent"     // published on the gateway's down/cmd
	StateApplied  = protocol.CommandApplied
	StateFailed   = protocol.CommandFailed
	StateRejected = protocol.CommandRejected
	StateExpired  = protocol.CommandExpired
)

// severityCritical is the alarm severity that refuses every command.
const severityCritical = "critical"

// MaxReasonRunes bounds a command's reason text.
const MaxReasonRunes = 500

// Errors of Check; the API answers ErrInvalid with 400, ErrRefused with
// 422, both with the wrapped message.
var (
	ErrInvalid = errors.New("invalid command")
	ErrRefused = errors.New("command refused")
)

// Request is what a staff member asks for.
type Request struct {
	Device string
	Point  string
	Value  float64
	Reason string
	By     string // staff id
}

// Device is what Check needs to know about the target device.
type Device struct {
	ID       string
	Template *config.Template
	// Alarms are the alarms active on the device.
	Alarms []Alarm
}

// Alarm is an active alarm as Check sees it.
type Alarm struct {
	ID       string
	Rule     string // the rule's id
	Name     string // the rule's name
	Severity string
	// Interlocks are the points the alarm's rule interlocks
	// (config.Rule.Interlocks).
	Interlocks []string
}

// Check validates a request against the device's template and state and
// returns the point's command expiry. It does not check who may command:
// that is cloud/access (access.Command on the device).
func Check(r Request, d Device) (time.Duration, error) {
	reason := strings.TrimSpace(r.Reason)
	switch {
	case reason == "":
		return 0, fmt.Errorf("%w: a reason is required", ErrInvalid)
	case utf8.RuneCountInString(reason) > MaxReasonRunes:
		return 0, fmt.Errorf("%w: reason has %d characters (max %d)", ErrInvalid, utf8.RuneCountInString(reason), MaxReasonRunes)
	case !utf8.ValidString(reason):
		return 0, fmt.Errorf("%w: reason is not valid UTF-8", ErrInvalid)
	}
	if err := protocol.CheckMetric(r.Point); err != nil {
		return 0, fmt.Errorf("%w: point: %v", ErrInvalid, err)
	}
	if d.Template == nil {
		return 0, fmt.Errorf("%w: device %q has no template", ErrRefused, d.ID)
	}
	pt, err := d.Template.CheckWrite(r.Point, r.Value)
	if err != nil {
		return 0, fmt.Errorf("%w: device %q: %v", ErrRefused, d.ID, err)
	}
	for _, a := range d.Alarms {
		if a.Severity == severityCritical {
			return 0, fmt.Errorf("%w: device %q is under an active critical alarm (%s %s): clear its cause first", ErrRefused, d.ID, a.ID, a.Name)
		}
	}
	for _, a := range d.Alarms {
		if slices.Contains(a.Interlocks, r.Point) {
			return 0, fmt.Errorf("%w: point %q of device %q is interlocked while alarm %s (%s) is active", ErrRefused, r.Point, d.ID, a.ID, a.Name)
		}
	}
	return pt.CommandExpiry(), nil
}

// Command is one command as the cloud keeps it: the request, its wire
// form and where it stands.
type Command struct {
	Wire   protocol.Command
	Reason string
	State  string
	Cause  string
	Before *float64
	After  *float64
	// Changed is when State was last set.
	Changed time.Time
	// Message says more about the state for people (the gateway's event
	// message, why the cloud gave up).
	Message string
	// Where the device belongs (set by the Desk).
	Company, Project, Gateway string
}

// New returns an accepted command with id, issued at now and valid for
// expiry. Call it after Check.
func New(id string, r Request, now time.Time, expiry time.Duration) (*Command, error) {
	c := &Command{
		Wire: protocol.Command{
			V: protocol.MessageVersion, ID: id, Device: r.Device, Point: r.Point, Value: r.Value,
			IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(expiry).UnixMilli(), By: r.By,
		},
		Reason: strings.TrimSpace(r.Reason), State: StateAccepted, Changed: now,
	}
	// The wire form must pass the gateway's own decoder.
	if _, err := protocol.DecodeCommand(protocol.EncodeCommand(c.Wire)); err != nil {
		return nil, fmt.Errorf("cannot build command %q: %w", id, err)
	}
	return c, nil
}

// Final reports whether a state is one of the gateway's outcomes.
func Final(state string) bool {
	switch state {
	case StateApplied, StateFailed, StateRejected, StateExpired:
		return true
	}
	return false
}

// ErrTransition is returned for a state change the life cycle does not
// allow (a second outcome, an outcome for another command).
var ErrTransition = errors.New("state change not allowed")

// MarkSent records that the command was published.
func (c *Command) MarkSent(now time.Time) error {
	if c.State != StateAccepted {
		return fmt.Errorf("cannot mark command %q sent: %w (state %s)", c.Wire.ID, ErrTransition, c.State)
	}
	c.State, c.Changed = StateSent, now
	return nil
}

// ApplyResult records the gateway's result event. An outcome may follow
// accepted (the publish was confirmed after the result arrived) or sent; a
// command that already has an outcome keeps it.
func (c *Command) ApplyResult(ev protocol.Event) error {
	if ev.Kind != protocol.EventCommand || ev.CommandID != c.Wire.ID {
		return fmt.Errorf("cannot apply event %q/%q to command %q: %w", ev.Kind, ev.CommandID, c.Wire.ID, ErrTransition)
	}
	if ev.Device != "" && ev.Device != c.Wire.Device {
		return fmt.Errorf("cannot apply a result for device %q to command %q of device %q: %w", ev.Device, c.Wire.ID, c.Wire.Device, ErrTransition)
	}
	if !Final(ev.State) {
		return fmt.Errorf("cannot apply state %q to command %q: %w (not an outcome)", ev.State, c.Wire.ID, ErrTransition)
	}
	if Final(c.State) {
		return fmt.Errorf("cannot apply %s to command %q: %w (already %s)", ev.State, c.Wire.ID, ErrTransition, c.State)
	}
	c.State, c.Cause, c.Before, c.After, c.Message = ev.State, ev.Cause, ev.Before, ev.After, ev.Message
	c.Changed = time.UnixMilli(ev.TS).UTC()
	return nil
}

// Causes the cloud itself gives for an outcome.
const (
	CauseNotSent  = "not_sent"  // the broker did not take the command
	CauseNoResult = "no_result" // no result from the gateway by expiry and the grace after it
)

// GiveUp ends a command that has no outcome yet on the cloud's side:
// failed (CauseNotSent) or expired (CauseNoResult).
func (c *Command) GiveUp(state, cause, message string, now time.Time) error {
	if state != StateFailed && state != StateExpired {
		return fmt.Errorf("BUG: cannot give command %q up as %q", c.Wire.ID, state)
	}
	if Final(c.State) {
		return fmt.Errorf("cannot mark command %q %s: %w (already %s)", c.Wire.ID, state, ErrTransition, c.State)
	}
	c.State, c.Cause, c.Message, c.Changed = state, cause, message, now
	return nil
}
