package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/plantroom/plantroom/cloud/energy"
)

// TableCounterSteps keeps the step summaries of hours (CounterSteps) that
// energy reports have worked out, so that a report in another process, or
// after a restart, reads one small row per device-hour instead of every raw
// reading of the month. A row names the roll-up row it was worked out for
// (its version — n_rows and ts_sum, see hourlyVersionCols —, first and last
// reading, whether the value fell; n in rows stored before migration 7,
// which no longer match and are worked out again once): it answers
// only while the hour's roll-up row is exactly that, the rule of the
// in-process cache (stepCache). A reading added to the hour changes the
// roll-up row, and the summary is worked out again from the raw readings and
// stored anew, replacing the row of the older state.
const TableCounterSteps = "counter_steps"

// CounterStepsColumns is the column list of counter_steps in insert order.
const CounterStepsColumns = "company, device, metric, hour_ms, n, first_ts, last_ts, first_v, last_v, fell, falls, need_kw, computed_ms, n_rows, ts_sum"

var counterStepsCols = []column{
	{name: "company", typ: "String", lowCard: true},
	{name: "device", typ: "String", codec: "ZSTD(1)"},
	{name: "metric", typ: "String", lowCard: true},
	{name: "hour_ms", typ: "Int64", codec: "Delta, ZSTD(1)"},
	// The roll-up row the summary belongs to.
	{name: "n", typ: "Int64"},
	{name: "first_ts", typ: "Int64", codec: "Delta, ZSTD(1)"},
	{name: "last_ts", typ: "Int64", codec: "Delta, ZSTD(1)"},
	{name: "first_v", typ: "Float64", codec: "Gorilla, ZSTD(1)"},
	{name: "last_v", typ: "Float64", codec: "Gorilla, ZSTD(1)"},
	{name: "fell", typ: "UInt8"},
	// The summary.
	{name: "falls", typ: "UInt8"},
	{name: "need_kw", typ: "Float64"},
	{name: "computed_ms", typ: "Int64"},
}

// counterStepsVersionCols (migration 7) hold the roll-up row's version
// (hourlyVersionCols) with the rest of the row.
var counterStepsVersionCols = []column{
	{name: "n_rows", typ: "Int64"},
	{name: "ts_sum", typ: "Int64"},
}

const counterStepsShardKey = "cityHash64(company, device)"

// counterStepsDDL: a ReplacingMergeTree keyed like the step cache (company,
// device, metric, hour): the summary stored last is kept. Until a merge
// several rows of an hour may exist; a reader takes the one of the roll-up
// row it holds, if any.
func counterStepsDDL(s Server, db string) []string {
	t := table{
		name: TableCounterSteps, cols: counterStepsCols,
		engine: "ReplacingMergeTree", args: "computed_ms",
		partition: "toYYYYMM(toDateTime(intDiv(hour_ms, 1000)))",
		orderBy:   "company, device, metric, hour_ms",
		shardKey:  counterStepsShardKey,
	}
	return t.ddl(s, db)
}

// storedSteps returns, for the hours asked, the stored summaries whose
// roll-up row is exactly the asked one.
func (s *Readings) storedSteps(ctx context.Context, company string, asked map[stepKey]energy.Hour) (map[stepKey]energy.HourSteps, error) {
	out := map[stepKey]energy.HourSteps{}
	if len(asked) == 0 {
		return out, nil
	}
	// Until a merge an hour may have several rows of its roll-up row's
	// state (worked out by two processes): the one stored last answers.
	at := map[stepKey]int64{}
	// Chunks of devices, each read over the time span of its hours: the
	// table's sorting key serves company and device.
	byDev := map[string][]stepKey{}
	var devs []string
	for k := range asked {
		if _, ok := byDev[k.device]; !ok {
			devs = append(devs, k.device)
		}
		byDev[k.device] = append(byDev[k.device], k)
	}
	for start := 0; start < len(devs); start += stepChunk {
		chunk := devs[start:min(start+stepChunk, len(devs))]
		ds, ms := clickhouse.GroupSet{}, clickhouse.GroupSet{}
		seenMet := map[string]bool{}
		from, to := int64(math.MaxInt64), int64(math.MinInt64)
		for _, d := range chunk {
			ds.Value = append(ds.Value, d)
			for _, k := range byDev[d] {
				if !seenMet[k.metric] {
					seenMet[k.metric] = true
					ms.Value = append(ms.Value, k.metric)
				}
				from, to = min(from, k.hour), max(to, k.hour+energy.HourMS)
			}
		}
		q := "SELECT device, metric, hour_ms, n, first_ts, last_ts, first_v, last_v, fell, falls, need_kw, computed_ms, n_rows, ts_sum FROM " + s.table(TableCounterSteps) +
			" WHERE company = ? AND device IN ? AND metric IN ? AND hour_ms >= ? AND hour_ms < ?"
		rows, err := s.db.conn.Query(ctx, q, company, ds, ms, from, to)
		if err != nil {
			return nil, fmt.Errorf("cannot query stored counter steps: %w", err)
		}
		var (
			dev, metric string
			h           energy.Hour
			n           int64
			fell, falls uint8
			need        float64
			computed    int64
		)
		for rows.Next() {
			if err := rows.Scan(&dev, &metric, &h.Hour, &n, &h.FirstTS, &h.LastTS, &h.First, &h.Last, &fell, &falls, &need, &computed, &h.Rows, &h.TSSum); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read stored counter steps: %w", err)
			}
			h.Fell = fell != 0
			k := stepKey{company, dev, metric, h.Hour}
			want, ok := asked[k]
			if want.N > 0 {
				h.N = int(n) // a roll-up row with its reading count
			}
			if ok && (want.N > 0 || want.Rows > 0) && want == h {
				if prev, ok := at[k]; ok && prev > computed {
					continue
				}
				at[k] = computed
				out[k] = energy.HourSteps{Hour: h.Hour, N: int(n), Falls: falls != 0, NeedKW: need}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read stored counter steps: %w", err)
		}
	}
	return out, nil
}

// storeSteps keeps summaries worked out from the raw readings, each with
// the roll-up row it belongs to. Column n holds the summary's reading count
// (the row's too, where the row has one).
func (s *Readings) storeSteps(ctx context.Context, rows map[stepKey]stepEntry) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.db.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(TableCounterSteps)+" ("+CounterStepsColumns+")")
	if err != nil {
		return fmt.Errorf("cannot store %d counter step summaries: %w", len(rows), err)
	}
	defer batch.Close()
	now := time.Now().UnixMilli()
	for k, e := range rows {
		h := e.row
		if err := batch.Append(k.company, k.device, k.metric, h.Hour, int64(e.st.N), h.FirstTS, h.LastTS, h.First, h.Last,
			b2u(h.Fell), b2u(e.st.Falls), e.st.NeedKW, now, h.Rows, h.TSSum); err != nil {
			return fmt.Errorf("cannot store %d counter step summaries: %w", len(rows), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot store %d counter step summaries: %w", len(rows), err)
	}
	return nil
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
