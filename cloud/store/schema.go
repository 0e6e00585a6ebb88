package store

import (
	"fmt"
	"strings"
)

// Table names of the readings schema. In cluster mode these are Distributed
// tables over <name>_local.
const (
	TableReadings     = "readings"
	TableHourly       = "readings_hourly"
	ViewHourly        = "readings_hourly_mv"
	TableEvents       = "events"
	ComponentReadings = "readings"
)

// SchemaOptions are the choices the readings schema leaves to configuration.
type SchemaOptions struct {
	// TTLDays drops raw readings older than this many days on servers with
	// TTL support (0: keep forever). The hourly roll-up and the events are
	// kept. It takes effect when the table is created.
	TTLDays int
}

// ReadingsMigrations returns the migrations of the readings schema
// (component "readings"): raw readings, the hourly roll-up with its
// materialized view, the event log, the committed batches and the stored
// counter step summaries; and the
// quarantine of refused rows (component "quarantine").
func ReadingsMigrations(o SchemaOptions) []Migration {
	return []Migration{
		{Component: ComponentReadings, Version: 1, Name: "readings", Statements: func(s Server, db string) []string {
			return readingsDDL(s, db, o)
		}},
		{Component: ComponentReadings, Version: 2, Name: "readings_hourly", Statements: hourlyDDL},
		{Component: ComponentReadings, Version: 3, Name: "events", Statements: eventsDDL},
		{Component: ComponentReadings, Version: 4, Name: "committed_batches", Statements: committedDDL},
		{Component: ComponentReadings, Version: 5, Name: "counter_steps", Statements: counterStepsDDL},
		{Component: ComponentReadings, Version: 6, Name: "readings_bad_cause", Statements: badCauseDDL, IgnoreExisting: true},
		{Component: ComponentReadings, Version: 7, Name: "readings_hourly_rows", Statements: hourlyRowsDDL, IgnoreExisting: true},
		{Component: ComponentQuarantine, Version: 1, Name: "quarantine", Statements: quarantineDDL},
	}
}

// column is one column definition: name, type, and the codec used where the
// server has codecs.
type column struct {
	name, typ, codec string
	lowCard          bool // LowCardinality(typ) where supported
}

func (c column) ddl(s Server) string {
	t := c.typ
	if c.lowCard && s.HasLowCardinality() {
		t = "LowCardinality(" + t + ")"
	}
	out := "    " + c.name + " " + t
	if c.codec != "" && s.HasCodecs() {
		out += " CODEC(" + c.codec + ")"
	}
	return out
}

func columnsDDL(s Server, cols []column) string {
	lines := make([]string, len(cols))
	for i, c := range cols {
		lines[i] = c.ddl(s)
	}
	return strings.Join(lines, ",\n")
}

// ReadingsColumns is the column list of readings in insert order.
const ReadingsColumns = "company, project, gateway, device, metric, ts_ms, value, quality, seq, bad_cause"

var readingsCols = []column{
	{name: "company", typ: "String", lowCard: true},
	{name: "project", typ: "String", lowCard: true},
	{name: "gateway", typ: "String", lowCard: true},
	{name: "device", typ: "String", codec: "ZSTD(1)"},
	{name: "metric", typ: "String", lowCard: true},
	{name: "ts_ms", typ: "Int64", codec: "Delta, ZSTD(1)"},
	{name: "value", typ: "Float64", codec: "Gorilla, ZSTD(1)"},
	{name: "quality", typ: "UInt8", codec: "ZSTD(1)"},
	{name: "seq", typ: "UInt64", codec: "Delta, ZSTD(1)"},
}

var hourlyCols = []column{
	{name: "company", typ: "String", lowCard: true},
	{name: "project", typ: "String", lowCard: true},
	{name: "device", typ: "String", codec: "ZSTD(1)"},
	{name: "metric", typ: "String", lowCard: true},
	{name: "hour_ms", typ: "Int64", codec: "Delta, ZSTD(1)"},
	{name: "min_v", typ: "AggregateFunction(min, Float64)"},
	{name: "max_v", typ: "AggregateFunction(max, Float64)"},
	{name: "first_v", typ: "AggregateFunction(argMin, Float64, Int64)"},
	{name: "first_ts", typ: "AggregateFunction(min, Int64)"},
	{name: "last_v", typ: "AggregateFunction(argMax, Float64, Int64)"},
	{name: "last_ts", typ: "AggregateFunction(max, Int64)"},
	{name: "n", typ: "AggregateFunction(uniqExact, Int64)"},
}

// hourlyVersionCols are the roll-up's version of an hour (migration 7):
// n_rows counts every row inserted for the hour, duplicates included, and
// ts_sum sums their timestamps. They are no figures (a duplicate changes
// them) but the key of what was worked out from the hour's readings:
// every insert into the hour changes n_rows, and n_rows ≥ the hour's readings.
var hourlyVersionCols = []column{
	{name: "n_rows", typ: "AggregateFunction(count)"},
	{name: "ts_sum", typ: "AggregateFunction(sum, Int64)"},
}

// EventsColumns is the column list of events in insert order.
const EventsColumns = "company, project, gateway, device, kind, ts_ms, seq, message, attrs, arrived_ms"

var eventsCols = []column{
	{name: "company", typ: "String", lowCard: true},
	{name: "project", typ: "String", lowCard: true},
	{name: "gateway", typ: "String", lowCard: true},
	{name: "device", typ: "String"},
	{name: "kind", typ: "String", lowCard: true},
	{name: "ts_ms", typ: "Int64", codec: "Delta, ZSTD(1)"},
	{name: "seq", typ: "UInt64"},
	{name: "message", typ: "String", codec: "ZSTD(1)"},
	{name: "attrs", typ: "String", codec: "ZSTD(1)"}, // JSON object of numbers
	{name: "arrived_ms", typ: "Int64"},
}

// table describes one MergeTree-family table and, in cluster mode, its
// Distributed front.
type table struct {
	name      string
	cols      []column
	engine    string // "ReplacingMergeTree", "AggregatingMergeTree"
	args      string // engine arguments, e.g. "seq"
	partition string
	orderBy   string
	ttl       string
	shardKey  string
}

// localName is the name of the table that holds the data.
func localName(s Server, name string) string {
	if s.Clustered() {
		return name + "_local"
	}
	return name
}

func (t table) ddl(s Server, db string) []string {
	local := localName(s, t.name)
	engine := t.engine + "(" + t.args + ")"
	if s.Clustered() {
		args := quoteString("/clickhouse/tables/{shard}/"+db+"/"+local) + ", '{replica}'"
		if t.args != "" {
			args += ", " + t.args
		}
		engine = "Replicated" + t.engine + "(" + args + ")"
	}
	stmt := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s (\n%s\n) ENGINE = %s\nPARTITION BY %s\nORDER BY (%s)",
		quoteIdent(db), local, s.OnCluster(), columnsDDL(s, t.cols), engine, t.partition, t.orderBy)
	if t.ttl != "" {
		stmt += "\nTTL " + t.ttl
	}
	out := []string{stmt}
	if s.Clustered() {
		out = append(out, t.distributedDDL(s, db))
	}
	return out
}

// distributedDDL creates the Distributed front of a table in cluster mode.
func (t table) distributedDDL(s Server, db string) string {
	local := localName(s, t.name)
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s.%s\nENGINE = Distributed(%s, %s, %s, %s)",
		quoteIdent(db), t.name, s.OnCluster(), quoteIdent(db), local,
		quoteIdent(s.Cluster), quoteIdent(db), local, t.shardKey)
}

const shardByDevice = "cityHash64(company, project, device)"

func readingsDDL(s Server, db string, o SchemaOptions) []string {
	return readingsTable(s, o).ddl(s, db)
}

func readingsTable(s Server, o SchemaOptions) table {
	t := table{
		name: TableReadings, cols: readingsCols,
		engine: "ReplacingMergeTree", args: "seq",
		partition: "toYYYYMM(toDateTime(intDiv(ts_ms, 1000)))",
		orderBy:   "company, project, device, metric, ts_ms",
		shardKey:  shardByDevice,
	}
	if o.TTLDays > 0 && s.HasTTL() {
		t.ttl = fmt.Sprintf("toDateTime(intDiv(ts_ms, 1000)) + toIntervalDay(%d)", o.TTLDays)
	}
	return t
}

// badCauseDDL adds bad_cause to readings (migration 6): why a reading is
// stored with bad quality (the ingest's causes, e.g. out_of_range; "gateway"
// when the gateway sent it bad), "" for the others. As
// EventLogColumnsMigration does: a plain ADD COLUMN on 18.16 (Migrate's
// IgnoreExisting), and in cluster mode the column goes to readings_local
// and the Distributed readings is created again over it (18.16 refuses
// ALTER … ON CLUSTER of it). An insert the Distributed table has not yet
// forwarded is dropped with it: on a cluster, apply this migration with the
// writing cloud processes stopped, or with insert_distributed_sync = 1 (a
// replica inserting meanwhile gets "table doesn't exist", a transient
// error, and retries).
func badCauseDDL(s Server, db string) []string {
	col := strings.TrimSpace(column{name: "bad_cause", typ: "String", lowCard: true}.ddl(s)) + " DEFAULT ''"
	ifNotExists := "" // 18.16 has none: Migrate's IgnoreExisting
	if s.Modern() {
		ifNotExists = "IF NOT EXISTS "
	}
	out := []string{fmt.Sprintf("ALTER TABLE %s.%s%s ADD COLUMN %s%s", quoteIdent(db), localName(s, TableReadings), s.OnCluster(), ifNotExists, col)}
	if s.Clustered() {
		out = append(out,
			fmt.Sprintf("DROP TABLE IF EXISTS %s.%s%s", quoteIdent(db), TableReadings, s.OnCluster()),
			readingsTable(s, SchemaOptions{}).distributedDDL(s, db))
	}
	return out
}

func hourlyDDL(s Server, db string) []string {
	t := table{
		name: TableHourly, cols: hourlyCols,
		engine:    "AggregatingMergeTree",
		partition: "toYYYYMM(toDateTime(intDiv(hour_ms, 1000)))",
		orderBy:   "company, project, device, metric, hour_ms",
		shardKey:  shardByDevice,
	}
	out := t.ddl(s, db)
	// The view lives next to the local tables: on a cluster each shard rolls
	// up the readings it stores.
	return append(out, hourlyViewDDL(s, db, ViewHourly, false))
}

// hourlyViewDDL is the materialized view named view that rolls readings up
// into readings_hourly; withVersion adds the columns of migration 7.
func hourlyViewDDL(s Server, db, view string, withVersion bool) string {
	version := ""
	if withVersion {
		version = ",\n    countState() AS n_rows,\n    sumState(ts_ms) AS ts_sum"
	}
	return fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s.%s%s TO %s.%s AS
SELECT
    company, project, device, metric,
    intDiv(ts_ms, 3600000) * 3600000 AS hour_ms,
    minState(value) AS min_v,
    maxState(value) AS max_v,
    argMinState(value, ts_ms) AS first_v,
    minState(ts_ms) AS first_ts,
    argMaxState(value, ts_ms) AS last_v,
    maxState(ts_ms) AS last_ts,
    uniqExactState(ts_ms) AS n%s
FROM %s.%s
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms`,
		quoteIdent(db), view, s.OnCluster(), quoteIdent(db), localName(s, TableHourly), version,
		quoteIdent(db), localName(s, TableReadings))
}

// hourlyRowsDDL (migration 7) gives every roll-up hour its version, n_rows
// and ts_sum (hourlyVersionCols): energy reports key what they work out
// from an hour's raw readings by it, instead of by the exact reading count
// n, whose hash sets cost 20 times as much to read as the rest of the row.
//
//  1. The columns are added to readings_hourly and to counter_steps (there
//     the roll-up row a summary belongs to); on a cluster to the local
//     tables, and the Distributed fronts are created again over them (as
//     badCauseDDL does).
//  2. The view is replaced by one that fills them too, without a moment
//     without a view: a second view with the new query starts first, the
//     old one is dropped and created again with the new query, then the
//     second view goes. An insert meanwhile is rolled up twice, which
//     changes no figure (every other column ignores duplicates) and only
//     raises that hour's n_rows.
//  3. Existing hours get theirs from the raw readings (rows still stored,
//     so duplicates already merged away are not counted). An insert during
//     the backfill may be counted twice; a backfill run again counts all
//     again: the version then differs from what the raw readings give,
//     which costs reports a check of the exact count (cloud/store Steps),
//     never a wrong figure.
func hourlyRowsDDL(s Server, db string) []string {
	var out []string
	ifNotExists := "" // 18.16 has none: Migrate's IgnoreExisting
	if s.Modern() {
		ifNotExists = "IF NOT EXISTS "
	}
	addCols := func(name string, cols []column) {
		for _, c := range cols {
			out = append(out, fmt.Sprintf("ALTER TABLE %s.%s%s ADD COLUMN %s%s", quoteIdent(db), localName(s, name), s.OnCluster(), ifNotExists, strings.TrimSpace(c.ddl(s))))
		}
	}
	addCols(TableHourly, hourlyVersionCols)
	addCols(TableCounterSteps, counterStepsVersionCols)
	if s.Clustered() {
		hourly := table{name: TableHourly, shardKey: shardByDevice}
		steps := table{name: TableCounterSteps, shardKey: counterStepsShardKey}
		out = append(out,
			fmt.Sprintf("DROP TABLE IF EXISTS %s.%s%s", quoteIdent(db), TableHourly, s.OnCluster()),
			hourly.distributedDDL(s, db),
			fmt.Sprintf("DROP TABLE IF EXISTS %s.%s%s", quoteIdent(db), TableCounterSteps, s.OnCluster()),
			steps.distributedDDL(s, db))
	}
	next := ViewHourly + "_next"
	out = append(out,
		hourlyViewDDL(s, db, next, true),
		fmt.Sprintf("DROP TABLE IF EXISTS %s.%s%s", quoteIdent(db), ViewHourly, s.OnCluster()),
		hourlyViewDDL(s, db, ViewHourly, true),
		fmt.Sprintf("DROP TABLE IF EXISTS %s.%s%s", quoteIdent(db), next, s.OnCluster()),
		// On a cluster through the Distributed tables: both are sharded
		// alike, so each hour's rows go to the shard of its readings.
		fmt.Sprintf(`INSERT INTO %s.%s (company, project, device, metric, hour_ms, n_rows, ts_sum)
SELECT company, project, device, metric, intDiv(ts_ms, 3600000) * 3600000 AS hour_ms, countState() AS n_rows, sumState(ts_ms) AS ts_sum
FROM %s.%s
WHERE quality < 2
GROUP BY company, project, device, metric, hour_ms`, quoteIdent(db), TableHourly, quoteIdent(db), TableReadings))
	return out
}

func eventsDDL(s Server, db string) []string {
	t := table{
		name: TableEvents, cols: eventsCols,
		engine:    "ReplacingMergeTree",
		partition: "toYYYYMM(toDateTime(intDiv(ts_ms, 1000)))",
		orderBy:   "company, project, gateway, kind, device, ts_ms, seq",
		shardKey:  "cityHash64(company, project, gateway)",
	}
	return t.ddl(s, db)
}
