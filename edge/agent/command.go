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
// waits for the device to report the commanded state.
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

// switchRelay executes a command to an MQTT relay: the device's own
// command on the plant-room broker, read back from its next state report
// within RelayWait.
func (a *Agent) switchRelay(c protocol.Command) {
	if a.input == nil {
		a.commandResult(c, protocol.CommandFailed, "write_failed", "no MQTT device input", nil, nil)
		return
	}
	wait := RelayWait
	if a.cfg.RelayWait > 0 {
		wait = a.cfg.RelayWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	before, after, err := a.input.Switch(ctx, c.Device, c.Point, c.Value)
	switch {
	case errors.Is(err, mqttin.ErrReadBack):
		a.commandResult(c, protocol.CommandFailed, "read_back_mismatch", err.Error(), before, after)
	case errors.Is(err, mqttin.ErrNoAnswer):
		a.commandResult(c, protocol.CommandFailed, "no_answer", err.Error(), before, nil)
	case err != nil:
		a.commandResult(c, protocol.CommandFailed, "write_failed", err.Error(), before, nil)
	default:
		a.commandResult(c, protocol.CommandApplied, "", "", before, after)
	}
}

// commandResult records the outcome of a command as an event.
func (a *Agent) commandResult(c protocol.Command, state, cause, detail string, before, after *float64) {
	a.log.Info("command", "command", c.ID, "device", c.Device, "point", c.Point, "value", c.Value, "by", c.By, "state", state, "cause", cause, "detail", detail)
	if err := a.queue.AddEvent(protocol.Event{Kind: protocol.EventCommand, Device: c.Device, CommandID: c.ID,
		State: state, Cause: cause, Message: detail, Before: before, After: after}); err != nil {
		a.log.Error("cannot record the command's result", "command", c.ID, "err", err)
	}
}
