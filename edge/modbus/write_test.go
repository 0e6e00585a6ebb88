package modbus

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
)

func reading(rec *recorder, id, metric string) (float64, bool) {
	for _, r := range rec.lastReadings(id) {
		if r.Metric == metric {
			return r.Value, true
		}
	}
	return 0, false
}

// TestWriteCoil switches a simulated lighting panel's circuit over Modbus
// TCP while the poller polls it: the coil reads back as written, the
// simulator holds it, and the next poll reports it.
func TestWriteCoil(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "panel", Template: "lighting-panel", Transport: sim.TransportTCP},
		sim.DeviceConfig{ID: "lift", Template: "elevator", Transport: sim.TransportTCP})
	rec := newRecorder()
	p := startPoller(t, rec, Options{}, simDevice(t, b, "panel", "lighting-panel", "tcp", 50*time.Millisecond),
		simDevice(t, b, "lift", "elevator", "tcp", 50*time.Millisecond))
	eventually(t, 5*time.Second, "a first poll of the panel", func() bool { _, ok := reading(rec, "panel", "circuit2_on"); return ok })
	vals, err := b.Values("panel")
	if err != nil {
		t.Fatal(err)
	}
	want := 1 - vals["circuit2_on"] // the other state than now
	before, after, err := p.Write("panel", "circuit2_on", want)
	if err != nil {
		t.Fatal(err)
	}
	if before != 1-want || after != want {
		t.Fatalf("Write: before %v after %v, want %v then %v", before, after, 1-want, want)
	}
	if vals, _ := b.Values("panel"); vals["circuit2_on"] != want {
		t.Fatalf("simulator's circuit2_on = %v after the write, want %v", vals["circuit2_on"], want)
	}
	eventually(t, 5*time.Second, "a poll showing the switched circuit", func() bool {
		v, ok := reading(rec, "panel", "circuit2_on")
		return ok && v == want
	})

	// The poller checks the template again: never a meter point, an
	// out-of-range value, an elevator or a device it does not poll.
	for _, c := range []struct {
		device, metric string
		value          float64
		want           error
	}{
		{"panel", "power_w", 1, config.ErrNotWritable},
		{"panel", "circuit2_on", 2, config.ErrWriteValue},
		{"lift", "floor", 3, config.ErrNotWritable},
	} {
		if _, _, err := p.Write(c.device, c.metric, c.value); !errors.Is(err, c.want) {
			t.Errorf("Write(%s, %s, %v) = %v, want %v", c.device, c.metric, c.value, err, c.want)
		}
	}
	if _, _, err := p.Write("pump-9", "run", 1); err == nil {
		t.Error("Write to a device not polled here succeeded")
	}
	if vals, _ := b.Values("panel"); vals["circuit2_on"] != want {
		t.Fatalf("a refused write changed circuit2_on to %v", vals["circuit2_on"])
	}
}

// TestWriteHoldingRegister writes a simulated pump's pressure setpoint
// (function 06, scale 0.01) over Modbus TCP while the pair is polled: the
// register reads back as written, the simulator's group follows it and the
// next poll reports it; an out-of-range value is refused at the edge before
// anything is sent; the run command stops the pump.
func TestWriteHoldingRegister(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd", Transport: sim.TransportTCP, Pair: "pump-2"},
		sim.DeviceConfig{ID: "pump-2", Template: "pump-vfd", Transport: sim.TransportTCP})
	rec := newRecorder()
	p := startPoller(t, rec, Options{}, simDevice(t, b, "pump-1", "pump-vfd", "tcp", 50*time.Millisecond),
		simDevice(t, b, "pump-2", "pump-vfd", "tcp", 50*time.Millisecond))
	eventually(t, 5*time.Second, "a first poll of the pump", func() bool { _, ok := reading(rec, "pump-1", "setpoint_bar"); return ok })
	vals, err := b.Values("pump-1")
	if err != nil {
		t.Fatal(err)
	}
	want := 4.2
	if vals["setpoint_bar"] == want {
		want = 3.8
	}
	before, after, err := p.Write("pump-1", "setpoint_bar", want)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(before, vals["setpoint_bar"]) || !near(after, want) {
		t.Fatalf("Write: before %v after %v, want %v then %v", before, after, vals["setpoint_bar"], want)
	}
	for _, id := range []string{"pump-1", "pump-2"} { // one setpoint for the group
		if v, _ := b.Values(id); !near(v["setpoint_bar"], want) {
			t.Errorf("simulator's %s setpoint_bar = %v after the write, want %v", id, v["setpoint_bar"], want)
		}
	}
	eventually(t, 5*time.Second, "a poll showing the new setpoint", func() bool {
		v, ok := reading(rec, "pump-1", "setpoint_bar")
		return ok && near(v, want)
	})
	for _, v := range []float64{1.9, 6.01, 60} {
		if _, _, err := p.Write("pump-1", "setpoint_bar", v); !errors.Is(err, config.ErrWriteValue) {
			t.Errorf("Write(setpoint_bar, %v) = %v, want %v", v, err, config.ErrWriteValue)
		}
	}
	if _, _, err := p.Write("pump-1", "outlet_pressure_bar", 3); !errors.Is(err, config.ErrNotWritable) {
		t.Errorf("Write(outlet_pressure_bar) = %v, want %v", err, config.ErrNotWritable)
	}
	if v, _ := b.Values("pump-1"); !near(v["setpoint_bar"], want) {
		t.Fatalf("a refused write changed the setpoint to %v", v["setpoint_bar"])
	}
	if before, after, err := p.Write("pump-2", "run_command", 0); err != nil || before != 1 || after != 0 {
		t.Fatalf("stop pump-2: before %v after %v, %v", before, after, err)
	}
	if v, _ := b.Values("pump-2"); v["run_command"] != 0 {
		t.Fatalf("simulator's pump-2 run_command = %v after the stop", v["run_command"])
	}
}

// TestEncodeRegisters checks the write codec against the read codec for
// every register type, byte and word order, scale and offset: a value
// encodes to registers that decode to it (to the point's resolution), and
// a value the type cannot hold is refused.
func TestEncodeRegisters(t *testing.T) {
	for _, typ := range []string{"int16", "uint16", "int32", "uint32", "float32", "float64"} {
		for _, bo := range []string{"big", "little"} {
			for _, wo := range []string{"big", "little"} {
				pt := &config.Point{Metric: "x", Register: config.RegHolding, Type: typ, ByteOrder: bo, WordOrder: wo, Scale: 0.01, Offset: -5}
				for _, v := range []float64{-5, 0, 3.3, 123.45} {
					if v < -5 && typ[0] == 'u' {
						continue
					}
					regs, err := encodeRegisters(pt, v)
					if err != nil {
						t.Fatalf("%s %s/%s: encode %v: %v", typ, bo, wo, v, err)
					}
					if len(regs) != 2*config.TypeRegisters[typ] {
						t.Fatalf("%s: %d bytes", typ, len(regs))
					}
					got, err := decodeRegisters(pt, regs)
					if err != nil || math.Abs(got-v) > 1e-4 {
						t.Errorf("%s %s/%s: %v encodes to % x, decodes to %v (%v)", typ, bo, wo, v, regs, got, err)
					}
				}
			}
		}
	}
	// The wire layout of a little-endian word order uint32: low word first.
	regs, err := encodeRegisters(&config.Point{Metric: "e", Type: "uint32", WordOrder: "little", ByteOrder: "big"}, 0x01020304)
	if err != nil || string(regs) != "\x03\x04\x01\x02" {
		t.Errorf("uint32 little word order: % x, %v", regs, err)
	}
	for _, c := range []struct {
		typ string
		v   float64
	}{{"uint16", -1}, {"uint16", 65536}, {"int16", 40000}, {"uint32", -1}, {"float32", 1e39}} {
		if _, err := encodeRegisters(&config.Point{Metric: "y", Type: c.typ}, c.v); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%s %v: %v, want %v", c.typ, c.v, err, ErrInvalidValue)
		}
	}
}

// TestWriteReadBackMismatch: a setpoint confirmed by another point that does
// not follow it (here the motor temperature) is written but reported as
// ErrReadBack with the values read.
func TestWriteReadBackMismatch(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd", Transport: sim.TransportTCP})
	dev := simDevice(t, b, "pump-1", "pump-vfd", "tcp", 50*time.Millisecond)
	tmpl := *dev.Template
	tmpl.Points = append([]config.Point(nil), tmpl.Points...)
	for i := range tmpl.Points {
		if tmpl.Points[i].Metric == "setpoint_bar" {
			tmpl.Points[i].ReadBack = "motor_temp_c"
		}
	}
	dev.Template = &tmpl
	p := startPoller(t, newRecorder(), Options{}, dev)
	vals, err := b.Values("pump-1")
	if err != nil {
		t.Fatal(err)
	}
	before, after, err := p.Write("pump-1", "setpoint_bar", 4.5)
	if !errors.Is(err, ErrReadBack) {
		t.Fatalf("Write with a read-back that does not follow: %v, want %v", err, ErrReadBack)
	}
	if math.Abs(before-vals["motor_temp_c"]) > 1 || math.Abs(after-before) > 1 {
		t.Errorf("before %v after %v, want the motor temperature (%v °C)", before, after, vals["motor_temp_c"])
	}
	if v, _ := b.Values("pump-1"); math.Abs(v["setpoint_bar"]-4.5) > 1e-9 {
		t.Errorf("setpoint_bar = %v: the write itself should have happened", v["setpoint_bar"])
	}
}
