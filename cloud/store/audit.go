package store

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// This file holds the queries of the tools that check from outside what a
// database holds (the drills, the load generators), so that no package
// outside cloud/store writes SQL.

// DropDatabase removes database name (and everything in it) from the server
// o.Addr; a missing database is not an error. o.Database is not used.
func DropDatabase(ctx context.Context, o Options, name string) error {
	if err := checkIdent(name); err != nil {
		return fmt.Errorf("cannot drop database %q: %w", name, err)
	}
	o = o.withDefaults()
	admin, err := dial(ctx, o, "default")
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)); err != nil {
		return fmt.Errorf("cannot drop database %q on %s: %w", name, o.Addr, err)
	}
	return nil
}

// GatewayScope names one gateway's readings.
type GatewayScope struct {
	Company, Project, Gateway string
}

// Audit reads what one database holds for a gateway, the way an outside
// check needs it: with FINAL (what every reader sees) and without (what is
// physically there, duplicates not merged yet).
type Audit struct {
	conn     driver.Conn
	database string
}

// NewAudit reads database through conn (whatever its default database).
func NewAudit(conn driver.Conn, database string) (*Audit, error) {
	if err := checkIdent(database); err != nil {
		return nil, fmt.Errorf("cannot audit database %q: %w", database, err)
	}
	return &Audit{conn: conn, database: database}, nil
}

func (a *Audit) table(name string) string { return quoteIdent(a.database) + "." + name }

const auditWhere = " WHERE company = ? AND project = ? AND gateway = ?"

func (a *Audit) count(ctx context.Context, q string, args ...any) (int64, error) {
	var n uint64
	if err := a.conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot query %q: %w", q, err)
	}
	return int64(n), nil
}

// StoredReadings counts the gateway's readings as every reader must: with
// FINAL.
func (a *Audit) StoredReadings(ctx context.Context, g GatewayScope) (int64, error) {
	return a.count(ctx, "SELECT count() FROM "+a.table(TableReadings)+" FINAL"+auditWhere, g.Company, g.Project, g.Gateway)
}

// StoredCounts are four ways of counting a gateway's readings.
type StoredCounts struct {
	Distinct int64 // distinct (device, metric, ts_ms)
	Final    int64 // rows read with FINAL (the storage rule)
	Raw      int64 // rows without FINAL: duplicates not merged yet included
	Rollup   int64 // readings counted by the hourly roll-up of the gateway's project
}

// Counts counts the gateway's readings four ways.
func (a *Audit) Counts(ctx context.Context, g GatewayScope) (StoredCounts, error) {
	var c StoredCounts
	var err error
	if c.Final, err = a.StoredReadings(ctx, g); err != nil {
		return c, err
	}
	if c.Distinct, err = a.count(ctx, "SELECT uniqExact(device, metric, ts_ms) FROM "+a.table(TableReadings)+auditWhere, g.Company, g.Project, g.Gateway); err != nil {
		return c, err
	}
	if c.Raw, err = a.count(ctx, "SELECT count() FROM "+a.table(TableReadings)+auditWhere, g.Company, g.Project, g.Gateway); err != nil {
		return c, err
	}
	c.Rollup, err = a.count(ctx, `SELECT sum(n) FROM (
    SELECT uniqExactMerge(n) AS n FROM `+a.table(TableHourly)+`
    WHERE company = ? AND project = ?
    GROUP BY company, project, device, metric, hour_ms)`, g.Company, g.Project)
	return c, err
}

// ReadingTimes calls fn with each distinct (device, ts_ms) of the
// gateway's readings, by device then time.
func (a *Audit) ReadingTimes(ctx context.Context, g GatewayScope, fn func(device string, tsMS int64)) error {
	rows, err := a.conn.Query(ctx, "SELECT DISTINCT device, ts_ms FROM "+a.table(TableReadings)+auditWhere+" ORDER BY device, ts_ms",
		g.Company, g.Project, g.Gateway)
	if err != nil {
		return fmt.Errorf("cannot read the reading times of gateway %q: %w", g.Gateway, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var ts int64
		if err := rows.Scan(&d, &ts); err != nil {
			return fmt.Errorf("cannot read the reading times of gateway %q: %w", g.Gateway, err)
		}
		fn(d, ts)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read the reading times of gateway %q: %w", g.Gateway, err)
	}
	return nil
}

// GoodSeries is a device's good and uncertain readings of one metric (with
// FINAL), oldest first.
func (a *Audit) GoodSeries(ctx context.Context, g GatewayScope, device, metric string) (tsMS []int64, values []float64, err error) {
	rows, err := a.conn.Query(ctx, "SELECT ts_ms, value FROM "+a.table(TableReadings)+" FINAL"+auditWhere+
		" AND device = ? AND metric = ? AND quality < 2 ORDER BY ts_ms", g.Company, g.Project, g.Gateway, device, metric)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read %s of device %q: %w", metric, device, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ts int64
		var v float64
		if err := rows.Scan(&ts, &v); err != nil {
			return nil, nil, fmt.Errorf("cannot read %s of device %q: %w", metric, device, err)
		}
		tsMS, values = append(tsMS, ts), append(values, v)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("cannot read %s of device %q: %w", metric, device, err)
	}
	return tsMS, values, nil
}
