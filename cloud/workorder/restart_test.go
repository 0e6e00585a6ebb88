package workorder

import (
	"context"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/internal/fakes"
	"github.com/plantroom/plantroom/protocol"
)

// cloudParts is the alarm engine and the desk on one ClickHouse database,
// wired as the cloud wires them.
type cloudParts struct {
	engine *alarm.Engine
	desk   *Desk
}

func migrate(t *testing.T) store.Querier {
	t.Helper()
	conn, db := chtest.NewDatabase(t)
	ctx := context.Background()
	srv, err := store.DetectServer(ctx, conn, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, conn, srv, db, append(alarm.Migrations(), Migrations()...)); err != nil {
		t.Fatal(err)
	}
	return conn
}

func startParts(t *testing.T, b *config.Bundle, conn store.Querier, now func() time.Time) *cloudParts {
	t.Helper()
	feed := alarm.NewFeed(0, now)
	desk, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: NewClickHouseLog(conn), Feed: feed, Now: now, CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := desk.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e, err := alarm.New(alarm.Config{Org: &b.Org, Rules: &b.Rules, Log: alarm.NewClickHouseLog(conn), Feed: feed,
		Sinks: []alarm.Sink{desk}, Now: now, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := &cloudParts{engine: e, desk: desk}
	t.Cleanup(p.stop)
	return p
}

func (p *cloudParts) stop() {
	p.engine.Stop()
	p.desk.Stop()
}

func TestRestartWithActiveAlarmsAndOpenOrders(t *testing.T) {
	conn := migrate(t)
	b := loadBundle(t)
	clock := fakes.NewClock(monday10)
	ctx := context.Background()
	gw, _ := b.Org.FindGateway("gw-garden-1")
	var sent []*protocol.Batch
	send := func(p *cloudParts, at time.Duration, rs ...protocol.Reading) {
		ts := monday10.Add(at)
		clock.Set(ts)
		for i := range rs {
			rs[i].TS = ts.UnixMilli()
		}
		bt := &protocol.Batch{Epoch: 1, Gateway: gw.Gateway.ID, Seq: uint64(len(sent) + 1), SentAt: ts.UnixMilli(), Readings: rs}
		sent = append(sent, bt)
		p.engine.ObserveBatch(ctx, gw, bt, ts)
	}
	pressure := func(v float64) protocol.Reading {
		return protocol.Reading{Device: "garden-pump-1", Metric: "outlet_pressure_bar", Value: v}
	}
	trapped := func(v float64) protocol.Reading {
		return protocol.Reading{Device: "garden-elevator-1", Metric: "trapped", Value: v}
	}

	p1 := startParts(t, b, conn, clock.Now)
	send(p1, 0, pressure(1.2), trapped(1))
	send(p1, 30*time.Second, pressure(1.1))
	orders := ordersOf(t, p1.desk, hqAdmin, Filter{})
	if len(orders) != 2 {
		t.Fatalf("%d orders, want 2 (trapped, pressure)", len(orders))
	}
	var trappedID string
	for _, w := range orders {
		if w.Rule == "elevator-trapped" {
			trappedID = w.ID
		}
	}
	clock.Set(monday10.Add(2 * time.Minute))
	if _, err := p1.desk.Transition(ctx, techGarden1, trappedID, TransitionRequest{To: StateAccepted, Note: "赶往现场"}); err != nil {
		t.Fatal(err)
	}
	alarmsBefore := engineAlarms(t, p1.engine, alarm.Viewer{Role: config.RoleHQAdmin, Company: "acme"}, alarm.Filter{})
	ordersBefore := ordersOf(t, p1.desk, hqAdmin, Filter{})
	p1.stop()

	// Restart: everything is back, nothing twice.
	p2 := startParts(t, b, conn, clock.Now)
	alarmsAfter := engineAlarms(t, p2.engine, alarm.Viewer{Role: config.RoleHQAdmin, Company: "acme"}, alarm.Filter{})
	ordersAfter := ordersOf(t, p2.desk, hqAdmin, Filter{})
	if len(alarmsAfter) != len(alarmsBefore) || len(ordersAfter) != len(ordersBefore) {
		t.Fatalf("after restart %d alarms, %d orders; before %d, %d", len(alarmsAfter), len(ordersAfter), len(alarmsBefore), len(ordersBefore))
	}
	for i := range ordersBefore {
		a, b := ordersBefore[i], ordersAfter[i]
		if a.ID != b.ID || a.State != b.State || a.Assignee != b.Assignee || a.N != b.N || !a.SLADue.Equal(b.SLADue) || !a.AcceptedAt.Equal(b.AcceptedAt) {
			t.Errorf("order changed across restart:\nbefore %+v\nafter  %+v", a, b)
		}
	}
	full, err := p2.desk.Get(context.Background(), techGarden1, trappedID)
	if err != nil || len(full.History) != 3 || full.History[2].Note != "赶往现场" || full.History[2].Who != "tech-garden-1" {
		t.Fatalf("history after restart: %v %+v", err, full.History)
	}
	// Ingest redelivers everything it may not have acknowledged.
	for _, bt := range sent {
		p2.engine.ObserveBatch(ctx, gw, bt, clock.Now())
	}
	if got := ordersOf(t, p2.desk, hqAdmin, Filter{}); len(got) != 2 {
		t.Fatalf("%d orders after redelivery, want 2", len(got))
	}
	if got := engineAlarms(t, p2.engine, alarm.Viewer{Role: config.RoleHQAdmin, Company: "acme"}, alarm.Filter{}); len(got) != 2 {
		t.Fatalf("%d alarms after redelivery, want 2", len(got))
	}
	evs, err := NewClickHouseLog(conn).LoadOrderEvents(ctx, time.Time{})
	if err != nil || len(evs) != 5 { // open+assign twice, accept
		t.Fatalf("stored order events: %v, %d, want 5", err, len(evs))
	}
	// Work goes on after the restart: the trapped order completes.
	for _, s := range []string{StateInProgress, StateResolved} {
		if _, err := p2.desk.Transition(ctx, techGarden1, trappedID, TransitionRequest{To: s}); err != nil {
			t.Fatal(err)
		}
	}
	send(p2, 3*time.Minute, trapped(0), pressure(3))
	send(p2, 5*time.Minute, trapped(0), pressure(3))
	if got := engineAlarms(t, p2.engine, alarm.Viewer{Role: config.RoleHQAdmin, Company: "acme"}, alarm.Filter{State: alarm.StateActive}); len(got) != 0 {
		t.Fatalf("active after recovery: %+v", got)
	}
}
