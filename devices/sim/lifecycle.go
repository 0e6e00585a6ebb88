package sim

import (
	"context"
	"fmt"
	"time"
)

// Start opens every device's Modbus server and MQTT connection, the
// control API, writes the state file (when configured) and keeps it
// written, and sets a running clock going. It fails when a listen
// address is taken, after closing what it opened.
func (b *Building) Start(ctx context.Context) error {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	if b.started {
		return fmt.Errorf("cannot start building %q: already started", b.cfg.Building)
	}
	b.started = true
	ctx, b.cancel = context.WithCancel(ctx)
	for _, d := range b.devices {
		if d.modbus == nil {
			continue
		}
		if err := d.modbus.apply(d.currentFault()); err != nil {
			b.stopLocked()
			return err
		}
	}
	if b.cfg.Control != "" {
		b.control = newControlServer(b)
		if err := b.control.start(b.cfg.Control); err != nil {
			b.stopLocked()
			return err
		}
	}
	for _, d := range b.devices {
		if d.pub != nil {
			d.pub.start(ctx)
		}
	}
	if b.cfg.StateFile != "" {
		if err := b.SaveState(); err != nil { // a state file that cannot be written fails now, not at Stop
			b.stopLocked()
			return fmt.Errorf("cannot start building %q: %w", b.cfg.Building, err)
		}
		b.saveOnStop = true
		b.wg.Add(1)
		go b.saveState(ctx)
	}
	b.clock.Run()
	if !b.clock.Manual() {
		b.wg.Add(1)
		go b.run(ctx)
	}
	b.log.Info("building simulation started", "building", b.cfg.Building, "devices", len(b.devices),
		"virtual_time", b.Now().In(b.cfg.Location).Format(time.RFC3339), "speed", b.clock.Speed(), "manual_clock", b.clock.Manual())
	return nil
}

func (b *Building) run(ctx context.Context) {
	defer b.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Catch up in bounded chunks, letting readers in between.
			for now := b.clock.Now(); !b.advanceTo(now) && ctx.Err() == nil; {
			}
		}
	}
}

// saveState writes the state file every StateInterval of real time until
// ctx ends; Stop writes the last one.
func (b *Building) saveState(ctx context.Context) {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.StateInterval.Duration)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := b.SaveState()
			switch {
			case err != nil && !failing:
				b.log.Error("cannot save device counters; retrying", "error", err)
			case err == nil && failing:
				b.log.Info("device counters saved again", "state_file", b.cfg.StateFile)
			}
			failing = err != nil
		}
	}
}

// Stop closes everything Start opened, waits for its goroutines and writes
// the state file a last time (an error is logged). It may be called more
// than once.
func (b *Building) Stop() {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	b.stopLocked()
}

func (b *Building) stopLocked() {
	if b.stopped || !b.started {
		return
	}
	b.stopped = true
	b.cancel()
	b.wg.Wait()
	for _, d := range b.devices {
		if d.pub != nil {
			d.pub.stop()
		}
		if d.modbus != nil {
			d.modbus.close()
		}
	}
	if b.control != nil {
		b.control.stop()
	}
	if b.saveOnStop {
		if err := b.SaveState(); err != nil {
			b.log.Error("cannot save device counters at stop", "error", err)
		} else {
			b.log.Info("device counters saved", "state_file", b.cfg.StateFile, "virtual_time", b.Now().Format(time.RFC3339))
		}
	}
}
