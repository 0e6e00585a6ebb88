package workorder

import (
	"context"
	"fmt"
	"time"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/store"
)

// ComponentWorkOrders is the migration component of the work-order log.
const ComponentWorkOrders = "workorders"

// Migrations returns the schema of the work-order event log for
// store.Migrate: one row per event (who, when, from, to, note, photo) with
// the order as it stood after it; (wo_id, n) identifies an event (see
// store.EventLog).
func Migrations() []store.Migration {
	return []store.Migration{
		store.EventLogMigration[row](ComponentWorkOrders, 1, tableEvents, "wo_id"),
		store.EventLogColumnsMigration[row](ComponentWorkOrders, 2, tableEvents, "wo_id"), // follows
		store.EventJournalMigration(ComponentWorkOrders, 3, tableEvents),                  // snapshots of the held orders
	}
}

// tableEvents is the work-order event log's table.
const tableEvents = "workorder_events"

// ClickHouseLog keeps work-order events in the workorder_events table.
type ClickHouseLog struct {
	events *store.EventLog[row]
}

// NewClickHouseLog returns a log over conn, whose default database holds
// the tables of Migrations.
func NewClickHouseLog(conn store.Querier) *ClickHouseLog {
	return &ClickHouseLog{events: store.NewEventLog[row](conn, tableEvents, "wo_id").WithJournal("raised_ms")}
}

type row struct {
	ID          string    `ch:"wo_id"`
	N           uint32    `ch:"n"`
	Seq         uint64    `ch:"seq"`
	Action      string    `ch:"action"`
	At          time.Time `ch:"at"`
	AtMS        int64     `ch:"at_ms"`
	Who         string    `ch:"who"`
	From        string    `ch:"from_state"`
	To          string    `ch:"to_state"`
	Note        string    `ch:"note"`
	Photo       string    `ch:"photo"`
	Assignee    string    `ch:"assignee"`
	Company     string    `ch:"company"`
	Project     string    `ch:"project"`
	Device      string    `ch:"device"`
	Category    string    `ch:"category"`
	Source      string    `ch:"source"`
	AlarmID     string    `ch:"alarm_id"`
	Rule        string    `ch:"rule"`
	Title       string    `ch:"title"`
	Description string    `ch:"description"`
	Severity    string    `ch:"severity"`
	Priority    uint8     `ch:"priority"`
	Skill       string    `ch:"skill"`
	State       string    `ch:"state"`
	CreatedBy   string    `ch:"created_by"`
	OpenedMS    int64     `ch:"opened_ms"`
	RaisedMS    int64     `ch:"raised_ms"`
	AssignedMS  int64     `ch:"assigned_ms"`
	AcceptedMS  int64     `ch:"accepted_ms"`
	StartedMS   int64     `ch:"started_ms"`
	ResolvedMS  int64     `ch:"resolved_ms"`
	ClosedMS    int64     `ch:"closed_ms"`
	SLADueMS    int64     `ch:"sla_due_ms"`
	Escalation  uint8     `ch:"escalation"`
	Reopened    uint32    `ch:"reopened"`
	// Follows is the earlier incident's order a new incident's order links
	// to (version 2; rows stored before read "").
	Follows string `ch:"follows" since:"2"`
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func toRow(ev *Event) row {
	w := &ev.Order
	return row{
		ID: ev.OrderID, N: ev.N, Seq: ev.Seq, Action: ev.Action, At: ev.At.UTC().Truncate(time.Second), AtMS: ms(ev.At),
		Who: ev.Who, From: ev.From, To: ev.To, Note: ev.Note, Photo: encodePhotos(ev.Photo, ev.Photos), Assignee: ev.Assignee,
		Company: w.Company, Project: w.Project, Device: w.Device, Category: w.Category, Source: w.Source,
		AlarmID: w.AlarmID, Rule: w.Rule, Title: w.Title, Description: w.Description, Severity: w.Severity,
		Priority: uint8(w.Priority), Skill: w.Skill, State: w.State, CreatedBy: w.CreatedBy,
		OpenedMS: ms(w.OpenedAt), RaisedMS: ms(w.RaisedAt), AssignedMS: ms(w.AssignedAt), AcceptedMS: ms(w.AcceptedAt),
		StartedMS: ms(w.StartedAt), ResolvedMS: ms(w.ResolvedAt), ClosedMS: ms(w.ClosedAt), SLADueMS: ms(w.SLADue),
		Escalation: uint8(w.Escalation), Reopened: uint32(w.Reopened), Follows: w.Follows,
	}
}

func (r *row) event() Event {
	ref, photos := decodePhotos(r.Photo)
	return Event{
		OrderID: r.ID, N: r.N, Seq: r.Seq, Action: r.Action, At: fromMS(r.AtMS), Who: r.Who, From: r.From, To: r.To,
		Note: r.Note, Photo: ref, Photos: photos, Assignee: r.Assignee,
		Order: WorkOrder{
			ID: r.ID, Company: r.Company, Project: r.Project, Device: r.Device, Category: r.Category, Source: r.Source,
			AlarmID: r.AlarmID, Rule: r.Rule, Title: r.Title, Description: r.Description, Severity: r.Severity,
			Priority: int(r.Priority), Skill: r.Skill, State: r.State, Assignee: r.Assignee, CreatedBy: r.CreatedBy,
			OpenedAt: fromMS(r.OpenedMS), RaisedAt: fromMS(r.RaisedMS), AssignedAt: fromMS(r.AssignedMS),
			AcceptedAt: fromMS(r.AcceptedMS), StartedAt: fromMS(r.StartedMS), ResolvedAt: fromMS(r.ResolvedMS),
			ClosedAt: fromMS(r.ClosedMS), SLADue: fromMS(r.SLADueMS), Escalation: int(r.Escalation),
			Reopened: int(r.Reopened), Follows: r.Follows, Seq: r.Seq, N: r.N,
		},
	}
}

// AppendOrderEvents stores events in one insert.
func (l *ClickHouseLog) AppendOrderEvents(ctx context.Context, evs []Event) error {
	rows := make([]row, len(evs))
	for i := range evs {
		rows[i] = toRow(&evs[i])
	}
	if err := l.events.Append(ctx, rows); err != nil {
		return fmt.Errorf("cannot store work-order events: %w", err)
	}
	return nil
}

// ImportOrderEvents stores events without journaling them: a history
// loaded before the desk first starts (store.EventLog.Import).
func (l *ClickHouseLog) ImportOrderEvents(ctx context.Context, evs []Event) error {
	rows := make([]row, len(evs))
	for i := range evs {
		rows[i] = toRow(&evs[i])
	}
	if err := l.events.Import(ctx, rows); err != nil {
		return fmt.Errorf("cannot import work-order events: %w", err)
	}
	return nil
}

// LoadHeld returns what the desk holds at start. From the newest
// snapshot of the held orders (SaveHeld) it reads only the orders that
// snapshot names and those with events stored since shortly before it,
// however long the history; without one it reads the whole log.
func (l *ClickHouseLog) LoadHeld(ctx context.Context, since time.Time) (Held, error) {
	r, ok, err := l.events.Resume(ctx)
	if err != nil {
		return Held{}, fmt.Errorf("cannot load work orders: %w", err)
	}
	// A snapshot taken with a shorter window (some order opened at or
	// after since not held then) cannot say what this window holds.
	if !ok || r.Mark >= since.UnixMilli() {
		return l.loadAll(ctx, since)
	}
	evs, err := l.loadOrderEvents(ctx, since, &r)
	if err != nil {
		return Held{}, err
	}
	// Every order the snapshot did not name was opened at or before its
	// mark; of those it named, the ones left out were opened before since.
	newest, err := l.events.NewestAmong(ctx, "opened_ms", r.Keys, store.AtLeast("at", r.Since), store.Below("opened_ms", since.UnixMilli()))
	if err != nil {
		return Held{}, fmt.Errorf("cannot load work orders: %w", err)
	}
	return Held{Events: evs, MaxSeq: r.Seq, Unheld: fromMS(max(r.Mark, newest)), From: r.Taken}, nil
}

// loadAll is LoadHeld without a snapshot: every row of the log is read.
func (l *ClickHouseLog) loadAll(ctx context.Context, since time.Time) (Held, error) {
	evs, err := l.LoadOrderEvents(ctx, since)
	if err != nil {
		return Held{}, err
	}
	seq, err := l.MaxSeq(ctx)
	if err != nil {
		return Held{}, fmt.Errorf("cannot load work orders: %w", err)
	}
	unheld, err := l.NewestBefore(ctx, since)
	if err != nil {
		return Held{}, err
	}
	return Held{Events: evs, MaxSeq: seq, Unheld: unheld}, nil
}

// SaveHeld stores a snapshot of the held orders (store.EventLog.WriteSnapshot).
func (l *ClickHouseLog) SaveHeld(ctx context.Context, s store.Snapshot) error {
	if err := l.events.WriteSnapshot(ctx, s); err != nil {
		return fmt.Errorf("cannot save the held work orders: %w", err)
	}
	return nil
}

// maxHeld is the most orders LoadOrderEvents loads: more orders still
// being worked on or opened in the recent window than this is a
// configuration to look at, not one to load.
const maxHeld = 500_000

// LoadOrderEvents returns every event of the orders the desk keeps in
// memory: every order not closed or cancelled, every order opened at or
// after since, and the latest alarm order of each device and rule (a raise
// reopens it, joins it or follows it). Older closed and cancelled orders
// stay in ClickHouse (FindOrders).
func (l *ClickHouseLog) LoadOrderEvents(ctx context.Context, since time.Time) ([]Event, error) {
	return l.loadOrderEvents(ctx, since, nil)
}

// loadOrderEvents is LoadOrderEvents among the orders a start from a
// snapshot needs (r; nil: all of them), reading only their partitions.
func (l *ClickHouseLog) loadOrderEvents(ctx context.Context, since time.Time, r *store.Resume) ([]Event, error) {
	var among []string
	var fixed []store.Cond
	if r != nil {
		among, fixed = r.Keys, []store.Cond{store.AtLeast("at", r.Since)}
	}
	held, err := l.events.CurrentKeys(ctx, store.Query{
		Fixed: fixed,
		Among: among,
		Where: []store.Cond{store.AnyOf(store.NotIn("state", []string{StateClosed, StateCancelled}), store.AtLeast("opened_ms", since.UnixMilli()))},
		Limit: maxHeld + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load work orders: %w", err)
	}
	if len(held) > maxHeld {
		return nil, fmt.Errorf("cannot load work orders: more than %d are being worked on or were opened since %s", maxHeld, since.UTC().Format(time.RFC3339))
	}
	last, err := l.events.CurrentKeys(ctx, store.Query{
		Fixed:   append([]store.Cond{store.Eq("source", SourceAlarm)}, fixed...),
		Among:   among,
		OnePer:  []string{"device", "rule"},
		OrderBy: []store.Order{{Col: "opened_ms", Desc: true}},
		Limit:   maxHeld,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load work orders: %w", err)
	}
	seen := make(map[string]bool, len(held)+len(last))
	keys := make([]string, 0, len(held)+len(last))
	for _, k := range append(held, last...) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return events(l.events.EventsOf(ctx, keys, fixed...))
}

// FindOrders returns the stored orders within scope that match f, newest
// first, at most f.Limit (500 when 0), with their history. The scope's
// company and projects and the project, device and time filters apply to
// all of an order's rows (no event changes them), the state and assignee
// to its latest.
func (l *ClickHouseLog) FindOrders(ctx context.Context, scope access.Scope, f Filter) ([]WorkOrder, error) {
	if scope.None {
		return nil, nil
	}
	q := store.Query{Fixed: []store.Cond{store.Eq("company", scope.Company)}, Limit: f.limit(),
		OrderBy: []store.Order{{Col: "opened_ms", Desc: true}}}
	if scope.Projects != nil {
		q.Fixed = append(q.Fixed, store.In("project", scope.Projects))
	}
	if f.Project != "" {
		q.Fixed = append(q.Fixed, store.Eq("project", f.Project))
	}
	if f.Device != "" {
		q.Fixed = append(q.Fixed, store.Eq("device", f.Device))
	}
	if !f.Since.IsZero() {
		q.Fixed = append(q.Fixed, store.AtLeast("opened_ms", f.Since.UnixMilli()))
	}
	if !f.Until.IsZero() {
		q.Fixed = append(q.Fixed, store.Below("opened_ms", f.Until.UnixMilli()))
	}
	if f.State != "" {
		q.Where = append(q.Where, store.Eq("state", f.State))
	}
	if f.Assignee != "" {
		q.Where = append(q.Where, store.Eq("assignee", f.Assignee))
	}
	if scope.Assignee != "" {
		q.Where = append(q.Where, store.Eq("assignee", scope.Assignee))
	}
	keys, err := l.events.CurrentKeys(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("cannot read work orders: %w", err)
	}
	evs, err := events(l.events.EventsOf(ctx, keys))
	if err != nil {
		return nil, err
	}
	orders := map[string]*WorkOrder{}
	foldEvents(orders, evs)
	out := make([]WorkOrder, 0, len(keys))
	for _, k := range keys {
		if w := orders[k]; w != nil {
			out = append(out, *w)
		}
	}
	return out, nil
}

// FindOrder returns one stored order with its history.
func (l *ClickHouseLog) FindOrder(ctx context.Context, id string) (WorkOrder, bool, error) {
	evs, err := events(l.events.Of(ctx, id))
	if err != nil {
		return WorkOrder{}, false, fmt.Errorf("cannot read work order %q: %w", id, err)
	}
	orders := map[string]*WorkOrder{}
	foldEvents(orders, evs)
	if w := orders[id]; w != nil {
		return *w, true, nil
	}
	return WorkOrder{}, false, nil
}

// NewestBefore returns the latest opening time before t among stored
// orders (zero when there is none).
func (l *ClickHouseLog) NewestBefore(ctx context.Context, t time.Time) (time.Time, error) {
	v, err := l.events.Newest(ctx, "opened_ms", store.Below("opened_ms", t.UnixMilli()))
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot read work orders: %w", err)
	}
	return fromMS(v), nil
}

// MaxSeq is the highest feed sequence of a stored work-order event.
func (l *ClickHouseLog) MaxSeq(ctx context.Context) (uint64, error) {
	return l.events.MaxSeq(ctx)
}

// EventsSince returns up to limit events with seq > after in seq order.
func (l *ClickHouseLog) EventsSince(ctx context.Context, after uint64, limit int) ([]Event, error) {
	return events(l.events.Since(ctx, after, limit))
}

func events(rows []row, err error) ([]Event, error) {
	if err != nil {
		return nil, fmt.Errorf("cannot read work-order events: %w", err)
	}
	out := make([]Event, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// Backfill adapts the log to the staff feed.
func (l *ClickHouseLog) Backfill(ctx context.Context, after uint64, limit int) ([]alarm.Item, error) {
	evs, err := l.EventsSince(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	items := make([]alarm.Item, len(evs))
	for i, ev := range evs {
		items[i] = alarm.Item{Seq: ev.Seq, Type: alarm.ItemWorkOrder, Company: ev.Order.Company, Project: ev.Order.Project,
			Assignees: []string{ev.Assignee}, Data: ev}
	}
	return items, nil
}
