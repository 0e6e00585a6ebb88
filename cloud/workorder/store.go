package workorder

import (
	"context"
	"fmt"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/store"
)

// ComponentWorkOrders is the migration component of the work-order log.
const ComponentWorkOrders = "workorders"

// Migrations returns the schema of the work-order event log for
// store.Migrate: one row per event (who, when, from, to, note, photo) with
// the order as it stood after it; (wo_id, n) identifies an event.
func Migrations() []store.Migration {
	return []store.Migration{{Component: ComponentWorkOrders, Version: 1, Name: "workorder_events",
		Statements: func(s store.Server, db string) []string {
			return alarm.EventTableDDL(s, db, "workorder_events", columnsDDL, "company, project, wo_id, n")
		}}}
}

const columnsDDL = `wo_id String, n UInt32, seq UInt64, action String, at DateTime, at_ms Int64,
    who String, from_state String, to_state String, note String, photo String, assignee String,
    company String, project String, device String, category String, source String, alarm_id String,
    rule String, title String, description String, severity String, priority UInt8, skill String,
    state String, created_by String, opened_ms Int64, raised_ms Int64, assigned_ms Int64,
    accepted_ms Int64, started_ms Int64, resolved_ms Int64, closed_ms Int64, sla_due_ms Int64,
    escalation UInt8, reopened UInt32`

const columns = `wo_id, n, seq, action, at, at_ms, who, from_state, to_state, note, photo, assignee,
 company, project, device, category, source, alarm_id, rule, title, description, severity, priority, skill,
 state, created_by, opened_ms, raised_ms, assigned_ms, accepted_ms, started_ms, resolved_ms, closed_ms, sla_due_ms,
 escalation, reopened`

// Querier is the part of a ClickHouse connection the log uses.
type Querier = alarm.Querier

// ClickHouseLog keeps work-order events in the workorder_events table.
type ClickHouseLog struct {
	conn    Querier
	timeout time.Duration
}

// NewClickHouseLog returns a log over conn, whose default database holds
// the tables of Migrations.
func NewClickHouseLog(conn Querier) *ClickHouseLog {
	return &ClickHouseLog{conn: conn, timeout: 15 * time.Second}
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

// AppendOrderEvents stores events in one insert.
func (l *ClickHouseLog) AppendOrderEvents(ctx context.Context, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	b, err := l.conn.PrepareBatch(ctx, "INSERT INTO workorder_events ("+columns+")")
	if err != nil {
		return fmt.Errorf("cannot store work-order events: %w", err)
	}
	defer b.Close()
	for i := range evs {
		ev := &evs[i]
		w := &ev.Order
		if err := b.Append(ev.OrderID, ev.N, ev.Seq, ev.Action, ev.At.UTC().Truncate(time.Second), ms(ev.At), ev.Who, ev.From, ev.To,
			ev.Note, ev.Photo, ev.Assignee, w.Company, w.Project, w.Device, w.Category, w.Source, w.AlarmID, w.Rule, w.Title,
			w.Description, w.Severity, uint8(w.Priority), w.Skill, w.State, w.CreatedBy, ms(w.OpenedAt), ms(w.RaisedAt),
			ms(w.AssignedAt), ms(w.AcceptedAt), ms(w.StartedAt), ms(w.ResolvedAt), ms(w.ClosedAt), ms(w.SLADue),
			uint8(w.Escalation), uint32(w.Reopened)); err != nil {
			return fmt.Errorf("cannot store work-order event %q/%d: %w", ev.OrderID, ev.N, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot store work-order events: %w", err)
	}
	return nil
}

// LoadOrderEvents returns every stored event, each once.
func (l *ClickHouseLog) LoadOrderEvents(ctx context.Context) ([]Event, error) {
	return l.query(ctx, "", "wo_id, n", 0)
}

// EventsSince returns up to limit events with seq > after in seq order.
func (l *ClickHouseLog) EventsSince(ctx context.Context, after uint64, limit int) ([]Event, error) {
	return l.query(ctx, "WHERE seq > ?", "seq", limit, after)
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

func (l *ClickHouseLog) query(ctx context.Context, where, order string, limit int, args ...any) ([]Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*l.timeout)
	defer cancel()
	q := "SELECT " + columns + " FROM workorder_events " + where + " ORDER BY " + order + " LIMIT 1 BY wo_id, n"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	var rows []row
	if err := l.conn.Select(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("cannot read work-order events: %w", err)
	}
	out := make([]Event, len(rows))
	for i := range rows {
		r := &rows[i]
		out[i] = Event{
			OrderID: r.ID, N: r.N, Seq: r.Seq, Action: r.Action, At: fromMS(r.AtMS), Who: r.Who, From: r.From, To: r.To,
			Note: r.Note, Photo: r.Photo, Assignee: r.Assignee,
			Order: WorkOrder{
				ID: r.ID, Company: r.Company, Project: r.Project, Device: r.Device, Category: r.Category, Source: r.Source,
				AlarmID: r.AlarmID, Rule: r.Rule, Title: r.Title, Description: r.Description, Severity: r.Severity,
				Priority: int(r.Priority), Skill: r.Skill, State: r.State, Assignee: r.Assignee, CreatedBy: r.CreatedBy,
				OpenedAt: fromMS(r.OpenedMS), RaisedAt: fromMS(r.RaisedMS), AssignedAt: fromMS(r.AssignedMS),
				AcceptedAt: fromMS(r.AcceptedMS), StartedAt: fromMS(r.StartedMS), ResolvedAt: fromMS(r.ResolvedMS),
				ClosedAt: fromMS(r.ClosedMS), SLADue: fromMS(r.SLADueMS), Escalation: int(r.Escalation),
				Reopened: int(r.Reopened), Seq: r.Seq, N: r.N,
			},
		}
	}
	return out, nil
}
