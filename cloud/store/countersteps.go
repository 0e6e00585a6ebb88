package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// StepRange asks for the steps of one device's metric in [From, To) (Unix
// ms on hour boundaries).
type StepRange struct {
	Device, Metric string
	From, To       int64
}

// StepRow sums up the steps between consecutive readings (quality good or
// uncertain) inside one hour of one device's metric.
type StepRow struct {
	Device, Metric string
	Hour           int64 // Unix ms of the UTC hour's start
	N              int   // distinct timestamps
	// Falls: some step falls, or one timestamp holds two values.
	Falls bool
	// NeedKW is the largest (rise − slack kWh) × 3600000 / ms of a step:
	// the least maximum power for which every step is plausible.
	NeedKW float64
}

// stepChunk bounds the ranges in one query.
const stepChunk = 200

// CounterSteps sums up, per hour, the steps of the readings in ranges of
// company's projects: what the energy computation needs to know before it
// walks an hour as one step from its first reading to its last. slack is
// the fixed part of a step's allowance in kWh. Duplicate rows (same
// timestamp and value) are steps of 0 ms and 0 kWh and change nothing.
func (db *DB) CounterSteps(ctx context.Context, company string, projects []string, ranges []StepRange, slack float64) ([]StepRow, error) {
	var out []StepRow
	ps := clickhouse.GroupSet{Value: make([]any, len(projects))}
	for i, p := range projects {
		ps.Value[i] = p
	}
	for start := 0; start < len(ranges); start += stepChunk {
		chunk := ranges[start:min(start+stepChunk, len(ranges))]
		var cond strings.Builder
		args := []any{slack, company, ps}
		for i, r := range chunk {
			if i > 0 {
				cond.WriteString(" OR ")
			}
			cond.WriteString("(device = ? AND metric = ? AND ts_ms >= ? AND ts_ms < ?)")
			args = append(args, r.Device, r.Metric, r.From, r.To)
		}
		// Per hour: the readings sorted by time, their differences, and
		// from those whether any falls (or a timestamp repeats with another
		// value) and the largest rise rate beyond the slack.
		q := `SELECT device, metric, h, n,
  arrayExists((a, b) -> b < 0 OR (a = 0 AND b != 0), dt, dv),
  arrayReduce('max', arrayPushBack(arrayMap((a, b) -> if(a = 0, if(b = 0, -1e308, 1e308), (b - ?) * 3600000 / a), dt, dv), -1e308))
FROM (
  SELECT device, metric, intDiv(ts_ms, 3600000) * 3600000 AS h, toInt64(uniqExact(ts_ms)) AS n,
    arraySort(x -> tupleElement(x, 1), groupArray((ts_ms, value))) AS s,
    arrayPopFront(arrayDifference(arrayMap(x -> tupleElement(x, 1), s))) AS dt,
    arrayPopFront(arrayDifference(arrayMap(x -> tupleElement(x, 2), s))) AS dv
  FROM ` + quoteIdent(db.Database()) + `.` + TableReadings + `
  WHERE company = ? AND project IN ? AND quality < 2 AND (` + cond.String() + `)
  GROUP BY device, metric, h
)
ORDER BY device, metric, h`
		rows, err := db.conn.Query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("cannot query counter steps: %w", err)
		}
		for rows.Next() {
			var r StepRow
			var n int64
			var falls uint8
			if err := rows.Scan(&r.Device, &r.Metric, &r.Hour, &n, &falls, &r.NeedKW); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read counter steps: %w", err)
			}
			r.N, r.Falls = int(n), falls != 0
			out = append(out, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read counter steps: %w", err)
		}
	}
	return out, nil
}
