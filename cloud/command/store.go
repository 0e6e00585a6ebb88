package command

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

// ComponentCommands is the migration component of the command log.
const ComponentCommands = "commands"

// tableEvents is the command log's table.
const tableEvents = "command_events"

// Migrations returns the schema of the command log for store.Migrate: one
// row per state change (accepted, sent, the outcome) with the command as
// it stood after it; (command_id, n) identifies an event (see
// store.EventLog).
func Migrations() []store.Migration {
	return []store.Migration{store.EventLogMigration[row](ComponentCommands, 1, tableEvents, "command_id")}
}

// Event is one state change of a command: the command as it stood after.
type Event struct {
	N   uint32    `json:"n"`
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Who made the change: the staff member for accepted, "cloud" for
	// sent and the cloud's own outcomes, the gateway for its result.
	Who     string   `json:"who"`
	Command *Command `json:"-"`
}

// Log keeps command events: *ClickHouseLog.
type Log interface {
	Append(ctx context.Context, evs []Event) error
	// Of returns a command's events, oldest first.
	Of(ctx context.Context, id string) ([]Event, error)
	// Device returns the events of a device's commands between from and to.
	Device(ctx context.Context, project, device string, from, to time.Time) ([]Event, error)
	// Since returns events with seq > after in seq order.
	Since(ctx context.Context, after uint64, limit int) ([]Event, error)
}

// ClickHouseLog keeps command events in the command_events table.
type ClickHouseLog struct {
	events *store.EventLog[row]
}

// NewClickHouseLog returns a log over conn, whose default database holds
// the tables of Migrations.
func NewClickHouseLog(conn store.Querier) *ClickHouseLog {
	return &ClickHouseLog{events: store.NewEventLog[row](conn, tableEvents, "command_id")}
}

type row struct {
	ID        string    `ch:"command_id"`
	N         uint32    `ch:"n"`
	Seq       uint64    `ch:"seq"`
	At        time.Time `ch:"at"`
	AtMS      int64     `ch:"at_ms"`
	Who       string    `ch:"who"`
	Company   string    `ch:"company"`
	Project   string    `ch:"project"`
	Gateway   string    `ch:"gateway"`
	Device    string    `ch:"device"`
	Point     string    `ch:"point"`
	Value     float64   `ch:"value"`
	Reason    string    `ch:"reason"`
	By        string    `ch:"by"`
	IssuedMS  int64     `ch:"issued_ms"`
	ExpiresMS int64     `ch:"expires_ms"`
	State     string    `ch:"state"`
	Cause     string    `ch:"cause"`
	Message   string    `ch:"message"`
	HasBefore uint8     `ch:"has_before"`
	Before    float64   `ch:"before"`
	HasAfter  uint8     `ch:"has_after"`
	After     float64   `ch:"after"`
}

func toRow(ev *Event) row {
	c := ev.Command
	r := row{
		ID: c.Wire.ID, N: ev.N, Seq: ev.Seq, At: ev.At.UTC().Truncate(time.Second), AtMS: ev.At.UnixMilli(), Who: ev.Who,
		Company: c.Company, Project: c.Project, Gateway: c.Gateway, Device: c.Wire.Device, Point: c.Wire.Point,
		Value: c.Wire.Value, Reason: c.Reason, By: c.Wire.By, IssuedMS: c.Wire.IssuedAt, ExpiresMS: c.Wire.ExpiresAt,
		State: c.State, Cause: c.Cause, Message: c.Message,
	}
	if c.Before != nil {
		r.HasBefore, r.Before = 1, *c.Before
	}
	if c.After != nil {
		r.HasAfter, r.After = 1, *c.After
	}
	return r
}

func (r *row) event() Event {
	c := &Command{
		Wire: protocol.Command{V: protocol.MessageVersion, ID: r.ID, Device: r.Device, Point: r.Point, Value: r.Value,
			IssuedAt: r.IssuedMS, ExpiresAt: r.ExpiresMS, By: r.By},
		Reason: r.Reason, State: r.State, Cause: r.Cause, Message: r.Message,
		Changed: time.UnixMilli(r.AtMS).UTC(), Company: r.Company, Project: r.Project, Gateway: r.Gateway,
	}
	if r.HasBefore != 0 {
		v := r.Before
		c.Before = &v
	}
	if r.HasAfter != 0 {
		v := r.After
		c.After = &v
	}
	return Event{N: r.N, Seq: r.Seq, At: c.Changed, Who: r.Who, Command: c}
}

func events(rows []row, err error) ([]Event, error) {
	if err != nil {
		return nil, fmt.Errorf("cannot read command events: %w", err)
	}
	out := make([]Event, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// Append stores events in one insert.
func (l *ClickHouseLog) Append(ctx context.Context, evs []Event) error {
	rows := make([]row, len(evs))
	for i := range evs {
		rows[i] = toRow(&evs[i])
	}
	if err := l.events.Append(ctx, rows); err != nil {
		return fmt.Errorf("cannot store command events: %w", err)
	}
	return nil
}

// Of returns a command's events, oldest first.
func (l *ClickHouseLog) Of(ctx context.Context, id string) ([]Event, error) {
	return events(l.events.Of(ctx, id))
}

// Device returns the events of a device's commands between from and to.
func (l *ClickHouseLog) Device(ctx context.Context, project, device string, from, to time.Time) ([]Event, error) {
	return events(l.events.Subject(ctx, project, device, from, to))
}

// Since returns up to limit events with seq > after in seq order.
func (l *ClickHouseLog) Since(ctx context.Context, after uint64, limit int) ([]Event, error) {
	return events(l.events.Since(ctx, after, limit))
}

// latestOf reduces events to the latest of each command, newest command
// (by issue time, then id) first.
func latestOf(evs []Event) []*Command {
	latest := map[string]Event{}
	for _, ev := range evs {
		if cur, ok := latest[ev.Command.Wire.ID]; !ok || ev.N > cur.N {
			latest[ev.Command.Wire.ID] = ev
		}
	}
	out := make([]*Command, 0, len(latest))
	for _, ev := range latest {
		out = append(out, ev.Command)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Wire.IssuedAt != out[j].Wire.IssuedAt {
			return out[i].Wire.IssuedAt > out[j].Wire.IssuedAt
		}
		return out[i].Wire.ID > out[j].Wire.ID
	})
	return out
}

// View is a command as the API shows it.
type View struct {
	ID        string     `json:"id"`
	Company   string     `json:"company"`
	Project   string     `json:"project"`
	Gateway   string     `json:"gateway"`
	Device    string     `json:"device"`
	Point     string     `json:"point"`
	Value     float64    `json:"value"`
	Reason    string     `json:"reason"`
	By        string     `json:"by"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	State     string     `json:"state"`
	Cause     string     `json:"cause,omitempty"`
	Message   string     `json:"message,omitempty"`
	Before    *float64   `json:"before"`
	After     *float64   `json:"after"`
	UpdatedAt time.Time  `json:"updated_at"`
	History   []StepView `json:"history,omitempty"`
}

// StepView is one state of a command's history.
type StepView struct {
	State   string    `json:"state"`
	At      time.Time `json:"at"`
	Who     string    `json:"who"`
	Cause   string    `json:"cause,omitempty"`
	Message string    `json:"message,omitempty"`
}

// View returns the command as the API shows it, its times in loc (nil: UTC).
func (c *Command) View(loc *time.Location) View {
	if loc == nil {
		loc = time.UTC
	}
	return View{
		ID: c.Wire.ID, Company: c.Company, Project: c.Project, Gateway: c.Gateway, Device: c.Wire.Device,
		Point: c.Wire.Point, Value: c.Wire.Value, Reason: c.Reason, By: c.Wire.By,
		IssuedAt: time.UnixMilli(c.Wire.IssuedAt).In(loc), ExpiresAt: time.UnixMilli(c.Wire.ExpiresAt).In(loc),
		State: c.State, Cause: c.Cause, Message: c.Message, Before: c.Before, After: c.After, UpdatedAt: c.Changed.In(loc),
	}
}

// EventView is a command event in the staff feed.
type EventView struct {
	N    uint32    `json:"n"`
	Seq  uint64    `json:"seq"`
	At   time.Time `json:"at"`
	Who  string    `json:"who"`
	Kind string    `json:"kind"` // "command"
	View
}

// View returns the event as the feed shows it.
func (ev Event) View() EventView {
	return EventView{N: ev.N, Seq: ev.Seq, At: ev.At, Who: ev.Who, Kind: "command", View: ev.Command.View(nil)}
}

// Final reports whether the command has reached its last state: a page
// following it stops polling then.
func (v View) Final() bool { return Final(v.State) }

// WithHistory adds the states of evs (a command's events, oldest first).
func (v View) WithHistory(evs []Event, loc *time.Location) View {
	if loc == nil {
		loc = time.UTC
	}
	v.History = make([]StepView, 0, len(evs))
	for _, ev := range evs {
		v.History = append(v.History, StepView{State: ev.Command.State, At: ev.At.In(loc), Who: ev.Who,
			Cause: ev.Command.Cause, Message: ev.Command.Message})
	}
	return v
}
