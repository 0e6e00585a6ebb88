package alarm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

// ComponentAlarms is the migration component of the alarm event log.
const ComponentAlarms = "alarms"

// Migrations returns the schema of the alarm event log for store.Migrate.
// One row per event carries the alarm as it stood after the event, so the
// current state of an alarm is its row with the highest n; (alarm_id, n)
// identifies an event and ReplacingMergeTree collapses an event stored twice.
func Migrations() []store.Migration {
	return []store.Migration{{Component: ComponentAlarms, Version: 1, Name: "alarm_events",
		Statements: func(s store.Server, db string) []string {
			return EventTableDDL(s, db, "alarm_events", alarmColumnsDDL, "company, project, alarm_id, n")
		}}}
}

const alarmColumnsDDL = `alarm_id String, n UInt32, seq UInt64, kind String, at DateTime, at_ms Int64,
    from_state String, to_state String, who String, note String, value Float64, reading_ms Int64,
    company String, project String, gateway String, device String, category String,
    rule String, rule_name String, rule_kind String, severity String, metric String, state String,
    acked UInt8, acked_by String, acked_ms Int64, raised_ms Int64, cleared_ms Int64,
    alarm_value Float64, alarm_reading_ms Int64, count UInt32, work_order UInt8`

// EventTableDDL is the DDL of an append-only event log table (the alarm and
// the work-order logs): a ReplacingMergeTree(seq) partitioned by month of
// column "at". It works on ClickHouse 18.16 (no DateTime64, TTL or codecs
// needed). On a cluster the data lives in a Replicated table <name>_local
// behind a Distributed table sharded by (company, project), so the copies
// of one event always meet on one shard.
func EventTableDDL(s store.Server, db, name, columns, orderBy string) []string {
	q := func(id string) string { return "`" + strings.ReplaceAll(id, "`", "") + "`" }
	local, engine := name, "ReplacingMergeTree(seq)"
	if s.Clustered() {
		local = name + "_local"
		engine = fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/%s', '{replica}', seq)", db, local)
	}
	out := []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s (\n    %s\n) ENGINE = %s\nPARTITION BY toYYYYMM(at)\nORDER BY (%s)",
		q(db), local, s.OnCluster(), columns, engine, orderBy)}
	if s.Clustered() {
		out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s.%s ENGINE = Distributed(%s, %s, %s, cityHash64(company, project))",
			q(db), name, s.OnCluster(), q(db), local, q(s.Cluster), q(db), local))
	}
	return out
}

const alarmColumns = `alarm_id, n, seq, kind, at, at_ms, from_state, to_state, who, note, value, reading_ms,
 company, project, gateway, device, category, rule, rule_name, rule_kind, severity, metric, state,
 acked, acked_by, acked_ms, raised_ms, cleared_ms, alarm_value, alarm_reading_ms, count, work_order`

// Querier is the part of a ClickHouse connection the logs use.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) error
	Select(ctx context.Context, dest any, query string, args ...any) error
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// ClickHouseLog keeps alarm events in the alarm_events table.
type ClickHouseLog struct {
	conn    Querier
	timeout time.Duration
}

// NewClickHouseLog returns a log over conn, whose default database holds
// the tables of Migrations.
func NewClickHouseLog(conn Querier) *ClickHouseLog {
	return &ClickHouseLog{conn: conn, timeout: 15 * time.Second}
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
	if len(evs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	b, err := l.conn.PrepareBatch(ctx, "INSERT INTO alarm_events ("+alarmColumns+")")
	if err != nil {
		return fmt.Errorf("cannot store alarm events: %w", err)
	}
	defer b.Close()
	for i := range evs {
		r := toRow(&evs[i])
		if err := b.Append(r.AlarmID, r.N, r.Seq, r.Kind, r.At, r.AtMS, r.From, r.To, r.Who, r.Note, r.Value, r.ReadingMS,
			r.Company, r.Project, r.Gateway, r.Device, r.Category, r.Rule, r.RuleName, r.RuleKind, r.Severity, r.Metric, r.State,
			r.Acked, r.AckedBy, r.AckedMS, r.RaisedMS, r.ClearedMS, r.AlarmValue, r.AlarmReadingMS, r.Count, r.WorkOrder); err != nil {
			return fmt.Errorf("cannot store alarm event %q/%d: %w", r.AlarmID, r.N, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot store alarm events: %w", err)
	}
	return nil
}

// LoadAlarms returns every alarm as its latest stored event left it.
func (l *ClickHouseLog) LoadAlarms(ctx context.Context) ([]Alarm, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*l.timeout)
	defer cancel()
	var rows []alarmRow
	if err := l.conn.Select(ctx, &rows, "SELECT "+alarmColumns+" FROM alarm_events ORDER BY alarm_id, n DESC LIMIT 1 BY alarm_id"); err != nil {
		return nil, fmt.Errorf("cannot load alarms: %w", err)
	}
	out := make([]Alarm, len(rows))
	for i := range rows {
		out[i] = rows[i].event().Alarm
	}
	return out, nil
}

// AlarmEventsSince returns up to limit events with seq > after in seq order.
func (l *ClickHouseLog) AlarmEventsSince(ctx context.Context, after uint64, limit int) ([]Event, error) {
	return l.query(ctx, "WHERE seq > ?", "seq", limit, after)
}

// DeviceEvents returns the events of every alarm of a device (or gateway
// when device is a gateway id) between from and to, oldest first.
func (l *ClickHouseLog) DeviceEvents(ctx context.Context, project, subject string, from, to time.Time) ([]Event, error) {
	return l.query(ctx, "WHERE project = ? AND (device = ? OR (device = '' AND gateway = ?)) AND at >= ? AND at < ?",
		"at_ms, alarm_id, n", 0, project, subject, subject, from.UTC(), to.UTC())
}

// AlarmEvents returns the events of one alarm, oldest first.
func (l *ClickHouseLog) AlarmEvents(ctx context.Context, id string) ([]Event, error) {
	return l.query(ctx, "WHERE alarm_id = ?", "n", 0, id)
}

// query selects events; LIMIT 1 BY drops an event stored twice that the
// merge has not collapsed yet. limit 0 means no limit.
func (l *ClickHouseLog) query(ctx context.Context, where, order string, limit int, args ...any) ([]Event, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	var rows []alarmRow
	q := "SELECT " + alarmColumns + " FROM alarm_events " + where + " ORDER BY " + order + " LIMIT 1 BY alarm_id, n"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	if err := l.conn.Select(ctx, &rows, q, args...); err != nil {
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

// RecentReadings reads the readings table of cloud/store (with FINAL, so a
// reading stored twice counts once) for the replay at start. Metric names
// are checked with protocol.CheckMetric before they enter the query.
func (l *ClickHouseLog) RecentReadings(ctx context.Context, since time.Time, metrics []string) ([]StoredReading, error) {
	quoted := make([]string, 0, len(metrics))
	for _, m := range metrics {
		if err := protocol.CheckMetric(m); err != nil {
			return nil, fmt.Errorf("cannot read recent readings: %w", err)
		}
		quoted = append(quoted, "'"+m+"'")
	}
	if len(quoted) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 4*l.timeout)
	defer cancel()
	var rows []struct {
		Gateway string  `ch:"gateway"`
		Device  string  `ch:"device"`
		Metric  string  `ch:"metric"`
		TS      int64   `ch:"ts_ms"`
		Value   float64 `ch:"value"`
		Quality uint8   `ch:"quality"`
	}
	q := "SELECT gateway, device, metric, ts_ms, value, quality FROM " + store.TableReadings +
		" FINAL WHERE ts_ms >= ? AND metric IN (" + strings.Join(quoted, ", ") + ") ORDER BY ts_ms, device, metric"
	if err := l.conn.Select(ctx, &rows, q, since.UnixMilli()); err != nil {
		return nil, fmt.Errorf("cannot read recent readings: %w", err)
	}
	out := make([]StoredReading, len(rows))
	for i, r := range rows {
		out[i] = StoredReading{Gateway: r.Gateway, Reading: protocol.Reading{Device: r.Device, Metric: r.Metric, TS: r.TS, Value: r.Value, Quality: protocol.Quality(r.Quality)}}
	}
	return out, nil
}
