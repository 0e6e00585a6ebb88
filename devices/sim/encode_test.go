package sim

import (
	"math"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

func TestEncodeTypesAndOrders(t *testing.T) {
	bit := 3
	cases := []struct {
		pt    config.Point
		v     float64
		regs  []uint16
		clamp bool // out of the type's range: does not read back
	}{
		{config.Point{Type: "float32", ByteOrder: "big", WordOrder: "big"}, 1, []uint16{0x3F80, 0x0000}, false},
		{config.Point{Type: "float32", ByteOrder: "big", WordOrder: "little"}, 1, []uint16{0x0000, 0x3F80}, false},
		{config.Point{Type: "float32", ByteOrder: "little", WordOrder: "big"}, 1, []uint16{0x803F, 0x0000}, false},
		{config.Point{Type: "float32", ByteOrder: "little", WordOrder: "little"}, 1, []uint16{0x0000, 0x803F}, false},
		{config.Point{Type: "float64", ByteOrder: "big", WordOrder: "big"}, 1, []uint16{0x3FF0, 0, 0, 0}, false},
		{config.Point{Type: "uint32", ByteOrder: "big", WordOrder: "big", Scale: 0.01}, 123456.78, []uint16{0x00BC, 0x614E}, false},
		{config.Point{Type: "uint32", ByteOrder: "big", WordOrder: "little", Scale: 0.01}, 123456.78, []uint16{0x614E, 0x00BC}, false},
		{config.Point{Type: "int32", ByteOrder: "big", WordOrder: "big"}, -2, []uint16{0xFFFF, 0xFFFE}, false},
		{config.Point{Type: "int16", ByteOrder: "big", WordOrder: "big", Scale: 0.1}, -12.3, []uint16{0xFF85}, false},
		{config.Point{Type: "uint16", ByteOrder: "big", WordOrder: "big", Scale: 0.1, Offset: -40}, 20, []uint16{600}, false},
		{config.Point{Type: "uint16", ByteOrder: "little", WordOrder: "big"}, 0x1234, []uint16{0x3412}, false},
		{config.Point{Type: "uint16", ByteOrder: "big", WordOrder: "big"}, 70000, []uint16{0xFFFF}, true},
		{config.Point{Type: "uint16", ByteOrder: "big", WordOrder: "big"}, -5, []uint16{0}, true},
		{config.Point{Type: "int16", ByteOrder: "big", WordOrder: "big"}, 40000, []uint16{0x7FFF}, true},
		{config.Point{Type: "bool", Bit: &bit, ByteOrder: "big", WordOrder: "big"}, 1, []uint16{0x0008}, false},
		{config.Point{Type: "bool", ByteOrder: "big", WordOrder: "big"}, 1, []uint16{1}, false},
	}
	for _, tc := range cases {
		regs := make([]uint16, len(tc.regs))
		putPoint(regs, &tc.pt, tc.v, false)
		for i := range regs {
			if regs[i] != tc.regs[i] {
				t.Errorf("%+v = %v: registers %04x, want %04x", tc.pt, tc.v, regs, tc.regs)
				break
			}
		}
		if got := DecodePoint(&tc.pt, regs); !tc.clamp && math.Abs(got-tc.v) > 0.01 {
			t.Errorf("%+v: decoded %v, encoded %v", tc.pt, got, tc.v)
		}
	}
}

func TestEncodeCounterWraps(t *testing.T) {
	pt := config.Point{Type: "uint32", ByteOrder: "big", WordOrder: "big", Scale: 0.01, Counter: true}
	regs := make([]uint16, 2)
	putPoint(regs, &pt, 42949672.96+1.5, false)
	if got := DecodePoint(&pt, regs); math.Abs(got-1.5) > 1e-9 {
		t.Errorf("counter past its range reads %v, want 1.5", got)
	}
}

func TestEncodeGarbage(t *testing.T) {
	for typ, want := range map[string]float64{"uint16": 65535, "int16": 32767, "uint32": 4294967295, "int32": 2147483647} {
		pt := config.Point{Type: typ, ByteOrder: "big", WordOrder: "big"}
		regs := make([]uint16, 2)
		putPoint(regs, &pt, 1, true)
		if got := DecodePoint(&pt, regs); got != want {
			t.Errorf("garbage %s = %v, want %v", typ, got, want)
		}
	}
	pt := config.Point{Type: "float32", ByteOrder: "big", WordOrder: "big"}
	regs := make([]uint16, 2)
	putPoint(regs, &pt, 1, true)
	if !math.IsNaN(DecodePoint(&pt, regs)) {
		t.Error("garbage float32 is not NaN")
	}
}

func TestClock(t *testing.T) {
	c := NewClock(testStart, 3600, false)
	if _, err := c.Advance(time.Second); err == nil {
		t.Error("a running clock was advanced by hand")
	}
	if !c.Now().Equal(testStart) {
		t.Error("the clock moved before Run")
	}
	c.Run()
	eventually(t, 5*time.Second, "an hour of virtual time per real second", func() bool {
		return c.Now().Sub(testStart) > time.Minute
	})
	m := NewClock(testStart, 1, true)
	if now, err := m.Advance(90 * time.Minute); err != nil || !now.Equal(testStart.Add(90*time.Minute)) {
		t.Errorf("manual advance: %v, %v", now, err)
	}
	if _, err := m.Advance(-time.Second); err == nil {
		t.Error("the clock went backwards")
	}
}

func TestRunningClockSteps(t *testing.T) {
	cfg := testConfig()
	cfg.Clock = ClockConfig{Start: testStart, Speed: 36000, Step: config.D(10 * time.Second)} // 10 h per second
	b := startBuilding(t, cfg)
	eventually(t, 10*time.Second, "the models to run an hour on their own", func() bool {
		return b.Now().Sub(testStart) >= time.Hour
	})
	if err := b.Advance(time.Hour); err == nil {
		t.Error("Advance worked on a running clock")
	}
	v, _ := b.Values("meter")
	if v["energy_import_kwh"] <= 0 {
		t.Errorf("meter kWh %v after an hour", v["energy_import_kwh"])
	}
	b.Stop()
	b.Stop() // idempotent
}
