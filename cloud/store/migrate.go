package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migration is one versioned step of a component's schema. Versions of a
// component start at 1 and only grow; a released migration never changes.
//
// Statements returns the DDL for the given server and database. Write every
// statement so that running it twice is harmless (CREATE … IF NOT EXISTS,
// ADD COLUMN IF NOT EXISTS, or IgnoreExisting where the server has no
// IF NOT EXISTS): two processes starting at once may both apply a
// migration, and a migration interrupted half-way is applied again in full.
// Use s.OnCluster() and the capability methods of Server to adapt the DDL.
type Migration struct {
	Component string
	Version   int
	Name      string
	// Statements are run one by one, in order.
	Statements func(s Server, db string) []string
	// IgnoreExisting counts a statement that fails because its column
	// already exists as applied: ADD COLUMN on ClickHouse 18.16, which has
	// no IF NOT EXISTS for it, run a second time.
	IgnoreExisting bool
}

// MigrationsTable is the table, in the schema's database, that records the
// applied migrations.
const MigrationsTable = "schema_migrations"

// Migrate creates database db if needed, then applies, in order, every
// migration of ms whose (Component, Version) is not yet recorded in
// db.schema_migrations, and records it. Migrations run in the order of ms;
// those of one component must appear in increasing version order.
func Migrate(ctx context.Context, conn driver.Conn, s Server, db string, ms []Migration) error {
	if err := checkMigrations(ms); err != nil {
		return err
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db)+s.OnCluster()); err != nil {
		return fmt.Errorf("cannot create database %q: %w", db, err)
	}
	if err := conn.Exec(ctx, migrationsDDL(s, db)); err != nil {
		return fmt.Errorf("cannot create table %s.%s: %w", db, MigrationsTable, err)
	}
	applied, err := appliedMigrations(ctx, conn, db)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if applied[migrationKey{m.Component, m.Version}] {
			continue
		}
		for i, stmt := range m.Statements(s, db) {
			if err := conn.Exec(ctx, stmt); err != nil {
				if m.IgnoreExisting && columnExists(err) {
					continue
				}
				return fmt.Errorf("cannot apply migration %s/%d %q (statement %d): %w\n%s",
					m.Component, m.Version, m.Name, i+1, err, stmt)
			}
		}
		if err := recordMigration(ctx, conn, db, m); err != nil {
			return err
		}
	}
	return nil
}

// columnExists reports whether err is ClickHouse's "column with this
// name already exists" (code 44, ILLEGAL_COLUMN), directly or as the
// error of a distributed DDL task on a node.
func columnExists(err error) bool {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return false
	}
	return (ex.Code == 44 || strings.Contains(ex.Message, "Code: 44")) && strings.Contains(ex.Message, "already exists")
}

// recordMigration inserts the row of an applied migration. (A plain
// INSERT … VALUES through Exec hangs on ClickHouse 18.16; a prepared batch
// works everywhere.)
func recordMigration(ctx context.Context, conn driver.Conn, db string, m Migration) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+quoteIdent(db)+"."+MigrationsTable+" (component, version, name, applied_at)")
	if err == nil {
		defer batch.Close()
		err = batch.Append(m.Component, uint32(m.Version), m.Name, time.Now())
	}
	if err == nil {
		err = batch.Send()
	}
	if err != nil {
		return fmt.Errorf("cannot record migration %s/%d %q: %w", m.Component, m.Version, m.Name, err)
	}
	return nil
}

// AppliedVersion returns the highest applied version of component (0: none).
func AppliedVersion(ctx context.Context, conn driver.Conn, db, component string) (int, error) {
	applied, err := appliedMigrations(ctx, conn, db)
	if err != nil {
		return 0, err
	}
	v := 0
	for k := range applied {
		if k.component == component && k.version > v {
			v = k.version
		}
	}
	return v, nil
}

type migrationKey struct {
	component string
	version   int
}

func checkMigrations(ms []Migration) error {
	last := map[string]int{}
	for i, m := range ms {
		switch {
		case m.Component == "" || strings.ContainsAny(m.Component, "'\\"):
			return fmt.Errorf("cannot migrate: migration %d: invalid component %q", i, m.Component)
		case m.Version < 1:
			return fmt.Errorf("cannot migrate: migration %s/%d: version must be >= 1", m.Component, m.Version)
		case m.Version <= last[m.Component]:
			return fmt.Errorf("cannot migrate: migration %s/%d listed after version %d: versions must increase",
				m.Component, m.Version, last[m.Component])
		case m.Statements == nil:
			return fmt.Errorf("cannot migrate: migration %s/%d has no statements", m.Component, m.Version)
		}
		last[m.Component] = m.Version
	}
	return nil
}

func migrationsDDL(s Server, db string) string {
	engine := "ReplacingMergeTree"
	if s.Clustered() {
		// One replica set across the whole cluster: every node sees every
		// applied migration.
		engine = fmt.Sprintf("ReplicatedReplacingMergeTree(%s, '{replica}')",
			quoteString("/clickhouse/tables/"+db+"/"+MigrationsTable))
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s%s (
    component String,
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = %s
ORDER BY (component, version)`, quoteIdent(db), MigrationsTable, s.OnCluster(), engine)
}

func appliedMigrations(ctx context.Context, conn driver.Conn, db string) (map[migrationKey]bool, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT component, version FROM %s.%s FINAL", quoteIdent(db), MigrationsTable))
	if err != nil {
		return nil, fmt.Errorf("cannot read applied migrations: %w", err)
	}
	defer rows.Close()
	applied := map[migrationKey]bool{}
	for rows.Next() {
		var c string
		var v uint32
		if err := rows.Scan(&c, &v); err != nil {
			return nil, fmt.Errorf("cannot read applied migrations: %w", err)
		}
		applied[migrationKey{c, int(v)}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read applied migrations: %w", err)
	}
	return applied, nil
}
