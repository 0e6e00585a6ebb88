package api_test

import (
	"cmp"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

// A month of one pump's counter with each kind of counter event, worked by
// hand. p2-pump (pump-vfd: max_power_kw 22, rollover 42949672.96) is read
// every 10 minutes from 30 June 23:00 (Shanghai), i = 0, 1, …, rising
// 1 kWh a step (A = 22 × 1/6 + 0.05 = 3.717 kWh):
//
//	i = 73 (1 July 11:10): the counter wraps, 42949672 → 0.04: a rollover, credit 1
//	i = 300 (2 July 25:00 = 3 July 01:00): one poll reads 0: an outlier, skipped
//	i = 1400 (10 July 16:20): a new meter reading 0.5: a replacement, credit 0.5
//	i = 3000 (21 July 19:00): the counter jumps 500 kWh and stays: a discontinuity, credit 0
//
// July runs from i = 6 to i = 4470: 4464 steps of 1 kWh, less 0.5 (the new
// meter's first step) and 1 (the jump's step): 4462.5 kWh.
func TestCounterEventsReport(t *testing.T) {
	db := openStore(t)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	start := time.Date(2026, 6, 30, 23, 0, 0, 0, sh)
	const R = 42949672.96
	var b store.ReadingBatch
	for i := 0; i <= 4480; i++ {
		v := 42949600 + float64(i)
		switch {
		case i >= 3000:
			v = 0.5 + float64(i-1400) + 500
		case i >= 1400:
			v = 0.5 + float64(i-1400)
		case i >= 73:
			v = math.Round((42949600+float64(i)-R)*100) / 100
		}
		if i == 300 {
			v = 0
		}
		b.Add("acme", "p2", "p2-gw", uint64(i+1), &protocol.Reading{Device: "p2-pump", Metric: "energy_kwh",
			TS: start.Add(time.Duration(i) * 10 * time.Minute).UnixMilli(), Value: v, Quality: protocol.QualityGood})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.InsertReadings(ctx, &b); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, testBundle(t), db, nil)
	rec := call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p2/energy/monthly?month=2026-07")
	var r energy.Monthly
	decode(t, rec, &r)
	if r.KWh != 4462.5 {
		t.Errorf("July = %v kWh, want 4462.5", r.KWh)
	}
	at := func(i int) time.Time { return start.Add(time.Duration(i) * 10 * time.Minute) }
	want := []struct {
		i        int
		kind     string
		prev     int
		from, to float64
		kwh      float64
	}{
		{73, energy.EventRollover, 72, 42949672, 0.04, 1},
		{300, energy.EventOutlier, 299, 0.04 + 226, 0, 0},
		{1400, energy.EventReplacement, 1399, 0.04 + 1326, 0.5, 0.5},
		{3000, energy.EventDiscontinuity, 2999, 0.5 + 1599, 0.5 + 1600 + 500, 0},
	}
	if len(r.CounterEvents) != len(want) {
		t.Fatalf("counter events = %+v, want %d", r.CounterEvents, len(want))
	}
	for k, w := range want {
		e := r.CounterEvents[k]
		if e.Device != "p2-pump" || e.Kind != w.kind || !e.At.Equal(at(w.i)) || !e.PrevAt.Equal(at(w.prev)) ||
			math.Abs(e.From-w.from) > 1e-6 || math.Abs(e.To-w.to) > 1e-6 || e.KWh != w.kwh {
			t.Errorf("event %d = %+v, want %+v at %s", k, e, w, at(w.i))
		}
	}
	if !r.NeedsReview || len(r.Devices) != 1 || !r.Devices[0].NeedsReview {
		t.Errorf("needs_review = %v, device %+v: want both set by the discontinuity", r.NeedsReview, r.Devices)
	}
	// The HQ report marks the project.
	var c energy.CompanyMonthly
	decode(t, call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/energy/monthly?month=2026-07"), &c)
	for _, p := range c.Projects {
		if p.Project == "p2" && (!p.NeedsReview || p.CounterEvents != 4) {
			t.Errorf("HQ line of p2 = %+v", p)
		}
	}
	if !c.NeedsReview {
		t.Error("HQ report: needs_review not set")
	}
	// PLANTROOM_SHOW_REPORT=1 prints the report (the closing note shows it).
	if os.Getenv("PLANTROOM_SHOW_REPORT") == "1" {
		out, _ := json.MarshalIndent(map[string]any{"kwh": r.KWh, "needs_review": r.NeedsReview, "counter_events": r.CounterEvents, "devices": r.Devices}, "", "  ")
		t.Logf("GET /api/v1/projects/p2/energy/monthly?month=2026-07 (excerpt):\n%s", out)
	}
}

// The report through the real ClickHouse (roll-ups, the CounterSteps
// query, raw reads in rounds) against the definition applied to every raw
// reading: a month of a glitchy counter read at jittered times.
func TestCounterWalkThroughClickHouse(t *testing.T) {
	db := openStore(t)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	rng := rand.New(rand.NewPCG(13, 13))
	var b store.ReadingBatch
	var all []energy.Point
	ts := time.Date(2026, 6, 30, 20, 0, 0, 0, sh).UnixMilli()
	end := time.Date(2026, 8, 1, 4, 0, 0, 0, sh).UnixMilli()
	v := 5000.0
	for ts < end {
		ts += 60_000 + rng.Int64N(120_000)
		v += rng.Float64() * 0.6 // up to 36 kW, under the template's 22 kW on average… and above it now and then
		switch rng.IntN(700) {
		case 0:
			v += 300 // a jump that stays
		case 1:
			v = rng.Float64() // a new meter
		}
		r := v
		switch rng.IntN(300) {
		case 0:
			r = 0
		case 1:
			r = v + 1e5
		case 2:
			r = v - 20
		}
		all = append(all, energy.Point{TS: ts, V: r})
		b.Add("acme", "p2", "p2-gw", uint64(len(all)), &protocol.Reading{Device: "p2-pump", Metric: "energy_kwh", TS: ts, Value: r, Quality: protocol.QualityGood})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.InsertReadings(ctx, &b); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, testBundle(t), db, nil)
	var r energy.Monthly
	decode(t, call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p2/energy/monthly?month=2026-07"), &r)
	c := energy.Walk(all, 22, 42949672.96)
	from := time.Date(2026, 7, 1, 0, 0, 0, 0, sh).UnixMilli()
	to := time.Date(2026, 8, 1, 0, 0, 0, 0, sh).UnixMilli()
	if want := energy.KWh(c.Between(from, to)); math.Abs(r.KWh-want) > 0.0015 {
		t.Errorf("July = %v kWh, the walk over every reading gives %v", r.KWh, want)
	}
	n := map[string]int{}
	for _, e := range c.Events {
		if e.TS >= from && e.TS < to {
			n[e.Kind]++
		}
	}
	got := map[string]int{}
	for _, e := range r.CounterEvents {
		got[e.Kind]++
	}
	for _, k := range energy.EventKinds {
		if got[k] != n[k] {
			t.Errorf("%s events: report %d, walk %d", k, got[k], n[k])
		}
	}
	if n[energy.EventOutlier] == 0 || n[energy.EventDiscontinuity] == 0 || n[energy.EventReplacement] == 0 {
		t.Errorf("data lacks events: %v", n)
	}
	t.Logf("July: %v kWh, events %v", r.KWh, got)
}

// Reports answered from the step summaries stored in counter_steps equal
// reports worked out from the raw readings alone, and both equal the walk
// over every raw reading: on a glitchy month (outliers, including first
// readings of hours whose verdict needs the next reading, falls, jumps, new
// meters), after history re-sent byte for byte, and after late readings
// that change hours whose summaries are stored.
func TestStoredCounterStepsMatchRaw(t *testing.T) {
	db := openStore(t)
	bundle := testBundle(t)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	rng := rand.New(rand.NewPCG(7, 21))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	from := time.Date(2026, 7, 1, 0, 0, 0, 0, sh).UnixMilli()
	to := time.Date(2026, 8, 1, 0, 0, 0, 0, sh).UnixMilli()

	var all []energy.Point
	seq := uint64(0)
	insert := func(pts []energy.Point) {
		t.Helper()
		var b store.ReadingBatch
		for _, p := range pts {
			seq++
			b.Add("acme", "p2", "p2-gw", seq, &protocol.Reading{Device: "p2-pump", Metric: "energy_kwh", TS: p.TS, Value: p.V, Quality: protocol.QualityGood})
		}
		if err := db.InsertReadings(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	// Every 5 to 15 minutes, 0 to 3 kWh a step (up to 36 kW against the
	// pump's 22); a glitch in one reading of 40, a new meter or a jump that
	// stays now and then, and a glitch on the hour (the hour's first
	// reading) in one hour of 30.
	ts := time.Date(2026, 6, 30, 20, 0, 0, 0, sh).UnixMilli()
	end := time.Date(2026, 8, 1, 4, 0, 0, 0, sh).UnixMilli()
	v := 100.0
	for ts < end {
		next := ts + 300_000 + rng.Int64N(600_000)
		if next/energy.HourMS != ts/energy.HourMS && rng.IntN(30) == 0 {
			next = next - next%energy.HourMS // the hour's first reading…
		}
		ts = next
		v += rng.Float64() * 3
		switch rng.IntN(500) {
		case 0:
			v += 400
		case 1:
			v = rng.Float64()
		}
		r := v
		if ts%energy.HourMS == 0 && rng.IntN(2) == 0 {
			r = 0 // …reads 0 now and then: an outlier only the next reading tells
		} else if rng.IntN(40) == 0 {
			r = []float64{0, v + 1e5, v - 30}[rng.IntN(3)]
		}
		all = append(all, energy.Point{TS: ts, V: r})
	}
	insert(all)

	report := func(what string) (energy.Monthly, string) {
		t.Helper()
		var m energy.Monthly
		s := newServer(t, bundle, db, nil) // a new readings repository: nothing cached in memory
		decode(t, call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p2/energy/monthly?month=2026-07"), &m)
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		c := energy.Walk(all, 22, 42949672.96)
		if want := energy.KWh(c.Between(from, to)); math.Abs(m.KWh-want) > 0.0015 {
			t.Errorf("%s: July = %v kWh, the walk over every reading gives %v", what, m.KWh, want)
		}
		var walked []string
		for _, e := range c.Events {
			if e.TS >= from && e.TS < to {
				walked = append(walked, e.Kind+"@"+time.UnixMilli(e.TS).UTC().Format(time.RFC3339))
			}
		}
		var got []string
		for _, e := range m.CounterEvents {
			got = append(got, e.Kind+"@"+e.At.UTC().Format(time.RFC3339))
		}
		if g, w := strings.Join(got, " "), strings.Join(walked, " "); g != w {
			t.Errorf("%s: counter events\n%s\nthe walk:\n%s", what, g, w)
		}
		return m, string(js)
	}
	stored := func() uint64 {
		t.Helper()
		var n uint64
		if err := db.Conn().QueryRow(ctx, "SELECT count() FROM "+store.TableCounterSteps).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	forget := func() {
		t.Helper()
		if err := db.Conn().Exec(ctx, "TRUNCATE TABLE "+store.TableCounterSteps); err != nil {
			t.Fatal(err)
		}
	}

	// 1. From the raw readings (nothing stored yet), then from the stored
	// summaries.
	m, raw := report("raw")
	if stored() < 500 {
		t.Fatalf("counter_steps holds %d summaries after a month's report", stored())
	}
	kinds := map[string]int{}
	for _, e := range m.CounterEvents {
		kinds[e.Kind]++
	}
	if kinds[energy.EventOutlier] == 0 || kinds[energy.EventDiscontinuity] == 0 || kinds[energy.EventReplacement] == 0 {
		t.Fatalf("data lacks events: %v", kinds)
	}
	if _, fromTable := report("stored"); fromTable != raw {
		t.Errorf("from stored summaries:\n%s\nfrom the raw readings:\n%s", fromTable, raw)
	}

	// 2. A day of history re-sent byte for byte: nothing changes.
	var day []energy.Point
	for _, p := range all {
		if p.TS >= from+10*24*energy.HourMS && p.TS < from+11*24*energy.HourMS {
			day = append(day, p)
		}
	}
	insert(day)
	if _, again := report("stored, after a re-sent day"); again != raw {
		t.Errorf("after a re-sent day:\n%s\nbefore:\n%s", again, raw)
	}

	// 3. Late readings inside 40 stored hours (some plausible, some
	// glitches, some on the hour): those hours are worked out again.
	var late []energy.Point
	taken := map[int64]bool{}
	for _, p := range all {
		taken[p.TS] = true
	}
	for len(late) < 40 {
		i := 1 + rng.IntN(len(all)-2)
		a, b := all[i], all[i+1]
		if b.TS-a.TS < 2 || a.TS < from || b.TS >= to {
			continue
		}
		p := energy.Point{TS: a.TS + 1 + rng.Int64N(b.TS-a.TS-1), V: (a.V + b.V) / 2}
		if taken[p.TS] {
			continue
		}
		taken[p.TS] = true
		if rng.IntN(3) == 0 {
			p.V = 0
		}
		late = append(late, p)
		all = append(all, p)
		slices.SortFunc(all, func(x, y energy.Point) int { return cmp.Compare(x.TS, y.TS) })
	}
	insert(late)
	_, mixed := report("stored, after late readings")
	forget()
	_, fresh := report("raw, after late readings")
	if mixed != fresh {
		t.Errorf("after late readings, with stored summaries:\n%s\nfrom the raw readings:\n%s", mixed, fresh)
	}
	if mixed == raw {
		t.Error("the late readings changed nothing in the report: the test data does not test the stored summaries")
	}
}
