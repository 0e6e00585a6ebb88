package energy

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// HourMS is one hour in Unix milliseconds.
const HourMS = int64(time.Hour / time.Millisecond)

// CounterLookahead: a device whose counter has no reading before or in a
// period, nor in this long after it, is taken to report no counter, and its
// power is integrated instead.
const CounterLookahead = 7 * 24 * time.Hour

// Key names one metric of one device.
type Key struct{ Device, Metric string }

// Hour is one hour of one key from the hourly roll-up: the first and last
// reading with their times, and whether the value fell somewhere inside the
// hour (its minimum is below the first reading or its maximum above the
// last). A row means the hour has at least one reading.
type Hour struct {
	Hour    int64 // Unix ms of the UTC hour's start
	FirstTS int64
	LastTS  int64
	First   float64
	Last    float64
	Fell    bool
}

// Range asks for the raw readings of one key in [From, To).
type Range struct {
	Key
	From, To int64
}

// Where limits readings to one company's projects.
type Where struct {
	Company  string
	Projects []string
}

// Readings is the reading store as energy reports need it. Every method
// returns readings of quality good or uncertain only, each timestamp once.
type Readings interface {
	// Hours returns the roll-up rows of keys for hours in [from, to), each
	// key's rows in time order.
	Hours(ctx context.Context, w Where, keys []Key, from, to int64) (map[Key][]Hour, error)
	// LastBefore returns, per key, the last reading before t, if any.
	LastBefore(ctx context.Context, w Where, keys []Key, t int64) (map[Key]Point, error)
	// FirstFrom returns, per key, the first reading at or after t, if any;
	// within [t, t+within) when within > 0. The map is never nil.
	FirstFrom(ctx context.Context, w Where, keys []Key, t, within int64) (map[Key]Point, error)
	// Raw returns the readings in each range, sorted by time.
	Raw(ctx context.Context, w Where, ranges []Range) (map[Key][]Point, error)
}

// Job is one project's devices over one schedule.
type Job struct {
	Project  string
	Devices  []Device
	Schedule *Schedule
}

// Energy sources of a device's figures.
const (
	SourceCounter = "counter" // differences of the cumulative kWh counter
	SourcePower   = "power"   // power integrated over time: an estimate
	SourceNone    = "none"    // no readings at all
)

// DeviceResult is one device's energy over a job's schedule.
type DeviceResult struct {
	Device        Device
	Source        string
	Slots         []float64 // kWh in each schedule slot
	KWh           float64
	Cost          float64 // of the priced kWh
	UnpricedKWh   float64 // used where no tariff version was in effect
	Gaps          []Gap
	Drops         []Drop // counter drops inside the period
	HoursPresent  int    // UTC hours of the period with at least one reading
	HoursExpected int    // UTC hours overlapping the period
}

// Estimated reports whether the figure rests on more than the counter's
// own readings: power integration, or a gap.
func (r *DeviceResult) Estimated() bool { return r.Source != SourceCounter || len(r.Gaps) > 0 }

// Result is a job's outcome.
type Result struct {
	Job     Job
	Devices []DeviceResult
}

// Compute works out every device's energy for jobs of one company. It reads
// hourly roll-ups and fetches raw readings only for the hours that need
// them: hours whose counter fell, and hours holding a slot boundary that
// is not on the hour. Jobs may share devices (a month and the month
// before): the readings of the whole span are read once and each job takes
// its own stretch of the same counter.
func Compute(ctx context.Context, src Readings, company string, jobs []Job) ([]Result, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	w := Where{Company: company}
	var counterKeys []Key
	from, to := int64(1<<62), int64(-1<<62)
	projects := map[string]bool{}
	for _, j := range jobs {
		if !projects[j.Project] {
			projects[j.Project] = true
			w.Projects = append(w.Projects, j.Project)
		}
		from, to = min(from, j.Schedule.From), max(to, j.Schedule.To)
		for _, d := range j.Devices {
			if d.Counter != "" {
				counterKeys = append(counterKeys, Key{d.ID, d.Counter})
			}
		}
	}
	counterKeys = uniqueKeys(counterKeys)
	h0, h1 := floorHour(from), ceilHour(to)

	byKey, err := src.Hours(ctx, w, counterKeys, h0, h1)
	if err != nil {
		return nil, fmt.Errorf("cannot compute energy of company %q: %w", company, err)
	}
	before, err := src.LastBefore(ctx, w, counterKeys, h0)
	if err != nil {
		return nil, fmt.Errorf("cannot compute energy of company %q: %w", company, err)
	}
	// The first reading after the span matters to counters with readings
	// before or in it (it closes the last step). For the others it only
	// tells whether the counter reports at all (else power is used), which
	// a look at the following week answers without scanning all history.
	var open, closed []Key
	for _, k := range counterKeys {
		if _, ok := before[k]; ok || len(byKey[k]) > 0 {
			open = append(open, k)
		} else {
			closed = append(closed, k)
		}
	}
	after, err := src.FirstFrom(ctx, w, open, h1, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot compute energy of company %q: %w", company, err)
	}
	if len(closed) > 0 {
		soon, err := src.FirstFrom(ctx, w, closed, h1, CounterLookahead.Milliseconds())
		if err != nil {
			return nil, fmt.Errorf("cannot compute energy of company %q: %w", company, err)
		}
		for k, p := range soon {
			after[k] = p
		}
	}

	// Which hours need raw readings, and which devices fall back to power.
	rawHours := map[Key]map[int64]bool{}
	var ranges []Range
	usePower := map[Key]bool{}
	for _, j := range jobs {
		inner := j.Schedule.InnerBounds()
		jh0, jh1 := floorHour(j.Schedule.From), ceilHour(j.Schedule.To)
		for _, d := range j.Devices {
			k := Key{d.ID, d.Counter}
			_, hasBefore := before[k]
			_, hasAfter := after[k]
			if d.Counter == "" || (len(byKey[k]) == 0 && !hasBefore && !hasAfter) {
				if d.Power != "" {
					// Each job of the device adds its own range; the store
					// returns a reading in two overlapping ranges once.
					pk := Key{d.ID, d.Power}
					usePower[pk] = true
					ranges = append(ranges, Range{pk, jh0 - HourMS, jh1 + HourMS})
				}
				continue
			}
			need := rawHours[k]
			mark := func(h int64) {
				if need == nil {
					need = map[int64]bool{}
					rawHours[k] = need
				}
				need[h] = true
			}
			for i := range byKey[k] {
				h := &byKey[k][i]
				if h.Hour >= jh0 && h.Hour < jh1 && h.Fell {
					mark(h.Hour)
				}
			}
			// A boundary inside an hour needs the hour's readings only
			// when it falls between the hour's first and last one; before
			// the first or after the last, the neighbouring hours' edge
			// readings bracket it exactly (the end of a running period,
			// now, is after every reading).
			for _, b := range inner {
				if h, ok := hourAt(byKey[k], floorHour(b)); ok && h.FirstTS < b && b < h.LastTS {
					mark(h.Hour)
				}
			}
		}
	}
	for k, hs := range rawHours {
		ranges = append(ranges, hourRanges(k, hs)...)
	}
	var raw map[Key][]Point
	if len(ranges) > 0 {
		raw, err = src.Raw(ctx, w, ranges)
		if err != nil {
			return nil, fmt.Errorf("cannot compute energy of company %q: %w", company, err)
		}
	}

	out := make([]Result, len(jobs))
	for ji, j := range jobs {
		out[ji].Job = j
		bounds := j.Schedule.Bounds()
		jh0, jh1 := floorHour(j.Schedule.From), ceilHour(j.Schedule.To)
		for _, d := range j.Devices {
			r := DeviceResult{Device: d, Source: SourceNone, HoursExpected: int((jh1 - jh0) / HourMS)}
			var c Counter
			ck, pk := Key{d.ID, d.Counter}, Key{d.ID, d.Power}
			switch {
			case usePower[pk]:
				pts := Dedup(raw[pk])
				for i := range pts {
					pts[i].V *= d.PowerToKW
				}
				if len(pts) > 0 {
					r.Source = SourcePower
				}
				c = Integrate(pts)
				r.HoursPresent = countHours(pts, jh0, jh1)
			case d.Counter != "":
				pts := counterPoints(byKey[ck], rawHours[ck], raw[ck], before, after, ck)
				if len(pts) > 0 {
					r.Source = SourceCounter
				}
				c = Unwrap(pts, d.Rollover)
				for _, h := range byKey[ck] {
					if h.Hour >= jh0 && h.Hour < jh1 {
						r.HoursPresent++
					}
				}
			}
			r.Slots = c.Spread(bounds)
			if r.Slots == nil {
				r.Slots = make([]float64, len(j.Schedule.Slots))
			}
			for i, e := range r.Slots {
				sl := &j.Schedule.Slots[i]
				r.KWh += e
				if sl.Priced {
					r.Cost += e * sl.Price
				} else {
					r.UnpricedKWh += e
				}
			}
			thr := GapThreshold(d.Poll).Milliseconds()
			r.Gaps = FindGaps(c.Times(), j.Schedule.From, j.Schedule.To, thr)
			for _, dr := range c.Drops {
				if dr.TS > j.Schedule.From && dr.TS <= j.Schedule.To {
					r.Drops = append(r.Drops, dr)
				}
			}
			out[ji].Devices = append(out[ji].Devices, r)
		}
	}
	return out, nil
}

// counterPoints builds a counter's reading sequence: the last reading
// before the range, each hour's first and last reading (or all of its raw
// readings where the hour needs them), and the first reading after.
func counterPoints(hours []Hour, rawHours map[int64]bool, raw []Point, before, after map[Key]Point, k Key) []Point {
	pts := make([]Point, 0, 2*len(hours)+len(raw)+2)
	// Every source below is later than the one before, so pts stays in
	// time order; add drops a point whose time repeats.
	add := func(p Point) {
		if n := len(pts); n == 0 || p.TS > pts[n-1].TS {
			pts = append(pts, p)
		}
	}
	if p, ok := before[k]; ok {
		add(p)
	}
	ri := 0
	for _, h := range hours {
		if rawHours[h.Hour] {
			for ri < len(raw) && raw[ri].TS < h.Hour {
				ri++
			}
			start := len(pts)
			for ri < len(raw) && raw[ri].TS < h.Hour+HourMS {
				add(raw[ri])
				ri++
			}
			if len(pts) > start {
				continue
			}
			// No raw readings (a race with ingestion): the roll-up will do.
		}
		add(Point{h.FirstTS, h.First})
		add(Point{h.LastTS, h.Last})
	}
	if p, ok := after[k]; ok {
		add(p)
	}
	return pts
}

func hourAt(hs []Hour, h int64) (*Hour, bool) {
	i := sort.Search(len(hs), func(i int) bool { return hs[i].Hour >= h })
	if i < len(hs) && hs[i].Hour == h {
		return &hs[i], true
	}
	return nil, false
}

// hourRanges merges a key's hours into contiguous ranges.
func hourRanges(k Key, set map[int64]bool) []Range {
	hs := make([]int64, 0, len(set))
	for h := range set {
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i] < hs[j] })
	var out []Range
	for _, h := range hs {
		if n := len(out); n > 0 && out[n-1].To == h {
			out[n-1].To = h + HourMS
			continue
		}
		out = append(out, Range{k, h, h + HourMS})
	}
	return out
}

func countHours(pts []Point, h0, h1 int64) int {
	n, last := 0, int64(-1<<62)
	for _, p := range pts {
		h := floorHour(p.TS)
		if h >= h0 && h < h1 && h != last {
			n++
			last = h
		}
	}
	return n
}

func uniqueKeys(ks []Key) []Key {
	seen := make(map[Key]bool, len(ks))
	out := ks[:0]
	for _, k := range ks {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func floorHour(ms int64) int64 { return floorDiv(ms, HourMS) * HourMS }

func ceilHour(ms int64) int64 {
	h := floorHour(ms)
	if h < ms {
		h += HourMS
	}
	return h
}
