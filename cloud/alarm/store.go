package alarm

import (
	"context"
	"fmt"
	"time"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/store"
)

// ComponentAlarms is the migration component of the alarm event log.
const ComponentAlarms = "alarms"

// Migrations returns the schema of the alarm event log for store.Migrate.
// One row per event carries the alarm as it stood after the event, so the
// current state of an alarm is its row with the highest n; (alarm_id, n)
// identifies an event (see store.EventLog).
func Migrations() []store.Migration {
	return []store.Migration{
		store.EventLogMigration[alarmRow](ComponentAlarms, 1, tableEvents, "alarm_id"),
		store.EventJournalMigration(ComponentAlarms, 2, tableEvents), // snapshots of the held alarms
	}
}

// tableEvents is the alarm event log's table.
const tableEvents = "alarm_events"

// ClickHouseLog keeps alarm events in the alarm_events table.
type ClickHouseLog struct {
	conn   store.Querier
	events *store.EventLog[alarmRow]
}

// NewClickHouseLog returns a log over conn, whose default database holds
// the tables of Migrations.
func NewClickHouseLog(conn store.Querier) *ClickHouseLog {
	return &ClickHouseLog{conn: conn, events: store.NewEventLog[alarmRow](conn, tableEvents, "alarm_id").WithJournal("raised_ms")}
}

type alarmRow struct {
	AlarmID        string    `ch:"alarm_id"`
	N              uint32    `ch:"n"`
	Seq            uint64    `ch:"seq"`
	Kind           string    `ch:"kind"`
	At             time.Time `ch:"at"`
	AtMS           int64     `ch:"at_ms"`
	From           string    `ch:"from_state"`
	To             string    `ch:"to_state"`
	Who            string    `ch:"who"`
	Note           string    `ch:"note"`
	Value          float64   `ch:"value"`
	ReadingMS      int64     `ch:"reading_ms"`
	Company        string    `ch:"company"`
	Project        string    `ch:"project"`
	Gateway        string    `ch:"gateway"`
	Device         string    `ch:"device"`
	Category       string    `ch:"category"`
	Rule           string    `ch:"rule"`
	RuleName       string    `ch:"rule_name"`
	RuleKind       string    `ch:"rule_kind"`
	Severity       string    `ch:"severity"`
	Metric         string    `ch:"metric"`
	State          string    `ch:"state"`
	Acked          uint8     `ch:"acked"`
	AckedBy        string    `ch:"acked_by"`
	AckedMS        int64     `ch:"acked_ms"`
	RaisedMS       int64     `ch:"raised_ms"`
	ClearedMS      int64     `ch:"cleared_ms"`
	AlarmValue     float64   `ch:"alarm_value"`
	AlarmReadingMS int64     `ch:"alarm_reading_ms"`
	Count          uint32    `ch:"count"`
	WorkOrder      uint8     `ch:"work_order"`
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func toRow(ev *Event) alarmRow {
	a := &ev.Alarm
	return alarmRow{
		AlarmID: a.ID, N: ev.N, Seq: ev.Seq, Kind: ev.Kind, At: ev.At.UTC().Truncate(time.Second), AtMS: ev.At.UnixMilli(),
		From: ev.From, To: ev.To, Who: ev.Who, Note: ev.Note, Value: ev.Value, ReadingMS: unixMS(ev.ReadingTS),
		Company: a.Company, Project: a.Project, Gateway: a.Gateway, Device: a.Device, Category: a.Category,
		Rule: a.Rule, RuleName: a.RuleName, RuleKind: a.RuleKind, Severity: a.Severity, Metric: a.Metric,
		State: a.State, Acked: b2u(a.Acked), AckedBy: a.AckedBy, AckedMS: unixMS(a.AckedAt),
		RaisedMS: unixMS(a.RaisedAt), ClearedMS: unixMS(a.ClearedAt), AlarmValue: a.Value,
		AlarmReadingMS: unixMS(a.ReadingTS), Count: uint32(a.Count), WorkOrder: b2u(a.WorkOrder),
	}
}

func (r *alarmRow) event() Event {
	return Event{
		Seq: r.Seq, N: r.N, Kind: r.Kind, At: msTime(r.AtMS), From: r.From, To: r.To, Who: r.Who, Note: r.Note,
		Value: r.Value, ReadingTS: msTime(r.ReadingMS),
		Alarm: Alarm{
			ID: r.AlarmID, Company: r.Company, Project: r.Project, Gateway: r.Gateway, Device: r.Device,
			Category: r.Category, Rule: r.Rule, RuleName: r.RuleName, RuleKind: r.RuleKind, Severity: r.Severity,
			Metric: r.Metric, State: r.State, Acked: r.Acked == 1, AckedBy: r.AckedBy, AckedAt: msTime(r.AckedMS),
			RaisedAt: msTime(r.RaisedMS), ClearedAt: msTime(r.ClearedMS), Value: r.AlarmValue,
			ReadingTS: msTime(r.AlarmReadingMS), Count: int(r.Count), WorkOrder: r.WorkOrder == 1, Seq: r.Seq, N: r.N,
		},
	}
}

func unixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// AppendAlarmEvents stores events in one insert.
func (l *ClickHouseLog) AppendAlarmEvents(ctx context.Context, evs []Event) error {
	rows := make([]alarmRow, len(evs))
	for i := range evs {
		rows[i] = toRow(&evs[i])
	}
	if err := l.events.Append(ctx, rows); err != nil {
		return fmt.Errorf("cannot store alarm events: %w", err)
	}
	return nil
}

// ImportAlarmEvents stores events without journaling them: a history
// loaded before the engine first starts (store.EventLog.Import).
func (l *ClickHouseLog) ImportAlarmEvents(ctx context.Context, evs []Event) error {
	rows := make([]alarmRow, len(evs))
	for i := range evs {
		rows[i] = toRow(&evs[i])
	}
	if err := l.events.Import(ctx, rows); err != nil {
		return fmt.Errorf("cannot import alarm events: %w", err)
	}
	return nil
}

// LoadHeld returns what the engine holds at start. From the newest
// snapshot of the held alarms (SaveHeld) it reads only the alarms that
// snapshot names and those with events stored since shortly before it,
// however long the history; without one it reads the whole log.
func (l *ClickHouseLog) LoadHeld(ctx context.Context, since time.Time) (Held, error) {
	r, ok, err := l.events.Resume(ctx)
	if err != nil {
		return Held{}, fmt.Errorf("cannot load alarms: %w", err)
	}
	// A snapshot taken with a shorter window (some alarm raised at or
	// after since not held then) cannot say what this window holds.
	if !ok || r.Mark >= since.UnixMilli() {
		return l.loadAll(ctx, since)
	}
	alarms, err := l.loadAlarms(ctx, since, &r)
	if err != nil {
		return Held{}, err
	}
	// Every alarm the snapshot did not name was raised at or before its
	// mark; of those it named, the ones left out were raised before since.
	newest, err := l.events.NewestAmong(ctx, "raised_ms", r.Keys, store.AtLeast("at", r.Since), store.Below("raised_ms", since.UnixMilli()))
	if err != nil {
		return Held{}, fmt.Errorf("cannot load alarms: %w", err)
	}
	return Held{Alarms: alarms, MaxSeq: r.Seq, Unheld: msTime(max(r.Mark, newest)), From: r.Taken}, nil
}

// loadAll is LoadHeld without a snapshot: every row of the log is read.
func (l *ClickHouseLog) loadAll(ctx context.Context, since time.Time) (Held, error) {
	alarms, err := l.LoadAlarms(ctx, since)
	if err != nil {
		return Held{}, err
	}
	seq, err := l.MaxSeq(ctx)
	if err != nil {
		return Held{}, fmt.Errorf("cannot load alarms: %w", err)
	}
	unheld, err := l.NewestBefore(ctx, since)
	if err != nil {
		return Held{}, err
	}
	return Held{Alarms: alarms, MaxSeq: seq, Unheld: unheld}, nil
}

// SaveHeld stores a snapshot of the held alarms (store.EventLog.WriteSnapshot).
func (l *ClickHouseLog) SaveHeld(ctx context.Context, s store.Snapshot) error {
	if err := l.events.WriteSnapshot(ctx, s); err != nil {
		return fmt.Errorf("cannot save the held alarms: %w", err)
	}
	return nil
}

// maxHeld is the most alarms LoadAlarms gives back: more active or recent
// alarms than this is a configuration to look at, not one to load.
const maxHeld = 500_000

// LoadAlarms returns the alarms the engine keeps in memory, as their
// latest stored events left them: every active alarm, every alarm raised
// at or after since, and the latest cleared alarm of each subject and
// rule (a raise after it is a new incident or not by when it cleared).
// Older cleared alarms stay in ClickHouse (FindAlarms).
func (l *ClickHouseLog) LoadAlarms(ctx context.Context, since time.Time) ([]Alarm, error) {
	return l.loadAlarms(ctx, since, nil)
}

// loadAlarms is LoadAlarms among the alarms a start from a snapshot
// needs (r; nil: all of them), reading only their partitions.
func (l *ClickHouseLog) loadAlarms(ctx context.Context, since time.Time, r *store.Resume) ([]Alarm, error) {
	var among []string
	var fixed []store.Cond
	if r != nil {
		among, fixed = r.Keys, []store.Cond{store.AtLeast("at", r.Since)}
	}
	recent, err := l.events.Current(ctx, store.Query{
		Fixed: fixed,
		Among: among,
		Where: []store.Cond{store.AnyOf(store.Eq("state", StateActive), store.AtLeast("raised_ms", since.UnixMilli()))},
		Limit: maxHeld + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load alarms: %w", err)
	}
	if len(recent) > maxHeld {
		return nil, fmt.Errorf("cannot load alarms: more than %d are active or were raised since %s", maxHeld, since.UTC().Format(time.RFC3339))
	}
	// A clear is final for an alarm (a condition that comes back is a new
	// alarm), so only the rows from its clear on are read.
	last, err := l.events.Current(ctx, store.Query{
		Fixed:   append([]store.Cond{store.Eq("state", StateCleared)}, fixed...),
		Among:   among,
		OnePer:  []string{"device", "gateway", "rule"},
		OrderBy: []store.Order{{Col: "cleared_ms", Desc: true}},
		Limit:   maxHeld,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load alarms: %w", err)
	}
	out := make([]Alarm, 0, len(recent)+len(last))
	seen := make(map[string]bool, len(recent))
	for _, rows := range [][]alarmRow{recent, last} {
		for i := range rows {
			if a := rows[i].event().Alarm; !seen[a.ID] {
				seen[a.ID] = true
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// FindAlarms returns the stored alarms within scope that match f, newest
// first, at most f.Limit (500 when 0), as their latest stored events
// left them. The scope and every filter but the state and severity are
// applied to all of an alarm's rows (no event changes them), the state
// and severity to its latest.
func (l *ClickHouseLog) FindAlarms(ctx context.Context, scope access.Scope, f Filter) ([]Alarm, error) {
	if scope.None {
		return nil, nil
	}
	q := store.Query{Fixed: []store.Cond{store.Eq("company", scope.Company)}, Limit: f.limit(),
		OrderBy: []store.Order{{Col: "raised_ms", Desc: true}}}
	if scope.Projects != nil {
		q.Fixed = append(q.Fixed, store.In("project", scope.Projects))
	}
	if f.Project != "" {
		q.Fixed = append(q.Fixed, store.Eq("project", f.Project))
	}
	if f.Device != "" {
		q.Fixed = append(q.Fixed, store.AnyOf(store.Eq("device", f.Device),
			store.AllOf(store.Eq("device", ""), store.Eq("gateway", f.Device))))
	}
	if !f.Since.IsZero() {
		q.Fixed = append(q.Fixed, store.AtLeast("raised_ms", f.Since.UnixMilli()))
	}
	if !f.Until.IsZero() {
		q.Fixed = append(q.Fixed, store.Below("raised_ms", f.Until.UnixMilli()))
	}
	if f.State != "" {
		q.Where = append(q.Where, store.Eq("state", f.State))
	}
	if f.Severity != "" {
		q.Where = append(q.Where, store.Eq("severity", f.Severity))
	}
	rows, err := l.events.Current(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("cannot read alarms: %w", err)
	}
	out := make([]Alarm, len(rows))
	for i := range rows {
		out[i] = rows[i].event().Alarm
	}
	return out, nil
}

// FindAlarm returns one stored alarm as its latest event left it.
func (l *ClickHouseLog) FindAlarm(ctx context.Context, id string) (Alarm, bool, error) {
	rows, err := l.events.Current(ctx, store.Query{Fixed: []store.Cond{store.Eq("alarm_id", id)}, Limit: 1})
	if err != nil {
		return Alarm{}, false, fmt.Errorf("cannot read alarm %q: %w", id, err)
	}
	if len(rows) == 0 {
		return Alarm{}, false, nil
	}
	return rows[0].event().Alarm, true, nil
}

// NewestBefore returns the latest raise time before t among stored alarms
// (zero when there is none).
func (l *ClickHouseLog) NewestBefore(ctx context.Context, t time.Time) (time.Time, error) {
	ms, err := l.events.Newest(ctx, "raised_ms", store.Below("raised_ms", t.UnixMilli()))
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot read alarms: %w", err)
	}
	return msTime(ms), nil
}

// MaxSeq is the highest feed sequence of a stored alarm event.
func (l *ClickHouseLog) MaxSeq(ctx context.Context) (uint64, error) {
	return l.events.MaxSeq(ctx)
}

// AlarmEventsSince returns up to limit events with seq > after in seq order.
func (l *ClickHouseLog) AlarmEventsSince(ctx context.Context, after uint64, limit int) ([]Event, error) {
	return events(l.events.Since(ctx, after, limit))
}

// DeviceEvents returns the events of every alarm of a device (or gateway
// when device is a gateway id) between from and to, oldest first.
func (l *ClickHouseLog) DeviceEvents(ctx context.Context, project, subject string, from, to time.Time) ([]Event, error) {
	return events(l.events.Subject(ctx, project, subject, from, to))
}

// AlarmEvents returns the events of one alarm, oldest first.
func (l *ClickHouseLog) AlarmEvents(ctx context.Context, id string) ([]Event, error) {
	return events(l.events.Of(ctx, id))
}

func events(rows []alarmRow, err error) ([]Event, error) {
	if err != nil {
		return nil, fmt.Errorf("cannot read alarm events: %w", err)
	}
	out := make([]Event, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// Backfill adapts the log to the feed.
func (l *ClickHouseLog) Backfill(ctx context.Context, after uint64, limit int) ([]Item, error) {
	evs, err := l.AlarmEventsSince(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	items := make([]Item, len(evs))
	for i := range evs {
		items[i] = eventItem(evs[i])
	}
	return items, nil
}

func eventItem(ev Event) Item {
	return Item{Seq: ev.Seq, Type: ItemAlarm, Company: ev.Alarm.Company, Project: ev.Alarm.Project, Data: ev}
}

// RecentReadings reads the stored readings of metrics since since for
// the replay at start (store.Readings.Recent).
func (l *ClickHouseLog) RecentReadings(ctx context.Context, since time.Time, metrics []string) ([]StoredReading, error) {
	return store.RecentReadings(ctx, l.conn, since, metrics)
}
