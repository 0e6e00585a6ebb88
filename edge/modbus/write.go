package modbus

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/goburrow/modbus"

	"github.com/plantroom/plantroom/config"
)

// ErrReadBack is returned by Write when the point reads back another value
// than the one written.
var ErrReadBack = errors.New("read-back mismatch")

// Write writes value to a writable point of a polled device: a coil
// (function 05) or a holding register (function 06 for a one-register point,
// function 16 for a 32- or 64-bit one), encoded as the inverse of the
// point's read decoding (type, byte and word order, scale, offset). It reads
// the read-back point, writes and reads it back, each on the device's own
// link, so the write takes its turn with the polling of every device on that
// link. The point is checked against the device's template again
// (config.Template.CheckWrite). It returns the values read before and after;
// a read-back that differs from the value written (as the register holds it)
// is ErrReadBack.
func (p *Poller) Write(device, metric string, value float64) (before, after float64, err error) {
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
	back := pt
	if pt.ReadBack != "" {
		if back = d.dev.Template.Point(pt.ReadBack); back == nil {
			return 0, 0, fmt.Errorf("cannot write %s of device %q: no read-back point %q", metric, device, pt.ReadBack)
		}
	}
	want, tolerance := value, 0.0
	var regs []byte
	switch pt.Register {
	case config.RegCoil:
	case config.RegHolding:
		if regs, err = encodeRegisters(pt, value); err != nil {
			return 0, 0, fmt.Errorf("cannot write %v to %s of device %q: %w", value, metric, device, err)
		}
		if want, err = decodeRegisters(pt, regs); err != nil { // the value as the register holds it
			return 0, 0, fmt.Errorf("cannot write %v to %s of device %q: %w", value, metric, device, err)
		}
	default:
		return 0, 0, fmt.Errorf("cannot write %s of device %q: a %s register cannot be written", metric, device, pt.Register)
	}
	if back != pt { // another point confirms the write: equal within its resolution
		tolerance = math.Abs(config.EffectiveScale(back.Scale)) / 2
	}
	read := func(q *config.Point) (float64, error) {
		r := &Request{Register: q.Register, Address: q.Address, Count: 1}
		if !r.bits() {
			r.Count = uint16(config.TypeRegisters[q.Type])
		}
		data, err := d.link.read(d.dev.UnitID, d.dev.Timeout, r)
		if err != nil {
			return 0, fmt.Errorf("cannot read %s of device %q: %w", q.Metric, device, err)
		}
		v, err := decodePoint(q, r, data)
		if err != nil {
			return 0, fmt.Errorf("cannot read %s of device %q: %w", q.Metric, device, err)
		}
		return v, nil
	}
	if before, err = read(back); err != nil {
		return 0, 0, err
	}
	if pt.Register == config.RegCoil {
		err = d.link.writeCoil(d.dev.UnitID, d.dev.Timeout, pt.Address, value == 1)
	} else {
		err = d.link.writeRegisters(d.dev.UnitID, d.dev.Timeout, pt.Address, regs)
	}
	if err != nil {
		return before, 0, fmt.Errorf("cannot write %v to %s of device %q: %w", value, metric, device, err)
	}
	if after, err = read(back); err != nil {
		return before, 0, err
	}
	if math.Abs(after-want) > tolerance {
		return before, after, fmt.Errorf("cannot write %v to %s of device %q: %w (%s reads back %v)", value, metric, device, ErrReadBack, back.Metric, after)
	}
	return before, after, nil
}

// writeCoil writes one coil (function 05) under the link's turn.
func (l *link) writeCoil(unit byte, timeout time.Duration, address uint16, on bool) error {
	v := uint16(0x0000)
	if on {
		v = 0xFF00
	}
	return l.write(unit, timeout, func(c modbus.Client) error {
		_, err := c.WriteSingleCoil(address, v)
		return err
	})
}

// writeRegisters writes a point's registers under the link's turn: one
// register with function 06, more with function 16.
func (l *link) writeRegisters(unit byte, timeout time.Duration, address uint16, regs []byte) error {
	return l.write(unit, timeout, func(c modbus.Client) error {
		var err error
		if len(regs) == 2 {
			_, err = c.WriteSingleRegister(address, uint16(regs[0])<<8|uint16(regs[1]))
		} else {
			_, err = c.WriteMultipleRegisters(address, uint16(len(regs)/2), regs)
		}
		return err
	})
}

// write runs one write request under the link's turn; after any failure
// other than an exception answer the connection is dropped, as after a read.
func (l *link) write(unit byte, timeout time.Duration, req func(modbus.Client) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setUnit(unit)
	l.setTimout(timeout)
	err := req(l.client)
	if err != nil {
		var me *modbus.ModbusError
		if !errors.As(err, &me) {
			l.drop()
		}
	}
	return err
}
