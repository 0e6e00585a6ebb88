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

// Counter event kinds: what the plausibility walk did with a reading that
// was not a plausible step from the one before.
const (
	EventOutlier       = "outlier"       // an isolated bad reading, skipped
	EventRollover      = "rollover"      // the counter wrapped at its rollover value
	EventReplacement   = "replacement"   // the counter fell to a new meter's start
	EventDiscontinuity = "discontinuity" // anything else: credited 0, needs review
)

// EventKinds lists the event kinds in report order.
var EventKinds = []string{EventOutlier, EventRollover, EventReplacement, EventDiscontinuity}

// RolloverBand is how close to the rollover value R the last accepted
// reading must be for a fall to count as a rollover: at least 0.9·R.
const RolloverBand = 0.10

// AllowanceSlack is the fixed part of a step's allowance, in kWh: it covers
// a meter's display resolution and the rounding of its registers.
const AllowanceSlack = 0.05

// Event is one reading the walk did not credit as a plausible step.
type Event struct {
	TS       int64   // time of the reading (cur)
	PrevTS   int64   // time of the last accepted reading before it
	Prev     float64 // the last accepted reading's value
	Cur      float64 // the reading's value
	Kind     string  // EventOutlier … EventDiscontinuity
	Credited float64 // kWh credited for the step (0 for outliers and discontinuities)
}

// Counter is a device's credited cumulative energy as a function of time:
// the accepted readings of its counter with what the walk credited between
// them, linear between consecutive accepted readings. Only differences of
// it mean anything; it starts at 0 at the first reading.
type Counter struct {
	ts     []int64
	c      []float64
	Events []Event // in time order
}

// Allowance is A = P·h + 0.05 kWh: the most a counter with maximum power
// maxKW may rise over dt milliseconds.
func Allowance(maxKW float64, dt int64) float64 {
	return maxKW*float64(dt)/float64(HourMS) + AllowanceSlack
}

// Plausible reports whether a counter may go from a to b: 0 ≤ b − a ≤ A.
func Plausible(a, b Point, maxKW float64) bool {
	d := b.V - a.V
	return d >= 0 && d <= Allowance(maxKW, b.TS-a.TS)
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

// Step is the walk's decision on reading cur given the last accepted
// reading prev and, when known, the reading after cur. It returns the
// energy to credit, the event kind ("" for a plausible step) and whether
// cur is accepted (becomes prev); only an outlier is not.
//
//  1. plausible(prev, cur): credit cur − prev.
//  2. next exists and plausible(prev, next): cur is an outlier, skipped.
//  3. rollover R declared, prev ≥ 0.9·R and R − prev + cur ≤ A: credit R − prev + cur.
//  4. cur < prev and cur ≤ A: a replacement, credit cur.
//  5. otherwise a discontinuity: credit 0, carry on from cur.
func Step(prev, cur Point, next *Point, maxKW, rollover float64) (credit float64, kind string, accepted bool) {
	if Plausible(prev, cur, maxKW) {
		return cur.V - prev.V, "", true
	}
	if next != nil && Plausible(prev, *next, maxKW) {
		return 0, EventOutlier, false
	}
	a := Allowance(maxKW, cur.TS-prev.TS)
	if rollover > 0 && prev.V >= rollover*(1-RolloverBand) {
		if d := rollover - prev.V + cur.V; d >= 0 && d <= a {
			return d, EventRollover, true
		}
	}
	if cur.V < prev.V && cur.V >= 0 && cur.V <= a {
		return cur.V, EventReplacement, true
	}
	return 0, EventDiscontinuity, true
}

// Walk builds the credited counter from cumulative kWh readings of a
// counter with maximum power maxKW that rolls over at rollover (0: never).
// points must be sorted by time without duplicate timestamps (see Dedup).
func Walk(points []Point, maxKW, rollover float64) Counter {
	c := Counter{ts: make([]int64, 0, len(points)), c: make([]float64, 0, len(points))}
	if len(points) == 0 {
		return c
	}
	prev := points[0]
	var sum float64
	c.ts, c.c = append(c.ts, prev.TS), append(c.c, 0)
	for i := 1; i < len(points); i++ {
		cur := points[i]
		var next *Point
		if i+1 < len(points) {
			next = &points[i+1]
		}
		d, kind, ok := Step(prev, cur, next, maxKW, rollover)
		if kind != "" {
			c.Events = append(c.Events, Event{TS: cur.TS, PrevTS: prev.TS, Prev: prev.V, Cur: cur.V, Kind: kind, Credited: d})
		}
		if !ok {
			continue
		}
		sum += d
		prev = cur
		c.ts, c.c = append(c.ts, cur.TS), append(c.c, sum)
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
