package store

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func allDDL(s Server, o SchemaOptions) string {
	var parts []string
	for _, m := range ReadingsMigrations(o) {
		parts = append(parts, m.Statements(s, "plantroom")...)
	}
	return strings.Join(parts, ";\n")
}

func mustContain(t *testing.T, ddl string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(ddl, w) {
			t.Errorf("DDL lacks %q:\n%s", w, ddl)
		}
	}
}

func mustNotContain(t *testing.T, ddl string, bad ...string) {
	t.Helper()
	for _, b := range bad {
		if strings.Contains(ddl, b) {
			t.Errorf("DDL contains %q:\n%s", b, ddl)
		}
	}
}

func TestDDLClickHouse1816(t *testing.T) {
	s, err := ParseVersion("18.16.1")
	if err != nil {
		t.Fatal(err)
	}
	ddl := allDDL(s, SchemaOptions{TTLDays: 365}) // TTL asked for, but 18.16 has none
	mustContain(t, ddl,
		"CREATE TABLE IF NOT EXISTS `plantroom`.readings (",
		"    company String,", "    metric String,", "    ts_ms Int64,", "    value Float64,",
		"ENGINE = ReplacingMergeTree(seq)",
		"PARTITION BY toYYYYMM(toDateTime(intDiv(ts_ms, 1000)))",
		"ORDER BY (company, project, device, metric, ts_ms)",
		"ENGINE = AggregatingMergeTree()",
		"ORDER BY (company, project, device, metric, hour_ms)",
		"    n AggregateFunction(uniqExact, Int64)",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS `plantroom`.readings_hourly_mv TO `plantroom`.readings_hourly AS",
		"FROM `plantroom`.readings\nWHERE quality < 2",
	)
	mustNotContain(t, ddl, "LowCardinality", "CODEC", "TTL", "ON CLUSTER", "Replicated", "Distributed", "sum(", "count(")
}

// The DDL of every server kind the store knows, written out in full in
// testdata/ddl/ and compared exactly: a change to any statement shows up as
// a reviewed change of these files (go test ./cloud/store -run TestDDLGolden
// -update rewrites them). 18.16, single and cluster, also runs for real
// (make test, make test-cluster); the modern files are the only check of the
// newer servers' DDL, since none is reachable from the test machines.
var updateGolden = flag.Bool("update", false, "rewrite testdata/ddl/*.sql from the current DDL")

// fullDDL is every statement the store and an event log (as alarms and work
// orders use it, with a column added by version 2 and its journal) run on
// a new database, in order.
func fullDDL(s Server, o SchemaOptions) string {
	parts := []string{migrationsDDL(s, "plantroom")}
	for _, m := range ReadingsMigrations(o) {
		parts = append(parts, m.Statements(s, "plantroom")...)
	}
	parts = append(parts, EventLogMigration[testEvent]("things", 1, "thing_events", "thing_id").Statements(s, "plantroom")...)
	parts = append(parts, EventLogColumnsMigration[testEventV2]("things", 2, "thing_events", "thing_id").Statements(s, "plantroom")...)
	parts = append(parts, EventJournalMigration("things", 3, "thing_events").Statements(s, "plantroom")...)
	return strings.Join(parts, ";\n\n") + ";\n"
}

func TestDDLGolden(t *testing.T) {
	v1816, _ := ParseVersion("18.16.1")
	v238, _ := ParseVersion("23.8.2.7")
	cl1816, cl238 := v1816, v238
	cl1816.Cluster, cl238.Cluster = "plant", "plant"
	for _, c := range []struct {
		file string
		s    Server
		o    SchemaOptions
	}{
		{"clickhouse-18.16", v1816, SchemaOptions{TTLDays: 365}}, // TTL asked for, but 18.16 has none
		{"clickhouse-23.8", v238, SchemaOptions{}},
		{"clickhouse-23.8-ttl400", v238, SchemaOptions{TTLDays: 400}},
		{"cluster-18.16", cl1816, SchemaOptions{}},
		{"cluster-23.8-ttl400", cl238, SchemaOptions{TTLDays: 400}},
	} {
		got := fullDDL(c.s, c.o)
		path := filepath.Join("testdata", "ddl", c.file+".sql")
		if *updateGolden {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got != string(want) {
			g, w := strings.Split(got, "\n"), strings.Split(string(want), "\n")
			for i := 0; i < max(len(g), len(w)); i++ {
				gl, wl := "", ""
				if i < len(g) {
					gl = g[i]
				}
				if i < len(w) {
					wl = w[i]
				}
				if gl != wl {
					t.Errorf("%s: line %d is\n  %q\nwant\n  %q\n(review the change, then go test -run TestDDLGolden -update)", path, i+1, gl, wl)
					break
				}
			}
		}
	}
}

// tableColumns reads every CREATE TABLE … ( columns ) statement of ddl into
// table → "column type" lines, as a query sees them: LowCardinality(T) is
// T and codecs are storage only. Tables named <t>_local count as <t>.
func tableColumns(t *testing.T, ddl string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, stmt := range strings.Split(ddl, ";\n") {
		stmt = strings.TrimSpace(stmt)
		if !strings.HasPrefix(stmt, "CREATE TABLE") || !strings.Contains(stmt, "(\n") {
			continue
		}
		head, body, _ := strings.Cut(stmt, "(\n")
		name := strings.Fields(strings.TrimPrefix(head, "CREATE TABLE IF NOT EXISTS "))[0]
		name = strings.TrimSuffix(strings.Trim(name[strings.LastIndexByte(name, '.')+1:], "`"), "_local")
		body, _, ok := strings.Cut(body, "\n)")
		if !ok {
			t.Fatalf("unterminated column list in\n%s", stmt)
		}
		for _, line := range strings.Split(body, "\n") {
			line = strings.TrimSuffix(strings.TrimSpace(line), ",")
			col, typ, ok := strings.Cut(line, " ")
			if !ok {
				t.Fatalf("column line %q in\n%s", line, stmt)
			}
			if i := strings.Index(typ, " CODEC("); i >= 0 {
				if !strings.HasSuffix(typ, ")") || strings.Count(typ[i:], "(") != strings.Count(typ[i:], ")") {
					t.Errorf("%s.%s: malformed codec %q", name, col, typ[i:])
				}
				typ = typ[:i]
			}
			if inner, ok := strings.CutPrefix(typ, "LowCardinality("); ok {
				typ = strings.TrimSuffix(inner, ")")
			}
			out[name] = append(out[name], col+" "+typ)
		}
	}
	return out
}

// Every server kind has the same tables with the same columns, in the same
// order and of the same query-visible types: queries need not care which
// server they run on.
func TestDDLSameColumnsEverywhere(t *testing.T) {
	v1816, _ := ParseVersion("18.16.1")
	v238, _ := ParseVersion("23.8.2.7")
	ref := tableColumns(t, fullDDL(v1816, SchemaOptions{}))
	if len(ref) < 5 {
		t.Fatalf("18.16 DDL: only tables %v", ref)
	}
	for _, c := range []struct {
		name string
		s    Server
	}{{"23.8", v238}, {"18.16 cluster", Server{Major: 18, Minor: 16, Cluster: "plant"}}, {"23.8 cluster", Server{Major: 23, Minor: 8, Cluster: "plant"}}} {
		got := tableColumns(t, fullDDL(c.s, SchemaOptions{TTLDays: 400}))
		for table, cols := range ref {
			if strings.Join(got[table], ", ") != strings.Join(cols, ", ") {
				t.Errorf("%s: table %s has columns\n  %v\nwant (as on 18.16)\n  %v", c.name, table, got[table], cols)
			}
		}
		if len(got) != len(ref) {
			t.Errorf("%s: tables %d, on 18.16 %d", c.name, len(got), len(ref))
		}
	}
	// The modern server does use its features.
	modern := fullDDL(v238, SchemaOptions{TTLDays: 400})
	mustContain(t, modern, "LowCardinality(String)", "CODEC(Delta, ZSTD(1))", "CODEC(Gorilla, ZSTD(1))",
		"TTL toDateTime(intDiv(ts_ms, 1000)) + toIntervalDay(400)")
	if n := strings.Count(modern, "\nTTL "); n != 1 { // only raw readings expire
		t.Errorf("DDL has %d TTL clauses, want 1", n)
	}
}
