package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Options are the connection and schema settings of the cloud's ClickHouse.
type Options struct {
	Addr     string // host:port of the native protocol, e.g. "127.0.0.1:19000"
	Database string // created if missing; "plantroom" when empty
	User     string // "default" when empty
	Password string
	// Cluster, when not empty, makes every DDL statement run ON CLUSTER and
	// the tables Replicated* behind Distributed (see the package doc).
	Cluster string
	Schema  SchemaOptions
	// DialTimeout bounds connecting (default 10s); ReadTimeout bounds each
	// query's wait for the server (default 2m).
	DialTimeout, ReadTimeout time.Duration
	// MaxOpenConns bounds the connection pool (default 8).
	MaxOpenConns int
	// MonthsPerInsert bounds the months one INSERT of readings spans (see
	// InsertReadings); 0 means MaxMonthsPerInsert. Either is lowered to
	// fit the server's max_partitions_per_insert_block.
	MonthsPerInsert int
}

// DefaultDatabase is the database used when Options.Database is empty.
const DefaultDatabase = "plantroom"

func (o Options) withDefaults() Options {
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.User == "" {
		o.User = "default"
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 2 * time.Minute
	}
	if o.MaxOpenConns == 0 {
		o.MaxOpenConns = 8
	}
	if o.MonthsPerInsert <= 0 {
		o.MonthsPerInsert = MaxMonthsPerInsert
	}
	return o
}

func (o Options) clickhouse(db string) *clickhouse.Options {
	return &clickhouse.Options{
		Protocol:         clickhouse.Native,
		Addr:             []string{o.Addr},
		Auth:             clickhouse.Auth{Database: db, Username: o.User, Password: o.Password},
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout:      o.DialTimeout,
		ReadTimeout:      o.ReadTimeout,
		MaxOpenConns:     o.MaxOpenConns,
		MaxIdleConns:     o.MaxOpenConns,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
	}
}

// DB is an open connection pool to the cloud's ClickHouse database.
type DB struct {
	conn   driver.Conn
	server Server
	opts   Options
	// monthsPerInsert bounds the months one INSERT of readings touches
	// (see InsertReadings).
	monthsPerInsert int
}

// Open connects to ClickHouse, detects the server version and creates the
// database if it does not exist. The returned DB's connection uses that
// database as its default. Open does not migrate; call Migrate.
func Open(ctx context.Context, o Options) (*DB, error) {
	o = o.withDefaults()
	if err := checkIdent(o.Database); err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse database %q: %w", o.Database, err)
	}
	admin, err := dial(ctx, o, "default")
	if err != nil {
		return nil, err
	}
	s, err := DetectServer(ctx, admin, o.Cluster)
	if err == nil {
		err = admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(o.Database)+s.OnCluster())
		if err != nil {
			err = fmt.Errorf("cannot create database %q on %s: %w", o.Database, o.Addr, err)
		}
	}
	admin.Close()
	if err != nil {
		return nil, err
	}
	conn, err := dial(ctx, o, o.Database)
	if err != nil {
		return nil, err
	}
	months, err := monthsPerInsert(ctx, conn, o.MonthsPerInsert)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &DB{conn: conn, server: s, opts: o, monthsPerInsert: months}, nil
}

// monthsPerInsert is months, or less when the server's
// max_partitions_per_insert_block is set below twice that (the setting
// exists since 19.x; 0 there means no limit).
func monthsPerInsert(ctx context.Context, conn driver.Conn, months int) (int, error) {
	rows, err := conn.Query(ctx, "SELECT value FROM system.settings WHERE name = 'max_partitions_per_insert_block'")
	if err != nil {
		return 0, fmt.Errorf("cannot read max_partitions_per_insert_block: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return 0, fmt.Errorf("cannot read max_partitions_per_insert_block: %w", err)
		}
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			months = min(months, max(1, n/2))
		}
	}
	return months, rows.Err()
}

func dial(ctx context.Context, o Options, db string) (driver.Conn, error) {
	conn, err := clickhouse.Open(o.clickhouse(db))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to ClickHouse at %q: %w", o.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot connect to ClickHouse at %q (database %q): %w", o.Addr, db, err)
	}
	return conn, nil
}

// checkIdent accepts plain identifiers only, so database names need no
// quoting in queries written by other packages.
func checkIdent(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("must be 1 to 64 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("only letters, digits and '_' are allowed, starting with a letter or '_'")
		}
	}
	return nil
}

// Conn is the connection pool; its default database is Database().
func (db *DB) Conn() driver.Conn { return db.conn }

// Server is the detected server version and the configured cluster.
func (db *DB) Server() Server { return db.server }

// Database is the schema's database name.
func (db *DB) Database() string { return db.opts.Database }

// Migrate applies the readings schema followed by extra migrations of other
// components (see Migrate).
func (db *DB) Migrate(ctx context.Context, extra ...Migration) error {
	ms := append(ReadingsMigrations(db.opts.Schema), extra...)
	return Migrate(ctx, db.conn, db.server, db.opts.Database, ms)
}

// Ping checks that the server answers.
func (db *DB) Ping(ctx context.Context) error { return db.conn.Ping(ctx) }

// Close closes the connection pool.
func (db *DB) Close() error { return db.conn.Close() }

// Options returns the options the DB was opened with, defaults filled in.
func (db *DB) Options() Options { return db.opts }
