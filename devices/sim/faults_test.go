package sim

import (
	"errors"
	"math"
	"net"
	"testing"
	"time"

	"github.com/goburrow/modbus"
)

func mustFault(t *testing.T, b *Building, id string, f Fault) {
	t.Helper()
	if err := b.SetFault(id, f); err != nil {
		t.Fatal(err)
	}
}

// readMetric reads one metric of a device over Modbus TCP.
func readMetric(t *testing.T, b *Building, c modbus.Client, id, metric string) (float64, error) {
	t.Helper()
	return readPoint(c, b.byID[id].tmpl.Point(metric))
}

func TestFaultUnreachable(t *testing.T) {
	b := startBuilding(t, testConfig())
	addr := b.Addr("meter")
	c, _ := tcpClient(t, addr, 2*time.Second)
	if _, err := readMetric(t, b, c, "meter", "voltage_l1_v"); err != nil {
		t.Fatal(err)
	}
	mustFault(t, b, "meter", Fault{Unreachable: true})
	if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		conn.Close()
		t.Fatal("connected to an unreachable device")
	}
	if _, err := readMetric(t, b, c, "meter", "voltage_l1_v"); err == nil {
		t.Fatal("read from an unreachable device over the old connection")
	}
	if err := b.ClearFault("meter"); err != nil {
		t.Fatal(err)
	}
	if b.Addr("meter") != addr {
		t.Fatalf("device moved from %s to %s", addr, b.Addr("meter"))
	}
	c2, _ := tcpClient(t, addr, 2*time.Second)
	if _, err := readMetric(t, b, c2, "meter", "voltage_l1_v"); err != nil {
		t.Fatalf("read after the device came back: %v", err)
	}
}

func TestFaultSlow(t *testing.T) {
	b := startBuilding(t, testConfig())
	const delay = 300 * time.Millisecond
	mustFault(t, b, "pump-1", Fault{Delay: delay})

	impatient, _ := tcpClient(t, b.Addr("pump-1"), delay/3)
	if _, err := readMetric(t, b, impatient, "pump-1", "running"); err == nil {
		t.Error("a client waiting less than the delay got an answer")
	}
	patient, _ := tcpClient(t, b.Addr("pump-1"), 10*time.Second)
	start := time.Now()
	if _, err := readMetric(t, b, patient, "pump-1", "running"); err != nil {
		t.Fatalf("patient client: %v", err)
	}
	if el := time.Since(start); el < delay {
		t.Errorf("answer came after %s, before the %s delay", el, delay)
	}
}

func TestFaultException(t *testing.T) {
	b := startBuilding(t, testConfig())
	c, _ := tcpClient(t, b.Addr("lift"), 5*time.Second)
	for _, code := range []uint8{2, 4, 6, 11} {
		mustFault(t, b, "lift", Fault{Exception: code})
		_, err := readMetric(t, b, c, "lift", "floor")
		var me *modbus.ModbusError
		if !errors.As(err, &me) || me.ExceptionCode != code || me.FunctionCode != 0x83 {
			t.Errorf("exception %d: got %v", code, err)
		}
	}
	if err := b.SetFault("lift", Fault{Exception: 7}); err == nil {
		t.Error("exception code 7 accepted")
	}
}

func TestFaultGarbage(t *testing.T) {
	b := startBuilding(t, testConfig())
	if err := b.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	mustFault(t, b, "meter", Fault{Garbage: true})
	mustFault(t, b, "pump-1", Fault{Garbage: true})
	m, _ := tcpClient(t, b.Addr("meter"), 5*time.Second)
	if v, err := readMetric(t, b, m, "meter", "energy_import_kwh"); err != nil || !math.IsNaN(v) {
		t.Errorf("garbage meter import kWh = %v, %v; want NaN", v, err)
	}
	p, _ := tcpClient(t, b.Addr("pump-1"), 5*time.Second)
	if v, err := readMetric(t, b, p, "pump-1", "frequency_hz"); err != nil || v != 655.35 {
		t.Errorf("garbage pump frequency = %v Hz, %v; want the absurd 655.35", v, err)
	}
	if err := b.ClearFault("meter"); err != nil {
		t.Fatal(err)
	}
	if v, err := readMetric(t, b, m, "meter", "energy_import_kwh"); err != nil || math.IsNaN(v) || v <= 0 {
		t.Errorf("import kWh after clearing = %v, %v", v, err)
	}
}

func TestFaultSingleConnection(t *testing.T) {
	b := startBuilding(t, testConfig())
	mustFault(t, b, "lift", Fault{SingleConnection: true})
	first, _ := tcpClient(t, b.Addr("lift"), 5*time.Second)
	if _, err := readMetric(t, b, first, "lift", "floor"); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	second, _ := tcpClient(t, b.Addr("lift"), 2*time.Second)
	if _, err := readMetric(t, b, second, "lift", "floor"); err == nil {
		t.Fatal("a second concurrent connection was served")
	}
	if _, err := readMetric(t, b, first, "lift", "floor"); err != nil {
		t.Fatalf("first connection after the second was refused: %v", err)
	}
	// Over RTU too.
	mustFault(t, b, "panel", Fault{SingleConnection: true})
	r1 := rtuClient(t, b.Addr("panel"))
	if _, err := r1.ReadCoils(0, 4); err != nil {
		t.Fatalf("first RTU connection: %v", err)
	}
	r2 := rtuClient(t, b.Addr("panel"))
	if _, err := r2.ReadCoils(0, 4); err == nil {
		t.Fatal("a second concurrent RTU connection was served")
	}
}

func TestMeterReplaced(t *testing.T) {
	cfg := testConfig()
	cfg.Devices[0].Initial = map[string]float64{"energy_import_kwh": 123456.5, "energy_total_kwh": 123456.5}
	b := startBuilding(t, cfg)
	if err := b.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	c, _ := tcpClient(t, b.Addr("meter"), 5*time.Second)
	before, err := readMetric(t, b, c, "meter", "energy_import_kwh")
	if err != nil || before < 123456.5 {
		t.Fatalf("import before = %v, %v", before, err)
	}
	if err := b.MeterReplaced("meter"); err != nil {
		t.Fatal(err)
	}
	if err := b.Advance(5 * time.Minute); err != nil {
		t.Fatal(err)
	}
	after, err := readMetric(t, b, c, "meter", "energy_import_kwh")
	if err != nil || after <= 0 || after > 10 {
		t.Fatalf("import after replacement = %v, %v; want a little above 0", after, err)
	}
	if err := b.MeterReplaced("lift"); err != nil { // the elevator's own kWh counter
		t.Fatal(err)
	}
	if err := b.Advance(time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Values("lift"); v["energy_kwh"] > 1 || v["trips"] == 0 {
		t.Errorf("elevator after meter replacement: energy %v kWh, trips %v", v["energy_kwh"], v["trips"])
	}
}

func TestCounterRollover(t *testing.T) {
	cfg := testConfig()
	roll := loadTemplates(t)["elevator"].Point("energy_kwh").Rollover
	cfg.Devices[3].Initial = map[string]float64{"energy_kwh": roll - 0.3}
	b := startBuilding(t, cfg)
	c, _ := tcpClient(t, b.Addr("lift"), 5*time.Second)
	before, err := readMetric(t, b, c, "lift", "energy_kwh")
	if err != nil || before < roll-1 {
		t.Fatalf("elevator kWh before = %v, %v", before, err)
	}
	if err := b.Advance(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	after, err := readMetric(t, b, c, "lift", "energy_kwh")
	if err != nil || after >= before || after > 50 {
		t.Fatalf("elevator kWh after 2 h = %v, %v; want wrapped past %v to near 0", after, err, roll)
	}
	if got := after - before + roll; got <= 0 || got > 50 {
		t.Errorf("energy across the wrap = %v kWh", got)
	}
}
