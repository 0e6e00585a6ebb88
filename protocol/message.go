package protocol

import (
	"encoding/json"
	"fmt"
)

// MessageVersion is the "v" field of the JSON messages this package
// encodes. Status and event messages of version 1 have the same layout and
// are still accepted (MessageVersionV1); acks and commands exist only in
// version 2.
const (
	MessageVersion   = 2
	MessageVersionV1 = 1
)

// MaxMessageBytes bounds a status or event message.
const MaxMessageBytes = 16 << 10

// Gateway states carried by Status.State.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// Status is the retained gateway status message. The gateway publishes
// {"state":"online"} when it connects and registers {"state":"offline"} as its
// MQTT last will, so the broker announces an unclean disconnect.
type Status struct {
	V       int    `json:"v"`
	Gateway string `json:"gateway"`
	State   string `json:"state"`
	TS      int64  `json:"ts"`               // Unix ms; 0 in a last will (the receiver uses its own clock)
	Agent   string `json:"agent,omitempty"`  // agent software version
	Reason  string `json:"reason,omitempty"` // e.g. "last_will", "shutdown"
}

// Event kinds a gateway sends. Receivers must accept unknown kinds that pass
// CheckMetric, so new kinds can be added without a version change.
const (
	EventDeviceOffline = "device_offline" // a device stopped answering
	EventDeviceOnline  = "device_online"  // it answers again
	EventQueueOverflow = "queue_overflow" // the gateway dropped its oldest readings; Attrs["dropped"]
	EventGatewayStart  = "gateway_start"  // the agent started
	EventCommand       = "command"        // the outcome of a Command: CommandID, State, Cause, Before, After
)

// Command states reported in an EventCommand event.
const (
	CommandApplied  = "applied"  // written and read back as commanded
	CommandFailed   = "failed"   // the write or the read-back failed, or read back another value
	CommandRejected = "rejected" // refused by the gateway's own checks (point not writable, out of range, …)
	CommandExpired  = "expired"  // arrived after its expires_at: not executed
)

// Event is a device or gateway event. (Gateway, Seq) identifies it; Seq is
// strictly increasing per gateway, so a receiver can drop redeliveries.
type Event struct {
	V       int                `json:"v"`
	Gateway string             `json:"gateway"`
	Seq     uint64             `json:"seq"`
	Kind    string             `json:"kind"`
	Device  string             `json:"device,omitempty"`
	TS      int64              `json:"ts"` // Unix ms
	Message string             `json:"message,omitempty"`
	Attrs   map[string]float64 `json:"attrs,omitempty"`

	// Only in an event of kind EventCommand (and required there, except
	// Cause for CommandApplied and Before/After, which are present when
	// known): the command's id, its final state, why, and the point's value
	// read before and after the write.
	CommandID string   `json:"command_id,omitempty"`
	State     string   `json:"state,omitempty"`
	Cause     string   `json:"cause,omitempty"`
	Before    *float64 `json:"before,omitempty"`
	After     *float64 `json:"after,omitempty"`
}

// DecodeStatus parses and checks a status message.
func DecodeStatus(data []byte) (Status, error) {
	var s Status
	if err := decodeJSON(data, &s); err != nil {
		return Status{}, err
	}
	if s.V != MessageVersion && s.V != MessageVersionV1 {
		return Status{}, fmt.Errorf("%w: status v=%d", ErrVersion, s.V)
	}
	if err := CheckID(s.Gateway); err != nil {
		return Status{}, fmt.Errorf("status gateway: %w", err)
	}
	if s.State != StateOnline && s.State != StateOffline {
		return Status{}, fmt.Errorf("%w: status state %q (want %q or %q)", ErrJSON, s.State, StateOnline, StateOffline)
	}
	if s.TS != 0 && s.TS < MinTimestamp {
		return Status{}, fmt.Errorf("%w: status ts %d (want 0 in a last will, else not before %d)", ErrTimestamp, s.TS, MinTimestamp)
	}
	return s, nil
}

// DecodeEvent parses and checks an event message.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if err := decodeJSON(data, &e); err != nil {
		return Event{}, err
	}
	if e.V != MessageVersion && e.V != MessageVersionV1 {
		return Event{}, fmt.Errorf("%w: event v=%d", ErrVersion, e.V)
	}
	if err := CheckID(e.Gateway); err != nil {
		return Event{}, fmt.Errorf("event gateway: %w", err)
	}
	if e.Device != "" {
		if err := CheckID(e.Device); err != nil {
			return Event{}, fmt.Errorf("event device: %w", err)
		}
	}
	if err := CheckMetric(e.Kind); err != nil {
		return Event{}, fmt.Errorf("event kind: %w", err)
	}
	if e.TS < MinTimestamp {
		return Event{}, fmt.Errorf("%w: event ts %d", ErrTimestamp, e.TS)
	}
	if err := checkCommandEvent(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// checkCommandEvent checks the command fields: required in an event of
// kind EventCommand, absent from any other.
func checkCommandEvent(e *Event) error {
	if e.Kind != EventCommand {
		if e.CommandID != "" || e.State != "" || e.Cause != "" || e.Before != nil || e.After != nil {
			return fmt.Errorf("%w: event of kind %q carries command fields", ErrCommand, e.Kind)
		}
		return nil
	}
	if err := CheckID(e.CommandID); err != nil {
		return fmt.Errorf("command event command_id: %w", err)
	}
	if e.Device == "" {
		return fmt.Errorf("%w: command event %q without a device", ErrCommand, e.CommandID)
	}
	switch e.State {
	case CommandApplied:
		if e.Cause != "" {
			if err := CheckMetric(e.Cause); err != nil {
				return fmt.Errorf("%w: command event %q cause: %w", ErrCommand, e.CommandID, err)
			}
		}
	case CommandFailed, CommandRejected, CommandExpired:
		if err := CheckMetric(e.Cause); err != nil {
			return fmt.Errorf("%w: command event %q in state %q needs a cause: %w", ErrCommand, e.CommandID, e.State, err)
		}
	default:
		return fmt.Errorf("%w: command event %q state %q (want applied, failed, rejected or expired)", ErrCommand, e.CommandID, e.State)
	}
	return nil
}

// EncodeStatus and EncodeEvent marshal the messages with V set.
func EncodeStatus(s Status) []byte { s.V = MessageVersion; return mustJSON(s) }

// EncodeEvent marshals an event with V set.
func EncodeEvent(e Event) []byte { e.V = MessageVersion; return mustJSON(e) }

func decodeJSON(data []byte, v any) error {
	if len(data) > MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(data), MaxMessageBytes)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %v", ErrJSON, err)
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: cannot marshal protocol message: " + err.Error())
	}
	return b
}
