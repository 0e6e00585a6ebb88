package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/protocol"
)

var gardenRef = protocol.GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-garden-1"}

// killBatches are the test's telemetry: two devices' kWh counters and power,
// every 10 s from 2026-01-31 12:00 UTC, crossing into February.
const (
	killBatches   = 240
	killPerDevice = 25
)

var killStart = time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)

func killBatch(seq int) *protocol.Batch {
	t0 := killStart.Add(time.Duration(seq*killPerDevice) * 10 * time.Second)
	b := &protocol.Batch{Epoch: 1, Gateway: "gw-garden-1", Seq: uint64(seq + 1), SentAt: t0.UnixMilli()}
	// Each device's counter and power metric as its template names them
	// (the ingest refuses metrics a template does not declare).
	for di, d := range []struct{ id, counter, power string }{
		{"garden-meter-main", "energy_import_kwh", "power_total_w"},
		{"garden-pump-1", "energy_kwh", "power_kw"},
	} {
		for i := 0; i < killPerDevice; i++ {
			ts := t0.Add(time.Duration(i) * 10 * time.Second)
			b.Readings = append(b.Readings,
				protocol.Reading{Device: d.id, Metric: d.counter, TS: ts.UnixMilli(), Value: kwh(di, ts)},
				protocol.Reading{Device: d.id, Metric: d.power, TS: ts.UnixMilli(), Value: float64(10*di + i)})
		}
	}
	return b
}

func kwh(di int, ts time.Time) float64 { return float64(5000*di) + ts.Sub(killStart).Hours()*3.5 }

// monthly renders, per device and month, the reading count and the energy
// used, computed from the hourly roll-up the way a report does.
func monthly(t *testing.T, db *store.DB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.Conn().Query(ctx, `SELECT device, toYYYYMM(toDateTime(intDiv(hour_ms, 1000))) AS month,
    sum(n), max(last) - min(first)
FROM (
    SELECT device, metric, hour_ms, uniqExactMerge(n) AS n, argMinMerge(first_v) AS first, argMaxMerge(last_v) AS last
    FROM readings_hourly GROUP BY company, project, device, metric, hour_ms
)
WHERE metric IN ('energy_import_kwh', 'energy_kwh')
GROUP BY device, month ORDER BY device, month`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var dev string
		var month uint32
		var n uint64
		var kwh float64
		if err := rows.Scan(&dev, &month, &n, &kwh); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %d n=%d kwh=%.3f", dev, month, n, kwh))
	}
	return strings.Join(lines, "\n")
}

// wantMonthly computes the same figures from the generated data.
func wantMonthly() string {
	type key struct {
		dev   string
		month int
	}
	type agg struct {
		n        int
		min, max float64
	}
	m := map[key]*agg{}
	for s := 0; s < killBatches; s++ {
		for _, r := range killBatch(s).Readings {
			if r.Metric != "energy_import_kwh" && r.Metric != "energy_kwh" {
				continue
			}
			ts := time.UnixMilli(r.TS).UTC()
			k := key{r.Device, ts.Year()*100 + int(ts.Month())}
			a := m[k]
			if a == nil {
				a = &agg{min: math.Inf(1), max: math.Inf(-1)}
				m[k] = a
			}
			a.n++
			a.min, a.max = math.Min(a.min, r.Value), math.Max(a.max, r.Value)
		}
	}
	var lines []string
	for k, a := range m {
		lines = append(lines, fmt.Sprintf("%s %d n=%d kwh=%.3f", k.dev, k.month, a.n, a.max-a.min))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// The ingest runs as its own process (bin/cloud with components [ingest])
// against an embedded broker; it is killed with SIGKILL mid-stream and
// started again. Nothing is lost, and nothing is counted twice in the
// hourly or monthly figures.
func TestIngestKilledAndRestarted(t *testing.T) {
	bin := buildCloud(t)
	_, dbName := chtest.NewDatabase(t)
	ch := chtest.Addr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := store.Open(ctx, store.Options{Addr: ch.Addr, User: ch.User, Password: ch.Password, Database: dbName})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := demoBroker(t)
	chProxy := nettest.NewProxy(t, ch.Addr)
	cfgPath := writeConfig(t, b.Addr(), chProxy.Addr(), dbName)

	first := startChild(t, bin, "-config", cfgPath)
	first.waitReady(t)

	opts := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("gw-garden-1").
		SetUsername("gw-garden-1").SetPassword("demo-gw-garden-1-secret").SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false)
	gw := paho.NewClient(opts)
	if tok := gw.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway connect: %v", tok.Error())
	}
	defer gw.Disconnect(50)
	// The first half goes out at once; the second half waits for the kill,
	// so part of it is published while no ingest runs.
	published, resume := make(chan error, 1), make(chan struct{})
	go func() {
		for s := 0; s < killBatches; s++ {
			if s == killBatches/2 {
				<-resume
			}
			p, err := protocol.AppendBatch(nil, killBatch(s))
			if err == nil {
				tok := gw.Publish(gardenRef.Topic(protocol.KindTelemetry), 1, false, p)
				if !tok.WaitTimeout(60 * time.Second) {
					err = fmt.Errorf("batch %d not acknowledged", s)
				} else {
					err = tok.Error()
				}
			}
			if err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()

	const total = killBatches * killPerDevice * 2 * 2
	// After the first commit, take ClickHouse away from the ingest: it goes
	// on receiving, cannot commit, and holds the messages unacknowledged.
	// Then kill it.
	waitFor(t, 60*time.Second, "the first commit", func() bool {
		return count(t, db, "SELECT count() FROM readings") > 0
	})
	chProxy.Cut(nettest.CutReset)
	waitFor(t, 30*time.Second, "messages held by the ingest", func() bool { return b.Pending("plantroom-ingest-1") >= 10 })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	killedAt := count(t, db, "SELECT count() FROM readings FINAL")
	t.Logf("killed the ingest with %d of %d readings stored and %d messages unacknowledged", killedAt, total, b.Pending("plantroom-ingest-1"))
	chProxy.Restore()
	close(resume)

	second := startChild(t, bin, "-config", cfgPath)
	second.waitReady(t)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "every reading", func() bool {
		return count(t, db, "SELECT count() FROM readings FINAL") == total
	})
	// A graceful stop commits what it holds and exits 0.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.exited:
		if second.err != nil {
			t.Errorf("cloud exited with %v after SIGTERM", second.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cloud did not stop within 30s of SIGTERM")
	}

	t.Logf("raw rows %d for %d readings (redelivered after the kill, collapsed by FINAL)", count(t, db, "SELECT count() FROM readings"), total)
	if n := count(t, db, "SELECT count() FROM (SELECT any(value) FROM readings GROUP BY company, project, device, metric, ts_ms)"); n != total {
		t.Errorf("GROUP BY count %d, want %d", n, total)
	}
	if n := count(t, db, "SELECT sum(c) FROM (SELECT uniqExactMerge(n) AS c FROM readings_hourly GROUP BY company, project, device, metric, hour_ms)"); n != total {
		t.Errorf("hourly roll-up counts %d readings, want %d", n, total)
	}
	if got, want := monthly(t, db), wantMonthly(); got != want {
		t.Errorf("monthly figures:\n%s\nwant:\n%s", got, want)
	}
}

// `cloud migrate` creates the schema and exits.
func TestMigrateCommand(t *testing.T) {
	bin := buildCloud(t)
	_, dbName := chtest.NewDatabase(t)
	c := startChild(t, bin, "migrate", "-config", writeConfig(t, "127.0.0.1:1", "", dbName))
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("migrate did not finish")
	}
	if c.err != nil {
		t.Fatalf("migrate: %v", c.err)
	}
	ch := chtest.Addr(t)
	db, err := store.Open(context.Background(), store.Options{Addr: ch.Addr, User: ch.User, Password: ch.Password, Database: dbName})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := count(t, db, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name IN ('readings', 'readings_hourly', 'readings_hourly_mv', 'events', 'schema_migrations')"); n != 5 {
		t.Errorf("%d of 5 tables after migrate", n)
	}
}
