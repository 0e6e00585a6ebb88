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

// Hand-worked cases of the plausibility walk. Times in minutes, P in kW;
// A = P·h + 0.05.
const min_ = 60_000 // one minute in ms

func TestStep(t *testing.T) {
	f := func(name string, prev, cur Point, next *Point, maxKW, rollover, want float64, wantKind string, wantOK bool) {
		t.Helper()
		got, kind, ok := Step(prev, cur, next, maxKW, rollover)
		if math.Abs(got-want) > 1e-9 || kind != wantKind || ok != wantOK {
			t.Errorf("%s: Step = %.6f %q %v, want %.6f %q %v", name, got, kind, ok, want, wantKind, wantOK)
		}
	}
	pt := func(minute int64, v float64) Point { return Point{minute * min_, v} }
	// P = 60 kW, 1 minute: A = 1 + 0.05 = 1.05 kWh.
	f("plausible", pt(0, 100), pt(1, 101), nil, 60, 0, 1, "", true)
	f("flat", pt(0, 100), pt(1, 100), nil, 60, 0, 0, "", true)
	f("exactly A", pt(0, 100), pt(1, 101.05), nil, 60, 0, 1.05, "", true)
	// 100 → 101.1 is over A; 102 two minutes later is within 2.05 of 100:
	// 101.1 is an outlier, skipped.
	f("spike up, outlier", pt(0, 100), pt(1, 101.1), &Point{2 * min_, 102}, 60, 0, 0, EventOutlier, false)
	// A poll reading 0 between 100 and 100.5: an outlier, not a new meter.
	f("zero, outlier", pt(0, 100), pt(1, 0), &Point{2 * min_, 100.5}, 60, 0, 0, EventOutlier, false)
	// The libmodbus meter: 1003.654 → 953.674 (a step back of
	// 49.98), the next reading 1003.700: an outlier.
	f("step back, outlier", pt(0, 1003.654), pt(1, 953.674), &Point{2 * min_, 1003.7}, 60, 0, 0, EventOutlier, false)
	// Rollover R = 1000: prev 990 ≥ 900, 1000 − 990 + 0.5 = 10.5 ≤ A (P 600 kW:
	// A = 10.05 + … no: 600 × 1/60 + 0.05 = 10.05 < 10.5) → not a rollover;
	// with P = 660: A = 11.05 ≥ 10.5 → rollover, credit 10.5.
	f("rollover", pt(0, 990), pt(1, 0.5), &Point{2 * min_, 3}, 660, 1000, 10.5, EventRollover, true)
	// Same wrap with P = 600 kW: too much for a minute, and 0.5 ≤ A: the
	// fall reads as a replacement crediting 0.5.
	f("wrap too fast is a replacement", pt(0, 990), pt(1, 0.5), &Point{2 * min_, 3}, 600, 1000, 0.5, EventReplacement, true)
	// prev 899 < 0.9 × 1000: no rollover; 0.3 ≤ A: replacement.
	f("below the band", pt(0, 899), pt(1, 0.3), nil, 60, 1000, 0.3, EventReplacement, true)
	// New meter starts at 0.3, next 0.4: plausible(prev 5000, next) fails, so no outlier.
	f("replacement", pt(0, 5000), pt(1, 0.3), &Point{2 * min_, 0.4}, 60, 0, 0.3, EventReplacement, true)
	// A fall to 953.674 with nothing after it (the very last reading):
	// 953.674 > A, so not a replacement either: a discontinuity, credit 0.
	f("glitch in the last reading", pt(0, 1003.654), pt(1, 953.674), nil, 60, 0, 0, EventDiscontinuity, true)
	// A jump up of 500 kWh in a minute that stays: a discontinuity.
	f("jump up", pt(0, 100), pt(1, 600), &Point{2 * min_, 600.5}, 60, 0, 0, EventDiscontinuity, true)
	// A negative reading is never a replacement (its credit would be negative).
	f("negative", pt(0, 100), pt(1, -0.01), nil, 60, 0, 0, EventDiscontinuity, true)
	// Zero power: only the 0.05 slack is allowed.
	f("slack only", pt(0, 100), pt(60, 100.05), nil, 0, 0, 0.05, "", true)
	f("over the slack", pt(0, 100), pt(60, 100.06), nil, 0, 0, 0, EventDiscontinuity, true)
}

func TestWalkHandWorked(t *testing.T) {
	// P = 60 kW (1 kWh a minute at most, A = 1.05 per minute), readings a
	// minute apart unless said otherwise:
	//   0: 100
	//   1: 100.5               plausible, +0.5
	//   2: 0        (glitch)   next 101 is plausible from 100.5: outlier
	//   3: 101                 plausible from 100.5 (2 min, A 2.05): +0.5
	//   4: 5000     (spike)    next 101.2 plausible from 101: outlier
	//   5: 101.2               +0.2
	//   6: 0.4      (new meter) next 0.9 not plausible from 101.2; no
	//                           rollover declared; 0.4 ≤ A: replacement, +0.4
	//   7: 0.9                 +0.5
	//   8: 400      (jump)     next 400.6 not plausible from 0.9; no rollover;
	//                           not a fall: discontinuity, credit 0
	//   9: 400.6               +0.6
	//  10: 350      (last reading, a glitch) no next: not an outlier yet;
	//                           350 > A: discontinuity, credit 0
	// Credited: 0.5 + 0.5 + 0.2 + 0.4 + 0.5 + 0.6 = 2.7 kWh.
	vals := []float64{100, 100.5, 0, 101, 5000, 101.2, 0.4, 0.9, 400, 400.6, 350}
	var pts []Point
	for i, v := range vals {
		pts = append(pts, Point{int64(i) * min_, v})
	}
	c := Walk(pts, 60, 0)
	near(t, "total", c.Between(0, 10*min_), 2.7)
	want := []struct {
		minute   int64
		kind     string
		prev     float64
		credited float64
	}{
		{2, EventOutlier, 100.5, 0}, {4, EventOutlier, 101, 0}, {6, EventReplacement, 101.2, 0.4},
		{8, EventDiscontinuity, 0.9, 0}, {10, EventDiscontinuity, 400.6, 0},
	}
	if len(c.Events) != len(want) {
		t.Fatalf("events = %+v, want %d", c.Events, len(want))
	}
	for i, w := range want {
		e := c.Events[i]
		if e.TS != w.minute*min_ || e.Kind != w.kind || e.Prev != w.prev || math.Abs(e.Credited-w.credited) > 1e-9 {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
	}
	// The skipped outlier is no knot: 100.5 at 1 min to 101 at 3 min is
	// spread over both minutes, 0.25 kWh in [1, 2) min.
	near(t, "across the outlier", c.Between(min_, 2*min_), 0.25)
	// Once the next reading arrives, the last glitch is an outlier.
	c = Walk(append(pts, Point{11 * min_, 401}), 60, 0)
	if n := len(c.Events); n != 5 || c.Events[4].Kind != EventOutlier {
		t.Errorf("with a reading after the glitch: events = %+v", c.Events)
	}
	near(t, "total with the next reading", c.Between(0, 11*min_), 2.7+0.4)
	// A rollover: R = 1000, P = 600 kW.
	c = Walk([]Point{{0, 995}, {min_, 998}, {2 * min_, 4}, {3 * min_, 9}}, 600, 1000)
	near(t, "rollover total", c.Between(0, 3*min_), 3+6+5)
	if len(c.Events) != 1 || c.Events[0].Kind != EventRollover || c.Events[0].Credited != 6 {
		t.Errorf("rollover events = %+v", c.Events)
	}
}

func TestWalkAndSpread(t *testing.T) {
	// Readings (s → kWh): 0:100, 10:110, 20:5 (replacement, +5), 30:15.
	// P = 3600 kW: A over 10 s = 10.05. Walked C: 0, 10, 15, 25.
	pts := []Point{{0, 100}, {10_000, 110}, {20_000, 5}, {30_000, 15}}
	c := Walk(pts, 3600, 0)
	if len(c.Events) != 1 || c.Events[0].Kind != EventReplacement || c.Events[0].TS != 20_000 || c.Events[0].Credited != 5 {
		t.Fatalf("events = %+v, want one replacement at 20s worth 5", c.Events)
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
	c := Walk(pts, 1e6, 10)
	bounds := []int64{0, 999, 1000, 2500, 4000, 4250, 4500, 8000, 19999, 20000, 30000}
	got := c.Spread(bounds)
	for i := range got {
		near(t, "spread vs between", got[i], c.Between(bounds[i], bounds[i+1]))
	}
	// 4000 → 4500 falls 3 → 2, and 9.5 is plausible from 3: 2 is an
	// outlier. Total C(last) − C(first) = (3−1) + (9.5−3) + (10−9.5) = 9.
	near(t, "total", c.Between(0, 30000), 9)
	if len(c.Events) != 1 || c.Events[0].Kind != EventOutlier || c.Events[0].TS != 4500 {
		t.Errorf("events = %+v", c.Events)
	}
}

func TestDedup(t *testing.T) {
	pts := []Point{{30, 3}, {10, 1}, {20, 2}, {10, 1}, {20, 2}, {30, 3}}
	got := Dedup(pts)
	if len(got) != 3 || got[0].TS != 10 || got[1].TS != 20 || got[2].TS != 30 {
		t.Fatalf("Dedup = %+v", got)
	}
	c := Walk(got, 1e6, 0)
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
	one := Walk([]Point{{5, 7}}, 1, 0)
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
