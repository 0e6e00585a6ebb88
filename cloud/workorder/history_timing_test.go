package workorder

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/chtest"
)

// historySize reads a size from the environment (for a quick run) or
// takes the figure.
func historySize(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	return def
}

// BenchmarkStartWithHistory measures what years of history cost the
// alarm engine and the work-order desk: it stores ALARM_EVENTS historical
// alarm events (four per alarm: raise, repeat, acknowledgement, clear; all
// cleared) and ORDERS closed work orders (six events each) in a fresh
// ClickHouse database, then starts the desk and the engine on it as
// cmd/cloud does and reports
//
//	start-ms          Start of both (load and rebuild from the logs)
//	heap-MiB          live heap the started parts hold (after GC)
//	alarms-p99-ms     Engine.Alarms of the latest 100, as GET /alarms
//	workorders-p99-ms Desk.List of the latest 100, as GET /workorders
//
// Defaults are the 1,000,000 alarm events and 200,000 closed
// orders; PLANTROOM_BENCH_ALARM_EVENTS and PLANTROOM_BENCH_ORDERS scale
// them down. scripts/bench.sh runs it as the "history" rows.
func BenchmarkStartWithHistory(b *testing.B) {
	nEvents := historySize(b, "PLANTROOM_BENCH_ALARM_EVENTS", 1_000_000)
	nOrders := historySize(b, "PLANTROOM_BENCH_ORDERS", 200_000)
	bundle := loadBundle(b)
	conn, db := chtest.NewDatabase(b)
	ctx := context.Background()
	srv, err := store.DetectServer(ctx, conn, "")
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Migrate(ctx, conn, srv, db, append(alarm.Migrations(), Migrations()...)); err != nil {
		b.Fatal(err)
	}
	var devs []config.DeviceInfo
	for _, d := range bundle.Org.Devices() {
		if d.Company.ID == "acme" {
			devs = append(devs, d)
		}
	}
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(2 * 365 * 24 * time.Hour) // two years: 25 monthly partitions
	alog, wlog := alarm.NewClickHouseLog(conn), NewClickHouseLog(conn)
	const chunk = 50_000
	var seq uint64
	// Alarms in time order (an insert of 50,000 spans a few months), spread
	// over the devices.
	step := now.Sub(t0) / time.Duration(nEvents/4+1)
	var evs []alarm.Event
	for i := 0; i < nEvents/4; i++ {
		d := devs[i%len(devs)]
		at := t0.Add(time.Duration(i) * step)
		a := alarm.Alarm{ID: fmt.Sprintf("%s.pump-fault.%d", d.Device.ID, i), Company: d.Company.ID, Project: d.Project.ID,
			Gateway: d.Gateway.ID, Device: d.Device.ID, Category: d.Device.Kind, Rule: "pump-fault", RuleName: "fault",
			RuleKind: "threshold", Severity: "major", Metric: "fault_code", RaisedAt: at, Value: 3, ReadingTS: at}
		for n, kind := range []string{alarm.EventRaise, alarm.EventRepeat, alarm.EventAck, alarm.EventClear} {
			seq++
			ev := alarm.Event{N: uint32(n + 1), Seq: seq, Kind: kind, At: at.Add(time.Duration(n) * time.Minute), Value: 3, ReadingTS: at}
			a.N, a.Seq, a.State, a.Count = ev.N, seq, alarm.StateActive, n+1
			if kind == alarm.EventAck {
				a.Acked, a.AckedBy, a.AckedAt = true, "tech-garden-1", ev.At
			}
			if kind == alarm.EventClear {
				a.State, a.ClearedAt = alarm.StateNormal, ev.At
			}
			ev.Alarm = a
			evs = append(evs, ev)
		}
		if len(evs) >= chunk {
			if err := alog.AppendAlarmEvents(ctx, evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	if err := alog.AppendAlarmEvents(ctx, evs); err != nil {
		b.Fatal(err)
	}
	// Closed work orders, each through the whole lifecycle.
	ostep := now.Sub(t0) / time.Duration(nOrders+1)
	var oevs []Event
	for i := 0; i < nOrders; i++ {
		d := devs[i%len(devs)]
		at := t0.Add(time.Duration(i) * ostep)
		w := WorkOrder{ID: fmt.Sprintf("wo-hist-%07d", i), Company: d.Company.ID, Project: d.Project.ID, Device: d.Device.ID,
			Category: d.Device.Kind, Source: SourceManual, Title: "历史工单 / past order", Severity: "minor", Priority: 3,
			CreatedBy: "pm-garden", OpenedAt: at, RaisedAt: at, SLADue: at.Add(4 * time.Hour), Assignee: "tech-garden-1"}
		from := ""
		for n, to := range []string{StateOpen, StateAssigned, StateAccepted, StateInProgress, StateResolved, StateClosed} {
			seq++
			ev := Event{OrderID: w.ID, N: uint32(n + 1), Seq: seq, Action: ActionTransition, At: at.Add(time.Duration(n) * time.Hour),
				Who: "tech-garden-1", From: from, To: to, Assignee: w.Assignee}
			w.State, w.N, w.Seq = to, ev.N, seq
			ev.Order = w
			oevs = append(oevs, ev)
			from = to
		}
		if len(oevs) >= chunk {
			if err := wlog.AppendOrderEvents(ctx, oevs); err != nil {
				b.Fatal(err)
			}
			oevs = oevs[:0]
		}
	}
	if err := wlog.AppendOrderEvents(ctx, oevs); err != nil {
		b.Fatal(err)
	}
	clock := func() time.Time { return now }
	hq := alarm.Viewer{Staff: "hq-admin", Role: config.RoleHQAdmin, Company: "acme"}
	b.ResetTimer()
	for range b.N {
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		feed := alarm.NewFeed(0, clock)
		desk, err := New(Config{Org: &bundle.Org, Rules: &bundle.Rules, Log: NewClickHouseLog(conn), Feed: feed, Now: clock, CheckInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if err := desk.Start(ctx); err != nil {
			b.Fatal(err)
		}
		e, err := alarm.New(alarm.Config{Org: &bundle.Org, Rules: &bundle.Rules, Log: alarm.NewClickHouseLog(conn), Feed: feed,
			Sinks: []alarm.Sink{desk}, Now: clock, TickInterval: time.Hour, NoStaleWatch: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		p99 := func(f func()) float64 {
			ds := make([]time.Duration, 200)
			for i := range ds {
				t := time.Now()
				f()
				ds[i] = time.Since(t)
			}
			slices.Sort(ds)
			return float64(ds[len(ds)*99/100-1].Microseconds()) / 1000
		}
		alarmsP99 := p99(func() {
			if got := engineAlarms(b, e, hq, alarm.Filter{Limit: 100}); len(got) != 100 {
				b.Fatalf("%d alarms listed, want 100", len(got))
			}
		})
		ordersP99 := p99(func() {
			if got := ordersOf(b, desk, hq, Filter{Limit: 100}); len(got) != 100 {
				b.Fatalf("%d orders listed, want 100", len(got))
			}
		})
		b.ReportMetric(float64(took.Milliseconds()), "start-ms")
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MiB")
		b.ReportMetric(alarmsP99, "alarms-p99-ms")
		b.ReportMetric(ordersP99, "workorders-p99-ms")
		e.Stop()
		desk.Stop()
	}
}
