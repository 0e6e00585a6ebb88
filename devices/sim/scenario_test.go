package sim

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"github.com/plantroom/plantroom/config"
)

func TestScenarioPlaysAtVirtualOffsets(t *testing.T) {
	b := startBuilding(t, testConfig())
	sc := &Scenario{Steps: []ScenarioStep{
		{At: config.D(time.Minute), Device: "meter", Fault: &Fault{Exception: 6}, For: config.D(2 * time.Minute)},
		{At: config.D(2 * time.Minute), Device: "lift", Event: "trapped"},
		{At: config.D(5 * time.Minute), Device: "pump-2", Fault: &Fault{Unreachable: true}},
		{At: config.D(6 * time.Minute), Device: "pump-2", Clear: true},
	}}
	if err := b.Play(sc); err != nil {
		t.Fatal(err)
	}
	meter, _ := tcpClient(t, b.Addr("meter"), 5*time.Second)
	meterCode := func() byte {
		_, err := meter.ReadInputRegisters(0, 2)
		var me *modbus.ModbusError
		if errors.As(err, &me) {
			return me.ExceptionCode
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	pumpUp := func() bool {
		c, err := net.DialTimeout("tcp", b.Addr("pump-2"), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	steps := []struct {
		by      time.Duration
		code    byte
		trapped float64
		pump    bool
	}{
		{30 * time.Second, 0, 0, true},
		{time.Minute, 6, 0, true},      // 1m30
		{time.Minute, 6, 1, true},      // 2m30
		{time.Minute, 0, 1, true},      // 3m30: the fault lasted 2 minutes
		{2 * time.Minute, 0, 1, false}, // 5m30
		{time.Minute, 0, 1, true},      // 6m30
	}
	for i, s := range steps {
		if err := b.Advance(s.by); err != nil {
			t.Fatal(err)
		}
		v, _ := b.Values("lift")
		if code, up := meterCode(), pumpUp(); code != s.code || v["trapped"] != s.trapped || up != s.pump {
			t.Errorf("after step %d (%s): meter exception %d, trapped %v, pump-2 reachable %v; want %d, %v, %v",
				i, b.Now().Sub(testStart), code, v["trapped"], up, s.code, s.trapped, s.pump)
		}
	}
}

func TestScenarioFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "configs", "scenarios")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no scenario files in configs/scenarios")
	}
	cfg, err := LoadConfig(filepath.Join("..", "..", "configs", "building-garden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clock.Manual = true
	b := newBuilding(t, cfg)
	for _, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Play(sc); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	advance(t, b, 2*time.Hour) // every step runs (servers are not started)
}

func TestScenarioProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`steps:
  - {at: -1m, device: meter, fault: {exception: 9}}
  - {at: 1m, device: meter}
  - {at: 2m, device: meter, event: trapped, clear: true, for: 1m}
  - {at: 3m, fault: {delay: 1h}}
`), 0o644)
	_, err := LoadScenario(path)
	if err == nil {
		t.Fatal("a broken scenario loaded")
	}
	for _, want := range []string{"steps[0].at", "steps[0].fault.exception", "steps[1]: needs exactly one",
		"steps[2]: needs exactly one", "steps[2].for", "steps[3].device: required", "steps[3].fault.delay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	b := newBuilding(t, testConfig())
	err = b.Play(&Scenario{Steps: []ScenarioStep{
		{Device: "ghost", Clear: true},
		{Device: "meter", Event: "trapped"},
	}})
	if err == nil || !strings.Contains(err.Error(), `steps[0].device: unknown device "ghost"`) || !strings.Contains(err.Error(), "steps[1].event") {
		t.Errorf("Play of a bad scenario: %v", err)
	}
}
