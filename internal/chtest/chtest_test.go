package chtest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestServerVersion(t *testing.T) {
	conn, _ := NewDatabase(t)
	sv, err := conn.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(context.Background(), "SELECT version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	t.Logf("server: %s; version(): %s", sv, v)
	if prefix := fmt.Sprintf("%d.%d.", sv.Version.Major, sv.Version.Minor); sv.Version.Major == 0 || !strings.HasPrefix(v, prefix) {
		t.Fatalf("inconsistent versions: hello %s, version() %s", sv.Version, v)
	}
}

func TestMergeTreeBatchRoundTrip(t *testing.T) {
	conn, db := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var cur string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&cur); err != nil {
		t.Fatal(err)
	}
	if cur != db {
		t.Fatalf("currentDatabase() = %q, want %q", cur, db)
	}

	if err := conn.Exec(ctx, `CREATE TABLE t (
		a String,
		b Float64,
		ts DateTime,
		n Nullable(Float64)
	) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (a, ts)`); err != nil {
		t.Fatal(err)
	}

	base := time.Date(2024, 3, 31, 23, 0, 0, 0, time.UTC)
	shanghai := time.FixedZone("UTC+8", 8*3600)
	type row struct {
		a  string
		b  float64
		ts time.Time
	}
	want := []row{
		{"elevator-1", 1.5, base},
		{"elevator-1", -2.25, base.Add(90 * time.Minute)}, // next month: second partition
		{"pump-7", 1e9, base.In(shanghai)},                // zone only changes the Go value, not the instant
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO t (a, b, ts)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		if err := batch.Append(r.a, r.b, r.ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	rows, err := conn.Query(ctx, "SELECT a, b, ts, n FROM t ORDER BY a, ts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []row
	for rows.Next() {
		var r row
		var n *float64
		if err := rows.Scan(&r.a, &r.b, &r.ts, &n); err != nil {
			t.Fatal(err)
		}
		if n != nil {
			t.Errorf("n = %v, want NULL for a column left out of the INSERT", *n)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].a != want[i].a || got[i].b != want[i].b || !got[i].ts.Equal(want[i].ts) {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	var parts uint64 // count() is UInt64: scan into uint64, not int64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(partition) FROM system.parts WHERE database = ? AND table = 't' AND active", db).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 2 {
		t.Errorf("partitions = %d, want 2 (March and April)", parts)
	}
}

func TestReplacingMergeTreeFinal(t *testing.T) {
	conn, _ := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := conn.Exec(ctx, `CREATE TABLE readings (
		device String,
		metric String,
		ts DateTime,
		value Float64,
		seq UInt64
	) ENGINE = ReplacingMergeTree(seq) PARTITION BY toYYYYMM(ts) ORDER BY (device, metric, ts)`); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	// The same two readings delivered three times (at-least-once), the
	// last delivery with the highest seq and a corrected value.
	for seq := uint64(1); seq <= 3; seq++ {
		b, err := conn.PrepareBatch(ctx, "INSERT INTO readings (device, metric, ts, value, seq)")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Append("meter-1", "kwh", ts, 100+float64(seq), seq); err != nil {
			t.Fatal(err)
		}
		if err := b.Append("meter-1", "kwh", ts.Add(time.Minute), 200.0, seq); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}

	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM readings FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("count() FINAL = %d, want 2", n)
	}
	var v float64
	var seq uint64
	if err := conn.QueryRow(ctx, "SELECT value, seq FROM readings FINAL WHERE device = ? AND ts = ?", "meter-1", ts).Scan(&v, &seq); err != nil {
		t.Fatal(err)
	}
	if v != 103 || seq != 3 {
		t.Errorf("FINAL row = (%v, %d), want (103, 3)", v, seq)
	}

	// After a forced merge the duplicates are gone without FINAL too.
	if err := conn.Exec(ctx, "OPTIMIZE TABLE readings FINAL"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM readings").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("count() after OPTIMIZE FINAL = %d, want 2", n)
	}
}

// TestLowCardinalitySetting checks the way to create LowCardinality columns
// on 18.16: a per-query setting sent with an int value.
func TestLowCardinalitySetting(t *testing.T) {
	conn, _ := NewDatabase(t)
	sv, err := conn.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ddlCtx := ctx
	if sv.Version.Major < 19 {
		ddlCtx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
			"allow_experimental_low_cardinality_type": 1, // int, not "1"
		}))
	}
	if err := conn.Exec(ddlCtx, "CREATE TABLE lc (k UInt8, v LowCardinality(String)) ENGINE = MergeTree ORDER BY k"); err != nil {
		t.Fatal(err)
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO lc (k, v)")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"pump", "elevator", "pump"} {
		if err := b.Append(uint8(i), s); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	var got []string
	rows, err := conn.Query(ctx, "SELECT v FROM lc ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "pump,elevator,pump" {
		t.Errorf("got %v", got)
	}
}

func TestDatabaseDroppedOnCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		_, name = NewDatabase(t)
		if !regexp.MustCompile(`^test_chtest_testdatabasedroppedoncleanup_inner_[0-9a-f]{8}$`).MatchString(name) {
			t.Errorf("database name %q has an unexpected shape", name)
		}
	})
	conn := Connect(t, Addr(t))
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.databases WHERE name = ?", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test finished", name)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(EnvUser, "envuser")
	t.Setenv(EnvPassword, "envpass")
	t.Setenv(EnvDatabase, "envdb")
	for _, tc := range []struct {
		in      string
		want    Options
		wantErr bool
	}{
		{in: "db.local:9000", want: Options{Addr: "db.local:9000", User: "envuser", Password: "envpass", Database: "envdb"}},
		{in: "clickhouse://u:p%40ss@127.0.0.1:19000/plant", want: Options{Addr: "127.0.0.1:19000", User: "u", Password: "p@ss", Database: "plant"}},
		{in: "clickhouse://[::1]:19000", want: Options{Addr: "[::1]:19000", User: "envuser", Password: "envpass", Database: "envdb"}},
		{in: "db.local", wantErr: true},
		{in: "http://db.local:8123", wantErr: true},
	} {
		got, err := fromEnv(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("fromEnv(%q) = %+v, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("fromEnv(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
