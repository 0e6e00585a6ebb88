package agent

import (
	"errors"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/edge/control"
	"github.com/plantroom/plantroom/edge/modbus"
	"github.com/plantroom/plantroom/protocol"
)

// commandTemplate is the template of a Modbus device of the current
// device set, nil for any other (only Modbus coils are written so far).
func (a *Agent) commandTemplate(device string) *config.Template {
	for _, d := range a.devices.Load().modbus {
		if d.ID == device {
			return d.Template
		}
	}
	return nil
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

// commandResult records the outcome of a command as an event.
func (a *Agent) commandResult(c protocol.Command, state, cause, detail string, before, after *float64) {
	a.log.Info("command", "command", c.ID, "device", c.Device, "point", c.Point, "value", c.Value, "by", c.By, "state", state, "cause", cause, "detail", detail)
	if err := a.queue.AddEvent(protocol.Event{Kind: protocol.EventCommand, Device: c.Device, CommandID: c.ID,
		State: state, Cause: cause, Message: detail, Before: before, After: after}); err != nil {
		a.log.Error("cannot record the command's result", "command", c.ID, "err", err)
	}
}
