package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/internal/chtest"
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
