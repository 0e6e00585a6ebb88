package workorder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/internal/fakes"
	"github.com/plantroom/plantroom/protocol"
)

// history is what storeHistory wrote: the alarms and orders newest first.
type history struct {
	alarms      []string // every alarm id, newest first
	closed      []string // every closed order id, newest first
	lastAlarm   string   // the latest cleared pump-pressure-low alarm of garden-pump-1
	lastOrder   string   // its order
	activeAlarm string   // the old active elevator-trapped alarm
	openOrder   string   // its order, still being worked on
	maxSeq      uint64
}

// storeHistory imports into the event logs (as a history loaded before
// the first start: not journaled) old alarms (cleared,
// raised 30 to 60 days before now) with closed orders, one old active
// alarm with an open order, and recent cleared alarms (a day ago).
func storeHistory(t *testing.T, alog *alarm.ClickHouseLog, wlog *ClickHouseLog, now time.Time, old, recent int) history {
	t.Helper()
	ctx := context.Background()
	var h history
	var aevs []alarm.Event
	var wevs []Event
	seq := uint64(0)
	next := func() uint64 { seq++; return seq }
	mk := func(device, rule string, raised time.Time, cleared bool) alarm.Alarm {
		a := alarm.Alarm{ID: fmt.Sprintf("%s.%s.%d", device, rule, raised.UnixMilli()), Company: "acme", Project: "garden",
			Gateway: "gw-garden-1", Device: device, Category: "pump", Rule: rule, RuleName: rule, RuleKind: "threshold",
			Severity: "major", Metric: "outlet_pressure_bar", State: alarm.StateActive, RaisedAt: raised, Value: 1.1,
			ReadingTS: raised, Count: 1, WorkOrder: true}
		a.Seq, a.N = next(), 1
		aevs = append(aevs, alarm.Event{Seq: a.Seq, N: 1, Kind: alarm.EventRaise, At: raised, From: alarm.StateNormal, To: alarm.StateActive, Alarm: a})
		if cleared {
			a.State, a.ClearedAt, a.ReadingTS = alarm.StateCleared, raised.Add(10*time.Minute), raised.Add(10*time.Minute)
			a.Seq, a.N = next(), 2
			aevs = append(aevs, alarm.Event{Seq: a.Seq, N: 2, Kind: alarm.EventClear, At: a.ClearedAt, From: alarm.StateActive, To: alarm.StateCleared, Alarm: a})
		}
		return a
	}
	order := func(a alarm.Alarm, assignee string, steps ...string) string {
		w := WorkOrder{ID: "wo-" + a.ID, Company: a.Company, Project: a.Project, Device: a.Device, Category: a.Category,
			Source: SourceAlarm, AlarmID: a.ID, Rule: a.Rule, Title: a.RuleName, Severity: a.Severity, Priority: 2, Skill: "pump",
			State: StateOpen, CreatedBy: System, OpenedAt: a.RaisedAt.Add(time.Second), RaisedAt: a.RaisedAt, SLADue: a.RaisedAt.Add(2 * time.Hour)}
		at := w.OpenedAt
		for i, to := range append([]string{StateOpen}, steps...) {
			from := w.State
			w.State, w.N, w.Seq = to, uint32(i+1), next()
			action := ActionTransition
			switch to {
			case StateOpen:
				action = ActionOpen
			case StateAssigned:
				w.Assignee, w.AssignedAt = assignee, at
			case StateClosed:
				w.ClosedAt = at
			}
			wevs = append(wevs, Event{OrderID: w.ID, N: w.N, Seq: w.Seq, Action: action, At: at, Who: System, From: from, To: to,
				Assignee: w.Assignee, Order: w})
			at = at.Add(time.Minute)
		}
		return w.ID
	}
	type item struct {
		id string
		at time.Time
	}
	var alarms, closed []item
	for i := range old {
		raised := now.Add(-60*24*time.Hour + time.Duration(i)*time.Hour)
		a := mk("garden-pump-1", "pump-pressure-low", raised, true)
		tech := []string{"tech-garden-1", "tech-garden-2"}[i%2]
		id := order(a, tech, StateAssigned, StateAccepted, StateInProgress, StateResolved, StateClosed)
		alarms = append(alarms, item{a.ID, a.RaisedAt})
		closed = append(closed, item{id, a.RaisedAt})
		h.lastAlarm, h.lastOrder = a.ID, id
	}
	active := mk("garden-elevator-1", "elevator-trapped", now.Add(-40*24*time.Hour+30*time.Minute), false)
	h.activeAlarm = active.ID
	h.openOrder = order(active, "tech-garden-1", StateAssigned)
	alarms = append(alarms, item{active.ID, active.RaisedAt})
	for i := range recent {
		a := mk("garden-pump-2", "pump-pressure-low", now.Add(-24*time.Hour+time.Duration(i)*20*time.Minute), true)
		alarms = append(alarms, item{a.ID, a.RaisedAt})
	}
	newest := func(x, y item) int {
		if c := y.at.Compare(x.at); c != 0 {
			return c
		}
		return cmp.Compare(x.id, y.id)
	}
	slices.SortFunc(alarms, newest)
	slices.SortFunc(closed, newest)
	h.alarms = ids(alarms, func(x item) string { return x.id })
	h.closed = ids(closed, func(x item) string { return x.id })
	for start := 0; start < len(aevs); start += 5000 {
		if err := alog.ImportAlarmEvents(ctx, aevs[start:min(start+5000, len(aevs))]); err != nil {
			t.Fatal(err)
		}
	}
	for start := 0; start < len(wevs); start += 5000 {
		if err := wlog.ImportOrderEvents(ctx, wevs[start:min(start+5000, len(wevs))]); err != nil {
			t.Fatal(err)
		}
	}
	h.maxSeq = seq
	return h
}

func ids[T any](list []T, id func(T) string) []string {
	out := make([]string, len(list))
	for i, x := range list {
		out[i] = id(x)
	}
	return out
}

func alarmID(a alarm.Alarm) string { return a.ID }
func orderID(w WorkOrder) string   { return w.ID }

// A cloud with a long history starts holding only the active and recent
// alarms and the orders still being worked on (plus what the incident and
// reopen rules need), yet lists, reads and moves the old ones as before,
// and its rules still see the old history.
func TestStartWithLongHistoryHoldsOnlyWhatItNeeds(t *testing.T) {
	conn := migrate(t)
	b := loadBundle(t)
	clock := fakes.NewClock(monday10)
	ctx := context.Background()
	const old, recent = 300, 5
	h := storeHistory(t, alarm.NewClickHouseLog(conn), NewClickHouseLog(conn), monday10, old, recent)

	p := startParts(t, b, conn, clock.Now)
	// Held: the latest cleared alarm of garden-pump-1's rule, the active
	// one, the recent ones; the latest order of garden-pump-1's rule and
	// the open one. Today's code held all 306 alarms and 301 orders.
	if n := p.engine.Held(); n != 1+1+recent {
		t.Errorf("engine holds %d alarms, want %d (the latest cleared of a rule, the active one, %d recent)", n, 2+recent, recent)
	}
	if n := p.desk.Held(); n != 2 {
		t.Errorf("desk holds %d orders, want 2 (the latest of a rule, the open one)", n)
	}

	// Lists reach the old history, in the same order and with the same
	// limits as before.
	hq := hqAdmin
	all := engineAlarms(t, p.engine, hq, alarm.Filter{})
	if got := ids(all, alarmID); !slices.Equal(got, h.alarms) {
		t.Fatalf("GET /alarms: %d alarms, want %d\n got %v…\nwant %v…", len(got), len(h.alarms), got[:min(8, len(got))], h.alarms[:8])
	}
	since := monday10.Add(-50 * 24 * time.Hour)
	page := engineAlarms(t, p.engine, hq, alarm.Filter{Since: since, State: alarm.StateCleared, Limit: 20})
	var want []string
	for _, id := range h.alarms {
		if id != h.activeAlarm {
			want = append(want, id)
		}
	}
	if got := ids(page, alarmID); !slices.Equal(got, want[:20]) {
		t.Errorf("GET /alarms?state=cleared&limit=20:\n got %v\nwant %v", got, want[:20])
	}
	a, err := p.engine.Alarm(ctx, hq, h.alarms[len(h.alarms)-1])
	if err != nil || a.State != alarm.StateCleared || a.N != 2 {
		t.Errorf("GET /alarms/{oldest}: %v %+v", err, a)
	}
	if _, err := p.engine.Alarm(ctx, pmTower, a.ID); !errors.Is(err, alarm.ErrNotFound) {
		t.Errorf("tower's manager reads a garden alarm: %v", err)
	}

	// Closed orders, paged with until (the API's paging), all 300 in order.
	var got []string
	until := time.Time{}
	for range 20 {
		pg := ordersOf(t, p.desk, hq, Filter{State: StateClosed, Until: until, Limit: 70})
		if len(pg) == 0 {
			break
		}
		got = append(got, ids(pg, orderID)...)
		until = pg[len(pg)-1].OpenedAt
	}
	if !slices.Equal(got, h.closed) {
		t.Fatalf("GET /workorders?state=closed paged: %d orders, want %d", len(got), len(h.closed))
	}
	// A technician sees the old orders assigned to them, no others.
	mine := ordersOf(t, p.desk, techGarden1, Filter{State: StateClosed, Limit: 500})
	if len(mine) != old/2 {
		t.Errorf("tech-garden-1 lists %d closed orders, want %d", len(mine), old/2)
	}
	for _, w := range mine {
		if w.Assignee != "tech-garden-1" || w.History != nil {
			t.Fatalf("tech-garden-1 lists %+v", w)
		}
	}
	oldest := h.closed[len(h.closed)-1]
	w, err := p.desk.Get(ctx, hq, oldest)
	if err != nil || len(w.History) != 6 || w.State != StateClosed {
		t.Fatalf("GET /workorders/{oldest}: %v %+v", err, w)
	}
	if _, err := p.desk.Get(ctx, techGarden1, h.closed[len(h.closed)-2]); !errors.Is(err, ErrNotFound) {
		t.Errorf("tech-garden-1 reads tech-garden-2's old order: %v", err)
	}
	var te *TransitionError
	if _, err := p.desk.Transition(ctx, hq, oldest, TransitionRequest{To: StateInProgress}); !errors.As(err, &te) || te.From != StateClosed {
		t.Errorf("moving an old closed order: %v, want a transition error from closed", err)
	}
	// Held orders go as time passes, as at a start.
	clock.Set(monday10.Add(-15 * time.Minute)) // before the new readings below
	p.desk.mu.Lock()
	p.desk.evict()
	p.desk.mu.Unlock()
	if n := p.desk.Held(); n != 2 {
		t.Errorf("desk holds %d orders after eviction, want 2 (the old closed one it moved went again)", n)
	}
	rec := deviceOrders(t, p.desk, pmGarden, "garden-pump-1", Filter{Limit: 5000})
	if len(rec) != old || len(rec[0].History) != 6 {
		t.Errorf("garden-pump-1's record: %d orders, want %d with history", len(rec), old)
	}

	// The rules see the old history: garden-pump-1's pressure falls again
	// and its new order follows the latest old one (a new incident, the
	// old alarm cleared weeks ago); the feed goes on after the stored
	// sequence.
	gw, _ := b.Org.FindGateway("gw-garden-1")
	for i, v := range []float64{1.2, 1.1} {
		ts := monday10.Add(time.Duration(i) * 30 * time.Second)
		clock.Set(ts)
		p.engine.ObserveBatch(ctx, gw, &protocol.Batch{Epoch: 1, Gateway: gw.Gateway.ID, Seq: uint64(i + 1), SentAt: ts.UnixMilli(),
			Readings: []protocol.Reading{{Device: "garden-pump-1", Metric: "outlet_pressure_bar", TS: ts.UnixMilli(), Value: v}}}, ts)
	}
	open := ordersOf(t, p.desk, hq, Filter{Device: "garden-pump-1", State: StateAssigned})
	if len(open) != 1 || open[0].Follows != h.lastOrder || open[0].Seq <= h.maxSeq {
		t.Fatalf("new order on garden-pump-1: %+v; want one following %s with a sequence after %d", open, h.lastOrder, h.maxSeq)
	}

	// Time passes: the recent alarms age out of the window and go, the
	// latest of each rule and the active one stay; they are still listed.
	clock.Set(monday10.Add(8 * 24 * time.Hour))
	p.engine.Stop()
	p.desk.Stop()
	p2 := startParts(t, b, conn, clock.Now)
	// The new active alarm, the old active one, garden-pump-2's latest
	// cleared; garden-pump-1's old latest went (its tracker has a newer).
	if n := p2.engine.Held(); n != 3 {
		t.Errorf("engine holds %d alarms a week later, want 3", n)
	}
	if got := engineAlarms(t, p2.engine, hq, alarm.Filter{Limit: 5000}); len(got) != len(h.alarms)+1 {
		t.Errorf("a week later GET /alarms lists %d, want %d", len(got), len(h.alarms)+1)
	}
}

// A start from the snapshot of the held alarms and orders, plus what was
// stored after it, holds what a start that reads the whole log holds:
// with an alarm and an order opened after the snapshot, an alarm that
// cleared after it (its rule's latest cleared alarm is now another), an
// old order closed after it and an old alarm acknowledged after it. The
// feed goes on after every stored sequence, those stored after the
// snapshot included.
func TestStartFromSnapshotHoldsWhatTheWholeLogHolds(t *testing.T) {
	conn := migrate(t)
	b := loadBundle(t)
	clock := fakes.NewClock(monday10)
	ctx := context.Background()
	alog, wlog := alarm.NewClickHouseLog(conn), NewClickHouseLog(conn)
	h := storeHistory(t, alog, wlog, monday10, 40, 3)
	since := monday10.Add(-7 * 24 * time.Hour) // the default window
	if held, err := alog.LoadHeld(ctx, since); err != nil || !held.From.IsZero() {
		t.Fatalf("before the first start: %v, from snapshot %v; want the whole log", err, held.From)
	}

	// The first start reads the whole log and writes a snapshot at once.
	p1 := startParts(t, b, conn, clock.Now)
	snapA, err := alog.LoadHeld(ctx, since)
	if err != nil || snapA.From.IsZero() {
		t.Fatalf("after the first start: %v, alarms from snapshot %v; want one", err, snapA.From)
	}
	if held, err := wlog.LoadHeld(ctx, since); err != nil || held.From.IsZero() {
		t.Fatalf("after the first start: %v, orders from snapshot %v; want one", err, held.From)
	}

	// After the snapshot: garden-pump-1's pressure falls (a new alarm and
	// order) and comes back (the alarm clears); the old active alarm is
	// acknowledged; its old order is worked to closed.
	gw, _ := b.Org.FindGateway("gw-garden-1")
	for i, v := range []float64{1.2, 1.1, 3.0, 3.0, 3.0, 3.0} {
		ts := monday10.Add(time.Duration(i) * 30 * time.Second)
		clock.Set(ts)
		p1.engine.ObserveBatch(ctx, gw, &protocol.Batch{Epoch: 1, Gateway: gw.Gateway.ID, Seq: uint64(i + 1), SentAt: ts.UnixMilli(),
			Readings: []protocol.Reading{{Device: "garden-pump-1", Metric: "outlet_pressure_bar", TS: ts.UnixMilli(), Value: v}}}, ts)
	}
	fresh := engineAlarms(t, p1.engine, hqAdmin, alarm.Filter{Device: "garden-pump-1", Since: monday10.Add(-time.Hour)})
	if len(fresh) != 1 || fresh[0].State != alarm.StateCleared {
		t.Fatalf("garden-pump-1 after the snapshot: %+v; want one alarm, cleared", fresh)
	}
	opened := ordersOf(t, p1.desk, hqAdmin, Filter{Device: "garden-pump-1", Since: monday10.Add(-time.Hour)})
	if len(opened) != 1 || opened[0].Follows != h.lastOrder {
		t.Fatalf("garden-pump-1's new order: %+v", opened)
	}
	if _, err := p1.engine.Ack(ctx, hqAdmin, h.activeAlarm, "seen"); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{StateAccepted, StateInProgress, StateResolved, StateClosed} {
		who := techGarden1 // its assignee
		if to == StateClosed {
			who = pmGarden
		}
		if _, err := p1.desk.Transition(ctx, who, h.openOrder, TransitionRequest{To: to}); err != nil {
			t.Fatalf("%s → %s: %v", h.openOrder, to, err)
		}
	}
	storedAlarms, err := alog.MaxSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	storedOrders, err := wlog.MaxSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// p1 stops without another snapshot (killed): the next start reads
	// the first snapshot and what was stored after it.
	snapB, err := alog.LoadHeld(ctx, since)
	if err != nil || !snapB.From.Equal(snapA.From) {
		t.Fatalf("the next start's snapshot: %v, %v; want the first start's %v", err, snapB.From, snapA.From)
	}
	ordersB, err := wlog.LoadHeld(ctx, since)
	if err != nil || ordersB.From.IsZero() {
		t.Fatalf("orders: %v, from %v", err, ordersB.From)
	}
	if snapB.MaxSeq != storedAlarms || ordersB.MaxSeq != storedOrders || storedOrders <= snapA.MaxSeq {
		t.Errorf("sequence from the snapshot: alarms %d, orders %d; want %d and %d (stored after the snapshot, at %d)",
			snapB.MaxSeq, ordersB.MaxSeq, storedAlarms, storedOrders, snapA.MaxSeq)
	}
	p2 := startParts(t, b, conn, clock.Now)
	heldAlarms, heldOrders := p2.engine.Held(), deskIDs(p2.desk)

	// The same data read whole (the journals emptied: no snapshot).
	for _, j := range []string{"alarm_events_journal", "workorder_events_journal"} {
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+j); err != nil {
			t.Fatal(err)
		}
	}
	whole, err := alog.LoadHeld(ctx, since)
	if err != nil || !whole.From.IsZero() {
		t.Fatalf("without a snapshot: %v, from %v", err, whole.From)
	}
	wholeOrders, err := wlog.LoadHeld(ctx, since)
	if err != nil || !wholeOrders.From.IsZero() {
		t.Fatalf("without a snapshot: %v, from %v", err, wholeOrders.From)
	}
	if got, want := alarmKeys(snapB.Alarms), alarmKeys(whole.Alarms); !slices.Equal(got, want) {
		t.Errorf("alarms loaded from the snapshot:\n %v\nfrom the whole log:\n %v", got, want)
	}
	if !snapB.Unheld.Equal(whole.Unheld) {
		t.Errorf("unheld from the snapshot %v, from the whole log %v", snapB.Unheld, whole.Unheld)
	}
	if got, want := orderKeys(ordersB.Events), orderKeys(wholeOrders.Events); !slices.Equal(got, want) {
		t.Errorf("orders loaded from the snapshot:\n %v\nfrom the whole log:\n %v", got, want)
	}
	if !ordersB.Unheld.Equal(wholeOrders.Unheld) {
		t.Errorf("orders unheld from the snapshot %v, from the whole log %v", ordersB.Unheld, wholeOrders.Unheld)
	}
	p3 := startParts(t, b, conn, clock.Now)
	if n := p3.engine.Held(); n != heldAlarms {
		t.Errorf("engine holds %d alarms started from the snapshot, %d from the whole log", heldAlarms, n)
	}
	if got := deskIDs(p3.desk); !slices.Equal(heldOrders, got) {
		t.Errorf("desk holds %v started from the snapshot, %v from the whole log", heldOrders, got)
	}
	if !slices.Contains(heldOrders, opened[0].ID) || slices.Contains(alarmKeys(snapB.Alarms), h.lastAlarm+"/2") {
		t.Errorf("held orders %v, loaded alarms %v: want the new order and not the old latest cleared alarm", heldOrders, alarmKeys(snapB.Alarms))
	}
	// The feed of the start from the snapshot went on after every stored
	// sequence.
	w, err := p2.desk.Transition(ctx, hqAdmin, opened[0].ID, TransitionRequest{To: StateAssigned, Assignee: "tech-garden-2"})
	if err != nil || w.Seq <= max(storedAlarms, storedOrders) {
		t.Errorf("a step after the start from the snapshot: %v, sequence %d; want one after %d", err, w.Seq, max(storedAlarms, storedOrders))
	}
}

// alarmKeys are the alarms' ids with their event numbers, sorted.
func alarmKeys(as []alarm.Alarm) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = fmt.Sprintf("%s/%d", a.ID, a.N)
	}
	slices.Sort(out)
	return out
}

// orderKeys are the events' orders and numbers, sorted.
func orderKeys(evs []Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%s/%d", ev.OrderID, ev.N)
	}
	slices.Sort(out)
	return out
}

func deskIDs(d *Desk) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.orders))
	for id := range d.orders {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// failingLog is the ClickHouse log, failing to store while fail is set.
type failingLog struct {
	*ClickHouseLog
	fail atomic.Bool
}

func (l *failingLog) AppendOrderEvents(ctx context.Context, evs []Event) error {
	if l.fail.Load() {
		return errors.New("ClickHouse is away")
	}
	return l.ClickHouseLog.AppendOrderEvents(ctx, evs)
}

// No snapshot is written while events wait for storage (a start from it
// would miss them); once they are stored, the next one names their order.
func TestNoSnapshotWhileEventsWait(t *testing.T) {
	conn := migrate(t)
	b := loadBundle(t)
	ctx := context.Background()
	log := &failingLog{ClickHouseLog: NewClickHouseLog(conn)}
	clock := fakes.NewClock(monday10) // the garden day shift: the order is assigned
	d, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: log, Feed: alarm.NewFeed(0, clock.Now), Now: clock.Now, CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	first, err := log.LoadHeld(ctx, time.Now().Add(-time.Hour))
	if err != nil || first.From.IsZero() {
		t.Fatalf("after the start: %v, snapshot %v; want one", err, first.From)
	}
	log.fail.Store(true)
	w, err := d.Create(ctx, pmGarden, NewOrder{Project: "garden", Device: "garden-pump-1", Title: "漏水 leak"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshot(ctx); !errors.Is(err, store.ErrSnapshotPending) {
		t.Errorf("Snapshot while the order's event waits: %v, want store.ErrSnapshotPending", err)
	}
	if held, err := log.LoadHeld(ctx, time.Now().Add(-time.Hour)); err != nil || !held.From.Equal(first.From) {
		t.Errorf("snapshot %v (%v); want still the start's %v", held.From, err, first.From)
	}
	log.fail.Store(false)
	d.mu.Lock()
	d.outbox.Flush(ctx)
	d.mu.Unlock()
	if err := d.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	// The order's events: its opening and its assignment.
	now, err := d.Get(ctx, hqAdmin, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	held, err := log.LoadHeld(ctx, time.Now().Add(-time.Hour))
	if got, want := orderKeys(held.Events), orderKeys(now.History); err != nil || !held.From.After(first.From) || len(want) != 2 || !slices.Equal(got, want) {
		t.Errorf("after the events are stored: %v, snapshot %v, events %v; want a newer snapshot with %s's %v", err, held.From, got, w.ID, want)
	}
}
