package energy

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestRecordedReadsAreAllThatMatters: a reading added anywhere outside
// the hours the recorder noted never changes the computation, whatever its
// value; the noted hours are what the cache's version covers. Devices: a
// steady counter, one that stops mid-month (no reading after), one that
// starts after the month's end, one with a gap of days after the month, and
// one that reports power only.
func TestRecordedReadsAreAllThatMatters(t *testing.T) {
	loc := mustLoc(t, "Asia/Shanghai")
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
	to := time.Date(2026, 4, 1, 0, 0, 0, 0, loc)
	rng := rand.New(rand.NewPCG(3, 14))
	series := func(start, end time.Time, step time.Duration, v0, rise float64) []Point {
		var out []Point
		v := v0
		for ts := start; ts.Before(end); ts = ts.Add(step) {
			v += rise * rng.Float64()
			out = append(out, Point{ts.UnixMilli(), v})
		}
		return out
	}
	base := newMem()
	base.add("steady", "energy_kwh", series(from.AddDate(0, -1, 0), to.AddDate(0, 1, 0), 15*time.Minute, 1000, 2)...)
	base.add("stops", "energy_kwh", series(from.AddDate(0, -1, 0), from.AddDate(0, 0, 12), 15*time.Minute, 500, 1)...)
	base.add("starts", "energy_kwh", series(to.AddDate(0, 0, 3), to.AddDate(0, 1, 0), 15*time.Minute, 10, 1)...)
	base.add("gappy", "energy_kwh", series(from.AddDate(0, -1, 0), to.Add(-2*time.Hour), 15*time.Minute, 70, 1)...)
	base.add("gappy", "energy_kwh", series(to.AddDate(0, 0, 5), to.AddDate(0, 1, 0), 15*time.Minute, 9000, 1)...)
	base.add("plug", "power_w", series(from.AddDate(0, 0, -2), to.AddDate(0, 0, 2), 15*time.Minute, 300, 0)...)
	devs := []Device{
		{ID: "steady", Counter: "energy_kwh", MaxKW: 20, Poll: 15 * time.Minute},
		{ID: "stops", Counter: "energy_kwh", MaxKW: 20, Poll: 15 * time.Minute},
		{ID: "starts", Counter: "energy_kwh", Power: "power_kw", PowerToKW: 1, MaxKW: 20, Poll: 15 * time.Minute},
		{ID: "gappy", Counter: "energy_kwh", MaxKW: 20, Poll: 15 * time.Minute},
		{ID: "plug", Counter: "energy_kwh", Power: "power_w", PowerToKW: 0.001, MaxKW: 2, Poll: 15 * time.Minute},
	}
	jobs := []Job{{Project: "p", Devices: devs, Schedule: testSchedule(t, "Asia/Shanghai", from, to)}}
	ctx := context.Background()
	rec := newRecorder(base)
	want, err := Compute(ctx, rec, "acme", jobs)
	if err != nil {
		t.Fatal(err)
	}
	deps := rec.spans()
	noted := func(k Key, ts int64) bool {
		h := floorHour(ts)
		for _, s := range deps {
			for _, sk := range s.Keys {
				if sk == k && h >= s.From && h < s.To {
					return true
				}
			}
		}
		return false
	}
	keys := []Key{{"steady", "energy_kwh"}, {"stops", "energy_kwh"}, {"starts", "energy_kwh"}, {"starts", "power_kw"},
		{"gappy", "energy_kwh"}, {"plug", "energy_kwh"}, {"plug", "power_w"}}
	lo, hi := from.AddDate(0, -2, 0).UnixMilli(), to.AddDate(0, 2, 0).UnixMilli()
	var outside, inside, changedInside int
	for i := 0; i < 300; i++ {
		k := keys[rng.IntN(len(keys))]
		ts := lo + rng.Int64N(hi-lo)
		v := []float64{0, 1e6, 5000 * rng.Float64()}[rng.IntN(3)]
		m := newMem()
		for kk, pts := range base.raw {
			m.raw[kk] = append([]Point(nil), pts...)
		}
		m.add(k.Device, k.Metric, Point{ts, v})
		got, err := Compute(ctx, m, "acme", jobs)
		if err != nil {
			t.Fatal(err)
		}
		same := reflect.DeepEqual(got[0].Devices, want[0].Devices)
		if noted(k, ts) {
			inside++
			if !same {
				changedInside++
			}
			continue
		}
		outside++
		if !same {
			t.Errorf("a reading %v of %v at %s, outside what was noted, changed the computation", v, k, time.UnixMilli(ts).In(loc))
		}
	}
	// The trials must reach both sides, and a reading inside must be able
	// to change the answer, or the test proves little.
	if outside < 50 || inside < 50 || changedInside == 0 {
		t.Errorf("trials: %d outside, %d inside (%d changed the answer)", outside, inside, changedInside)
	}
	t.Logf("%d spans; trials: %d outside, %d inside (%d changed the answer)", len(deps), outside, inside, changedInside)
}

func TestCoalesceAndOutside(t *testing.T) {
	a, b, c := Key{"a", "e"}, Key{"b", "e"}, Key{"c", "e"}
	h := HourMS
	got := coalesce(map[Key][]interval{
		a: {{0, 2 * h}, {2 * h, 5 * h}},
		b: {{h, 5 * h}, {0, 2 * h}},
		c: {{10 * h, NoEnd}},
	})
	want := []Span{{Keys: []Key{a, b}, From: 0, To: 5 * h}, {Keys: []Key{c}, From: 10 * h, To: NoEnd}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("coalesce = %+v, want %+v", got, want)
	}
	// Past maxSpans, wider spans that still hold everything.
	many := map[Key][]interval{}
	for i := 0; i < 3*maxSpans; i++ {
		many[Key{string(rune('A' + i)), "e"}] = []interval{{int64(i) * h, int64(i)*h + h}}
	}
	wide := coalesce(many)
	if len(wide) > maxSpans || len(outside(wide, coalesce(map[Key][]interval{{"A", "e"}: {{0, h}}}))) != 0 {
		t.Errorf("widened = %+v", wide)
	}
	for k, is := range many {
		if out := outside(wide, []Span{{Keys: []Key{k}, From: is[0].from, To: is[0].to}}); out != nil {
			t.Errorf("%v %v not inside the widened spans: %+v", k, is, out)
		}
	}
	// outside subtracts key by key.
	out := outside([]Span{{Keys: []Key{a}, From: 0, To: 5 * h}}, []Span{{Keys: []Key{a, b}, From: 3 * h, To: NoEnd}})
	want = []Span{{Keys: []Key{b}, From: 3 * h, To: NoEnd}, {Keys: []Key{a}, From: 5 * h, To: NoEnd}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("outside = %+v, want %+v", out, want)
	}
}
