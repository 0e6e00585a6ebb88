package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/protocol"
)

// openTestDB opens a DB on a fresh database of the test ClickHouse.
func openTestDB(t *testing.T, schema SchemaOptions) *DB {
	t.Helper()
	_, name := chtest.NewDatabase(t)
	o := chtest.Addr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, Options{Addr: o.Addr, User: o.User, Password: o.Password, Database: name, Schema: schema})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func tableNames(t *testing.T, db *DB) string {
	t.Helper()
	rows, err := db.Conn().Query(testCtx(t), "SELECT name FROM system.tables WHERE database = ? ORDER BY name", db.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

func TestMigrateReadingsSchemaTwice(t *testing.T) {
	db := openTestDB(t, SchemaOptions{TTLDays: 30})
	ctx := testCtx(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if got, want := tableNames(t, db), "committed_batches,counter_steps,events,quarantine,readings,readings_hourly,readings_hourly_mv,schema_migrations"; got != want {
		t.Errorf("tables = %s, want %s", got, want)
	}
	var n uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM schema_migrations FINAL WHERE component = 'readings'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Errorf("schema_migrations holds %d readings migrations, want 7", n)
	}
	v, err := AppliedVersion(ctx, db.Conn(), db.Database(), ComponentReadings)
	if err != nil || v != 7 {
		t.Errorf("AppliedVersion = %d, %v; want 7", v, err)
	}
	// The ADD COLUMN of migration 6 run again, as after a crash before its
	// record: harmless (18.16 has no ADD COLUMN IF NOT EXISTS).
	again := Migration{Component: "again", Version: 1, Name: "bad_cause again", Statements: badCauseDDL, IgnoreExisting: true}
	if err := Migrate(ctx, db.Conn(), db.Server(), db.Database(), []Migration{again}); err != nil {
		t.Errorf("bad_cause added twice: %v", err)
	}
	// Migration 7 run again in full, as after a crash before its record.
	again = Migration{Component: "again", Version: 2, Name: "readings_hourly_rows again", Statements: hourlyRowsDDL, IgnoreExisting: true}
	if err := Migrate(ctx, db.Conn(), db.Server(), db.Database(), []Migration{again}); err != nil {
		t.Errorf("readings_hourly_rows applied twice: %v", err)
	}
	if got, want := tableNames(t, db), "committed_batches,counter_steps,events,quarantine,readings,readings_hourly,readings_hourly_mv,schema_migrations"; got != want {
		t.Errorf("after migration 7 again: tables = %s, want %s", got, want)
	}
	// The table has the contracted columns, in order, with their types.
	rows, err := db.Conn().Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = 'readings' ORDER BY name", db.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, name+" "+typ)
	}
	want := "bad_cause String,company String,device String,gateway String,metric String,project String,quality UInt8,seq UInt64,ts_ms Int64,value Float64"
	if db.Server().HasLowCardinality() {
		want = "bad_cause LowCardinality(String),company LowCardinality(String),device String,gateway LowCardinality(String),metric LowCardinality(String),project LowCardinality(String),quality UInt8,seq UInt64,ts_ms Int64,value Float64"
	}
	if got := strings.Join(cols, ","); got != want {
		t.Errorf("readings columns:\n got %s\nwant %s", got, want)
	}
}

func TestMigrateAppliesOnlyNewVersions(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	// Statements without IF NOT EXISTS fail when run twice, so a second
	// application would show as an error.
	v1 := Migration{Component: "test", Version: 1, Name: "one", Statements: func(s Server, d string) []string {
		return []string{"CREATE TABLE `" + d + "`.t1 (x UInt8) ENGINE = MergeTree ORDER BY x"}
	}}
	v2 := Migration{Component: "test", Version: 2, Name: "two", Statements: func(s Server, d string) []string {
		return []string{
			"CREATE TABLE `" + d + "`.t2 (x UInt8) ENGINE = MergeTree ORDER BY x",
			"ALTER TABLE `" + d + "`.t1 ADD COLUMN y String",
		}
	}}
	if err := Migrate(ctx, db.Conn(), db.Server(), db.Database(), []Migration{v1}); err != nil {
		t.Fatalf("Migrate v1: %v", err)
	}
	if err := Migrate(ctx, db.Conn(), db.Server(), db.Database(), []Migration{v1, v2}); err != nil {
		t.Fatalf("Migrate v1+v2: %v", err)
	}
	if err := Migrate(ctx, db.Conn(), db.Server(), db.Database(), []Migration{v1, v2}); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if got := tableNames(t, db); got != "schema_migrations,t1,t2" {
		t.Errorf("tables = %s", got)
	}
	v, err := AppliedVersion(ctx, db.Conn(), db.Database(), "test")
	if err != nil || v != 2 {
		t.Errorf("AppliedVersion = %d, %v; want 2", v, err)
	}

	// A failing statement names the migration and is not recorded.
	bad := Migration{Component: "test", Version: 3, Name: "broken", Statements: func(s Server, d string) []string {
		return []string{"CREATE TABLE `" + d + "`.t3 (x NoSuchType) ENGINE = MergeTree ORDER BY x"}
	}}
	err = Migrate(ctx, db.Conn(), db.Server(), db.Database(), []Migration{v1, v2, bad})
	if err == nil || !strings.Contains(err.Error(), `cannot apply migration test/3 "broken"`) {
		t.Errorf("broken migration: err = %v", err)
	}
	if v, _ := AppliedVersion(ctx, db.Conn(), db.Database(), "test"); v != 2 {
		t.Errorf("after a failed migration AppliedVersion = %d, want 2", v)
	}
}

func TestMigrateRejectsBadLists(t *testing.T) {
	noop := func(Server, string) []string { return nil }
	for name, ms := range map[string][]Migration{
		"order":      {{Component: "a", Version: 2, Statements: noop}, {Component: "a", Version: 1, Statements: noop}},
		"zero":       {{Component: "a", Version: 0, Statements: noop}},
		"component":  {{Component: "", Version: 1, Statements: noop}},
		"statements": {{Component: "a", Version: 1}},
	} {
		if err := checkMigrations(ms); err == nil {
			t.Errorf("%s: checkMigrations accepted %+v", name, ms)
		}
	}
}

// A database migrated before migration 7 (the demo's, a customer's) gets
// the roll-up's version of its existing hours from the raw readings, and
// afterwards every insert is rolled up once, with its version.
func TestMigrateRollUpVersionOfExistingHours(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	var before []Migration
	for _, m := range ReadingsMigrations(SchemaOptions{}) {
		if m.Component != ComponentReadings || m.Version < 7 {
			before = append(before, m)
		}
	}
	if len(before) != 7 { // readings 1–6 and the quarantine
		t.Fatalf("%d migrations before version 7", len(before))
	}
	if err := Migrate(ctx, db.Conn(), db.Server(), db.Database(), before); err != nil {
		t.Fatal(err)
	}
	const h0 = int64(1_782_864_000_000) // 2026-07-01T00:00Z
	insert := func(dev string, ts ...int64) {
		t.Helper()
		var b ReadingBatch
		for i, x := range ts {
			b.Add("acme", "p1", "gw", uint64(i+1), &protocol.Reading{Device: dev, Metric: "energy_kwh", TS: x, Value: float64(x-h0) / 60_000})
		}
		if err := db.InsertReadings(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	// m1: three readings in hour 0, the last sent twice; two in hour 1.
	// m2: one reading in hour 0.
	insert("m1", h0, h0+600_000, h0+1_200_000, h0+3_600_000, h0+4_200_000)
	insert("m1", h0+1_200_000)
	insert("m2", h0+60_000)
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate to version 7: %v", err)
	}
	if got, want := tableNames(t, db), "committed_batches,counter_steps,events,quarantine,readings,readings_hourly,readings_hourly_mv,schema_migrations"; got != want {
		t.Errorf("tables = %s, want %s", got, want)
	}
	rollUp := func() string {
		t.Helper()
		rows, err := db.Conn().Query(ctx, `SELECT device, hour_ms - ?, toInt64(finalizeAggregation(n)), toInt64(finalizeAggregation(n_rows)), finalizeAggregation(ts_sum) - toInt64(finalizeAggregation(n_rows)) * ?
FROM readings_hourly FINAL ORDER BY device, hour_ms`, h0, h0)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var dev string
			var hour, n, nRows, tsSum int64
			if err := rows.Scan(&dev, &hour, &n, &nRows, &tsSum); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s+%dh n=%d rows=%d ts=%d", dev, hour/3_600_000, n, nRows, tsSum))
		}
		return strings.Join(out, "; ")
	}
	// Timestamps as offsets from h0: hour 0 of m1 sums 0 + 600,000 +
	// 2 × 1,200,000; hour 1 3,600,000 + 4,200,000.
	if got, want := rollUp(), "m1+0h n=3 rows=4 ts=3000000; m1+1h n=2 rows=2 ts=7800000; m2+0h n=1 rows=1 ts=60000"; got != want {
		t.Errorf("roll-up after the migration:\n got %s\nwant %s", got, want)
	}
	// A reading after the migration: rolled up once, by the new view only.
	insert("m1", h0+1_800_000)
	if got, want := rollUp(), "m1+0h n=4 rows=5 ts=4800000; m1+1h n=2 rows=2 ts=7800000; m2+0h n=1 rows=1 ts=60000"; got != want {
		t.Errorf("roll-up after an insert:\n got %s\nwant %s", got, want)
	}
	// The energy repository keys hour 0's summary by that version, and
	// stores it (the raw rows match it).
	r := db.Readings()
	w := energy.Where{Company: "acme", Projects: []string{"p1"}}
	k := energy.Key{Device: "m1", Metric: "energy_kwh"}
	hours, err := r.Hours(ctx, w, []energy.Key{k}, h0, h0+2*energy.HourMS)
	if err != nil {
		t.Fatal(err)
	}
	if len(hours[k]) != 2 || hours[k][0].Rows != 5 || hours[k][0].TSSum != 5*h0+4_800_000 || hours[k][0].N != 0 {
		t.Fatalf("roll-up rows %+v", hours[k])
	}
	st, err := r.Steps(ctx, w, map[energy.Key][]energy.Hour{k: hours[k][:1]})
	if err != nil {
		t.Fatal(err)
	}
	if len(st[k]) != 1 || st[k][0].N != 4 || st[k][0].Falls {
		t.Errorf("steps of hour 0: %+v", st[k])
	}
	var stored uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM counter_steps WHERE device = 'm1' AND n_rows = 5 AND ts_sum = ? AND n = 4", 5*h0+4_800_000).Scan(&stored); err != nil || stored != 1 {
		t.Errorf("counter_steps holds %d rows (%v) of hour 0, want 1", stored, err)
	}
	// The repository that also reads the exact count (the benchmarks'
	// comparison) shares the stored summary: answered from the table,
	// nothing stored again.
	re := db.ReadingsWithExactCounts()
	exact, err := re.Hours(ctx, w, []energy.Key{k}, h0, h0+energy.HourMS)
	if err != nil {
		t.Fatal(err)
	}
	if want := hours[k][0]; len(exact[k]) != 1 || exact[k][0].N != 4 || exact[k][0].Rows != want.Rows || exact[k][0].TSSum != want.TSSum {
		t.Fatalf("roll-up rows with exact counts %+v", exact[k])
	}
	if st, err := re.Steps(ctx, w, exact); err != nil || len(st[k]) != 1 || st[k][0] != (energy.HourSteps{Hour: h0, N: 4, NeedKW: st[k][0].NeedKW}) {
		t.Errorf("steps with exact counts: %+v, %v", st[k], err)
	}
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM counter_steps WHERE device = 'm1'").Scan(&stored); err != nil || stored != 1 {
		t.Errorf("counter_steps holds %d rows (%v) of m1 after the exact-count repository, want 1", stored, err)
	}
}
