package sim

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"github.com/plantroom/plantroom/config"
)

// tcpClient connects the edge's Modbus client to a simulated device.
func tcpClient(t testing.TB, addr string, timeout time.Duration) (modbus.Client, *modbus.TCPClientHandler) {
	t.Helper()
	h := modbus.NewTCPClientHandler(addr)
	h.SlaveId = 1
	h.Timeout = timeout
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h), h
}

// rtuOverTCP is a goburrow transporter for RTU frames over a TCP stream;
// goburrow's own RTU client speaks only to serial ports.
type rtuOverTCP struct{ conn net.Conn }

func (r *rtuOverTCP) Send(adu []byte) ([]byte, error) {
	r.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.conn.Write(adu); err != nil {
		return nil, err
	}
	head := make([]byte, 3)
	if _, err := io.ReadFull(r.conn, head); err != nil {
		return nil, err
	}
	var rest int
	switch fc := head[1]; {
	case fc&0x80 != 0:
		rest = 2 // CRC after the exception code
	case fc <= 4:
		rest = int(head[2]) + 2
	default:
		rest = 5 // address, value/quantity, CRC (first byte already read)
	}
	tail := make([]byte, rest)
	if _, err := io.ReadFull(r.conn, tail); err != nil {
		return nil, err
	}
	return append(head, tail...), nil
}

func rtuClient(t testing.TB, addr string) modbus.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := modbus.NewRTUClientHandler("")
	h.SlaveId = 1
	return modbus.NewClient2(h, &rtuOverTCP{conn: conn})
}

// readPoint reads one point with the edge's client and decodes it by the template.
func readPoint(c modbus.Client, pt *config.Point) (float64, error) {
	n := uint16(pt.Registers())
	var raw []byte
	var err error
	switch pt.Register {
	case config.RegCoil:
		raw, err = c.ReadCoils(pt.Address, 1)
		return b2f(err == nil && raw[0]&1 != 0), err
	case config.RegDiscrete:
		raw, err = c.ReadDiscreteInputs(pt.Address, 1)
		return b2f(err == nil && raw[0]&1 != 0), err
	case config.RegHolding:
		raw, err = c.ReadHoldingRegisters(pt.Address, n)
	case config.RegInput:
		raw, err = c.ReadInputRegisters(pt.Address, n)
	}
	if err != nil {
		return 0, err
	}
	regs := make([]uint16, n)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(raw[2*i:])
	}
	return DecodePoint(pt, regs), nil
}

// checkDevice reads every point of a device and compares it with the
// model's value as a gateway must see it.
func checkDevice(t *testing.T, b *Building, c modbus.Client, id string) {
	t.Helper()
	d := b.byID[id]
	want, err := b.Values(id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range d.tmpl.Points {
		pt := &d.tmpl.Points[i]
		got, err := readPoint(c, pt)
		if err != nil {
			t.Fatalf("%s: read %s (%s %d): %v", id, pt.Metric, pt.Register, pt.Address, err)
		}
		if w := Quantizer(d.tmpl, pt.Metric)(want[pt.Metric]); got != w {
			t.Errorf("%s: %s = %v over Modbus, model says %v (raw %v)", id, pt.Metric, got, w, want[pt.Metric])
		}
	}
}

func TestEveryTemplateReadsOverModbusTCP(t *testing.T) {
	b := startBuilding(t, testConfig())
	served := map[string]bool{}
	for _, d := range b.devices {
		served[d.tmpl.ID] = true
	}
	for id, tmpl := range loadTemplates(t) {
		if tmpl.Protocol == config.ProtoModbus && !served[id] {
			t.Errorf("Modbus template %q has no device in the test building", id)
		}
	}
	for _, step := range []time.Duration{0, 20 * time.Minute, 13 * time.Hour} {
		if err := b.Advance(step); err != nil {
			t.Fatal(err)
		}
		for _, d := range b.devices {
			if d.cfg.Transport != TransportTCP {
				continue
			}
			c, _ := tcpClient(t, b.Addr(d.cfg.ID), 5*time.Second)
			checkDevice(t, b, c, d.cfg.ID)
		}
	}
}

func TestRTUOverTCP(t *testing.T) {
	b := startBuilding(t, testConfig())
	if err := b.Advance(12 * time.Hour); err != nil { // 20:00: lights on
		t.Fatal(err)
	}
	c := rtuClient(t, b.Addr("panel"))
	checkDevice(t, b, c, "panel")

	// Switching a circuit by hand with a coil write.
	if _, err := c.WriteSingleCoil(2, 0x0000); err != nil {
		t.Fatalf("write coil: %v", err)
	}
	if v, _ := b.Values("panel"); v["circuit3_on"] != 0 {
		t.Errorf("circuit3_on = %v after writing coil 2 off", v["circuit3_on"])
	}
	// An exception over RTU.
	_, err := c.ReadInputRegisters(100, 2)
	var me *modbus.ModbusError
	if !errors.As(err, &me) || me.ExceptionCode != modbus.ExceptionCodeIllegalDataAddress {
		t.Errorf("read past the map over RTU: got %v, want illegal data address", err)
	}
}

func TestRegisterMapEdges(t *testing.T) {
	b := startBuilding(t, testConfig())
	if err := b.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	c, _ := tcpClient(t, b.Addr("meter"), 5*time.Second)

	// A whole SDM630 block in one read, as a poller does: gaps read as zero.
	raw, err := c.ReadInputRegisters(0, 0x4C)
	if err != nil {
		t.Fatalf("block read: %v", err)
	}
	if gap := binary.BigEndian.Uint16(raw[2*0x12:]); gap != 0 {
		t.Errorf("register 0x12 (a gap in the map) = %#x, want 0", gap)
	}
	if binary.BigEndian.Uint32(raw[2*0x48:]) == 0 {
		t.Error("import kWh reads zero in the block")
	}
	cases := []struct {
		name string
		read func() ([]byte, error)
		code byte
	}{
		{"past the highest register", func() ([]byte, error) { return c.ReadInputRegisters(0x0156, 4) }, modbus.ExceptionCodeIllegalDataAddress},
		{"no holding registers", func() ([]byte, error) { return c.ReadHoldingRegisters(0, 2) }, modbus.ExceptionCodeIllegalFunction},
		{"no coils", func() ([]byte, error) { return c.ReadCoils(0, 1) }, modbus.ExceptionCodeIllegalFunction},
	}
	for _, tc := range cases {
		_, err := tc.read()
		var me *modbus.ModbusError
		if !errors.As(err, &me) || me.ExceptionCode != tc.code {
			t.Errorf("%s: got %v, want exception %d", tc.name, err, tc.code)
		}
	}
	// Writes to read-only registers are refused (the pump's writable
	// setpoint and run command are TestPumpWrites').
	p, _ := tcpClient(t, b.Addr("pump-1"), 5*time.Second)
	if _, err := p.WriteSingleRegister(4, 400); err == nil {
		t.Error("writing a pump's outlet pressure succeeded, want an exception")
	}
	// Another unit id gets "gateway target device failed to respond".
	o, h := tcpClient(t, b.Addr("meter"), 5*time.Second)
	h.SlaveId = 9
	_, err = o.ReadInputRegisters(0, 2)
	var me *modbus.ModbusError
	if !errors.As(err, &me) || me.ExceptionCode != modbus.ExceptionCodeGatewayTargetDeviceFailedToRespond {
		t.Errorf("unit 9: got %v, want exception 11", err)
	}
}

func ExampleDecodePoint() {
	pt := &config.Point{Metric: "energy_import_kwh", Register: config.RegInput, Type: "float32", ByteOrder: "big", WordOrder: "big"}
	fmt.Println(DecodePoint(pt, []uint16{0x4348, 0x8000}))
	// Output: 200.5
}

// TestPumpWrites writes a pump's holding registers over Modbus TCP as a
// gateway does: the setpoint moves the group's pressure, a stopped duty pump
// hands over to the standby, and every other register or an out-of-range
// value is refused with an exception, changing nothing.
func TestPumpWrites(t *testing.T) {
	b := startBuilding(t, testConfig())
	all := advance(t, b, 10*time.Minute)
	if sp := all["pump-1"]["setpoint_bar"]; sp != 3 {
		t.Fatalf("setpoint before the write = %v, want the default 3 bar", sp)
	}
	c, _ := tcpClient(t, b.Addr("pump-1"), 5*time.Second)
	exception := func(what string, err error, code byte) {
		t.Helper()
		var me *modbus.ModbusError
		if !errors.As(err, &me) || me.ExceptionCode != code {
			t.Errorf("%s: got %v, want exception %d", what, err, code)
		}
	}
	_, err := c.WriteSingleRegister(5, 650) // 6.5 bar: above the template's 6.0
	exception("setpoint 6.5 bar", err, modbus.ExceptionCodeIllegalDataValue)
	_, err = c.WriteSingleRegister(1, 4000) // frequency: read-only
	exception("frequency register", err, modbus.ExceptionCodeIllegalDataAddress)
	_, err = c.WriteMultipleRegisters(5, 2, []byte{0x01, 0x5E, 0, 1}) // setpoint and flow at once
	exception("two registers from the setpoint", err, modbus.ExceptionCodeIllegalDataAddress)
	if v, _ := b.Values("pump-1"); v["setpoint_bar"] != 3 {
		t.Fatalf("refused writes changed the setpoint to %v", v["setpoint_bar"])
	}

	if _, err := c.WriteSingleRegister(5, 350); err != nil { // 3.5 bar
		t.Fatal(err)
	}
	raw, err := c.ReadHoldingRegisters(5, 1)
	if err != nil || binary.BigEndian.Uint16(raw) != 350 {
		t.Fatalf("setpoint reads back %x (%v), want 350", raw, err)
	}
	all = advance(t, b, 5*time.Minute)
	for _, id := range []string{"pump-1", "pump-2"} {
		if sp := all[id]["setpoint_bar"]; sp != 3.5 {
			t.Errorf("%s setpoint_bar = %v, want the group's new 3.5", id, sp)
		}
	}
	if p := all["pump-1"]["outlet_pressure_bar"]; math.Abs(p-3.5) > 0.15 {
		t.Errorf("outlet pressure %v bar five minutes after the setpoint went to 3.5", p)
	}

	// Stop the duty pump by hand: the standby takes over.
	duty, standby := "pump-1", "pump-2"
	if all["pump-2"]["duty"] == 1 {
		duty, standby = standby, duty
	}
	d, _ := tcpClient(t, b.Addr(duty), 5*time.Second)
	if _, err := d.WriteSingleRegister(14, 0); err != nil {
		t.Fatal(err)
	}
	all = advance(t, b, time.Minute)
	if all[duty]["run_command"] != 0 || all[duty]["running"] != 0 || all[duty]["flow_m3h"] != 0 {
		t.Errorf("stopped %s reads run_command %v running %v flow %v", duty, all[duty]["run_command"], all[duty]["running"], all[duty]["flow_m3h"])
	}
	if all[standby]["running"] != 1 || all[standby]["duty"] != 1 {
		t.Errorf("standby %s did not take over: running %v duty %v", standby, all[standby]["running"], all[standby]["duty"])
	}
	// Stop both: nothing runs and the header falls to the static head.
	s, _ := tcpClient(t, b.Addr(standby), 5*time.Second)
	if _, err := s.WriteSingleRegister(14, 0); err != nil {
		t.Fatal(err)
	}
	all = advance(t, b, 10*time.Minute)
	if all["pump-1"]["running"]+all["pump-2"]["running"] != 0 || all["pump-1"]["outlet_pressure_bar"] > 1 {
		t.Errorf("both stopped: running %v/%v, pressure %v bar", all["pump-1"]["running"], all["pump-2"]["running"], all["pump-1"]["outlet_pressure_bar"])
	}
	if _, err := d.WriteSingleRegister(14, 1); err != nil {
		t.Fatal(err)
	}
	all = advance(t, b, 5*time.Minute)
	if all[duty]["running"] != 1 || math.Abs(all[duty]["outlet_pressure_bar"]-3.5) > 0.15 {
		t.Errorf("restarted %s: running %v, pressure %v bar", duty, all[duty]["running"], all[duty]["outlet_pressure_bar"])
	}
}

// TestStuckOutputs: with the stuck_outputs fault a device acknowledges
// writes and changes nothing, so a read-back finds the old value; cleared,
// writes act again. An MQTT device cannot have it.
func TestStuckOutputs(t *testing.T) {
	b := startBuilding(t, testConfig())
	if err := b.Advance(12 * time.Hour); err != nil { // 20:00: lights on
		t.Fatal(err)
	}
	if err := b.SetFault("panel", Fault{StuckOutputs: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetFault("pump-1", Fault{StuckOutputs: true}); err != nil {
		t.Fatal(err)
	}
	panel := rtuClient(t, b.Addr("panel"))
	if _, err := panel.WriteSingleCoil(2, 0x0000); err != nil {
		t.Fatalf("write coil with stuck outputs: %v, want acknowledged", err)
	}
	if bs, err := panel.ReadCoils(2, 1); err != nil || bs[0]&1 != 1 {
		t.Errorf("coil 2 reads %v (%v) after a write to stuck outputs, want still on", bs, err)
	}
	pump, _ := tcpClient(t, b.Addr("pump-1"), 5*time.Second)
	if _, err := pump.WriteSingleRegister(5, 350); err != nil {
		t.Fatalf("write setpoint with stuck outputs: %v, want acknowledged", err)
	}
	if v, _ := b.Values("pump-1"); v["setpoint_bar"] != 3 {
		t.Errorf("setpoint_bar = %v after a write to stuck outputs, want 3", v["setpoint_bar"])
	}
	if err := b.ClearFault("panel"); err != nil {
		t.Fatal(err)
	}
	if _, err := panel.WriteSingleCoil(2, 0x0000); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Values("panel"); v["circuit3_on"] != 0 {
		t.Errorf("circuit3_on = %v after the fault cleared and coil 2 written off", v["circuit3_on"])
	}
	for _, d := range b.devices {
		if d.modbus == nil {
			if err := b.SetFault(d.cfg.ID, Fault{StuckOutputs: true}); err == nil {
				t.Errorf("MQTT device %s took stuck_outputs", d.cfg.ID)
			}
			break
		}
	}
	var f Fault
	if err := json.Unmarshal([]byte(`{"stuck_outputs":true}`), &f); err != nil || !f.StuckOutputs {
		t.Errorf("stuck_outputs from JSON: %+v %v", f, err)
	}
}
