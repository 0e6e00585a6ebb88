package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// hourlyFigures renders the whole roll-up as text, in key order.
func hourlyFigures(t *testing.T, db *DB) string {
	t.Helper()
	rows, err := db.Conn().Query(testCtx(t), `SELECT device, metric, hour_ms,
    minMerge(min_v), maxMerge(max_v), argMinMerge(first_v), minMerge(first_ts),
    argMaxMerge(last_v), maxMerge(last_ts), uniqExactMerge(n)
FROM readings_hourly
GROUP BY company, project, device, metric, hour_ms
ORDER BY device, metric, hour_ms`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := ""
	for rows.Next() {
		var dev, met string
		var hour, firstTS, lastTS int64
		var minV, maxV, firstV, lastV float64
		var n uint64
		if err := rows.Scan(&dev, &met, &hour, &minV, &maxV, &firstV, &firstTS, &lastV, &lastTS, &n); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s %s %d min=%g max=%g first=%g@%d last=%g@%d n=%d\n", dev, met, hour, minV, maxV, firstV, firstTS, lastV, lastTS, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countReadings(t *testing.T, db *DB) (final, grouped uint64) {
	t.Helper()
	ctx := testCtx(t)
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM readings FINAL").Scan(&final); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn().QueryRow(ctx, `SELECT count() FROM (SELECT any(value) FROM readings
GROUP BY company, project, device, metric, ts_ms)`).Scan(&grouped); err != nil {
		t.Fatal(err)
	}
	return final, grouped
}

func TestDuplicateInsertsChangeNothing(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	var b ReadingBatch
	// A kWh counter across two hours, a pressure with a bad reading, 60 s apart.
	for i := 0; i < 120; i++ {
		ts := hour + int64(i)*60_000
		b.Add("acme", "garden", "gw-garden-1", 7, &protocol.Reading{Device: "garden-meter-main", Metric: "energy_import_kwh", TS: ts, Value: 1000 + float64(i)*0.5})
		q := protocol.QualityGood
		v := 3.0 + float64(i%7)/10
		if i == 30 {
			q, v = protocol.QualityBad, -99
		}
		b.Add("acme", "garden", "gw-garden-1", 7, &protocol.Reading{Device: "garden-pump-1", Metric: "outlet_pressure_bar", TS: ts, Value: v, Quality: q})
	}
	if err := db.InsertReadings(ctx, &b); err != nil {
		t.Fatalf("InsertReadings: %v", err)
	}
	final, grouped := countReadings(t, db)
	before := hourlyFigures(t, db)
	if final != 240 || grouped != 240 {
		t.Fatalf("after one insert: count FINAL = %d, grouped = %d; want 240", final, grouped)
	}
	want := "garden-meter-main energy_import_kwh 1740823200000 min=1000 max=1029.5 first=1000@1740823200000 last=1029.5@1740826740000 n=60\n" +
		"garden-meter-main energy_import_kwh 1740826800000 min=1030 max=1059.5 first=1030@1740826800000 last=1059.5@1740830340000 n=60\n" +
		"garden-pump-1 outlet_pressure_bar 1740823200000 min=3 max=3.6 first=3@1740823200000 last=3.3@1740826740000 n=59\n" +
		"garden-pump-1 outlet_pressure_bar 1740826800000 min=3 max=3.6 first=3.4@1740826800000 last=3@1740830340000 n=60\n"
	if before != want {
		t.Fatalf("hourly figures:\n%s\nwant:\n%s", before, want)
	}

	// The same batch twice more, and half of it once more in another insert.
	for i := 0; i < 2; i++ {
		if err := db.InsertReadings(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	var half ReadingBatch
	for i := 0; i < b.Len(); i += 2 {
		half.Add(b.Company[i], b.Project[i], b.Gateway[i], b.Seq[i], &protocol.Reading{Device: b.Device[i], Metric: b.Metric[i], TS: b.TS[i], Value: b.Value[i], Quality: protocol.Quality(b.Quality[i])})
	}
	if err := db.InsertReadings(ctx, &half); err != nil {
		t.Fatal(err)
	}
	final, grouped = countReadings(t, db)
	if final != 240 || grouped != 240 {
		t.Errorf("after duplicates: count FINAL = %d, grouped = %d; want 240", final, grouped)
	}
	if after := hourlyFigures(t, db); after != before {
		t.Errorf("duplicates changed the hourly roll-up:\n%s\nwas:\n%s", after, before)
	}
	var raw uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM readings").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	t.Logf("raw rows before merges: %d (FINAL collapses them to %d)", raw, final)

	// After the engine merged, the figures are still the same.
	if err := db.Conn().Exec(ctx, "OPTIMIZE TABLE readings FINAL"); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn().Exec(ctx, "OPTIMIZE TABLE readings_hourly FINAL"); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM readings").Scan(&raw); err != nil || raw != 240 {
		t.Errorf("after OPTIMIZE FINAL: %d raw rows, %v; want 240", raw, err)
	}
	if after := hourlyFigures(t, db); after != before {
		t.Errorf("merges changed the hourly roll-up:\n%s\nwas:\n%s", after, before)
	}
}

func TestLatestReadingsAndGatewayStatus(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Millisecond)
	var b ReadingBatch
	b.Add("acme", "garden", "gw-garden-1", 1, &protocol.Reading{Device: "d1", Metric: "m", TS: now.Add(-3 * time.Hour).UnixMilli(), Value: 1})
	b.Add("acme", "garden", "gw-garden-1", 2, &protocol.Reading{Device: "d1", Metric: "m", TS: now.Add(-time.Hour).UnixMilli(), Value: 2, Quality: protocol.QualityUncertain})
	b.Add("acme", "garden", "gw-garden-1", 2, &protocol.Reading{Device: "d2", Metric: "m", TS: now.Add(-50 * time.Hour).UnixMilli(), Value: 9})
	for i := 0; i < 2; i++ { // duplicates change nothing
		if err := db.InsertReadings(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.LatestReadings(ctx, now.Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := LatestRow{Device: "d1", Metric: "m", TS: now.Add(-time.Hour).UnixMilli(), Value: 2, Quality: 1}
	if len(got) != 1 || got[0] != want {
		t.Errorf("LatestReadings = %+v, want [%+v]", got, want)
	}

	ev := []EventRow{
		{Company: "acme", Project: "garden", Gateway: "gw-garden-1", Kind: KindGatewayOnline, TS: now.Add(-time.Minute).UnixMilli(), Arrived: now.UnixMilli()},
		{Company: "acme", Project: "garden", Gateway: "gw-garden-1", Kind: KindGatewayOffline, TS: now.UnixMilli(), Message: "last_will", Arrived: now.UnixMilli()},
		{Company: "acme", Project: "tower", Gateway: "gw-tower-1", Kind: KindGatewayOnline, TS: now.UnixMilli(), Arrived: now.UnixMilli()},
		{Company: "acme", Project: "tower", Gateway: "gw-tower-1", Device: "tower-pump-1", Kind: "device_offline", TS: now.UnixMilli(), Seq: 4, Attrs: `{"errors":3}`, Arrived: now.UnixMilli()},
	}
	if err := db.InsertEvents(ctx, ev); err != nil {
		t.Fatalf("InsertEvents: %v", err)
	}
	st, err := db.LatestGatewayStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byGW := map[string]GatewayStatusRow{}
	for _, s := range st {
		byGW[s.Gateway] = s
	}
	if len(st) != 2 || byGW["gw-garden-1"].Kind != KindGatewayOffline || byGW["gw-garden-1"].Message != "last_will" ||
		byGW["gw-tower-1"].Kind != KindGatewayOnline {
		t.Errorf("LatestGatewayStatus = %+v", st)
	}
}
