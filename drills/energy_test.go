package main

import (
	"math"
	"strings"
	"testing"
)

func TestDeviceKWh(t *testing.T) {
	const R = 42949672.96
	// Readings an hour apart under P = 10 kW: the allowance of one step is
	// 10.05 kWh, of two steps 20.05 kWh.
	hourly := func(n int) []int64 {
		ts := make([]int64, n)
		for i := range ts {
			ts[i] = int64(i) * 3_600_000
		}
		return ts
	}
	for _, c := range []struct {
		name     string
		values   []float64
		rollover float64
		want     float64
	}{
		{"empty", nil, 0, 0},
		{"one reading", []float64{5}, 0, 0},
		{"rising", []float64{100, 100.5, 101.25}, 0, 1.25},
		{"flat", []float64{7, 7, 7}, 0, 0},
		{"rollover", []float64{R - 1, R - 0.25, 0.5}, R, 1.5},
		{"an isolated spike is an outlier", []float64{100, 5000, 102, 103}, 0, 3},
		{"an isolated zero is an outlier", []float64{100, 0, 101}, 0, 1},
		{"a drop far from the rollover is a replacement", []float64{1000, 1001, 2, 3}, R, 4},
		{"a drop without rollover is a replacement", []float64{1000, 0.5}, 0, 0.5},
		{"a step back of 50 kWh is a discontinuity", []float64{1003.654, 953.674, 955}, 0, 1.326},
		{"a jump is a discontinuity", []float64{100, 900, 901, 902}, 0, 2},
		{"negative after a drop is a discontinuity", []float64{10, -3, -1}, 0, 2},
		{"a glitch in the last reading is a replacement", []float64{100, 101, 0}, 0, 1},
	} {
		if got := deviceKWh(hourly(len(c.values)), c.values, c.rollover, 10); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s: deviceKWh = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRound3(t *testing.T) {
	for in, want := range map[float64]float64{2.6745: 2.675, 2.67449999999: 2.675, 2.6744: 2.674, -1.0005: -1.001, 0.0004: 0} {
		if got := round3(in); got != want {
			t.Errorf("round3(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestEnergyProblems(t *testing.T) {
	ok := &energyCheck{direct: 1.2344, api: 1.234, submetered: true,
		devices: map[string]float64{"m": 3, "p": 1.2344}, monthly: map[string]float64{"m": 3, "p": 1.234}}
	if p := ok.problems(); len(p) != 0 {
		t.Errorf("a match within rounding: %v", p)
	}
	off := &energyCheck{direct: 1.2344, api: 1.244, submetered: true,
		devices: map[string]float64{"m": 3, "p": 1.2344}, monthly: map[string]float64{"p": 1.3}}
	got := strings.Join(off.problems(), "\n")
	for _, want := range []string{"daily report", `lacks device "m"`, `1.300 kWh for "p"`} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
	none := &energyCheck{submetered: true, devices: map[string]float64{"p": 0}}
	if p := none.problems(); len(p) == 0 || !strings.Contains(p[0], "prove nothing") {
		t.Errorf("zero energy must be a problem, got %v", p)
	}
	meters := &energyCheck{devices: map[string]float64{"m1": 2}, monthly: map[string]float64{"m1": 2}}
	if p := meters.problems(); len(p) != 0 {
		t.Errorf("a meters-only building compares per device only: %v", p)
	}
}
