package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Server describes the ClickHouse server the schema is created for: its
// version, which decides the column types and features used, and the
// cluster name ("" for a single server).
type Server struct {
	Major, Minor int
	Cluster      string
}

// ParseVersion parses the result of SELECT version() ("18.16.1",
// "23.8.2.7").
func ParseVersion(v string) (Server, error) {
	parts := strings.Split(strings.TrimSpace(v), ".")
	if len(parts) < 2 {
		return Server{}, fmt.Errorf("cannot parse ClickHouse version %q: want major.minor[.patch…]", v)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return Server{}, fmt.Errorf("cannot parse ClickHouse version %q: want major.minor[.patch…]", v)
	}
	return Server{Major: major, Minor: minor}, nil
}

// DetectServer asks the server for its version.
func DetectServer(ctx context.Context, conn driver.Conn, cluster string) (Server, error) {
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return Server{}, fmt.Errorf("cannot query ClickHouse version: %w", err)
	}
	s, err := ParseVersion(v)
	if err != nil {
		return Server{}, err
	}
	s.Cluster = cluster
	return s, nil
}

func (s Server) atLeast(major, minor int) bool {
	return s.Major > major || (s.Major == major && s.Minor >= minor)
}

// String is "major.minor" and the cluster, if any.
func (s Server) String() string {
	v := fmt.Sprintf("%d.%d", s.Major, s.Minor)
	if s.Cluster != "" {
		v += " on cluster " + s.Cluster
	}
	return v
}

// HasLowCardinality reports whether LowCardinality(String) columns work
// without experimental settings.
func (s Server) HasLowCardinality() bool { return s.atLeast(19, 9) }

// HasCodecs reports whether per-column codecs (Delta, DoubleDelta, Gorilla,
// ZSTD) are available.
func (s Server) HasCodecs() bool { return s.atLeast(19, 10) }

// HasTTL reports whether table TTL expressions are available.
func (s Server) HasTTL() bool { return s.atLeast(19, 6) }

// HasDateTime64 reports whether the DateTime64 type is available.
func (s Server) HasDateTime64() bool { return s.atLeast(20, 1) }

// Modern reports whether the server has every feature the schema can use.
func (s Server) Modern() bool {
	return s.HasLowCardinality() && s.HasCodecs() && s.HasTTL() && s.HasDateTime64()
}

// Clustered reports whether DDL targets a cluster.
func (s Server) Clustered() bool { return s.Cluster != "" }

// OnCluster is " ON CLUSTER <name>" for a cluster, "" otherwise.
func (s Server) OnCluster() string {
	if s.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + quoteIdent(s.Cluster)
}

// quoteIdent quotes a ClickHouse identifier with backquotes.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "`", "\\`") + "`"
}

// quoteString quotes a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
