package energy

import (
	"context"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Span is a stretch of roll-up hours of some keys: the readings a
// computation depended on. To is math.MaxInt64 when the stretch has no
// end (a reading after everything so far would change the answer).
type Span struct {
	Keys     []Key
	From, To int64 // Unix ms on hours, [From, To)
}

// Version identifies what the hourly roll-up holds for some spans: the
// rows inserted for their hours (duplicates included) and the sum of those
// rows' timestamps. Every insert raises the count, so a reading added to
// a span, late or corrected, changes it; nothing ever lowers it.
type Version struct {
	Rows, TSSum int64
}

// Versions tells the roll-up's version of spans of one company's projects.
type Versions interface {
	Version(ctx context.Context, w Where, spans []Span) (Version, error)
}

// NoEnd is Span.To of a stretch without end.
const NoEnd = math.MaxInt64

// maxSpans bounds the spans a computation's dependencies are described by;
// past it they are widened (a superset depends on more, never on less).
const maxSpans = 16

// recorder passes a computation's reads through to a store and notes
// which hours of which keys each answer depends on: a reading added there
// could change the answer, a reading added anywhere else could not.
//
//   - Hours, Steps, Raw: the hours asked for.
//   - LastBefore(t): from the hour of the reading found up to t; from the
//     beginning of time when none is found.
//   - FirstFrom(t): from t to the hour of the reading found; without end
//     when none is found and the search had no bound, else to its bound.
type recorder struct {
	Readings
	mu sync.Mutex
	w  Where
	iv map[Key][]interval
}

type interval struct{ from, to int64 }

func newRecorder(src Readings) *recorder { return &recorder{Readings: src, iv: map[Key][]interval{}} }

func (r *recorder) note(w Where, k Key, from, to int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w.Company == "" {
		r.w = w
	}
	from = floorHour(from)
	if to != NoEnd {
		to = ceilHour(to)
	}
	if to > from {
		r.iv[k] = append(r.iv[k], interval{from, to})
	}
}

func (r *recorder) Hours(ctx context.Context, w Where, keys []Key, from, to int64) (map[Key][]Hour, error) {
	for _, k := range keys {
		r.note(w, k, from, to)
	}
	return r.Readings.Hours(ctx, w, keys, from, to)
}

func (r *recorder) Steps(ctx context.Context, w Where, hours map[Key][]Hour) (map[Key][]HourSteps, error) {
	for k, hs := range hours {
		for _, h := range hs {
			r.note(w, k, h.Hour, h.Hour+HourMS)
		}
	}
	return r.Readings.Steps(ctx, w, hours)
}

func (r *recorder) LastBefore(ctx context.Context, w Where, keys []Key, t int64) (map[Key]Point, error) {
	out, err := r.Readings.LastBefore(ctx, w, keys, t)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		from := int64(0)
		if p, ok := out[k]; ok {
			from = p.TS
		}
		r.note(w, k, from, t)
	}
	return out, nil
}

func (r *recorder) FirstFrom(ctx context.Context, w Where, keys []Key, t, within int64) (map[Key]Point, error) {
	out, err := r.Readings.FirstFrom(ctx, w, keys, t, within)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		to := int64(NoEnd)
		if p, ok := out[k]; ok {
			to = p.TS + 1
		} else if within > 0 {
			to = t + within
		}
		r.note(w, k, t, to)
	}
	return out, nil
}

func (r *recorder) Raw(ctx context.Context, w Where, ranges []Range) (map[Key][]Point, error) {
	for _, rg := range ranges {
		r.note(w, rg.Key, rg.From, rg.To)
	}
	return r.Readings.Raw(ctx, w, ranges)
}

// spans describes what was recorded in at most maxSpans spans.
func (r *recorder) spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return coalesce(r.iv)
}

// coalesce turns each key's intervals into spans: keys with the same
// merged intervals share spans. When that takes more than maxSpans, the
// intervals are widened to whole days, then to 31-day steps, then to one
// interval per key, then to one for all keys, until it does not.
func coalesce(iv map[Key][]interval) []Span {
	const day = 24 * HourMS
	widen := []func(interval) interval{
		func(i interval) interval { return i },
		func(i interval) interval { return roundOut(i, day) },
		func(i interval) interval { return roundOut(i, 31*day) },
	}
	for _, f := range widen {
		per := map[Key][]interval{}
		for k, is := range iv {
			w := make([]interval, len(is))
			for i, x := range is {
				w[i] = f(x)
			}
			per[k] = merge(w)
		}
		if out := group(per); len(out) <= maxSpans {
			return out
		}
	}
	hull := func(is []interval) interval {
		h := interval{NoEnd, 0}
		for _, i := range merge(is) {
			h.from, h.to = min(h.from, i.from), max(h.to, i.to)
		}
		return h
	}
	per := map[Key][]interval{}
	all := interval{NoEnd, 0}
	for k, is := range iv {
		h := hull(is)
		per[k] = []interval{h}
		all.from, all.to = min(all.from, h.from), max(all.to, h.to)
	}
	if out := group(per); len(out) <= maxSpans {
		return out
	}
	keys := make([]Key, 0, len(iv))
	for k := range iv {
		keys = append(keys, k)
	}
	sortKeys(keys)
	return []Span{{Keys: keys, From: all.from, To: all.to}}
}

func roundOut(i interval, step int64) interval {
	out := interval{floorDiv(i.from, step) * step, i.to}
	if i.to != NoEnd {
		if c := floorDiv(i.to, step) * step; c < i.to {
			out.to = c + step
		}
	}
	return out
}

// merge sorts intervals and joins those that overlap or touch.
func merge(is []interval) []interval {
	is = slices.Clone(is)
	sort.Slice(is, func(a, b int) bool { return is[a].from < is[b].from })
	var out []interval
	for _, i := range is {
		if n := len(out); n > 0 && i.from <= out[n-1].to {
			out[n-1].to = max(out[n-1].to, i.to)
			continue
		}
		out = append(out, i)
	}
	return out
}

// group makes one span per interval of each set of keys with the same
// intervals, in a stable order.
func group(per map[Key][]interval) []Span {
	bySig := map[string]*struct {
		keys []Key
		is   []interval
	}{}
	var sigs []string
	for k, is := range per {
		var b strings.Builder
		for _, i := range is {
			b.WriteString(strconv.FormatInt(i.from, 10))
			b.WriteByte('-')
			b.WriteString(strconv.FormatInt(i.to, 10))
			b.WriteByte(',')
		}
		sig := b.String()
		g := bySig[sig]
		if g == nil {
			g = &struct {
				keys []Key
				is   []interval
			}{is: is}
			bySig[sig] = g
			sigs = append(sigs, sig)
		}
		g.keys = append(g.keys, k)
	}
	sort.Strings(sigs)
	var out []Span
	for _, sig := range sigs {
		g := bySig[sig]
		sortKeys(g.keys)
		for _, i := range g.is {
			out = append(out, Span{Keys: g.keys, From: i.from, To: i.to})
		}
	}
	return out
}

// outside is the part of want's hours that is not inside have, key by
// key (described as coalesce does; nil when there is none).
func outside(have, want []Span) []Span {
	per := perKey(have)
	rest := map[Key][]interval{}
	for _, s := range want {
		for _, k := range s.Keys {
			rest[k] = append(rest[k], subtract(interval{s.From, s.To}, per[k])...)
		}
	}
	for k, is := range rest {
		if len(is) == 0 {
			delete(rest, k)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return coalesce(rest)
}

// subtract is i without the sorted, disjoint intervals cut.
func subtract(i interval, cut []interval) []interval {
	var out []interval
	for _, c := range cut {
		if c.to <= i.from || c.from >= i.to {
			continue
		}
		if c.from > i.from {
			out = append(out, interval{i.from, c.from})
		}
		i.from = max(i.from, c.to)
		if i.from >= i.to {
			return out
		}
	}
	return append(out, i)
}

func perKey(spans []Span) map[Key][]interval {
	per := map[Key][]interval{}
	for _, s := range spans {
		for _, k := range s.Keys {
			per[k] = append(per[k], interval{s.From, s.To})
		}
	}
	for k, is := range per {
		per[k] = merge(is)
	}
	return per
}

// union describes the hours of a and b together.
func union(a, b []Span) []Span {
	per := map[Key][]interval{}
	for _, s := range append(slices.Clone(a), b...) {
		for _, k := range s.Keys {
			per[k] = append(per[k], interval{s.From, s.To})
		}
	}
	return coalesce(per)
}

func sortKeys(ks []Key) {
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].Device != ks[j].Device {
			return ks[i].Device < ks[j].Device
		}
		return ks[i].Metric < ks[j].Metric
	})
}
