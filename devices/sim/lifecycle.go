package sim

import (
	"context"
	"fmt"
	"time"
)

// Start opens every device's Modbus server and MQTT connection, the
// control API, and sets a running clock going. It fails when a listen
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

// Stop closes everything Start opened and waits for its goroutines. It may
// be called more than once.
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
}
