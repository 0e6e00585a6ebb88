package sim

import (
	"math"
	"reflect"
	"testing"
	"time"
)

// newBuilding builds cfg without starting servers: the models alone.
func newBuilding(t testing.TB, cfg *Config) *Building {
	t.Helper()
	b, err := New(cfg, loadTemplates(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func advance(t testing.TB, b *Building, d time.Duration) map[string]map[string]float64 {
	t.Helper()
	if err := b.Advance(d); err != nil {
		t.Fatal(err)
	}
	all := map[string]map[string]float64{}
	for _, d := range b.devices {
		all[d.cfg.ID], _ = b.Values(d.cfg.ID)
	}
	return all
}

func TestElevatorTripsAndDoorCycles(t *testing.T) {
	b := newBuilding(t, testConfig()) // 08:00, morning rush
	first := advance(t, b, 0)["lift"]
	doors, running, floors := map[float64]bool{}, 0, map[float64]bool{}
	for range 1800 {
		v := advance(t, b, time.Second)["lift"]
		doors[v["door"]] = true
		floors[v["floor"]] = true
		if v["floor"] < -2 || v["floor"] > 12 {
			t.Fatalf("floor %v outside [-2, 12]", v["floor"])
		}
		if v["running"] == elevRunning {
			running++
			if v["direction"] == dirNone || v["door"] != doorClosed {
				t.Fatalf("running with direction %v, door %v", v["direction"], v["door"])
			}
		}
		if v["door"] != doorClosed && v["running"] == elevRunning {
			t.Fatal("doors open while running")
		}
	}
	last := advance(t, b, 0)["lift"]
	if len(doors) != 4 {
		t.Errorf("door states seen: %v, want closed, opening, open and closing", doors)
	}
	if running == 0 || len(floors) < 3 {
		t.Errorf("ran %d s over %d floors in a morning half hour", running, len(floors))
	}
	if last["trips"] <= first["trips"] || last["energy_kwh"] <= first["energy_kwh"] {
		t.Errorf("trips %v → %v, kWh %v → %v: counters did not grow", first["trips"], last["trips"], first["energy_kwh"], last["energy_kwh"])
	}
}

func TestElevatorTrapped(t *testing.T) {
	b := newBuilding(t, testConfig())
	advance(t, b, 10*time.Minute)
	if err := b.Trapped("lift"); err != nil {
		t.Fatal(err)
	}
	v := advance(t, b, time.Minute)["lift"]
	if v["trapped"] != 1 || v["running"] != elevStopped || v["safety_ok"] != 0 || v["load_pct"] == 0 {
		t.Fatalf("trapped elevator reads %v", v)
	}
	if v := advance(t, b, 25*time.Minute)["lift"]; v["trapped"] != 0 {
		t.Errorf("still trapped 26 minutes later (rescue takes 25)")
	}
	if err := b.Trapped("pump-1"); err == nil {
		t.Error("a pump accepted a trapped passenger")
	}
}

func TestPumpHoldsPressureAndSharesDuty(t *testing.T) {
	b := newBuilding(t, testConfig())
	near, n := 0, 0
	for range 360 { // an hour of the morning peak, every 10 s
		all := advance(t, b, 10*time.Second)
		p1, p2 := all["pump-1"], all["pump-2"]
		if p1["duty"]+p2["duty"] != 1 || p1["running"]+p2["running"] != 1 {
			t.Fatalf("duty %v/%v, running %v/%v: want exactly one", p1["duty"], p2["duty"], p1["running"], p2["running"])
		}
		n++
		if math.Abs(p1["outlet_pressure_bar"]-p1["setpoint_bar"]) < 0.15 {
			near++
		}
		if p1["flow_m3h"] <= 0 || p1["frequency_hz"] < 30 || p1["frequency_hz"] > 50 {
			t.Fatalf("duty pump at %v m3/h, %v Hz", p1["flow_m3h"], p1["frequency_hz"])
		}
	}
	if near < n*9/10 {
		t.Errorf("pressure within 0.15 bar of the setpoint in %d of %d samples", near, n)
	}
	// Duty swaps at 02:00.
	before := advance(t, b, 0)["pump-1"]["duty"]
	if after := advance(t, b, 18*time.Hour)["pump-1"]["duty"]; after == before {
		t.Errorf("duty did not swap overnight")
	}
}

func TestPumpFaults(t *testing.T) {
	cases := []struct {
		event string
		code  float64
		shows func(v map[string]float64) bool
	}{
		{"dry_run", pumpFaultDryRun, func(v map[string]float64) bool { return v["outlet_pressure_bar"] < 1 && v["flow_m3h"] < 5 }},
		{"over_temperature", pumpFaultOverTemp, func(v map[string]float64) bool { return v["motor_temp_c"] > 85 }},
		{"pressure_loss", pumpFaultPressureLoss, func(v map[string]float64) bool { return v["outlet_pressure_bar"] < 1.5 && v["flow_m3h"] > 40 }},
	}
	for _, tc := range cases {
		t.Run(tc.event, func(t *testing.T) {
			b := newBuilding(t, testConfig())
			advance(t, b, 5*time.Minute)
			if err := b.Event("pump-1", tc.event); err != nil {
				t.Fatal(err)
			}
			showed := false
			var v map[string]map[string]float64
			for range 60 * 30 {
				v = advance(t, b, time.Second)
				if v["pump-1"]["fault_code"] != 0 {
					break
				}
				showed = showed || tc.shows(v["pump-1"])
			}
			if !showed {
				t.Errorf("%s never showed before the trip", tc.event)
			}
			if v["pump-1"]["fault_code"] != tc.code || v["pump-1"]["running"] != 0 {
				t.Fatalf("pump-1 after %s: fault %v, running %v", tc.event, v["pump-1"]["fault_code"], v["pump-1"]["running"])
			}
			v = advance(t, b, 2*time.Minute)
			if v["pump-2"]["running"] != 1 || v["pump-2"]["duty"] != 1 {
				t.Errorf("standby did not take over: %v", v["pump-2"])
			}
			if p := v["pump-2"]["outlet_pressure_bar"]; math.Abs(p-3) > 0.3 {
				t.Errorf("pressure %v bar after the standby took over", p)
			}
		})
	}
}

func TestMeterMatchesItsLoads(t *testing.T) {
	b := newBuilding(t, testConfig())
	loadKW := func(all map[string]map[string]float64) (kw, kwh float64) {
		for _, id := range []string{"pump-1", "pump-2", "lift"} {
			kw += all[id]["power_kw"]
			kwh += all[id]["energy_kwh"]
		}
		return kw + all["panel"]["power_w"]/1000, kwh + all["panel"]["energy_kwh"]
	}
	start := advance(t, b, time.Minute)
	for range 6 {
		all := advance(t, b, 10*time.Minute)
		m := all["meter"]
		kw, _ := loadKW(all)
		base := m["power_total_w"]/1000 - kw
		if base < 0.5*20 || base > 20 { // base_load_kw 20 shaped by time of day
			t.Fatalf("meter %v kW, loads %v kW: base %v kW outside [10, 20]", m["power_total_w"]/1000, kw, base)
		}
		sum := m["power_l1_w"] + m["power_l2_w"] + m["power_l3_w"]
		if math.Abs(sum-m["power_total_w"]) > 1e-6*sum {
			t.Fatalf("phase powers add up to %v W, total %v W", sum, m["power_total_w"])
		}
		if i := m["power_l1_w"] / (m["voltage_l1_v"] * m["pf_l1"]); math.Abs(i-m["current_l1_a"]) > 1e-9*i {
			t.Fatalf("I1 %v A, P/(V·pf) %v A", m["current_l1_a"], i)
		}
	}
	end := advance(t, b, 0)
	_, k0 := loadKW(start)
	_, k1 := loadKW(end)
	dm := end["meter"]["energy_import_kwh"] - start["meter"]["energy_import_kwh"]
	if base := dm - (k1 - k0); base < 0.5*20 || base > 20 { // one hour of base load
		t.Errorf("meter drew %v kWh, loads %v kWh: base %v kWh outside [10, 20]", dm, k1-k0, base)
	}
}

func TestLightingFollowsSchedule(t *testing.T) {
	b := newBuilding(t, testConfig())          // 08:00
	day := advance(t, b, 4*time.Hour)["panel"] // noon
	night := advance(t, b, 8*time.Hour)["panel"]
	if day["circuit1_on"] != 0 || day["circuit2_on"] != 1 || night["circuit1_on"] != 1 || night["circuit3_on"] != 1 {
		t.Errorf("circuits at noon %v, at 20:00 %v", day, night)
	}
	if night["power_w"] <= day["power_w"] || night["energy_kwh"] <= day["energy_kwh"] {
		t.Errorf("power %v W at noon, %v W at night; energy %v → %v", day["power_w"], night["power_w"], day["energy_kwh"], night["energy_kwh"])
	}
}

func TestDeterminism(t *testing.T) {
	run := func(seed uint64, chunks int) map[string]map[string]float64 {
		cfg := testConfig()
		cfg.Seed = seed
		for i := range cfg.Devices {
			cfg.Devices[i].FaultsPerDay = nil // random faults too
		}
		b := newBuilding(t, cfg)
		for range chunks {
			advance(t, b, 12*time.Hour/time.Duration(chunks))
		}
		return advance(t, b, 0)
	}
	a, b := run(42, 1), run(42, 12)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different values:\n%v\n%v", a, b)
	}
	if c := run(43, 1); reflect.DeepEqual(a["meter"], c["meter"]) {
		t.Error("different seeds gave the same meter values")
	}
}
