package store

import (
	"math"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/protocol"
)

// Step summaries come from the raw readings once, then from the cache while
// the hour's roll-up row stays the same; a reading added inside the hour
// changes the row, and the summary is worked out again.
func TestCounterStepsAndTheirCache(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const h0 = int64(1_782_864_000_000) // an hour boundary (2026-07-01T00:00Z)
	insert := func(pts ...energy.Point) {
		t.Helper()
		var b ReadingBatch
		for i, p := range pts {
			b.Add("acme", "p1", "gw", uint64(i+1), &protocol.Reading{Device: "m1", Metric: "energy_kwh", TS: p.TS, Value: p.V})
		}
		if err := db.InsertReadings(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	// Hour 0: 100, 101 at +10 min, 103 at +20 min: steps of 1 and 2 kWh in
	// 10 minutes: NeedKW = (2 − 0.05) × 6 = 11.7 kW. Hour 1: a fall.
	min := int64(60_000)
	insert(energy.Point{TS: h0, V: 100}, energy.Point{TS: h0 + 10*min, V: 101}, energy.Point{TS: h0 + 20*min, V: 103},
		energy.Point{TS: h0 + 60*min, V: 104}, energy.Point{TS: h0 + 70*min, V: 90}, energy.Point{TS: h0 + 80*min, V: 105})
	r := db.Readings()
	w := energy.Where{Company: "acme", Projects: []string{"p1"}}
	k := energy.Key{Device: "m1", Metric: "energy_kwh"}
	steps := func() []energy.HourSteps {
		t.Helper()
		hours, err := r.Hours(ctx, w, []energy.Key{k}, h0, h0+2*energy.HourMS)
		if err != nil {
			t.Fatal(err)
		}
		if len(hours[k]) != 2 || hours[k][0].Rows < 3 {
			t.Fatalf("roll-up rows %+v", hours[k])
		}
		got, err := r.Steps(ctx, w, hours)
		if err != nil {
			t.Fatal(err)
		}
		return got[k]
	}
	st := steps()
	if len(st) != 2 || st[0].N != 3 || st[0].Falls || math.Abs(st[0].NeedKW-11.7) > 1e-9 || !st[1].Falls {
		t.Fatalf("steps = %+v", st)
	}
	if n := len(r.steps.m); n != 2 {
		t.Fatalf("%d cached summaries, want 2", n)
	}
	// The cache answers: a summary planted there comes back unchanged.
	for sk, e := range r.steps.m {
		if sk.hour == h0 {
			e.st.NeedKW = -42
			r.steps.m[sk] = e
		}
	}
	if st := steps(); st[0].NeedKW != -42 {
		t.Errorf("second call did not use the cache: %+v", st[0])
	}
	// A late reading inside hour 0 (a jump of 50 kWh in 5 minutes) changes
	// its row: worked out again from the raw readings.
	insert(energy.Point{TS: h0 + 5*min, V: 150})
	st = steps()
	if st[0].N != 4 || !st[0].Falls || st[0].NeedKW < 500 {
		t.Errorf("after a late reading: %+v", st[0])
	}

	// Another process (an empty cache) reads the stored summaries: a
	// summary planted in the table for the hour's current roll-up row,
	// stored after the real one, comes back.
	hours, err := r.Hours(ctx, w, []energy.Key{k}, h0, h0+2*energy.HourMS)
	if err != nil {
		t.Fatal(err)
	}
	planted := map[stepKey]stepEntry{{"acme", "m1", "energy_kwh", h0}: {row: hours[k][0], st: energy.HourSteps{Hour: h0, N: 4, NeedKW: -7}}}
	time.Sleep(2 * time.Millisecond) // computed_ms after the real row's
	if err := r.storeSteps(ctx, planted); err != nil {
		t.Fatal(err)
	}
	r = db.Readings()
	if st := steps(); st[0].NeedKW != -7 || st[0].Falls || !st[1].Falls {
		t.Errorf("a new repository did not answer from counter_steps: %+v", st)
	}
	if n := len(r.steps.m); n != 2 {
		t.Errorf("%d summaries cached from the table, want 2", n)
	}
	// A summary stored for another state of the hour is not used: another
	// late reading changes the row, and the answer is worked out again
	// from the raw readings (and stored for the next repository).
	insert(energy.Point{TS: h0 + 30*min, V: 151})
	r = db.Readings()
	if st := steps(); st[0].N != 5 || !st[0].Falls || st[0].NeedKW < 500 {
		t.Errorf("after a second late reading: %+v", st[0])
	}
	r = db.Readings()
	if st := steps(); st[0].N != 5 || !st[0].Falls || st[0].NeedKW < 500 {
		t.Errorf("stored after the second late reading: %+v", st[0])
	}
	stored := func(rows int) uint64 {
		t.Helper()
		var n uint64
		if err := db.Conn().QueryRow(ctx, "SELECT count() FROM counter_steps WHERE device = 'm1' AND hour_ms = ? AND n_rows = ?", h0, rows).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := stored(5); n != 1 {
		t.Errorf("counter_steps holds %d rows of the hour's new state, want 1", n)
	}

	// The last reading sent again and the duplicate merged away in
	// readings: the roll-up counted 6 rows, the raw readings hold 5, so
	// the roll-up's exact reading count (5, as summed up) decides, and
	// the summary is stored under the row's version.
	insert(energy.Point{TS: h0 + 30*min, V: 151})
	if err := db.Conn().Exec(ctx, "OPTIMIZE TABLE readings FINAL"); err != nil {
		t.Fatal(err)
	}
	r = db.Readings()
	if st := steps(); st[0].N != 5 || !st[0].Falls || st[0].NeedKW < 500 {
		t.Errorf("after a duplicate merged away: %+v", st[0])
	}
	if n := stored(6); n != 1 {
		t.Errorf("counter_steps holds %d rows of the hour after a merged duplicate, want 1", n)
	}
	// A reading arriving between the roll-up read and the raw one: 6 raw
	// rows again as the row read counted (another sum of timestamps),
	// and the roll-up has moved on. Nothing is kept for the row read (in
	// a process that has nothing stored yet).
	if err := db.Conn().Exec(ctx, "TRUNCATE TABLE counter_steps"); err != nil {
		t.Fatal(err)
	}
	hours, err = r.Hours(ctx, w, []energy.Key{k}, h0, h0+2*energy.HourMS)
	if err != nil {
		t.Fatal(err)
	}
	if hours[k][0].Rows != 6 {
		t.Fatalf("roll-up row %+v, want 6 rows", hours[k][0])
	}
	insert(energy.Point{TS: h0 + 40*min, V: 152})
	r = db.Readings()
	got, err := r.Steps(ctx, w, hours)
	if err != nil {
		t.Fatal(err)
	}
	if st := got[k]; len(st) != 2 || st[0].N != 6 {
		t.Errorf("steps with the late reading: %+v", st)
	}
	var n uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM counter_steps WHERE device = 'm1' AND hour_ms = ?", h0).Scan(&n); err != nil || n != 0 {
		t.Errorf("counter_steps holds %d rows (%v) for a roll-up row older than the readings summed up, want 0", n, err)
	}
	if n := len(r.steps.m); n != 1 {
		t.Errorf("%d summaries cached, want 1 (hour 1's)", n)
	}
}
