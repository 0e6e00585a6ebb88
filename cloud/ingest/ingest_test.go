package ingest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

var gardenDevices = []string{"garden-meter-main", "garden-pump-1"}

func TestGatewayToClickHouse(t *testing.T) {
	var e *env
	committedBeforeObserved := true
	e = newEnv(t, envOptions{ingest: func(c *Config) {
		// The observer checks, for every batch, that its rows are already
		// in ClickHouse when it is told.
		c.Observers = nil
	}})
	e.obs.check = func(b *protocol.Batch) {
		n := e.count("SELECT count() FROM readings FINAL WHERE gateway = ? AND seq = ?", b.Gateway, b.Seq)
		if int(n) != len(b.Readings) {
			committedBeforeObserved = false
		}
	}
	e.ingest.AddObserver(e.obs)

	gw := e.gateway(garden, "gw-garden-1", nil)
	tw := e.gateway(tower, "gw-tower-1", nil)
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	const batches, perDevice = 20, 30
	for s := 0; s < batches; s++ {
		t0 := start.Add(time.Duration(s*perDevice) * 10 * time.Second)
		publish(t, gw, garden.Topic(protocol.KindTelemetry), encode(t, makeBatch("gw-garden-1", uint64(s+1), t0, gardenDevices, perDevice)))
	}
	publish(t, tw, tower.Topic(protocol.KindTelemetry), encode(t, makeBatch("gw-tower-1", 1, start, []string{"tower-meter-main"}, perDevice)))

	want := uint64(batches*perDevice*2*len(gardenDevices) + perDevice*2)
	e.waitStored(30*time.Second, want, e.ingest)

	// Values and times as sent.
	if n := e.count("SELECT count() FROM readings FINAL WHERE company = 'acme' AND project = 'tower' AND gateway = 'gw-tower-1'"); n != perDevice*2 {
		t.Errorf("tower readings = %d, want %d", n, perDevice*2)
	}
	end := start.Add(time.Duration(batches*perDevice-1) * 10 * time.Second)
	var first, last float64
	var minTS, maxTS int64
	ctx := context.Background()
	err := e.db.Conn().QueryRow(ctx, `SELECT argMin(value, ts_ms), argMax(value, ts_ms), min(ts_ms), max(ts_ms)
FROM readings FINAL WHERE device = 'garden-pump-1' AND metric = 'energy_import_kwh'`).Scan(&first, &last, &minTS, &maxTS)
	if err != nil {
		t.Fatal(err)
	}
	wantFirst, wantLast := energyAt(1, start.UnixMilli()), energyAt(1, end.UnixMilli())
	if first != wantFirst || math.Abs(last-wantLast) > 1e-9 || minTS != start.UnixMilli() || maxTS != end.UnixMilli() {
		t.Errorf("garden-pump-1 energy: first %v last %v (want %v, %v), ts %d..%d (want %d..%d)",
			first, last, wantFirst, wantLast, minTS, maxTS, start.UnixMilli(), end.UnixMilli())
	}
	// The roll-up counts each reading once.
	if n := e.count("SELECT sum(c) FROM (SELECT uniqExactMerge(n) AS c FROM readings_hourly GROUP BY company, project, device, metric, hour_ms)"); n != want {
		t.Errorf("hourly roll-up counts %d readings, want %d", n, want)
	}

	// Observers saw every batch after its commit.
	waitFor(t, 10*time.Second, "observer calls", func() bool {
		e.obs.mu.Lock()
		defer e.obs.mu.Unlock()
		return len(e.obs.batches) == batches+1
	})
	if !committedBeforeObserved {
		t.Error("an observer was called before its batch was committed")
	}
	// The latest-values cache and presence follow the commits.
	lv := e.ingest.Latest().Get("garden-pump-1")
	if v := lv["energy_import_kwh"]; !v.TS.Equal(end) || math.Abs(v.Value-wantLast) > 1e-9 {
		t.Errorf("latest garden-pump-1 energy = %+v, want %v at %v", v, wantLast, end)
	}
	if d, _ := e.ingest.Presence().Device("garden-pump-1"); !d.LastTS.Equal(end) {
		t.Errorf("presence last seen %v, want %v", d.LastTS, end)
	}
	if got := e.metric(e.ingest.metrics.readings); got != float64(want) {
		t.Errorf("readings_total = %v, want %v", got, want)
	}
	waitFor(t, 5*time.Second, "no unacknowledged messages", func() bool { return e.metric(e.ingest.metrics.unacked) == 0 })
}
