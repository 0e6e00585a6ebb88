// Package chtest gives tests a real ClickHouse server to run against.
//
// Use NewDatabase(t) for a fresh database (dropped at cleanup) and a
// connection bound to it. The server is the one named by CLICKHOUSE_ADDR
// ("host:port" of the native protocol, completed by CLICKHOUSE_USER,
// CLICKHOUSE_PASSWORD, CLICKHOUSE_DATABASE; or a DSN
// "clickhouse://user:pass@host:port/db", whose parts win over those
// variables), else the local one that scripts/clickhouse.sh runs on
// 127.0.0.1:19000 (native) / 18123 (HTTP), started on demand. No server is a
// t.Fatal; PLANTROOM_SKIP_CLICKHOUSE=1 makes it a t.Skip.
//
// # clickhouse-go v2.51 against Debian's ClickHouse 18.16 (tested)
//
// Server: ClickHouse 18.16.1 (Debian 18.16.1+ds-7.3+b2), TCP protocol
// revision 54412; the driver negotiates down to it. conn.ServerVersion()
// gives Version{18,16,1}, Revision 54412 and the server time zone (the local
// server is configured with UTC); SELECT version() gives "18.16.1". Feature
// checks: SELECT count() FROM system.data_type_families WHERE name =
// 'DateTime64' (the table exists on 18.16 and answers 0), or compare
// ServerVersion().Version.
//
// Protocol:
//   - Native protocol only. clickhouse.HTTP fails at connect ("Unknown
//     setting client_protocol_version", HTTP 404).
//   - INSERT: use PrepareBatch with an explicit column list, "INSERT INTO t
//     (a, b, ts)". Without the list, Append fails ("expected 0 arguments").
//     Columns may come in any order; columns left out get their defaults
//     (NULL for Nullable). Row Append, AppendStruct, column-wise
//     batch.Column(i).Append, an empty Send, and LZ4/ZSTD compression all
//     work.
//   - conn.Exec("INSERT ... VALUES (...)"), with or without bind args,
//     HANGS until the context deadline or ReadTimeout: 18.16 waits for data
//     blocks from the client. Never insert that way. INSERT ... SELECT via
//     Exec works. AsyncInsert fails (Unknown setting async_insert).
//   - clickhouse.WithSettings: at this revision the driver sends settings
//     as varints, so only int and bool values are accepted ("1" or
//     "in_order" fail client-side with "unsupported data type"); only
//     integer/bool settings can be sent this way. A SETTINGS clause at the
//     end of a SELECT works. Settings unknown to 18.16 (mutations_sync,
//     async_insert, ...) fail with code 115.
//   - Server-side parameters {x:String} (WithParameters) are a syntax
//     error. Client-side binding works: "?" positional and "@name" with
//     clickhouse.Named, time.Time included.
//   - One statement per Exec (multi-statements are rejected). A context
//     deadline cancels a running query; the pool stays usable.
//     clickhouse.OpenDB (database/sql) works.
//
// Types:
//   - Work: (U)Int8..64, Float32/64, String, FixedString(N), Date, DateTime,
//     DateTime('Asia/Shanghai'), Nullable(T), Array(T), Array(Nullable(T)),
//     Enum8, UUID, Decimal(P,S)/Decimal64(S), Tuple (append a []any),
//     AggregateFunction(...).
//   - Missing ("Unknown data type family"): DateTime64, IPv4/IPv6, Bool,
//     Map, Int128/256, SimpleAggregateFunction.
//   - LowCardinality(T) needs allow_experimental_low_cardinality_type=1 on
//     the CREATE TABLE query, sent with WithSettings and the int value 1.
//     Putting it in the CREATE's SETTINGS clause does not work, because those
//     are MergeTree settings. INSERT and SELECT need no setting.
//   - Nullable columns cannot be in ORDER BY (the sorting key).
//   - Scanning: count(), uniqExact(), etc. are UInt64, so scan into uint64
//     (int64 fails). A Nullable column scans into **T or *T pointers, or
//     sql.Null[T]; a plain *T fails on NULL.
//   - DateTime is Unix seconds (UInt32): the driver sends the instant, so the
//     Go value's zone does not matter; sub-seconds are dropped. Values
//     outside 1970..2106 WRAP SILENTLY, with no error: 1960-01-01 is stored
//     as 2096-02-06 and 2200-01-01 as 2063-11-24. Date wraps too. A zero
//     time.Time is stored as 0 (1970-01-01, printed 0000-00-00 00:00:00).
//     Check the range in Go before inserting. Values are scanned back in
//     the column's zone (the server zone for a plain DateTime).
//
// DDL and queries:
//   - Fail: TTL and CODEC(...) are syntax errors; so is window-function
//     OVER (). The functions toStartOfInterval and neighbor do not exist.
//   - Work: ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (...)
//     (and the old MergeTree(date, (key), 8192) form); ReplacingMergeTree(ver)
//     with SELECT ... FINAL (also with WHERE/PREWHERE), which returns the
//     row with the highest ver; OPTIMIZE TABLE t FINAL [DEDUPLICATE];
//     materialized views with an inner AggregatingMergeTree or TO table,
//     using argMaxState/minState/maxState and reading them with
//     argMaxMerge/...; ALTER TABLE ... DELETE (an asynchronous mutation:
//     there is no mutations_sync, so poll system.mutations WHERE NOT
//     is_done); ALTER ADD COLUMN; RENAME; CREATE TABLE ... AS;
//     DROP DATABASE of a database holding materialized views;
//     toStartOfHour/Day/Month(ts, 'tz'); toStartOfFifteenMinutes;
//     toTimeZone; formatDateTime; argMax; runningDifference;
//     arrayDifference; LIMIT n BY; ANY/ALL JOIN; quantile; uniqExact.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Environment variables read by this package.
const (
	// EnvAddr selects an existing server instead of the local one: either
	// "host:port" (native protocol port) or a DSN
	// "clickhouse://user:password@host:port/database".
	EnvAddr = "CLICKHOUSE_ADDR"
	// EnvUser, EnvPassword and EnvDatabase complete a plain host:port
	// EnvAddr. Values given in a DSN take precedence over them.
	EnvUser     = "CLICKHOUSE_USER"
	EnvPassword = "CLICKHOUSE_PASSWORD"
	EnvDatabase = "CLICKHOUSE_DATABASE"
	// EnvSkip, when "1", turns "no ClickHouse available" into t.Skip
	// instead of t.Fatal.
	EnvSkip = "PLANTROOM_SKIP_CLICKHOUSE"
	// EnvTCPPort overrides the native port of the local server started by
	// scripts/clickhouse.sh (default 19000). The script also reads it.
	EnvTCPPort = "PLANTROOM_CH_TCP_PORT"
)

// DefaultTCPPort is the native-protocol port of the local server that
// scripts/clickhouse.sh runs (HTTP is on 18123).
const DefaultTCPPort = "19000"

// Options are the connection settings of a ClickHouse server.
type Options struct {
	Addr     string // host:port of the native protocol
	User     string // "default" when empty
	Password string
	Database string // "default" when empty
}

// ClickHouseOptions returns clickhouse-go options for the native protocol.
func (o Options) ClickHouseOptions() *clickhouse.Options {
	user := o.User
	if user == "" {
		user = "default"
	}
	db := o.Database
	if db == "" {
		db = "default"
	}
	return &clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     []string{o.Addr},
		Auth: clickhouse.Auth{
			Database: db,
			Username: user,
			Password: o.Password,
		},
		DialTimeout:     10 * time.Second,
		ReadTimeout:     60 * time.Second,
		MaxOpenConns:    8,
		MaxIdleConns:    2,
		ConnMaxLifetime: 10 * time.Minute,
	}
}

// WithDatabase returns a copy of o using database db.
func (o Options) WithDatabase(db string) Options {
	o.Database = db
	return o
}

var (
	localMu   sync.Mutex
	localOpts *Options // set once the local server answered
)

// Addr returns the settings of the ClickHouse server to test against.
//
// With CLICKHOUSE_ADDR set it uses that server. Otherwise it starts (or
// reuses) the local server by running scripts/clickhouse.sh start from the
// module root, serialized across concurrent test binaries by a file lock on
// <root>/.data/clickhouse.lock. If no server can be had it calls t.Fatal, or
// t.Skip when PLANTROOM_SKIP_CLICKHOUSE=1.
func Addr(t testing.TB) Options {
	t.Helper()
	o, err := resolve()
	if err != nil {
		unavailable(t, err)
	}
	return o
}

// Connect opens a native-protocol connection with o, checks it with a ping
// and closes it in t.Cleanup.
func Connect(t testing.TB, o Options) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(o.ClickHouseOptions())
	if err != nil {
		unavailable(t, fmt.Errorf("open %s: %w", o.Addr, err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		unavailable(t, fmt.Errorf("ping %s: %w", o.Addr, err))
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// NewDatabase creates a fresh, uniquely named database
// (test_<package>_<test>_<random>), drops it in t.Cleanup and returns a
// connection whose default database is the new one, and its name.
func NewDatabase(t testing.TB) (conn driver.Conn, database string) {
	t.Helper()
	o := Addr(t)
	admin := Connect(t, o)
	database = uniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := admin.Exec(ctx, "CREATE DATABASE "+database); err != nil {
		t.Fatalf("chtest: create database %s: %v", database, err)
	}
	t.Cleanup(func() {
		// A drop waits for the queries and merges still running on the
		// database's tables: on a loaded machine (several process tests
		// killing their clouds at once) that took longer than 30 s.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+database); err != nil {
			t.Errorf("chtest: drop database %s: %v", database, err)
		}
	})
	// Registered after the drop, so (cleanups run last-in first-out) this
	// connection is closed before the database is dropped.
	conn = Connect(t, o.WithDatabase(database))
	return conn, database
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("chtest: ClickHouse not available (%s=1): %v", EnvSkip, err)
	}
	t.Fatalf("chtest: ClickHouse not available: %v\n"+
		"Tests need a real ClickHouse: install clickhouse-server (apt-get install clickhouse-server clickhouse-client) "+
		"so scripts/clickhouse.sh can start one, or set %s=host:port; set %s=1 to skip these tests.",
		err, EnvAddr, EnvSkip)
}

func resolve() (Options, error) {
	if v := strings.TrimSpace(os.Getenv(EnvAddr)); v != "" {
		return fromEnv(v)
	}
	localMu.Lock()
	defer localMu.Unlock()
	if localOpts != nil {
		return *localOpts, nil
	}
	if err := startLocal(); err != nil {
		return Options{}, err
	}
	port := os.Getenv(EnvTCPPort)
	if port == "" {
		port = DefaultTCPPort
	}
	localOpts = &Options{Addr: net.JoinHostPort("127.0.0.1", port), User: "default", Database: "default"}
	return *localOpts, nil
}

// fromEnv parses CLICKHOUSE_ADDR (host:port or clickhouse:// DSN) plus
// CLICKHOUSE_USER/PASSWORD/DATABASE.
func fromEnv(v string) (Options, error) {
	o := Options{
		User:     os.Getenv(EnvUser),
		Password: os.Getenv(EnvPassword),
		Database: os.Getenv(EnvDatabase),
	}
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return Options{}, fmt.Errorf("%s: bad DSN: %w", EnvAddr, err)
		}
		if u.Scheme != "clickhouse" && u.Scheme != "tcp" {
			return Options{}, fmt.Errorf("%s: DSN scheme must be clickhouse:// (native protocol), got %q", EnvAddr, u.Scheme)
		}
		o.Addr = u.Host
		if u.User != nil {
			o.User = u.User.Username()
			if p, ok := u.User.Password(); ok {
				o.Password = p
			}
		}
		if db := strings.Trim(u.Path, "/"); db != "" {
			o.Database = db
		}
	} else {
		o.Addr = v
	}
	if _, port, err := net.SplitHostPort(o.Addr); err != nil || port == "" {
		return Options{}, fmt.Errorf("%s=%q: want host:port or clickhouse://user:pass@host:port/db", EnvAddr, v)
	}
	return o, nil
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// startLocal runs scripts/clickhouse.sh start under an exclusive file lock.
func startLocal() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	script := filepath.Join(root, "scripts", "clickhouse.sh")
	if _, err := os.Stat(script); err != nil {
		return fmt.Errorf("local server script: %w", err)
	}
	dataDir := filepath.Join(root, ".data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	lockPath := filepath.Join(dataDir, "clickhouse.lock")
	lf, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	defer lf.Close()
	// Blocks while another test binary starts the server; the script itself
	// is bounded (60 s startup wait, plus an apt-get install if needed).
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", lockPath, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "start")
	cmd.Dir = root
	cmd.Stdin = nil
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s start: %v\n%s", script, err, strings.TrimSpace(string(out)))
	}
	return nil
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// uniqueName builds test_<package>_<test>_<random> from the test binary and
// test names, limited to [a-z0-9_].
func uniqueName(t testing.TB) string {
	pkg := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	clean := func(s string, max int) string {
		s = strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(s), "_"), "_")
		if len(s) > max {
			s = strings.TrimRight(s[:max], "_")
		}
		return s
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("chtest: random: %v", err)
	}
	parts := []string{"test"}
	for _, p := range []string{clean(pkg, 20), clean(t.Name(), 48)} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	parts = append(parts, hex.EncodeToString(b))
	return strings.Join(parts, "_")
}
