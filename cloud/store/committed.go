package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
)

// TableCommitted records which telemetry batches the ingest committed:
// one row per (gateway, epoch, seq) with the batch's CRC-32C. The ingest
// checks it before storing a batch (a re-sent batch is a duplicate, another
// batch under the same seq a seq_conflict) and re-announces from it.
const TableCommitted = "committed_batches"

// CommittedColumns is the column list of committed_batches in insert order.
const CommittedColumns = "gateway, epoch, seq, crc, committed_ms"

var committedCols = []column{
	{name: "gateway", typ: "String", lowCard: true},
	{name: "epoch", typ: "UInt64"},
	{name: "seq", typ: "UInt64", codec: "Delta, ZSTD(1)"},
	{name: "crc", typ: "UInt32"},
	{name: "committed_ms", typ: "Int64", codec: "Delta, ZSTD(1)"},
}

// committedDDL: a ReplacingMergeTree keyed by (gateway, epoch, seq), so two
// replicas marking the same batch, or a batch marked again after a crash
// between the readings' insert and its mark, collapse into one row. All rows
// of a gateway live on one shard.
func committedDDL(s Server, db string) []string {
	t := table{
		name: TableCommitted, cols: committedCols,
		engine:    "ReplacingMergeTree",
		partition: "tuple()",
		orderBy:   "gateway, epoch, seq",
		shardKey:  "cityHash64(gateway)",
	}
	return t.ddl(s, db)
}

// CommittedBatch is one row of committed_batches.
type CommittedBatch struct {
	Gateway     string
	Epoch, Seq  uint64
	CRC         uint32
	CommittedMs int64 // Unix ms of the commit
}

// BatchKey names a batch: (gateway, epoch, seq).
type BatchKey struct {
	Gateway    string
	Epoch, Seq uint64
}

// InsertCommitted marks batches as committed. Call it only after their
// readings are stored: a mark without readings would turn a re-send into a
// duplicate of nothing.
func (db *DB) InsertCommitted(ctx context.Context, rows []CommittedBatch) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := db.conn.PrepareBatch(ctx, "INSERT INTO "+quoteIdent(db.Database())+"."+TableCommitted+" ("+CommittedColumns+")")
	if err != nil {
		return fmt.Errorf("cannot mark %d batches committed: %w", len(rows), err)
	}
	defer batch.Close()
	for _, r := range rows {
		if err := batch.Append(r.Gateway, r.Epoch, r.Seq, r.CRC, r.CommittedMs); err != nil {
			return fmt.Errorf("cannot mark %d batches committed: %w", len(rows), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot mark %d batches committed: %w", len(rows), err)
	}
	return nil
}

// CommittedCRCs returns the CRC of every key that is marked committed; keys
// not in the map are not. It runs one query, on the table's primary key
// (gateway first); callers ask only for the keys that may be committed
// (re-sends), see MaxCommittedSeqs.
func (db *DB) CommittedCRCs(ctx context.Context, keys []BatchKey) (map[BatchKey]uint32, error) {
	out := make(map[BatchKey]uint32, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	// One query for all keys, which travel as an external table: after a
	// reconnect storm a flush holds re-sends of a thousand gateways, and a
	// query per gateway (or a literal set of thousands of tuples, which
	// ClickHouse 18.16 takes seconds to parse) outlasted the insert timeout
	// under load, so the ingest retried the flush for ever. The gateway
	// condition lets the primary key skip other gateways' rows.
	set, err := ext.NewTable("batch_keys", ext.Column("gateway", "String"), ext.Column("epoch", "UInt64"), ext.Column("seq", "UInt64"))
	if err != nil {
		return nil, fmt.Errorf("cannot look up %d committed batches: %w", len(keys), err)
	}
	for _, k := range keys {
		if err := set.Append(k.Gateway, k.Epoch, k.Seq); err != nil {
			return nil, fmt.Errorf("cannot look up committed batch %s/%d/%d: %w", k.Gateway, k.Epoch, k.Seq, err)
		}
	}
	q := fmt.Sprintf("SELECT gateway, epoch, seq, any(crc) FROM %s.%s WHERE gateway IN (SELECT gateway FROM batch_keys) "+
		"AND (gateway, epoch, seq) IN (SELECT gateway, epoch, seq FROM batch_keys) GROUP BY gateway, epoch, seq",
		quoteIdent(db.Database()), TableCommitted)
	rows, err := db.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(set)), q)
	if err != nil {
		return nil, fmt.Errorf("cannot look up %d committed batches (gateway %q …): %w", len(keys), keys[0].Gateway, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k BatchKey
		var crc uint32
		if err := rows.Scan(&k.Gateway, &k.Epoch, &k.Seq, &crc); err != nil {
			return nil, fmt.Errorf("cannot look up %d committed batches: %w", len(keys), err)
		}
		out[k] = crc
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot look up %d committed batches: %w", len(keys), err)
	}
	return out, nil
}

// GatewayEpoch is one gateway's seq space.
type GatewayEpoch struct {
	Gateway string
	Epoch   uint64
}

// MaxCommittedSeqs returns the highest committed seq of each given seq
// space (absent: none committed), in one query. A batch above it has not
// been committed when the query ran, so it needs no CommittedCRCs lookup.
func (db *DB) MaxCommittedSeqs(ctx context.Context, spaces []GatewayEpoch) (map[GatewayEpoch]uint64, error) {
	out := make(map[GatewayEpoch]uint64, len(spaces))
	if len(spaces) == 0 {
		return out, nil
	}
	gws := map[string]bool{}
	var gwList, pairs []string
	for _, s := range spaces {
		if !gws[s.Gateway] {
			gws[s.Gateway] = true
			gwList = append(gwList, quoteString(s.Gateway))
		}
		pairs = append(pairs, fmt.Sprintf("(%s, %d)", quoteString(s.Gateway), s.Epoch))
	}
	q := fmt.Sprintf("SELECT gateway, epoch, max(seq) FROM %s.%s WHERE gateway IN (%s) AND (gateway, epoch) IN (%s) GROUP BY gateway, epoch",
		quoteIdent(db.Database()), TableCommitted, strings.Join(gwList, ","), strings.Join(pairs, ","))
	rows, err := db.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("cannot read the highest committed seqs of %d gateways: %w", len(gws), err)
	}
	defer rows.Close()
	for rows.Next() {
		var g GatewayEpoch
		var seq uint64
		if err := rows.Scan(&g.Gateway, &g.Epoch, &seq); err != nil {
			return nil, fmt.Errorf("cannot read the highest committed seqs: %w", err)
		}
		out[g] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the highest committed seqs: %w", err)
	}
	return out, nil
}

// RecentCommitted returns the epoch of gateway's most recently committed
// batch and up to limit of the highest seqs committed in it (ascending);
// epoch 0 and no seqs when none is marked.
func (db *DB) RecentCommitted(ctx context.Context, gateway string, limit int) (uint64, []uint64, error) {
	tbl := quoteIdent(db.Database()) + "." + TableCommitted
	rows, err := db.conn.Query(ctx, fmt.Sprintf(
		"SELECT epoch FROM %s WHERE gateway = %s GROUP BY epoch ORDER BY max(committed_ms) DESC, epoch DESC LIMIT 1",
		tbl, quoteString(gateway)))
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read the current epoch of gateway %q: %w", gateway, err)
	}
	var epoch uint64
	found := false
	for rows.Next() {
		if err := rows.Scan(&epoch); err != nil {
			rows.Close()
			return 0, nil, fmt.Errorf("cannot read the current epoch of gateway %q: %w", gateway, err)
		}
		found = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("cannot read the current epoch of gateway %q: %w", gateway, err)
	}
	if !found {
		return 0, nil, nil
	}
	rows, err = db.conn.Query(ctx, fmt.Sprintf(
		"SELECT DISTINCT seq FROM %s WHERE gateway = %s AND epoch = %d ORDER BY seq DESC LIMIT %d",
		tbl, quoteString(gateway), epoch, limit))
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read the committed batches of gateway %q: %w", gateway, err)
	}
	defer rows.Close()
	var seqs []uint64
	for rows.Next() {
		var s uint64
		if err := rows.Scan(&s); err != nil {
			return 0, nil, fmt.Errorf("cannot read the committed batches of gateway %q: %w", gateway, err)
		}
		seqs = append(seqs, s)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("cannot read the committed batches of gateway %q: %w", gateway, err)
	}
	for i, j := 0, len(seqs)-1; i < j; i, j = i+1, j-1 {
		seqs[i], seqs[j] = seqs[j], seqs[i]
	}
	return epoch, seqs, nil
}
