package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Querier is the part of a ClickHouse connection the event logs use
// (driver.Conn has it).
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) error
	Select(ctx context.Context, dest any, query string, args ...any) error
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// EventLog is an append-only event log in one table: alarms, work orders,
// and what comes next (commands, resident requests) each have one. One row
// per event carries the thing as it stood after the event, so its current
// state is its row with the highest n; (key, n) identifies an event, seq
// orders every event of the deployment (the feed's sequence), and
// ReplacingMergeTree(seq) collapses an event stored twice, which every
// read here also drops (LIMIT 1 BY key, n) before the merge has run.
//
// R is the row type: a struct whose fields carry `ch:"column"` tags, in
// column order. The Go types give the column types (string: String,
// uint8/uint32/uint64: UInt8/UInt32/UInt64, int64: Int64, float64:
// Float64, time.Time: DateTime). Every log has the columns key, n (UInt32),
// seq (UInt64), at (DateTime: the month partition), at_ms (Int64),
// company, project and device; a log whose rows name a gateway too
// (column gateway) finds a gateway's events by Subject.
//
// A column added after the table was created carries the version of the
// migration that adds it (`ch:"follows" since:"2"`): EventLogMigration
// creates the table without it, EventLogColumnsMigration of that version
// adds it to tables created before.
type EventLog[R any] struct {
	conn    Querier
	table   string
	key     string
	cols    []eventColumn
	list    string // column list for SELECT and INSERT
	timeout time.Duration
	journal *journal // nil: none (WithJournal)
}

type eventColumn struct {
	name, typ string
	since     int // migration version that adds the column (1: the table's creation)
}

// eventColumns reads the columns of row type R; it panics with "BUG:" on
// a type it cannot store or a missing required column.
func eventColumns[R any](key string) []eventColumn {
	var zero R
	t := reflect.TypeOf(zero)
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("BUG: event row type %s is not a struct", t))
	}
	var cols []eventColumn
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("ch")
		if name == "" || name == "-" {
			continue
		}
		var typ string
		switch {
		case f.Type == reflect.TypeOf(time.Time{}):
			typ = "DateTime"
		case f.Type.Kind() == reflect.String:
			typ = "String"
		case f.Type.Kind() == reflect.Uint8:
			typ = "UInt8"
		case f.Type.Kind() == reflect.Uint32:
			typ = "UInt32"
		case f.Type.Kind() == reflect.Uint64:
			typ = "UInt64"
		case f.Type.Kind() == reflect.Int64:
			typ = "Int64"
		case f.Type.Kind() == reflect.Float64:
			typ = "Float64"
		default:
			panic(fmt.Sprintf("BUG: event row %s: field %s has type %s, which the event log cannot store", t, f.Name, f.Type))
		}
		if err := checkIdent(name); err != nil {
			panic(fmt.Sprintf("BUG: event row %s: column %q: %v", t, name, err))
		}
		since := 1
		if v := f.Tag.Get("since"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				panic(fmt.Sprintf("BUG: event row %s: column %q: since %q is not a migration version", t, name, v))
			}
			since = n
		}
		cols = append(cols, eventColumn{name, typ, since})
	}
	for _, need := range []eventColumn{{key, "String", 1}, {"n", "UInt32", 1}, {"seq", "UInt64", 1}, {"at", "DateTime", 1},
		{"at_ms", "Int64", 1}, {"company", "String", 1}, {"project", "String", 1}, {"device", "String", 1}} {
		if !slices.ContainsFunc(cols, func(c eventColumn) bool { return c.name == need.name && c.typ == need.typ && c.since == 1 }) {
			panic(fmt.Sprintf("BUG: event row %s lacks column %s %s", t, need.name, need.typ))
		}
	}
	return cols
}

// NewEventLog returns the log in table (created by EventLogMigration) over
// conn, whose default database holds it. key is the column naming what
// the events are about (alarm_id, wo_id).
func NewEventLog[R any](conn Querier, table, key string) *EventLog[R] {
	if err := checkIdent(table); err != nil {
		panic(fmt.Sprintf("BUG: event log table %q: %v", table, err))
	}
	cols := eventColumns[R](key)
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return &EventLog[R]{conn: conn, table: quoteIdent(table), key: key, cols: cols,
		list: strings.Join(names, ", "), timeout: 15 * time.Second}
}

// EventLogMigration is the migration creating the table of an event log
// with rows of type R: a ReplacingMergeTree(seq) partitioned by month of
// column at and ordered by (company, project, key, n). It works on
// ClickHouse 18.16. On a cluster the data lives in a Replicated table
// <table>_local behind a Distributed table sharded by (company, project),
// so the copies of one event always meet on one shard.
// Columns added by a later version (tag since) are left out.
func EventLogMigration[R any](component string, version int, table, key string) Migration {
	cols := eventColumns[R](key)
	return Migration{Component: component, Version: version, Name: table, Statements: func(s Server, db string) []string {
		var defs []string
		for _, c := range cols {
			if c.since <= version {
				defs = append(defs, c.name+" "+c.typ)
			}
		}
		local, engine := table, "ReplacingMergeTree(seq)"
		if s.Clustered() {
			local = table + "_local"
			engine = fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/%s', '{replica}', seq)", db, local)
		}
		out := []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s (\n    %s\n) ENGINE = %s\nPARTITION BY toYYYYMM(at)\nORDER BY (company, project, %s, n)",
			quoteIdent(db), quoteIdent(local), s.OnCluster(), strings.Join(defs, ",\n    "), engine, key)}
		if s.Clustered() {
			out = append(out, distributedEventLog(s, db, table))
		}
		return out
	}}
}

// distributedEventLog is the DDL of an event log's Distributed table over
// its Replicated <table>_local on a cluster.
func distributedEventLog(s Server, db, table string) string {
	local := table + "_local"
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s.%s ENGINE = Distributed(%s, %s, %s, cityHash64(company, project))",
		quoteIdent(db), quoteIdent(table), s.OnCluster(), quoteIdent(db), quoteIdent(local),
		quoteIdent(s.Cluster), quoteIdent(db), quoteIdent(local))
}

// EventLogColumnsMigration is the migration adding to an event log's
// table (created by EventLogMigration) the columns of R tagged
// since:"<version>". Rows stored before read them as their type's zero
// value. ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: there the
// statement is a plain ADD COLUMN and Migrate counts "column already
// exists" as applied (IgnoreExisting). On a cluster the column goes to the
// Replicated table on every node, and the Distributed table is created
// again over it (ClickHouse 18.16 refuses ALTER … ON CLUSTER of a
// Distributed table on a cluster with internal replication). A Distributed
// table holds no data of its own, but an insert it has not yet forwarded
// to the shards is dropped with it: on a cluster, apply this migration
// with the cloud processes that write stopped (docs/cloud.md).
func EventLogColumnsMigration[R any](component string, version int, table, key string) Migration {
	var add []eventColumn
	for _, c := range eventColumns[R](key) {
		if c.since == version {
			add = append(add, c)
		}
	}
	if len(add) == 0 || version < 2 {
		panic(fmt.Sprintf("BUG: event log %s: no column has since:\"%d\" (version 2 or later)", table, version))
	}
	names := make([]string, len(add))
	for i, c := range add {
		names[i] = c.name
	}
	return Migration{Component: component, Version: version, Name: table + " + " + strings.Join(names, ", "), IgnoreExisting: true,
		Statements: func(s Server, db string) []string {
			ifNot := ""
			if s.Modern() {
				ifNot = "IF NOT EXISTS "
			}
			t := table
			if s.Clustered() {
				t = table + "_local"
			}
			var out []string
			for _, c := range add {
				out = append(out, fmt.Sprintf("ALTER TABLE %s.%s%s ADD COLUMN %s%s %s",
					quoteIdent(db), quoteIdent(t), s.OnCluster(), ifNot, c.name, c.typ))
			}
			if s.Clustered() {
				out = append(out, fmt.Sprintf("DROP TABLE IF EXISTS %s.%s%s", quoteIdent(db), quoteIdent(table), s.OnCluster()),
					distributedEventLog(s, db, table))
			}
			return out
		}}
}

// Append stores rows in one insert; a log with a journal first journals
// their keys (a failure stores nothing: the caller retries the whole
// append, and a touch written twice changes nothing).
func (l *EventLog[R]) Append(ctx context.Context, rows []R) error {
	if len(rows) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if l.journal != nil {
		if err := l.touch(ctx, rows); err != nil {
			return err
		}
	}
	return l.insert(ctx, rows)
}

// Import stores rows without journaling them: a history loaded into a
// log before its owner first starts (which then reads it whole, finding
// no snapshot). Events stored while an owner runs go through Append.
func (l *EventLog[R]) Import(ctx context.Context, rows []R) error {
	if len(rows) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	return l.insert(ctx, rows)
}

func (l *EventLog[R]) insert(ctx context.Context, rows []R) error {
	b, err := l.conn.PrepareBatch(ctx, "INSERT INTO "+l.table+" ("+l.list+")")
	if err != nil {
		return fmt.Errorf("cannot store events in %s: %w", l.table, err)
	}
	defer b.Close()
	for i := range rows {
		if err := b.AppendStruct(&rows[i]); err != nil {
			return fmt.Errorf("cannot store event %d of %d in %s: %w", i+1, len(rows), l.table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot store events in %s: %w", l.table, err)
	}
	return nil
}

// Latest returns the latest event of every key.
func (l *EventLog[R]) Latest(ctx context.Context) ([]R, error) {
	return l.query(ctx, "SELECT "+l.list+" FROM "+l.table+" ORDER BY "+l.key+", n DESC LIMIT 1 BY "+l.key, 4)
}

// All returns every event, each once, by key and n.
func (l *EventLog[R]) All(ctx context.Context) ([]R, error) {
	return l.selectEvents(ctx, "", l.key+", n", 0, 4)
}

// Since returns up to limit events with seq > after in seq order (limit 0:
// no limit).
func (l *EventLog[R]) Since(ctx context.Context, after uint64, limit int) ([]R, error) {
	return l.selectEvents(ctx, "WHERE seq > ?", "seq", limit, 1, after)
}

// Of returns the events of one key, oldest first.
func (l *EventLog[R]) Of(ctx context.Context, key string) ([]R, error) {
	return l.selectEvents(ctx, "WHERE "+l.key+" = ?", "n", 0, 1, key)
}

// Subject returns the events of a project's device between from and to,
// oldest first; subject may also name a gateway, whose own events (device
// "") a log with a gateway column finds.
func (l *EventLog[R]) Subject(ctx context.Context, project, subject string, from, to time.Time) ([]R, error) {
	where := "WHERE project = ? AND device = ? AND at >= ? AND at < ?"
	args := []any{project, subject, from.UTC(), to.UTC()}
	if slices.ContainsFunc(l.cols, func(c eventColumn) bool { return c.name == "gateway" && c.typ == "String" }) {
		where = "WHERE project = ? AND (device = ? OR (device = '' AND gateway = ?)) AND at >= ? AND at < ?"
		args = []any{project, subject, subject, from.UTC(), to.UTC()}
	}
	return l.selectEvents(ctx, where, "at_ms, "+l.key+", n", 0, 1, args...)
}

// selectEvents selects events once each; limit 0 means no limit, wait
// scales the timeout.
func (l *EventLog[R]) selectEvents(ctx context.Context, where, order string, limit int, wait time.Duration, args ...any) ([]R, error) {
	q := "SELECT " + l.list + " FROM " + l.table + " " + where + " ORDER BY " + order + " LIMIT 1 BY " + l.key + ", n"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	return l.query(ctx, q, wait, args...)
}

func (l *EventLog[R]) query(ctx context.Context, q string, wait time.Duration, args ...any) ([]R, error) {
	ctx, cancel := context.WithTimeout(ctx, wait*l.timeout)
	defer cancel()
	var rows []R
	if err := l.conn.Select(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("cannot read events of %s: %w", l.table, err)
	}
	return rows, nil
}
