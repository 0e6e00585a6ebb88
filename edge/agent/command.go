package agent

import (
	"context"
	"errors"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/edge/control"
	"github.com/plantroom/plantroom/edge/modbus"
	"github.com/plantroom/plantroom/edge/mqttin"
	"github.com/plantroom/plantroom/protocol"
)

// RelayWait bounds how long a relay command over the plant-room broker
// waits for the device to report the commanded state. The command's expiry
// bounds it too: the wait ends at the expiry at the latest.
const RelayWait = 10 * time.Second

// commandTemplate is the template of a device of the current device set
// (Modbus or MQTT), nil for an unknown one.
func (a *Agent) commandTemplate(device string) *config.Template {
	set := a.devices.Load()
	for _, d := range set.modbus {
		if d.ID == device {
			return d.Template
		}
	}
	for _, d := range set.mqtt {
		if d.ID == device {
			return d.Template
		}
	}
	return nil
}

// isMQTT tells whether device is an MQTT device of the current set.
func (a *Agent) isMQTT(device string) bool {
	for _, d := range a.devices.Load().mqtt {
		if d.ID == device {
			return true
		}
	}
	return false
}

// onCommand handles a message on the gateway's down/cmd. It runs on the
// MQTT client's goroutine, so the write runs on its own.
func (a *Agent) onCommand(payload []byte) {
	c, err := protocol.DecodeCommand(payload)
	if err != nil {
		a.log.Warn("command refused: cannot decode it", "err", err)
		return
	}
	now := time.Now()
	if a.cfg.Now != nil {
		now = a.cfg.Now()
	}
	d, cause, detail, err := a.guard.Admit(c, now)
	if err != nil {
		a.log.Error("command refused", "command", c.ID, "err", err)
	}
	switch d {
	case control.Duplicate:
		a.log.Info("command redelivered: not executed again", "command", c.ID)
		return
	case control.Expired:
		a.commandResult(c, protocol.CommandExpired, cause, detail, nil, nil)
		return
	case control.Rejected:
		a.commandResult(c, protocol.CommandRejected, cause, detail, nil, nil)
		return
	}
	if a.isMQTT(c.Device) {
		go a.switchRelay(c)
		return
	}
	go func() {
		before, after, err := a.poller.Write(c.Device, c.Point, c.Value)
		if err != nil {
			if errors.Is(err, modbus.ErrReadBack) { // written, read back another value
				a.commandResult(c, protocol.CommandFailed, "read_back_mismatch", err.Error(), &before, &after)
			} else {
				a.commandResult(c, protocol.CommandFailed, "write_failed", err.Error(), nil, nil)
			}
			return
		}
		a.commandResult(c, protocol.CommandApplied, "", "", &before, &after)
	}()
}

// relayDeadline is when the wait for a relay's read-back ends: RelayWait
// (cfg.RelayWait) after start, and never after the command's expiry.
func (a *Agent) relayDeadline(c protocol.Command, start time.Time) time.Time {
	wait := RelayWait
	if a.cfg.RelayWait > 0 {
		wait = a.cfg.RelayWait
	}
	if exp := time.UnixMilli(c.ExpiresAt); exp.Before(start.Add(wait)) {
		return exp
	}
	return start.Add(wait)
}

// switchRelay executes a command to an MQTT relay: the device's own
// command on the plant-room broker, read back from its next state report
// until relayDeadline. The result is stamped no later than that deadline,
// so a relay command never reports after its expiry: what the device
// reports later is not its outcome.
func (a *Agent) switchRelay(c protocol.Command) {
	if a.input == nil {
		a.commandResult(c, protocol.CommandFailed, "write_failed", "no MQTT device input", nil, nil)
		return
	}
	deadline := a.relayDeadline(c, time.Now())
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	before, after, err := a.input.Switch(ctx, c.Device, c.Point, c.Value)
	// The outcome is known at the latest at the deadline (a wait that ran
	// out ends there; the goroutine may run a little later).
	ts := min(time.Now().UnixMilli(), deadline.UnixMilli())
	switch {
	case errors.Is(err, mqttin.ErrReadBack):
		a.commandResultAt(c, ts, protocol.CommandFailed, "read_back_mismatch", err.Error(), before, after)
	case errors.Is(err, mqttin.ErrNoAnswer):
		a.commandResultAt(c, ts, protocol.CommandFailed, "no_answer", err.Error(), before, nil)
	case errors.Is(err, mqttin.ErrDeviceError):
		a.commandResultAt(c, ts, protocol.CommandFailed, "device_error", err.Error(), before, after)
	case err != nil:
		a.commandResultAt(c, ts, protocol.CommandFailed, "write_failed", err.Error(), before, nil)
	default:
		a.commandResultAt(c, ts, protocol.CommandApplied, "", "", before, after)
	}
}

// commandResult records the outcome of a command as an event.
func (a *Agent) commandResult(c protocol.Command, state, cause, detail string, before, after *float64) {
	a.commandResultAt(c, 0, state, cause, detail, before, after)
}

// commandResultAt is commandResult with the event's time (Unix ms; 0: when
// the queue stores it).
func (a *Agent) commandResultAt(c protocol.Command, ts int64, state, cause, detail string, before, after *float64) {
	a.log.Info("command", "command", c.ID, "device", c.Device, "point", c.Point, "value", c.Value, "by", c.By, "state", state, "cause", cause, "detail", detail)
	if err := a.queue.AddEvent(protocol.Event{Kind: protocol.EventCommand, Device: c.Device, CommandID: c.ID, TS: ts,
		State: state, Cause: cause, Message: detail, Before: before, After: after}); err != nil {
		a.log.Error("cannot record the command's result", "command", c.ID, "err", err)
	}
}
