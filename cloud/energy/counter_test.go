package energy

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.12g, want %.12g", what, got, want)
	}
}

func TestDelta(t *testing.T) {
	f := func(prev, next, rollover, want float64, wantKind string) {
		t.Helper()
		got, kind := Delta(prev, next, rollover)
		near(t, "delta", got, want)
		if kind != wantKind {
			t.Errorf("Delta(%v, %v, %v) kind = %q, want %q", prev, next, rollover, kind, wantKind)
		}
	}
	f(100, 112.5, 0, 12.5, "")
	f(100, 100, 0, 0, "")
	// Rollover: R = 1000, previous 950 within 10% of R: 1000 − 950 + 20 = 70.
	f(950, 20, 1000, 70, DropRollover)
	// Exactly at the edge of the band (900 = 0.9 × 1000) still counts.
	f(900, 5, 1000, 105, DropRollover)
	// Previous 899.9 is outside the band: a replacement, delta = new.
	f(899.9, 5, 1000, 5, DropReplacement)
	// No rollover declared: any drop is a replacement.
	f(42949000, 3, 0, 3, DropReplacement)
	// The new meter reads 0: nothing used yet.
	f(5000, 0, 0, 0, DropReplacement)
	// A negative reading after a drop never yields negative energy.
	f(5000, -2, 0, 0, DropReplacement)
	// A reading above R before the wrap (bad data) cannot go negative either.
	f(1200, 0, 1000, 0, DropRollover)
}

func TestUnwrapAndSpread(t *testing.T) {
	// Readings (s → kWh): 0:100, 10:110, 20:5 (replacement, +5), 30:15.
	// Unwrapped C: 0, 10, 15, 25.
	pts := []Point{{0, 100}, {10_000, 110}, {20_000, 5}, {30_000, 15}}
	c := Unwrap(pts, 0)
	if len(c.Drops) != 1 || c.Drops[0].Kind != DropReplacement || c.Drops[0].TS != 20_000 || c.Drops[0].Delta != 5 {
		t.Fatalf("drops = %+v, want one replacement at 20s worth 5", c.Drops)
	}
	near(t, "C(0)", c.At(0), 0)
	near(t, "C(5s)", c.At(5_000), 5)    // halfway 0 → 10
	near(t, "C(25s)", c.At(25_000), 20) // halfway 15 → 25
	near(t, "C(-1)", c.At(-1_000), 0)   // before the first reading: constant
	near(t, "C(99s)", c.At(99_000), 25) // after the last reading: constant
	near(t, "[5s,25s)", c.Between(5_000, 25_000), 15)
	// Spread over [−10, 5, 15, 25, 40) s: 5, 7.5 (5→12.5), 7.5 (12.5→20), 5.
	got := c.Spread([]int64{-10_000, 5_000, 15_000, 25_000, 40_000})
	want := []float64{5, 7.5, 7.5, 5}
	for i := range want {
		near(t, "spread", got[i], want[i])
	}
}

func TestSpreadMatchesBetween(t *testing.T) {
	pts := []Point{{1000, 1}, {4000, 3}, {4500, 2}, {9000, 9.5}, {20000, 10}}
	c := Unwrap(pts, 10)
	bounds := []int64{0, 999, 1000, 2500, 4000, 4250, 4500, 8000, 19999, 20000, 30000}
	got := c.Spread(bounds)
	for i := range got {
		near(t, "spread vs between", got[i], c.Between(bounds[i], bounds[i+1]))
	}
	// 4000 → 4500 falls 3 → 2, and 3 < 0.9 × 10: a replacement worth 2.
	// Total C(last) − C(first) = (3−1) + 2 + (9.5−2) + (10−9.5) = 12.
	near(t, "total", c.Between(0, 30000), 12)
}

func TestDedup(t *testing.T) {
	pts := []Point{{30, 3}, {10, 1}, {20, 2}, {10, 1}, {20, 2}, {30, 3}}
	got := Dedup(pts)
	if len(got) != 3 || got[0].TS != 10 || got[1].TS != 20 || got[2].TS != 30 {
		t.Fatalf("Dedup = %+v", got)
	}
	c := Unwrap(got, 0)
	near(t, "total after dedup", c.Between(0, 100), 2)
}

func TestIntegrate(t *testing.T) {
	// 2 kW at 0 h, 4 kW at 1 h, 4 kW at 3 h: (2+4)/2×1 + (4+4)/2×2 = 3 + 8 = 11 kWh.
	h := HourMS
	c := Integrate([]Point{{0, 2}, {h, 4}, {3 * h, 4}})
	near(t, "total", c.Between(0, 3*h), 11)
	// The first trapezoid's 3 kWh is spread evenly: half in the first half hour.
	near(t, "first half hour", c.Between(0, h/2), 1.5)
	// Negative power (export) counts as 0: (0+2)/2 × 1 h = 1 kWh.
	c = Integrate([]Point{{0, -5}, {h, 2}})
	near(t, "with export", c.Between(0, h), 1)
}

func TestEmptyCounter(t *testing.T) {
	var c Counter
	near(t, "empty", c.Between(0, 100), 0)
	if got := c.Spread([]int64{0, 10, 20}); len(got) != 2 || got[0] != 0 || got[1] != 0 {
		t.Fatalf("Spread on empty = %v", got)
	}
	one := Unwrap([]Point{{5, 7}}, 0)
	near(t, "single reading", one.Between(0, 10), 0)
}

func TestFindGaps(t *testing.T) {
	thr := int64(60)
	f := func(name string, times []int64, from, to int64, want []Gap) {
		t.Helper()
		got := FindGaps(times, from, to, thr)
		if len(got) != len(want) {
			t.Errorf("%s: gaps = %+v, want %+v", name, got, want)
			return
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: gap %d = %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
	f("none", []int64{-10, 40, 90, 140, 190}, 0, 180, nil)
	f("interpolated, clipped", []int64{-10, 40, 150, 200}, 0, 180, []Gap{{40, 150, true}})
	f("straddles start", []int64{-100, 30, 60}, 0, 90, []Gap{{0, 30, true}})
	f("no reading before", []int64{70, 100}, 0, 120, []Gap{{0, 70, false}})
	f("no reading after", []int64{0, 20}, 0, 100, []Gap{{20, 100, false}})
	f("nothing at all", nil, 0, 100, []Gap{{0, 100, false}})
	f("all readings after", []int64{500}, 0, 100, []Gap{{0, 100, false}})
	f("all readings before", []int64{-500}, 0, 100, []Gap{{0, 100, false}})
	f("exactly threshold is no gap", []int64{0, 60, 120}, 0, 120, nil)
}

func TestRound(t *testing.T) {
	f := func(x float64, places int, want float64) {
		t.Helper()
		if got := Round(x, places); got != want {
			t.Errorf("Round(%v, %d) = %v, want %v", x, places, got, want)
		}
	}
	f(2.675, 2, 2.68) // stored as 2.67499999999999982236431605997495353221893310546875
	f(1.005, 2, 1.01)
	f(-1.005, 2, -1.01)
	f(0.125, 2, 0.13)
	f(0.124999, 2, 0.12)
	f(12.3449999999, 2, 12.35) // within 1e-9 of 12.345: noise, rounds as 12.345
	f(12.34499999, 2, 12.34)   // 1e-8 below: a real value below the half
	f(1234567.8915, 3, 1234567.892)
	f(0, 2, 0)
	f(-0.004, 2, 0)
	f(99.995, 2, 100)
}
