package energy

import (
	"context"
	"math"
)

// memReadings is an in-memory reading store for unit tests of the
// computation: it derives the hourly roll-up from raw readings the way the
// store's materialized view does (first/last by time, min, max, distinct
// timestamps; duplicates collapse).
type memReadings struct {
	raw   map[Key][]Point
	calls struct{ hours, steps, before, after, raw int }
	asked []Range // raw ranges requested
}

func newMem() *memReadings { return &memReadings{raw: map[Key][]Point{}} }

func (m *memReadings) add(dev, metric string, pts ...Point) {
	k := Key{dev, metric}
	m.raw[k] = Dedup(append(m.raw[k], pts...))
}

func (m *memReadings) want(keys []Key) map[Key]bool {
	s := map[Key]bool{}
	for _, k := range keys {
		s[k] = true
	}
	return s
}

func (m *memReadings) Hours(_ context.Context, _ Where, keys []Key, from, to int64) (map[Key][]Hour, error) {
	m.calls.hours++
	out := map[Key][]Hour{}
	for k := range m.want(keys) {
		var hs []Hour
		var mins, maxs []float64 // like the roll-up's min_v and max_v
		for _, p := range m.raw[k] {
			if p.TS < from || p.TS >= to {
				continue
			}
			h := floorHour(p.TS)
			if n := len(hs); n == 0 || hs[n-1].Hour != h {
				hs = append(hs, Hour{Hour: h, FirstTS: p.TS, First: p.V})
				mins = append(mins, p.V)
				maxs = append(maxs, p.V)
			}
			i := len(hs) - 1
			hs[i].LastTS, hs[i].Last = p.TS, p.V
			hs[i].N++
			mins[i], maxs[i] = min(mins[i], p.V), max(maxs[i], p.V)
		}
		for i := range hs {
			hs[i].Fell = mins[i] < hs[i].First || maxs[i] > hs[i].Last
		}
		if len(hs) > 0 {
			out[k] = hs
		}
	}
	return out, nil
}

func (m *memReadings) LastBefore(_ context.Context, _ Where, keys []Key, t int64) (map[Key]Point, error) {
	m.calls.before++
	out := map[Key]Point{}
	for k := range m.want(keys) {
		for _, p := range m.raw[k] {
			if p.TS < t {
				out[k] = p
			}
		}
	}
	return out, nil
}

func (m *memReadings) FirstFrom(_ context.Context, _ Where, keys []Key, t, within int64) (map[Key]Point, error) {
	m.calls.after++
	out := map[Key]Point{}
	for k := range m.want(keys) {
		for _, p := range m.raw[k] {
			if p.TS >= t && (within <= 0 || p.TS < t+within) {
				out[k] = p
				break
			}
		}
	}
	return out, nil
}

func (m *memReadings) Raw(_ context.Context, _ Where, ranges []Range) (map[Key][]Point, error) {
	m.calls.raw++
	m.asked = append(m.asked, ranges...)
	out := map[Key][]Point{}
	for _, r := range ranges {
		for _, p := range m.raw[r.Key] {
			if p.TS >= r.From && p.TS < r.To {
				out[r.Key] = append(out[r.Key], p)
			}
		}
	}
	for k := range out {
		out[k] = Dedup(out[k])
	}
	return out, nil
}

// Steps sums up the steps inside each hour as the store's query does, from
// the raw readings.
func (m *memReadings) Steps(_ context.Context, _ Where, hours map[Key][]Hour) (map[Key][]HourSteps, error) {
	m.calls.steps++
	var ranges []Range
	for k, hs := range hours {
		set := map[int64]bool{}
		for _, h := range hs {
			set[h.Hour] = true
		}
		ranges = append(ranges, hourRanges(k, set)...)
	}
	out := map[Key][]HourSteps{}
	for _, r := range ranges {
		var prev *Point
		for _, p := range m.raw[r.Key] {
			if p.TS < r.From || p.TS >= r.To {
				continue
			}
			h := floorHour(p.TS)
			hs := out[r.Key]
			if n := len(hs); n == 0 || hs[n-1].Hour != h {
				out[r.Key] = append(hs, HourSteps{Hour: h, N: 1, NeedKW: math.Inf(-1)})
				prev = &Point{p.TS, p.V}
				continue
			}
			st := &hs[len(hs)-1]
			st.N++
			d := p.V - prev.V
			if d < 0 {
				st.Falls = true
			}
			st.NeedKW = max(st.NeedKW, (d-AllowanceSlack)*float64(HourMS)/float64(p.TS-prev.TS))
			prev = &Point{p.TS, p.V}
		}
	}
	return out, nil
}
