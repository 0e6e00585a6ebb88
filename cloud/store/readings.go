package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// ReadingBatch holds rows for readings column by column, the shape the
// native protocol sends. The zero value is empty and ready to use.
type ReadingBatch struct {
	Company, Project, Gateway, Device, Metric []string
	TS                                        []int64
	Value                                     []float64
	Quality                                   []uint8
	Seq                                       []uint64
	BadCause                                  []string // why a bad-quality reading is bad; "" for others
}

// Add appends one reading of the batch (gateway, seq) of a gateway in
// company/project.
func (b *ReadingBatch) Add(company, project, gateway string, seq uint64, r *protocol.Reading) {
	b.Company = append(b.Company, company)
	b.Project = append(b.Project, project)
	b.Gateway = append(b.Gateway, gateway)
	b.Device = append(b.Device, r.Device)
	b.Metric = append(b.Metric, r.Metric)
	b.TS = append(b.TS, r.TS)
	b.Value = append(b.Value, r.Value)
	b.Quality = append(b.Quality, uint8(r.Quality))
	b.Seq = append(b.Seq, seq)
	b.BadCause = append(b.BadCause, "")
}

// SetBadCause records why the last row added has bad quality.
func (b *ReadingBatch) SetBadCause(cause string) { b.BadCause[len(b.BadCause)-1] = cause }

// Len is the number of rows.
func (b *ReadingBatch) Len() int { return len(b.TS) }

// Reset empties the batch and keeps its storage.
func (b *ReadingBatch) Reset() {
	b.Company, b.Project, b.Gateway = b.Company[:0], b.Project[:0], b.Gateway[:0]
	b.Device, b.Metric = b.Device[:0], b.Metric[:0]
	b.TS, b.Value, b.Quality, b.Seq = b.TS[:0], b.Value[:0], b.Quality[:0], b.Seq[:0]
	b.BadCause = b.BadCause[:0]
}

// Slice is rows lo … hi-1 of the batch, sharing its storage.
func (b *ReadingBatch) Slice(lo, hi int) ReadingBatch {
	return ReadingBatch{
		Company: b.Company[lo:hi], Project: b.Project[lo:hi], Gateway: b.Gateway[lo:hi],
		Device: b.Device[lo:hi], Metric: b.Metric[lo:hi], TS: b.TS[lo:hi],
		Value: b.Value[lo:hi], Quality: b.Quality[lo:hi], Seq: b.Seq[lo:hi], BadCause: b.BadCause[lo:hi],
	}
}

// MaxMonthsPerInsert bounds the months (partitions of readings and of the
// hourly roll-up) one INSERT of InsertReadings touches: half of ClickHouse's
// default max_partitions_per_insert_block (100, since 19.x; the server
// refuses a block over it). Half, because a month of readings can give
// hours of the month before to the roll-up in a time zone whose offset is
// not a whole hour.
const MaxMonthsPerInsert = 50

// InsertReadings writes the batch, in one INSERT per group of at most
// MaxMonthsPerInsert months (fewer when the server's
// max_partitions_per_insert_block is below 100; months in the server's time
// zone, as the partition key counts them), so a batch spanning years is never refused for its
// partitions. Inserting rows that are already stored is harmless (see the
// package doc), so a failure after some groups were written is retried as a
// whole.
func (db *DB) InsertReadings(ctx context.Context, b *ReadingBatch) error {
	if b.Len() == 0 {
		return nil
	}
	groups := monthGroups(b.TS, db.timezone(), db.monthsPerInsert)
	if groups == nil {
		return db.insertReadings(ctx, b)
	}
	for _, g := range groups {
		part := b.pick(g)
		if err := db.insertReadings(ctx, &part); err != nil {
			return err
		}
	}
	return nil
}

// timezone is the server's time zone, which its toYYYYMM uses.
func (db *DB) timezone() *time.Location {
	if v, err := db.conn.ServerVersion(); err == nil && v.Timezone != nil {
		return v.Timezone
	}
	return time.UTC
}

// monthGroups returns the row indexes of ts in groups that each span at
// most limit calendar months of loc, in month order; nil when all rows fit
// one group.
func monthGroups(ts []int64, loc *time.Location, limit int) [][]int {
	month := func(ms int64) int {
		t := time.UnixMilli(ms).In(loc)
		return t.Year()*12 + int(t.Month())
	}
	rows := map[int][]int{}
	for i, ms := range ts {
		m := month(ms)
		rows[m] = append(rows[m], i)
	}
	limit = max(1, limit)
	if len(rows) <= limit {
		return nil
	}
	months := make([]int, 0, len(rows))
	for m := range rows {
		months = append(months, m)
	}
	slices.Sort(months)
	var out [][]int
	for len(months) > 0 {
		n := min(limit, len(months))
		var g []int
		for _, m := range months[:n] {
			g = append(g, rows[m]...)
		}
		out = append(out, g)
		months = months[n:]
	}
	return out
}

// pick copies the rows idx into a new batch.
func (b *ReadingBatch) pick(idx []int) ReadingBatch {
	var out ReadingBatch
	for _, i := range idx {
		out.Company = append(out.Company, b.Company[i])
		out.Project = append(out.Project, b.Project[i])
		out.Gateway = append(out.Gateway, b.Gateway[i])
		out.Device = append(out.Device, b.Device[i])
		out.Metric = append(out.Metric, b.Metric[i])
		out.TS = append(out.TS, b.TS[i])
		out.Value = append(out.Value, b.Value[i])
		out.Quality = append(out.Quality, b.Quality[i])
		out.Seq = append(out.Seq, b.Seq[i])
		out.BadCause = append(out.BadCause, b.BadCause[i])
	}
	return out
}

func (db *DB) insertReadings(ctx context.Context, b *ReadingBatch) error {
	batch, err := db.conn.PrepareBatch(ctx, "INSERT INTO "+quoteIdent(db.Database())+"."+TableReadings+" ("+ReadingsColumns+")")
	if err != nil {
		return fmt.Errorf("cannot insert %d readings: %w", b.Len(), err)
	}
	defer batch.Close()
	cols := []any{b.Company, b.Project, b.Gateway, b.Device, b.Metric, b.TS, b.Value, b.Quality, b.Seq, b.BadCause}
	for i, c := range cols {
		if err := batch.Column(i).Append(c); err != nil {
			return fmt.Errorf("cannot insert %d readings: column %d: %w", b.Len(), i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot insert %d readings: %w", b.Len(), err)
	}
	return nil
}

// EventRow is one row of events: a gateway's event, a gateway status change
// or an event the cloud derived (a device going stale).
type EventRow struct {
	Company, Project, Gateway, Device string
	Kind                              string
	TS                                int64 // Unix ms
	Seq                               uint64
	Message                           string
	Attrs                             string // JSON object, "" for none
	Arrived                           int64  // Unix ms at which the cloud received it
}

// InsertEvents writes the rows in one INSERT.
func (db *DB) InsertEvents(ctx context.Context, rows []EventRow) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := db.conn.PrepareBatch(ctx, "INSERT INTO "+quoteIdent(db.Database())+"."+TableEvents+" ("+EventsColumns+")")
	if err != nil {
		return fmt.Errorf("cannot insert %d events: %w", len(rows), err)
	}
	defer batch.Close()
	for _, r := range rows {
		if err := batch.Append(r.Company, r.Project, r.Gateway, r.Device, r.Kind, r.TS, r.Seq, r.Message, r.Attrs, r.Arrived); err != nil {
			return fmt.Errorf("cannot insert %d events: %w", len(rows), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot insert %d events: %w", len(rows), err)
	}
	return nil
}

// LatestRow is the newest reading of one device's metric.
type LatestRow struct {
	Device, Metric string
	TS             int64
	Value          float64
	Quality        uint8
}

// LatestReadings returns, for every device and metric with a reading at or
// after since, the newest reading. Duplicates do not matter to argMax.
func (db *DB) LatestReadings(ctx context.Context, since time.Time) ([]LatestRow, error) {
	q := fmt.Sprintf(`SELECT device, metric, max(ts_ms), argMax(value, (ts_ms, seq)), argMax(quality, (ts_ms, seq))
FROM %s.%s WHERE ts_ms >= ? AND quality < 2 GROUP BY device, metric`, quoteIdent(db.Database()), TableReadings)
	rows, err := db.conn.Query(ctx, q, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("cannot query latest readings: %w", err)
	}
	defer rows.Close()
	var out []LatestRow
	for rows.Next() {
		var r LatestRow
		if err := rows.Scan(&r.Device, &r.Metric, &r.TS, &r.Value, &r.Quality); err != nil {
			return nil, fmt.Errorf("cannot read latest readings: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read latest readings: %w", err)
	}
	return out, nil
}

// Event kinds the cloud writes for gateway status changes.
const (
	KindGatewayOnline  = "gateway_online"
	KindGatewayOffline = "gateway_offline"
)

// DeviceReachRow is a device's most recent device_offline/device_online
// event from its gateway.
type DeviceReachRow struct {
	Device  string
	Offline bool
	TS      int64
}

// LatestDeviceReach returns each device's most recent device_offline or
// device_online event (the edge's own judgement of whether it answers).
func (db *DB) LatestDeviceReach(ctx context.Context) ([]DeviceReachRow, error) {
	q := fmt.Sprintf(`SELECT device, argMax(kind, (ts_ms, arrived_ms)), max(ts_ms)
FROM %s.%s WHERE kind IN ('device_offline', 'device_online') AND device != '' GROUP BY device`, quoteIdent(db.Database()), TableEvents)
	rows, err := db.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("cannot query device reachability: %w", err)
	}
	defer rows.Close()
	var out []DeviceReachRow
	for rows.Next() {
		var r DeviceReachRow
		var kind string
		if err := rows.Scan(&r.Device, &kind, &r.TS); err != nil {
			return nil, fmt.Errorf("cannot read device reachability: %w", err)
		}
		r.Offline = kind == "device_offline"
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read device reachability: %w", err)
	}
	return out, nil
}

// GatewayStatusRow is a gateway's most recent status change.
type GatewayStatusRow struct {
	Gateway string
	Kind    string // KindGatewayOnline or KindGatewayOffline
	TS      int64
	Message string
}

// LatestGatewayStatus returns each gateway's most recent online/offline
// event.
func (db *DB) LatestGatewayStatus(ctx context.Context) ([]GatewayStatusRow, error) {
	q := fmt.Sprintf(`SELECT gateway, argMax(kind, (ts_ms, arrived_ms)), max(ts_ms), argMax(message, (ts_ms, arrived_ms))
FROM %s.%s WHERE kind IN (?, ?) GROUP BY gateway`, quoteIdent(db.Database()), TableEvents)
	rows, err := db.conn.Query(ctx, q, KindGatewayOnline, KindGatewayOffline)
	if err != nil {
		return nil, fmt.Errorf("cannot query gateway status: %w", err)
	}
	defer rows.Close()
	var out []GatewayStatusRow
	for rows.Next() {
		var r GatewayStatusRow
		if err := rows.Scan(&r.Gateway, &r.Kind, &r.TS, &r.Message); err != nil {
			return nil, fmt.Errorf("cannot read gateway status: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read gateway status: %w", err)
	}
	return out, nil
}
