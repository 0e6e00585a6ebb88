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
	N       int // readings (distinct timestamps) in the hour; 0: not known
	// Rows and TSSum are the hour's version where N is not known (0: not
	// known either): rows inserted for the hour, duplicates included
	// (every insert raises it, and Rows ≥ readings), and the sum of their
	// timestamps. The repository keys what it works out per hour by the
	// whole row.
	Rows  int64
	TSSum int64
}

// HourSteps sums up the steps between consecutive readings inside one hour
// of one key (readings of quality good or uncertain, each timestamp once).
type HourSteps struct {
	Hour int64 // Unix ms of the UTC hour's start
	N    int   // readings in the hour
	// Falls: some step inside the hour falls, or one timestamp holds two
	// different values.
	Falls bool
	// NeedKW is the smallest maximum power for which every step inside the
	// hour is plausible: the largest (rise − 0.05 kWh) / hours of a step.
	// Negative when every step rises by less than 0.05 kWh.
	NeedKW float64
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
	// Steps sums up the steps inside each of the given roll-up hours, each
	// key's hours in time order. A store may answer from a cache of earlier
	// answers for the same hour while its roll-up row (N or its version
	// Rows/TSSum, first and last reading) is unchanged: adding a reading to
	// an hour changes them.
	Steps(ctx context.Context, w Where, hours map[Key][]Hour) (map[Key][]HourSteps, error)
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
	Events        []Event // counter events inside the period
	HoursPresent  int     // UTC hours of the period with at least one reading
	HoursExpected int     // UTC hours overlapping the period
}

// Estimated reports whether the figure rests on more than the counter's
// own readings: power integration, or a gap.
func (r *DeviceResult) Estimated() bool { return r.Source != SourceCounter || len(r.Gaps) > 0 }

// NeedsReview reports whether a discontinuity inside the period was
// credited 0: the figure may miss energy a person should look for.
func (r *DeviceResult) NeedsReview() bool {
	for _, e := range r.Events {
		if e.Kind == EventDiscontinuity {
			return true
		}
	}
	return false
}

// Result is a job's outcome.
type Result struct {
	Job     Job
	Devices []DeviceResult
}

// Lead is how far before and after the asked span the walk over a
// counter's readings starts and ends. The walk's state is one reading; two
// walks from different starts agree from the first reading both accept,
// which in all but pathological data is the first or second reading. So a
// day of readings on each side makes the span's figures those of a walk
// over the counter's whole history, and gives the last reading of the span
// the reading after it that decides whether it is an outlier.
const Lead = 24 * time.Hour

// maxRounds bounds the rounds of raw reads one computation may take; each
// round adds at least one hour, and a walk needs one round per run of
// consecutive glitches at hour edges, so this is never reached by real data.
const maxRounds = 32

// Compute works out every device's energy for jobs of one company. Counters
// follow the plausibility walk (see Walk) over every raw reading; to avoid
// reading them all it walks the hourly roll-ups' first and last readings
// and reads raw readings only for the hours where that could give another
// answer: hours whose readings fall or rise faster than the device's
// maximum power allows (Steps tells), hours holding a slot boundary that is
// not on the hour, and hours whose first reading the walk does not accept
// as a plausible step. Jobs may share devices (a month and the month
// before): the readings of the whole span are read once and each job takes
// its own stretch of the same counter.
func Compute(ctx context.Context, src Readings, company string, jobs []Job) ([]Result, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	fail := func(err error) ([]Result, error) {
		return nil, fmt.Errorf("cannot compute energy of company %q: %w", company, err)
	}
	w := Where{Company: company}
	var counterKeys []Key
	from, to := int64(1<<62), int64(-1<<62)
	projects := map[string]bool{}
	maxKW := map[Key]float64{}
	rollover := map[Key]float64{}
	for _, j := range jobs {
		if !projects[j.Project] {
			projects[j.Project] = true
			w.Projects = append(w.Projects, j.Project)
		}
		from, to = min(from, j.Schedule.From), max(to, j.Schedule.To)
		for _, d := range j.Devices {
			if d.Counter != "" {
				k := Key{d.ID, d.Counter}
				counterKeys = append(counterKeys, k)
				maxKW[k], rollover[k] = d.MaxKW, d.Rollover
			}
		}
	}
	counterKeys = uniqueKeys(counterKeys)
	h0, h1 := floorHour(from)-Lead.Milliseconds(), ceilHour(to)+Lead.Milliseconds()

	byKey, err := src.Hours(ctx, w, counterKeys, h0, h1)
	if err != nil {
		return fail(err)
	}
	before, err := src.LastBefore(ctx, w, counterKeys, h0)
	if err != nil {
		return fail(err)
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
		return fail(err)
	}
	if len(closed) > 0 {
		soon, err := src.FirstFrom(ctx, w, closed, h1, CounterLookahead.Milliseconds())
		if err != nil {
			return fail(err)
		}
		for k, p := range soon {
			after[k] = p
		}
	}

	// Which devices fall back to power, and which hours of the counters
	// need raw readings from the start.
	rawHours := map[Key]map[int64]bool{}
	mark := func(k Key, h int64) bool {
		need := rawHours[k]
		if need == nil {
			need = map[int64]bool{}
			rawHours[k] = need
		}
		if need[h] {
			return false
		}
		need[h] = true
		return true
	}
	var powerRanges []Range
	usePower := map[Key]bool{}
	ask := map[Key][]Hour{}
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
					powerRanges = append(powerRanges, Range{pk, jh0 - HourMS, jh1 + HourMS})
				}
				continue
			}
			// A boundary inside an hour needs the hour's readings only
			// when it falls between the hour's first and last one; before
			// the first or after the last, the neighbouring hours' edge
			// readings bracket it exactly (the end of a running period,
			// now, is after every reading).
			for _, b := range inner {
				if h, ok := hourAt(byKey[k], floorHour(b)); ok && h.FirstTS < b && b < h.LastTS {
					mark(k, h.Hour)
				}
			}
		}
	}
	for _, k := range counterKeys {
		hs := byKey[k]
		if len(hs) == 0 {
			continue
		}
		for i := range hs {
			switch h := &hs[i]; {
			case h.Fell:
				mark(k, h.Hour)
			case h.FirstTS < h.LastTS && (h.N >= 3 || h.N == 0 && (h.Rows == 0 || h.Rows >= 3)):
				// Two readings (N, or Rows, which is never below it) are
				// one step: nothing to sum up.
				ask[k] = append(ask[k], *h)
			}
		}
	}
	// An hour with at least three readings whose steps are all plausible
	// (and none falls) is walked as one step from its first reading to its
	// last: the walk credits every step inside it, so the sum is the same.
	compressed := map[Key]map[int64]bool{}
	if len(ask) > 0 {
		steps, err := src.Steps(ctx, w, ask)
		if err != nil {
			return fail(err)
		}
		for k, hs := range steps {
			p := maxKW[k]
			for _, st := range hs {
				switch {
				case st.N < 3:
				case st.Falls || !(st.NeedKW <= p*(1-1e-9)-1e-9):
					// Margins keep a step on the edge of plausible out of
					// the fast path, where rounding could decide otherwise.
					mark(k, st.Hour)
				default:
					if compressed[k] == nil {
						compressed[k] = map[int64]bool{}
					}
					compressed[k][st.Hour] = true
				}
			}
		}
	}

	// Power readings are read raw only for the keys the roll-up has any
	// hour of in their range: a month without readings (a trend's months
	// before the first) then costs a roll-up lookup, not a raw scan.
	if len(powerRanges) > 0 {
		var pkeys []Key
		pfrom, pto := int64(1<<62), int64(-1<<62)
		for _, r := range powerRanges {
			pkeys = append(pkeys, r.Key)
			pfrom, pto = min(pfrom, r.From), max(pto, r.To)
		}
		have, err := src.Hours(ctx, w, uniqueKeys(pkeys), floorHour(pfrom), ceilHour(pto))
		if err != nil {
			return fail(err)
		}
		kept := powerRanges[:0]
		for _, r := range powerRanges {
			hs := have[r.Key]
			i := sort.Search(len(hs), func(i int) bool { return hs[i].Hour >= floorHour(r.From) })
			if i < len(hs) && hs[i].Hour < r.To {
				kept = append(kept, r)
			}
		}
		powerRanges = kept
	}
	raw := map[Key][]Point{}
	if len(powerRanges) > 0 {
		got, err := src.Raw(ctx, w, powerRanges)
		if err != nil {
			return fail(err)
		}
		for k, pts := range got {
			raw[k] = pts
		}
	}
	fetched := map[Key]map[int64]bool{}
	counters := map[Key]*Counter{}
	for round := 0; ; round++ {
		var ranges []Range
		for k, hs := range rawHours {
			set := map[int64]bool{}
			for h := range hs {
				if !fetched[k][h] {
					set[h] = true
					if fetched[k] == nil {
						fetched[k] = map[int64]bool{}
					}
					fetched[k][h] = true
				}
			}
			ranges = append(ranges, hourRanges(k, set)...)
		}
		if len(ranges) > 0 {
			if round >= maxRounds {
				return fail(fmt.Errorf("BUG: counter walk still needs raw readings after %d rounds", maxRounds))
			}
			got, err := src.Raw(ctx, w, ranges)
			if err != nil {
				return fail(err)
			}
			for k, pts := range got {
				raw[k] = Dedup(append(raw[k], pts...))
			}
		} else if round > 0 {
			break
		}
		more := false
		for _, k := range counterKeys {
			pts := counterPoints(byKey[k], fetched[k], raw[k], compressed[k], before, after, k)
			c, unsure := walkCoarse(pts, maxKW[k], rollover[k])
			for _, h := range unsure {
				more = mark(k, h) || more
			}
			counters[k] = &c
		}
		if !more {
			break
		}
	}

	out := make([]Result, len(jobs))
	for ji, j := range jobs {
		out[ji].Job = j
		bounds := j.Schedule.Bounds()
		jh0, jh1 := floorHour(j.Schedule.From), ceilHour(j.Schedule.To)
		for _, d := range j.Devices {
			r := DeviceResult{Device: d, Source: SourceNone, HoursExpected: int((jh1 - jh0) / HourMS)}
			var c *Counter
			ck, pk := Key{d.ID, d.Counter}, Key{d.ID, d.Power}
			switch {
			case usePower[pk]:
				pts := Dedup(raw[pk])
				for i := range pts {
					pts[i].V *= d.PowerToKW
				}
				pts, dropped := PlausiblePower(pts, d.MaxKW)
				if len(pts) > 0 {
					r.Source = SourcePower
				}
				ic := Integrate(pts)
				ic.Events = dropped
				c = &ic
				r.HoursPresent = countHours(pts, jh0, jh1)
			case d.Counter != "":
				c = counters[ck]
				if c.Len() > 0 {
					r.Source = SourceCounter
				}
				for _, h := range byKey[ck] {
					if h.Hour >= jh0 && h.Hour < jh1 {
						r.HoursPresent++
					}
				}
			default:
				c = &Counter{}
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
			for _, e := range c.Events {
				if e.TS >= j.Schedule.From && e.TS < j.Schedule.To {
					r.Events = append(r.Events, e)
				}
			}
			out[ji].Devices = append(out[ji].Devices, r)
		}
	}
	return out, nil
}

// coarse is a reading in the sequence the fast path walks.
type coarse struct {
	Point
	// Hidden: the reading is the first of a compressed hour, whose inner
	// readings are left out; the step to the next reading (the hour's
	// last) is known to be a run of plausible steps.
	hidden bool
	hour   int64
}

// counterPoints builds a counter's reading sequence: the last reading
// before the range, each hour's first and last reading (or all of its raw
// readings where the hour's readings were read), and the first reading
// after.
func counterPoints(hours []Hour, rawHours map[int64]bool, raw []Point, compressed map[int64]bool, before, after map[Key]Point, k Key) []coarse {
	pts := make([]coarse, 0, 2*len(hours)+len(raw)+2)
	// Every source below is later than the one before, so pts stays in
	// time order; add drops a point whose time repeats.
	add := func(p Point, hidden bool) {
		if n := len(pts); n == 0 || p.TS > pts[n-1].TS {
			pts = append(pts, coarse{Point: p, hidden: hidden, hour: floorHour(p.TS)})
		}
	}
	if p, ok := before[k]; ok {
		add(p, false)
	}
	ri := 0
	for _, h := range hours {
		if rawHours[h.Hour] {
			for ri < len(raw) && raw[ri].TS < h.Hour {
				ri++
			}
			start := len(pts)
			for ri < len(raw) && raw[ri].TS < h.Hour+HourMS {
				add(raw[ri], false)
				ri++
			}
			if len(pts) > start {
				continue
			}
			// No raw readings (a race with ingestion): the roll-up will do.
		}
		add(Point{h.FirstTS, h.First}, compressed[h.Hour] && h.FirstTS < h.LastTS)
		add(Point{h.LastTS, h.Last}, false)
	}
	if p, ok := after[k]; ok {
		add(p, false)
	}
	return pts
}

// walkCoarse is Walk over a sequence with compressed hours. It credits the
// step across a compressed hour without a check when the walk accepted the
// hour's first reading as a plausible step; where it did not, the answer
// depends on the hidden readings, and the hour is returned in unsure (the
// counter is then not final).
func walkCoarse(pts []coarse, maxKW, rollover float64) (c Counter, unsure []int64) {
	c = Counter{ts: make([]int64, 0, len(pts)), c: make([]float64, 0, len(pts))}
	if len(pts) == 0 {
		return c, nil
	}
	prev := 0
	var sum float64
	c.ts, c.c = append(c.ts, pts[0].TS), append(c.c, 0)
	// The first reading starts the walk; when it opens a compressed hour,
	// the run of steps to the hour's last reading holds.
	for i := 1; i < len(pts); i++ {
		cur := pts[i]
		if pts[i-1].hidden && prev == i-1 {
			// The last reading of a compressed hour after its accepted first.
			sum += cur.V - pts[prev].V
			prev = i
			c.ts, c.c = append(c.ts, cur.TS), append(c.c, sum)
			continue
		}
		var next *Point
		if i+1 < len(pts) {
			next = &pts[i+1].Point
		}
		d, kind, ok := Step(pts[prev].Point, cur.Point, next, maxKW, rollover)
		if kind != "" {
			if cur.hidden {
				// Whether cur is an outlier depends on the hidden reading
				// after it; read the hour.
				unsure = append(unsure, cur.hour)
			}
			c.Events = append(c.Events, Event{TS: cur.TS, PrevTS: pts[prev].TS, Prev: pts[prev].V, Cur: cur.V, Kind: kind, Credited: d})
		}
		if !ok {
			continue
		}
		sum += d
		prev = i
		c.ts, c.c = append(c.ts, cur.TS), append(c.c, sum)
	}
	return c, unsure
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
