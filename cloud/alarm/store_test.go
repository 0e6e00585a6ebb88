package alarm

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/internal/fakes"
	"github.com/plantroom/plantroom/protocol"
)

// newClickHouseLog migrates a fresh database and returns a log on it.
func newClickHouseLog(t *testing.T) *ClickHouseLog {
	t.Helper()
	conn, db := chtest.NewDatabase(t)
	ctx := context.Background()
	srv, err := store.DetectServer(ctx, conn, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, conn, srv, db, Migrations()); err != nil {
		t.Fatal(err)
	}
	// Running the migrations again is harmless.
	if err := store.Migrate(ctx, conn, srv, db, Migrations()); err != nil {
		t.Fatal(err)
	}
	return NewClickHouseLog(conn)
}

func startEngine(t *testing.T, b *config.Bundle, log EventLog, clock *fakes.Clock, sinks ...Sink) *Engine {
	t.Helper()
	e, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: log, Now: clock.Now, TickInterval: time.Hour, Sinks: sinks})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

func TestRestartFromClickHouseDuplicatesNothingAndLosesNothing(t *testing.T) {
	log := newClickHouseLog(t)
	b := loadBundle(t)
	clock := fakes.NewClock(t0)
	ctx := context.Background()
	garden, _ := b.Org.FindGateway(gwGarden)
	batch := func(e *Engine, seq uint64, at time.Duration, rs ...protocol.Reading) {
		ts := t0.Add(at)
		clock.Set(ts)
		for i := range rs {
			rs[i].TS = ts.UnixMilli()
		}
		e.ObserveBatch(ctx, garden, &protocol.Batch{Epoch: 1, Gateway: gwGarden, Seq: seq, SentAt: ts.UnixMilli(), Readings: rs}, ts)
	}
	low := func(v float64) protocol.Reading { return protocol.Reading{Device: pump, Metric: pressure, Value: v} }
	trapped := func(v float64) protocol.Reading {
		return protocol.Reading{Device: "garden-elevator-1", Metric: "trapped", Value: v}
	}

	e1 := startEngine(t, b, log, clock)
	batch(e1, 1, 0, low(1.5), trapped(1))
	batch(e1, 2, 30*time.Second, low(1.4))
	if _, err := e1.Ack(ctx, techGarden, alarmsOf(t, e1, hqAdmin, Filter{Device: "garden-elevator-1"})[0].ID, "on my way"); err != nil {
		t.Fatal(err)
	}
	batch(e1, 3, 40*time.Second, trapped(0)) // starts the trapped alarm's hold; not stored
	before := alarmsOf(t, e1, hqAdmin, Filter{})
	if len(before) != 2 {
		t.Fatalf("alarms before restart: %+v", before)
	}
	e1.Stop()

	// A new engine on the same storage: the same alarms, same state.
	e2 := startEngine(t, b, log, clock)
	after := alarmsOf(t, e2, hqAdmin, Filter{})
	if len(after) != len(before) {
		t.Fatalf("after restart %d alarms, before %d", len(after), len(before))
	}
	for i := range before {
		a, b := before[i], after[i]
		if a.ID != b.ID || a.State != b.State || a.Acked != b.Acked || a.AckedBy != b.AckedBy || a.Value != b.Value ||
			!a.RaisedAt.Equal(b.RaisedAt) || a.N != b.N || a.Seq != b.Seq || a.Count != b.Count {
			t.Errorf("alarm changed across restart:\nbefore %+v\nafter  %+v", a, b)
		}
	}
	// Ingest redelivers the batches it had not acknowledged: nothing new.
	batch(e2, 1, 0, low(1.5), trapped(1))
	batch(e2, 2, 30*time.Second, low(1.4))
	evs, err := log.AlarmEventsSince(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 { // two raises and one ack
		t.Fatalf("stored events after redelivery: %d, want 3: %+v", len(evs), evs)
	}
	// New readings carry on from the restored state: the pump stays one
	// alarm, and both clear in time.
	batch(e2, 4, 50*time.Second, low(1.2), trapped(0))
	batch(e2, 5, 60*time.Second, low(3.0))
	batch(e2, 6, 90*time.Second, trapped(0))
	batch(e2, 7, 120*time.Second, low(3.0))
	if got := alarmsOf(t, e2, hqAdmin, Filter{State: StateActive}); len(got) != 0 {
		t.Fatalf("still active: %+v", got)
	}
	if got := alarmsOf(t, e2, hqAdmin, Filter{}); len(got) != 2 {
		t.Fatalf("%d alarms after clearing, want the same 2", len(got))
	}
	evs, err = log.AlarmEventsSince(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind+":"+ev.Alarm.Rule)
	}
	want := []string{"raise:elevator-trapped", "raise:pump-pressure-low", "ack:elevator-trapped", "clear:elevator-trapped", "clear:pump-pressure-low"}
	if len(kinds) != len(want) {
		t.Fatalf("stored events %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("stored events %v, want %v", kinds, want)
		}
	}
	// The reading behind each event is stored with it.
	if ev := evs[1]; ev.Value != 1.4 || !ev.ReadingTS.Equal(t0.Add(30*time.Second)) || ev.Alarm.Category != "pump" {
		t.Errorf("raise event %+v: want the reading 1.4 at +30s", ev)
	}
	if ev := evs[2]; ev.Who != "tech-garden-1" || ev.Note != "on my way" || !ev.Alarm.Acked {
		t.Errorf("ack event %+v", ev)
	}
	hist, err := log.DeviceEvents(ctx, "garden", pump, t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil || len(hist) != 2 {
		t.Fatalf("device history: %v %+v", err, hist)
	}
}

func TestClickHouseLogStoresAnEventOnce(t *testing.T) {
	log := newClickHouseLog(t)
	ctx := context.Background()
	ev := Event{Seq: 7, N: 1, Kind: EventRaise, At: t0, From: StateNormal, To: StateActive, Value: 1.5, ReadingTS: t0,
		Alarm: Alarm{ID: "d.r.1", Company: "acme", Project: "garden", Device: "d", Rule: "r", State: StateActive, RaisedAt: t0, Seq: 7, N: 1, Count: 1}}
	for i := 0; i < 3; i++ {
		if err := log.AppendAlarmEvents(ctx, []Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := log.AlarmEvents(ctx, "d.r.1")
	if err != nil || len(evs) != 1 {
		t.Fatalf("events of d.r.1: %v, %d (want 1)", err, len(evs))
	}
	got := evs[0]
	if got.Seq != 7 || got.Kind != EventRaise || got.Value != 1.5 || !got.At.Equal(t0) || got.Alarm.Project != "garden" || got.Alarm.Count != 1 {
		t.Errorf("round trip: %+v", got)
	}
	as, err := log.LoadAlarms(ctx, time.Time{})
	if err != nil || len(as) != 1 || as[0].ID != "d.r.1" || as[0].State != StateActive {
		t.Fatalf("LoadAlarms: %v %+v", err, as)
	}
	items, err := log.Backfill(ctx, 6, 10)
	if err != nil || len(items) != 1 || items[0].Seq != 7 || items[0].Project != "garden" {
		t.Fatalf("backfill: %v %+v", err, items)
	}
}

// TestReplayAfterRestart: readings committed by ingest but not evaluated
// before the cloud stopped, and a condition still pending, are picked up
// from storage at start; what was already raised and cleared is not raised
// again.
func TestReplayAfterRestart(t *testing.T) {
	conn, db := chtest.NewDatabase(t)
	ctx := context.Background()
	srv, err := store.DetectServer(ctx, conn, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, conn, srv, db, append(store.ReadingsMigrations(store.SchemaOptions{}), Migrations()...)); err != nil {
		t.Fatal(err)
	}
	log := NewClickHouseLog(conn)
	b := loadBundle(t)
	clock := fakes.NewClock(t0)
	garden, _ := b.Org.FindGateway(gwGarden)
	// stored inserts readings as ingest does; observe also hands them to e.
	var seq uint64
	stored := func(e *Engine, at time.Duration, rs ...protocol.Reading) {
		ts := t0.Add(at)
		clock.Set(ts)
		seq++
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO readings ("+store.ReadingsColumns+")")
		if err != nil {
			t.Fatal(err)
		}
		for i := range rs {
			rs[i].TS = ts.UnixMilli()
			if err := batch.Append("acme", "garden", gwGarden, rs[i].Device, rs[i].Metric, rs[i].TS, rs[i].Value, uint8(0), seq, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
		if e != nil {
			e.ObserveBatch(ctx, garden, &protocol.Batch{Epoch: 1, Gateway: gwGarden, Seq: seq, SentAt: ts.UnixMilli(), Readings: rs}, ts)
		}
	}
	low := func(v float64) protocol.Reading { return protocol.Reading{Device: pump, Metric: pressure, Value: v} }
	trapped := func(v float64) protocol.Reading {
		return protocol.Reading{Device: "garden-elevator-1", Metric: "trapped", Value: v}
	}
	start := func() *Engine {
		e, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: log, Readings: log, Now: clock.Now, TickInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Stop)
		return e
	}
	e1 := start()
	stored(e1, 0, trapped(1), low(3))
	stored(e1, 10*time.Second, trapped(0), low(3))
	stored(e1, 20*time.Second, low(1.5))             // pressure pending from +20s
	stored(e1, 45*time.Second, trapped(0), low(1.5)) // trapped clears (30s hold); pressure 25s of 30s
	if n := len(alarmsOf(t, e1, hqAdmin, Filter{})); n != 1 {
		t.Fatalf("before the stop: %d alarms, want the trapped one", n)
	}
	e1.Stop()
	// Committed by ingest, never evaluated: the pressure stays low.
	stored(nil, 50*time.Second, low(1.4))

	e2 := start()
	all := alarmsOf(t, e2, hqAdmin, Filter{})
	if len(all) != 2 {
		t.Fatalf("after replay: %+v", all)
	}
	a := alarmsOf(t, e2, hqAdmin, Filter{Device: pump})
	if len(a) != 1 || a[0].State != StateActive || !a[0].RaisedAt.Equal(t0.Add(50*time.Second)) ||
		a[0].ID != alarmID(pump, lowRule, t0.Add(20*time.Second).UnixMilli()) {
		t.Fatalf("pressure alarm after replay %+v", a)
	}
	if tr := alarmsOf(t, e2, hqAdmin, Filter{Device: "garden-elevator-1"}); len(tr) != 1 || tr[0].State != StateCleared {
		t.Fatalf("trapped alarm after replay %+v", tr)
	}
	evs, err := log.AlarmEventsSince(ctx, 0, 100)
	if err != nil || len(evs) != 3 {
		t.Fatalf("stored events %v %+v, want trapped raise and clear, pressure raise", err, evs)
	}
	// A third start replays the same window and adds nothing.
	e2.Stop()
	e3 := start()
	if evs, _ := log.AlarmEventsSince(ctx, 0, 100); len(evs) != 3 || len(alarmsOf(t, e3, hqAdmin, Filter{})) != 2 {
		t.Fatalf("second replay changed something: %d events", len(evs))
	}
}

// Cleared alarms raised before the recent window go from memory as time
// passes (the tracker's latest stays); they are still listed, read and
// acknowledged through the log.
func TestOldClearedAlarmsGoFromMemory(t *testing.T) {
	log := newClickHouseLog(t)
	b := loadBundle(t)
	clock := fakes.NewClock(t0)
	ctx := context.Background()
	var evs []Event
	for i, raised := range []time.Time{t0.Add(-2 * time.Hour), t0.Add(-time.Hour)} {
		a := Alarm{ID: alarmID(pump, "pump-pressure-low", raised.UnixMilli()), Company: "acme", Project: "garden", Gateway: gwGarden,
			Device: pump, Category: "pump", Rule: "pump-pressure-low", Severity: "major", State: StateActive, RaisedAt: raised, Count: 1}
		a.Seq, a.N = uint64(2*i+1), 1
		evs = append(evs, Event{Seq: a.Seq, N: 1, Kind: EventRaise, At: raised, From: StateNormal, To: StateActive, Alarm: a})
		a.State, a.ClearedAt, a.Seq, a.N = StateCleared, raised.Add(time.Minute), uint64(2*i+2), 2
		evs = append(evs, Event{Seq: a.Seq, N: 2, Kind: EventClear, At: a.ClearedAt, From: StateActive, To: StateCleared, Alarm: a})
	}
	if err := log.AppendAlarmEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	e := startEngine(t, b, log, clock)
	if n := e.Held(); n != 2 {
		t.Fatalf("holds %d alarms, want both (raised within the window)", n)
	}
	clock.Set(t0.Add(8 * 24 * time.Hour))
	evict := func() {
		e.procMu.Lock()
		e.evict()
		e.procMu.Unlock()
	}
	evict()
	if n := e.Held(); n != 1 {
		t.Fatalf("a week later holds %d alarms, want 1 (the tracker's latest)", n)
	}
	if got := alarmsOf(t, e, hqAdmin, Filter{}); len(got) != 2 || got[1].ID != evs[0].Alarm.ID {
		t.Fatalf("GET /alarms a week later: %+v", got)
	}
	first := evs[0].Alarm.ID
	if _, err := e.Ack(ctx, hqAdmin, first, "late"); err != nil {
		t.Fatal(err)
	}
	evict()
	a, err := e.Alarm(ctx, hqAdmin, first)
	if err != nil || !a.Acked || a.N != 3 || e.Held() != 1 {
		t.Fatalf("the acknowledged old alarm: %v %+v, %d held", err, a, e.Held())
	}
	// The feed went on after the stored sequence.
	if a.Seq <= 4 {
		t.Errorf("acknowledgement has sequence %d, want after 4", a.Seq)
	}
}

// failingLog is the ClickHouse log, failing to store while fail is set.
type failingLog struct {
	*ClickHouseLog
	fail atomic.Bool
}

func (l *failingLog) AppendAlarmEvents(ctx context.Context, evs []Event) error {
	if l.fail.Load() {
		return errors.New("ClickHouse is away")
	}
	return l.ClickHouseLog.AppendAlarmEvents(ctx, evs)
}

// The engine writes no snapshot of its held alarms while events wait for
// storage (a start from it would miss them); once they are stored, the
// next one is written, and a start from it holds the alarm.
func TestNoSnapshotWhileAlarmEventsWait(t *testing.T) {
	log := &failingLog{ClickHouseLog: newClickHouseLog(t)}
	b := loadBundle(t)
	clock := fakes.NewClock(t0)
	ctx := context.Background()
	garden, _ := b.Org.FindGateway(gwGarden)
	e := startEngine(t, b, log, clock)
	since := t0.Add(-time.Hour)
	first, err := log.LoadHeld(ctx, since)
	if err != nil || first.From.IsZero() || len(first.Alarms) != 0 {
		t.Fatalf("after the start: %v, snapshot %v, %d alarms; want an empty one", err, first.From, len(first.Alarms))
	}
	log.fail.Store(true)
	e.ObserveBatch(ctx, garden, &protocol.Batch{Epoch: 1, Gateway: gwGarden, Seq: 1, SentAt: t0.UnixMilli(),
		Readings: []protocol.Reading{{Device: "garden-elevator-1", Metric: "trapped", Value: 1, TS: t0.UnixMilli()}}}, t0)
	if err := e.Snapshot(ctx); !errors.Is(err, store.ErrSnapshotPending) {
		t.Errorf("Snapshot while the raise waits: %v, want store.ErrSnapshotPending", err)
	}
	if held, err := log.LoadHeld(ctx, since); err != nil || !held.From.Equal(first.From) {
		t.Errorf("snapshot %v (%v); want still the start's %v", held.From, err, first.From)
	}
	log.fail.Store(false)
	e.procMu.Lock()
	e.outbox.Flush(ctx)
	e.procMu.Unlock()
	if err := e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	held, err := log.LoadHeld(ctx, since)
	if err != nil || !held.From.After(first.From) || len(held.Alarms) != 1 || held.Alarms[0].Device != "garden-elevator-1" {
		t.Errorf("after the raise is stored: %v, snapshot %v, alarms %+v; want a newer snapshot with the trapped alarm", err, held.From, held.Alarms)
	}
}
