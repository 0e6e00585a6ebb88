package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/plantroom/plantroom/cloud/energy"
)

// Readings is the readings repository: it answers energy reports
// (energy.Readings), device series and latest values from ClickHouse: the
// hourly roll-up for almost everything, raw readings only where the
// computation asks for them. Every query filters on the sorting key's
// prefix (company, project, device, metric).
type Readings struct {
	db    *DB
	steps *stepCache
	// exactN: Hours reads the exact reading count n as well.
	exactN bool
}

// Readings returns the readings repository of db, with its own cache of
// step summaries: make one and share it.
func (db *DB) Readings() *Readings { return &Readings{db: db, steps: &stepCache{}} }

// ReadingsWithExactCounts returns a readings repository whose Hours also
// reads the roll-up's exact reading count n, as before readings migration
// 7, and decides and keys by it. The figures are the same; it is what the
// report benchmarks measure the version key against.
func (db *DB) ReadingsWithExactCounts() *Readings {
	return &Readings{db: db, steps: &stepCache{}, exactN: true}
}

var _ energy.Readings = (*Readings)(nil)

// edgeWindow is how far LastBefore and FirstFrom look first; keys without
// a reading that close are looked up again without a bound.
const edgeWindow = 7 * 24 * energy.HourMS

func (s *Readings) table(name string) string { return quoteIdent(s.db.Database()) + "." + name }

// keyFilter is the WHERE clause selecting company, projects, devices and
// metrics of keys (a superset of keys; callers filter exactly).
func keyFilter(w energy.Where, keys []energy.Key) (string, []any) {
	devs := map[string]bool{}
	mets := map[string]bool{}
	for _, k := range keys {
		devs[k.Device] = true
		mets[k.Metric] = true
	}
	return "company = ? AND project IN ? AND device IN ? AND metric IN ?",
		[]any{w.Company, groupSet(w.Projects), groupSet(sortedSet(devs)), groupSet(sortedSet(mets))}
}

func groupSet(vs []string) clickhouse.GroupSet {
	g := clickhouse.GroupSet{Value: make([]any, len(vs))}
	for i, v := range vs {
		g.Value[i] = v
	}
	return g
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wanted(keys []energy.Key) map[energy.Key]bool {
	m := make(map[energy.Key]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// Hours implements energy.Readings. It reads the roll-up with FINAL, which
// merges the rows of each (company, project, device, metric, hour) — the
// table's sorting key — exactly as GROUP BY with the -Merge functions
// would, at half the cost on large reads. Keys come as numbers (positions
// in keys) rather than two strings, which halves the client's decoding.
func (s *Readings) Hours(ctx context.Context, w energy.Where, keys []energy.Key, from, to int64) (map[energy.Key][]energy.Hour, error) {
	if len(keys) == 0 || len(w.Projects) == 0 {
		return nil, nil
	}
	names := make([]string, len(keys))
	ids := make([]uint32, len(keys))
	for i, k := range keys {
		names[i] = k.Device + "/" + k.Metric // '/' is in neither ids nor metric names
		ids[i] = uint32(i + 1)
	}
	where, args := keyFilter(w, keys)
	exactN := ""
	if s.exactN {
		exactN = ", toInt64(finalizeAggregation(n))"
	}
	// The hour is that of first_ts; min_v and max_v only say whether the
	// value fell inside the hour, so the server compares them. The hour's
	// version (n_rows, ts_sum) is read instead of the exact reading count n:
	// n's hash sets (a timestamp per reading) cost 20 times the rest of
	// the row to read (35 s against 1.5 s for a month of 200 devices).
	q := `SELECT transform(concat(device, '/', metric), ?, ?, toUInt32(0)) AS k,
  finalizeAggregation(first_ts), finalizeAggregation(first_v) AS fv, finalizeAggregation(last_ts), finalizeAggregation(last_v) AS lv,
  finalizeAggregation(min_v) < fv OR finalizeAggregation(max_v) > lv, toInt64(finalizeAggregation(n_rows)), finalizeAggregation(ts_sum)` + exactN + `
FROM ` + s.table(TableHourly) + ` FINAL
WHERE ` + where + ` AND hour_ms >= ? AND hour_ms < ?`
	rows, err := s.db.conn.Query(ctx, q, append([]any{names, ids}, append(args, from, to)...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot query hourly roll-ups: %w", err)
	}
	defer rows.Close()
	// Rows come in runs of one key (each partition in key order); each key
	// gets one array sized for the range. The scan targets are allocated
	// once, not per row.
	hours := int((to - from) / energy.HourMS)
	byKey := make([][]energy.Hour, len(keys))
	var (
		h    energy.Hour
		k    uint32
		fell uint8
		n    int64
	)
	dest := []any{&k, &h.FirstTS, &h.First, &h.LastTS, &h.Last, &fell, &h.Rows, &h.TSSum}
	if s.exactN {
		dest = append(dest, &n)
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot read hourly roll-ups: %w", err)
		}
		h.Hour = h.FirstTS - h.FirstTS%energy.HourMS // Unix ms after 2000: never negative
		h.Fell, h.N = fell != 0, int(n)
		if k == 0 || int(k) > len(keys) {
			continue // another metric of a wanted device, or a device of another key
		}
		if byKey[k-1] == nil {
			byKey[k-1] = make([]energy.Hour, 0, hours)
		}
		byKey[k-1] = append(byKey[k-1], h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read hourly roll-ups: %w", err)
	}
	out := make(map[energy.Key][]energy.Hour, len(keys))
	byHour := func(a, b energy.Hour) int { return cmp.Compare(a.Hour, b.Hour) }
	for i, hs := range byKey {
		if len(hs) == 0 {
			continue
		}
		if !slices.IsSortedFunc(hs, byHour) {
			slices.SortFunc(hs, byHour)
		}
		out[keys[i]] = hs
	}
	return out, nil
}

// LastBefore implements energy.Readings.
func (s *Readings) LastBefore(ctx context.Context, w energy.Where, keys []energy.Key, t int64) (map[energy.Key]energy.Point, error) {
	return s.edge(ctx, w, keys, t, 0, true)
}

// FirstFrom implements energy.Readings.
func (s *Readings) FirstFrom(ctx context.Context, w energy.Where, keys []energy.Key, t, within int64) (map[energy.Key]energy.Point, error) {
	return s.edge(ctx, w, keys, t, within, false)
}

// edge finds the reading just before (or at/after) t per key: first
// within edgeWindow (or within, when shorter), then, for keys still without
// one and unless within limits the search, unbounded. t is on an hour
// boundary, so whole roll-up hours answer exactly.
func (s *Readings) edge(ctx context.Context, w energy.Where, keys []energy.Key, t, within int64, before bool) (map[energy.Key]energy.Point, error) {
	out := map[energy.Key]energy.Point{}
	if len(keys) == 0 || len(w.Projects) == 0 {
		return out, nil
	}
	if t%energy.HourMS != 0 {
		return nil, fmt.Errorf("BUG: edge time %d is not on an hour", t)
	}
	window := int64(edgeWindow)
	if within > 0 {
		window = min(window, within)
	}
	for _, bounded := range []bool{true, false} {
		if !bounded && within > 0 && within <= edgeWindow {
			break
		}
		var rest []energy.Key
		for _, k := range keys {
			if _, ok := out[k]; !ok {
				rest = append(rest, k)
			}
		}
		if len(rest) == 0 {
			break
		}
		where, args := keyFilter(w, rest)
		sel, cond := "maxMerge(last_ts), argMaxMerge(last_v)", " AND hour_ms < ?"
		if !before {
			sel, cond = "minMerge(first_ts), argMinMerge(first_v)", " AND hour_ms >= ?"
		}
		args = append(args, t)
		if bounded {
			if before {
				cond += " AND hour_ms >= ?"
				args = append(args, t-window)
			} else {
				cond += " AND hour_ms < ?"
				args = append(args, t+window)
			}
		}
		q := "SELECT device, metric, " + sel + " FROM " + s.table(TableHourly) +
			" WHERE " + where + cond + " GROUP BY device, metric"
		rows, err := s.db.conn.Query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("cannot query readings around %s: %w", time.UnixMilli(t).UTC().Format(time.RFC3339), err)
		}
		want := wanted(rest)
		for rows.Next() {
			var k energy.Key
			var p energy.Point
			if err := rows.Scan(&k.Device, &k.Metric, &p.TS, &p.V); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read readings around %s: %w", time.UnixMilli(t).UTC().Format(time.RFC3339), err)
			}
			if want[k] {
				out[k] = p
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read readings around %s: %w", time.UnixMilli(t).UTC().Format(time.RFC3339), err)
		}
	}
	return out, nil
}

// rawChunk bounds the ranges in one raw query.
const rawChunk = 200

// Raw implements energy.Readings: readings of quality < 2, duplicates
// collapsed by (device, metric, ts_ms), sorted by time.
func (s *Readings) Raw(ctx context.Context, w energy.Where, ranges []energy.Range) (map[energy.Key][]energy.Point, error) {
	out := map[energy.Key][]energy.Point{}
	for start := 0; start < len(ranges); start += rawChunk {
		chunk := ranges[start:min(start+rawChunk, len(ranges))]
		var cond strings.Builder
		args := []any{w.Company, groupSet(w.Projects)}
		for i, r := range chunk {
			if i > 0 {
				cond.WriteString(" OR ")
			}
			cond.WriteString("(device = ? AND metric = ? AND ts_ms >= ? AND ts_ms < ?)")
			args = append(args, r.Device, r.Metric, r.From, r.To)
		}
		q := `SELECT device, metric, ts_ms, argMax(value, seq) FROM ` + s.table(TableReadings) + `
WHERE company = ? AND project IN ? AND quality < 2 AND (` + cond.String() + `)
GROUP BY device, metric, ts_ms ORDER BY device, metric, ts_ms`
		rows, err := s.db.conn.Query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("cannot query raw readings: %w", err)
		}
		for rows.Next() {
			var k energy.Key
			var p energy.Point
			if err := rows.Scan(&k.Device, &k.Metric, &p.TS, &p.V); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read raw readings: %w", err)
			}
			out[k] = append(out[k], p)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read raw readings: %w", err)
		}
	}
	for k, pts := range out {
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].TS < pts[j].TS })
		out[k] = pts
	}
	return out, nil
}

// Latest is a metric's newest value.
type Latest struct {
	Value float64
	TS    time.Time
}

// Latest returns the newest value of each metric of devs since since,
// from the hourly roll-up (so of quality good or uncertain only).
func (s *Readings) Latest(ctx context.Context, company, project string, devs []string, since time.Time) (map[string]map[string]Latest, error) {
	out := map[string]map[string]Latest{}
	if len(devs) == 0 {
		return out, nil
	}
	q := `SELECT device, metric, maxMerge(last_ts), argMaxMerge(last_v) FROM ` + s.table(TableHourly) + `
WHERE company = ? AND project = ? AND device IN ? AND hour_ms >= ?
GROUP BY device, metric`
	rows, err := s.db.conn.Query(ctx, q, company, project, groupSet(devs), since.UnixMilli()/energy.HourMS*energy.HourMS)
	if err != nil {
		return nil, fmt.Errorf("cannot query latest values: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dev, metric string
		var ts int64
		var v float64
		if err := rows.Scan(&dev, &metric, &ts, &v); err != nil {
			return nil, fmt.Errorf("cannot read latest values: %w", err)
		}
		if out[dev] == nil {
			out[dev] = map[string]Latest{}
		}
		out[dev][metric] = Latest{Value: v, TS: time.UnixMilli(ts)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read latest values: %w", err)
	}
	return out, nil
}

// SeriesHour is one roll-up hour of one metric.
type SeriesHour struct {
	Hour, FirstTS, LastTS int64
	Min, Max, First, Last float64
	N                     uint64
}

// Series returns the roll-up of one device's metric for hours in [from, to).
func (s *Readings) Series(ctx context.Context, company, project, device, metric string, from, to int64) ([]SeriesHour, error) {
	q := `SELECT hour_ms, minMerge(min_v), maxMerge(max_v), argMinMerge(first_v), minMerge(first_ts),
  argMaxMerge(last_v), maxMerge(last_ts), uniqExactMerge(n)
FROM ` + s.table(TableHourly) + `
WHERE company = ? AND project = ? AND device = ? AND metric = ? AND hour_ms >= ? AND hour_ms < ?
GROUP BY hour_ms ORDER BY hour_ms`
	rows, err := s.db.conn.Query(ctx, q, company, project, device, metric, from, to)
	if err != nil {
		return nil, fmt.Errorf("cannot query series of %q %q: %w", device, metric, err)
	}
	defer rows.Close()
	var out []SeriesHour
	for rows.Next() {
		var h SeriesHour
		if err := rows.Scan(&h.Hour, &h.Min, &h.Max, &h.First, &h.FirstTS, &h.Last, &h.LastTS, &h.N); err != nil {
			return nil, fmt.Errorf("cannot read series of %q %q: %w", device, metric, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read series of %q %q: %w", device, metric, err)
	}
	return out, nil
}
