package energy

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// Point is one reading of an energy metric: a counter value in kWh, or a
// power value in kW.
type Point struct {
	TS int64   // Unix ms
	V  float64 // kWh (counter) or kW (power)
}

// Drop kinds.
const (
	DropRollover    = "rollover"
	DropReplacement = "replacement"
)

// RolloverBand is how close to the rollover value R the reading before a
// drop must be for the drop to count as a rollover: within 10% of R.
const RolloverBand = 0.10

// Drop is a fall of a counter between two consecutive readings.
type Drop struct {
	TS    int64   // time of the reading after the drop
	Prev  float64 // counter before the drop
	Next  float64 // counter after the drop
	Kind  string  // DropRollover or DropReplacement
	Delta float64 // energy credited to the step
}

// Counter is a device's cumulative energy as a function of time: the
// readings with every drop unwrapped, linear between consecutive readings.
// Only differences of it mean anything; it starts at 0 at the first reading.
type Counter struct {
	ts    []int64
	c     []float64
	Drops []Drop // the drops found, in time order
}

// Delta is the energy of one step from reading prev to reading next of a
// counter that rolls over at rollover (0: never). It is never negative:
//   - next >= prev: next − prev;
//   - a drop with rollover > 0 and prev within 10% of it: rollover − prev + next;
//   - any other drop is a meter replacement: next (the new meter started at 0).
func Delta(prev, next, rollover float64) (delta float64, kind string) {
	if next >= prev {
		return next - prev, ""
	}
	if rollover > 0 && prev >= rollover*(1-RolloverBand) {
		d := rollover - prev + next
		if d < 0 {
			d = 0
		}
		return d, DropRollover
	}
	if next < 0 {
		return 0, DropReplacement
	}
	return next, DropReplacement
}

// Dedup sorts points by time and keeps the first of each run of equal
// timestamps: a reading delivered twice counts once.
func Dedup(points []Point) []Point {
	byTime := func(a, b Point) int { return cmp.Compare(a.TS, b.TS) }
	if !slices.IsSortedFunc(points, byTime) {
		slices.SortStableFunc(points, byTime)
	}
	out := points[:0:0]
	for i, p := range points {
		if i > 0 && p.TS == points[i-1].TS {
			continue
		}
		if out == nil {
			out = make([]Point, 0, len(points))
		}
		out = append(out, p)
	}
	return out
}

// Unwrap builds the counter from cumulative kWh readings. points must be
// sorted by time without duplicate timestamps (see Dedup).
func Unwrap(points []Point, rollover float64) Counter {
	c := Counter{ts: make([]int64, len(points)), c: make([]float64, len(points))}
	var sum float64
	for i, p := range points {
		if i > 0 {
			d, kind := Delta(points[i-1].V, p.V, rollover)
			if kind != "" {
				c.Drops = append(c.Drops, Drop{TS: p.TS, Prev: points[i-1].V, Next: p.V, Kind: kind, Delta: d})
			}
			sum += d
		}
		c.ts[i] = p.TS
		c.c[i] = sum
	}
	return c
}

// Integrate builds the counter from power readings in kW by the trapezoid
// rule: the energy between consecutive readings is their mean power times
// the time between them, spread evenly over that time. Negative power
// (export) counts as 0. points must be sorted without duplicate timestamps.
func Integrate(points []Point) Counter {
	c := Counter{ts: make([]int64, len(points)), c: make([]float64, len(points))}
	var sum float64
	for i, p := range points {
		if i > 0 {
			a, b := max(points[i-1].V, 0), max(p.V, 0)
			hours := float64(p.TS-points[i-1].TS) / float64(time.Hour/time.Millisecond)
			sum += (a + b) / 2 * hours
		}
		c.ts[i] = p.TS
		c.c[i] = sum
	}
	return c
}

// Len is the number of readings behind the counter.
func (c *Counter) Len() int { return len(c.ts) }

// First and Last are the times of the first and last reading (0 when empty).
func (c *Counter) First() int64 {
	if len(c.ts) == 0 {
		return 0
	}
	return c.ts[0]
}

// Last is the time of the last reading.
func (c *Counter) Last() int64 {
	if len(c.ts) == 0 {
		return 0
	}
	return c.ts[len(c.ts)-1]
}

// Times returns the reading times (not a copy; do not modify).
func (c *Counter) Times() []int64 { return c.ts }

// At returns C(t): the unwrapped counter interpolated linearly between the
// readings around t. Outside the readings it is constant (the first or last
// value): energy before the first or after the last reading is unknown and
// counts as 0.
func (c *Counter) At(t int64) float64 {
	n := len(c.ts)
	if n == 0 {
		return 0
	}
	if t <= c.ts[0] {
		return c.c[0]
	}
	if t >= c.ts[n-1] {
		return c.c[n-1]
	}
	i := sort.Search(n, func(i int) bool { return c.ts[i] > t }) // c.ts[i-1] <= t < c.ts[i]
	return interp(c.ts[i-1], c.c[i-1], c.ts[i], c.c[i], t)
}

func interp(t0 int64, c0 float64, t1 int64, c1 float64, t int64) float64 {
	if t == t0 {
		return c0
	}
	return c0 + (c1-c0)*float64(t-t0)/float64(t1-t0)
}

// Between is the energy in [a, b): C(b) − C(a).
func (c *Counter) Between(a, b int64) float64 { return c.At(b) - c.At(a) }

// Spread returns the energy in each interval [bounds[i], bounds[i+1]) for
// sorted bounds, walking the readings once.
func (c *Counter) Spread(bounds []int64) []float64 {
	if len(bounds) < 2 {
		return nil
	}
	out := make([]float64, len(bounds)-1)
	n := len(c.ts)
	if n < 2 {
		return out
	}
	i := 0 // c.ts[i] <= t < c.ts[i+1] for the current bound, when inside
	at := func(t int64) float64 {
		if t <= c.ts[0] {
			return c.c[0]
		}
		if t >= c.ts[n-1] {
			return c.c[n-1]
		}
		for i+1 < n && c.ts[i+1] <= t {
			i++
		}
		return interp(c.ts[i], c.c[i], c.ts[i+1], c.c[i+1], t)
	}
	prev := at(bounds[0])
	for k := 1; k < len(bounds); k++ {
		cur := at(bounds[k])
		out[k-1] = cur - prev
		prev = cur
	}
	return out
}

// GapPolls is N in the gap rule: a gap is a stretch without readings longer
// than N poll intervals, and never shorter than MinGap.
const GapPolls = 3

// MinGap is the shortest stretch reported as a gap. Hourly roll-ups see
// every stretch longer than an hour exactly (it always crosses an hour
// boundary); shorter outages show in completeness only when whole hours go
// missing, and their energy is spread by the interpolation anyway.
const MinGap = time.Hour

// GapThreshold is the gap threshold for a device polled every poll.
func GapThreshold(poll time.Duration) time.Duration {
	return max(GapPolls*poll, MinGap)
}

// Gap is a stretch of a period without readings of a device's energy metric.
type Gap struct {
	From, To int64 // Unix ms, clipped to the period
	// Interpolated: there are readings on both sides, so the gap's energy
	// is known and spread evenly over it (an estimate of when it was used).
	// Otherwise the energy of the stretch is unknown and not counted.
	Interpolated bool
}

// FindGaps lists the stretches of [from, to) longer than threshold (ms)
// without a reading, given every reading time around the period (sorted).
func FindGaps(times []int64, from, to, threshold int64) []Gap {
	if to <= from {
		return nil
	}
	if len(times) == 0 {
		if to-from > threshold {
			return []Gap{{From: from, To: to}}
		}
		return nil
	}
	var gaps []Gap
	if first := times[0]; first > from && first-from > threshold {
		gaps = append(gaps, Gap{From: from, To: min(first, to)})
	}
	for i := 1; i < len(times); i++ {
		p, q := times[i-1], times[i]
		if q-p > threshold && q > from && p < to {
			gaps = append(gaps, Gap{From: max(p, from), To: min(q, to), Interpolated: true})
		}
	}
	if last := times[len(times)-1]; last < to && to-last > threshold {
		gaps = append(gaps, Gap{From: max(last, from), To: to})
	}
	return gaps
}
