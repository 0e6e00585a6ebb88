package ingest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/edge/uplink"
	"github.com/plantroom/plantroom/protocol"
)

// The edge agent's own durable queue and uplink, as gateway: readings
// appended at the edge end up in ClickHouse with their values, the
// gateway's status is tracked, and its events are stored.
func TestEdgeQueueAndUplinkToClickHouse(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	q, err := queue.New(queue.Config{Path: filepath.Join(t.TempDir(), "queue.db"), Gateway: garden.Gateway, CommitInterval: 5 * time.Millisecond}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Stop)
	u, err := uplink.New(uplink.Config{
		Gateway: garden, Broker: "tcp://" + e.broker.Addr(), Password: "gw-garden-1-secret",
		BatchMaxReadings: 500, BatchMaxDelay: 20 * time.Millisecond, ReconnectMin: 20 * time.Millisecond,
		ReconnectMax: 200 * time.Millisecond, AgentVersion: "edge-test",
	}, q, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the gateway online", func() bool {
		g, _ := e.ingest.Presence().Gateway(garden.Gateway)
		return g.Online && g.Agent == "edge-test"
	})

	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	const n = 3000
	for i := 0; i < n; i += 100 {
		var rs []protocol.Reading
		for j := i; j < i+100; j++ {
			ts := start.Add(time.Duration(j) * time.Second).UnixMilli()
			rs = append(rs,
				protocol.Reading{Device: "garden-meter-main", Metric: "energy_import_kwh", TS: ts, Value: energyAt(0, ts)},
				protocol.Reading{Device: "garden-pump-1", Metric: "outlet_pressure_bar", TS: ts, Value: 3 + float64(j%10)/10})
		}
		if err := q.Append(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.AddEvent(protocol.Event{Gateway: garden.Gateway, Kind: protocol.EventDeviceOffline, Device: "garden-pump-1",
		TS: time.Now().UnixMilli(), Message: "no answer"}); err != nil {
		t.Fatal(err)
	}
	e.waitStored(30*time.Second, 2*n, e.ingest)
	var last float64
	var lastTS int64
	if err := e.db.Conn().QueryRow(ctx, `SELECT argMax(value, ts_ms), max(ts_ms) FROM readings FINAL
WHERE device = 'garden-meter-main' AND metric = 'energy_import_kwh'`).Scan(&last, &lastTS); err != nil {
		t.Fatal(err)
	}
	wantTS := start.Add((n - 1) * time.Second).UnixMilli()
	if lastTS != wantTS || last != energyAt(0, wantTS) {
		t.Errorf("last energy %v at %d, want %v at %d", last, lastTS, energyAt(0, wantTS), wantTS)
	}
	waitFor(t, 10*time.Second, "the edge event", func() bool {
		return e.count("SELECT count() FROM events FINAL WHERE kind = 'device_offline' AND device = 'garden-pump-1'") == 1
	})

	// A clean stop of the uplink announces the gateway offline.
	u.Stop()
	waitFor(t, 10*time.Second, "the gateway offline", func() bool {
		g, _ := e.ingest.Presence().Gateway(garden.Gateway)
		return g.Known && !g.Online
	})
}
