package store

import (
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

func TestDDLModern(t *testing.T) {
	s, err := ParseVersion("23.8.2.7")
	if err != nil {
		t.Fatal(err)
	}
	ddl := allDDL(s, SchemaOptions{TTLDays: 400})
	mustContain(t, ddl,
		"    company LowCardinality(String),",
		"    project LowCardinality(String),",
		"    gateway LowCardinality(String),",
		"    metric LowCardinality(String),",
		"    device String CODEC(ZSTD(1)),",
		"    ts_ms Int64 CODEC(Delta, ZSTD(1)),",
		"    value Float64 CODEC(Gorilla, ZSTD(1)),",
		"TTL toDateTime(intDiv(ts_ms, 1000)) + toIntervalDay(400)",
		"ENGINE = ReplacingMergeTree(seq)",
	)
	// Only raw readings expire; the roll-up and the events stay.
	if n := strings.Count(ddl, "TTL "); n != 1 {
		t.Errorf("DDL has %d TTL clauses, want 1:\n%s", n, ddl)
	}
	if ddl := allDDL(s, SchemaOptions{}); strings.Contains(ddl, "TTL ") {
		t.Errorf("TTL without ttl_days:\n%s", ddl)
	}
}

func TestDDLCluster(t *testing.T) {
	s := Server{Major: 23, Minor: 8, Cluster: "plant"}
	ddl := allDDL(s, SchemaOptions{})
	mustContain(t, ddl,
		"CREATE TABLE IF NOT EXISTS `plantroom`.readings_local ON CLUSTER `plant` (",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantroom/readings_local', '{replica}', seq)",
		"CREATE TABLE IF NOT EXISTS `plantroom`.readings ON CLUSTER `plant` AS `plantroom`.readings_local\nENGINE = Distributed(`plant`, `plantroom`, readings_local, cityHash64(company, project, device))",
		"ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/plantroom/readings_hourly_local', '{replica}')",
		"ENGINE = Distributed(`plant`, `plantroom`, readings_hourly_local, cityHash64(company, project, device))",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS `plantroom`.readings_hourly_mv ON CLUSTER `plant` TO `plantroom`.readings_hourly_local AS",
		"FROM `plantroom`.readings_local\nWHERE quality < 2",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantroom/events_local', '{replica}')",
	)
	if got := migrationsDDL(s, "plantroom"); !strings.Contains(got, "ON CLUSTER `plant`") ||
		!strings.Contains(got, "ReplicatedReplacingMergeTree('/clickhouse/tables/plantroom/schema_migrations', '{replica}')") {
		t.Errorf("schema_migrations DDL on a cluster:\n%s", got)
	}
}
