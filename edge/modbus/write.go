package modbus

import (
	"errors"
	"fmt"
	"time"

	"github.com/goburrow/modbus"

	"github.com/plantroom/plantroom/config"
)

// ErrReadBack is returned by WriteCoil when the coil reads back another
// value than the one written.
var ErrReadBack = errors.New("read-back mismatch")

// WriteCoil writes value (0 or 1) to a writable coil of a polled device:
// it reads the coil, writes it and reads it back, each on the device's own
// link, so the write takes its turn with the polling of every device on
// that link. The point is checked against the device's template again
// (config.Template.CheckWrite). It returns the values read before and
// after; a read-back that differs from value is ErrReadBack.
func (p *Poller) WriteCoil(device, metric string, value float64) (before, after float64, err error) {
	p.mu.Lock()
	d := p.devices[device]
	p.mu.Unlock()
	if d == nil {
		return 0, 0, fmt.Errorf("cannot write %s of device %q: not polled here", metric, device)
	}
	pt, err := d.dev.Template.CheckWrite(metric, value)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot write device %q: %w", device, err)
	}
	if pt.Register != config.RegCoil {
		return 0, 0, fmt.Errorf("cannot write %s of device %q: a %s register (only coils are written so far)", metric, device, pt.Register)
	}
	back := pt
	if pt.ReadBack != "" {
		if back = d.dev.Template.Point(pt.ReadBack); back == nil || back.Register != config.RegCoil && back.Register != config.RegDiscrete {
			return 0, 0, fmt.Errorf("cannot write %s of device %q: read-back point %q is not a bit", metric, device, pt.ReadBack)
		}
	}
	readBit := func(q *config.Point) (float64, error) {
		data, err := d.link.read(d.dev.UnitID, d.dev.Timeout, &Request{Register: q.Register, Address: q.Address, Count: 1})
		if err != nil {
			return 0, fmt.Errorf("cannot read %s of device %q: %w", q.Metric, device, err)
		}
		return float64(data[0] & 1), nil
	}
	if before, err = readBit(back); err != nil {
		return 0, 0, err
	}
	if err := d.link.writeCoil(d.dev.UnitID, d.dev.Timeout, pt.Address, value == 1); err != nil {
		return before, 0, fmt.Errorf("cannot write %s of device %q: %w", metric, device, err)
	}
	if after, err = readBit(back); err != nil {
		return before, 0, err
	}
	if after != value {
		return before, after, fmt.Errorf("cannot write %v to %s of device %q: %w (read back %v)", value, metric, device, ErrReadBack, after)
	}
	return before, after, nil
}

// writeCoil writes one coil (function 05) under the link's turn.
func (l *link) writeCoil(unit byte, timeout time.Duration, address uint16, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setUnit(unit)
	l.setTimout(timeout)
	v := uint16(0x0000)
	if on {
		v = 0xFF00
	}
	_, err := l.client.WriteSingleCoil(address, v)
	if err != nil {
		var me *modbus.ModbusError
		if !errors.As(err, &me) {
			l.drop()
		}
	}
	return err
}
