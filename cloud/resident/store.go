package resident

import (
	"context"
	"fmt"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
)

// ComponentResidents is the migration component of the resident logs.
const ComponentResidents = "residents"

// Tables of the logs.
const (
	tableRequests = "resident_requests"
	tableLinks    = "resident_links"
)

// Actions of request events.
const (
	ActionSubmit = "submit" // filed through the public link
	ActionRate   = "rate"   // the resident rated the resolved work
)

// Event is one event of a request: the request as it stood after it.
type Event struct {
	Request
	N         uint32
	Action    string
	At        time.Time
	TokenHash string // SHA-256 of the tracking token, hex; the token itself is never stored
}

// LinkEvent is one version of a project's public link: the latest is the
// link, every earlier one is dead.
type LinkEvent struct {
	Company, Project string
	N                uint32
	Token            string
	Who              string
	At               time.Time
}

// Migrations returns the schema of the resident logs for store.Migrate.
func Migrations() []store.Migration {
	return []store.Migration{
		store.EventLogMigration[requestRow](ComponentResidents, 1, tableRequests, "request_id"),
		store.EventLogMigration[linkRow](ComponentResidents, 2, tableLinks, "link_id"),
	}
}

type requestRow struct {
	ID          string    `ch:"request_id"`
	N           uint32    `ch:"n"`
	Seq         uint64    `ch:"seq"`
	Action      string    `ch:"action"`
	At          time.Time `ch:"at"`
	AtMS        int64     `ch:"at_ms"`
	Company     string    `ch:"company"`
	Project     string    `ch:"project"`
	Device      string    `ch:"device"`
	TokenHash   string    `ch:"token_hash"`
	WorkOrder   string    `ch:"wo_id"`
	Category    string    `ch:"category"`
	Location    string    `ch:"location"`
	Description string    `ch:"description"`
	Phone       string    `ch:"phone"`
	SubmittedMS int64     `ch:"submitted_ms"`
	Rating      uint8     `ch:"rating"`
	Comment     string    `ch:"comment"`
	RatedMS     int64     `ch:"rated_ms"`
}

type linkRow struct {
	ID      string    `ch:"link_id"`
	N       uint32    `ch:"n"`
	Seq     uint64    `ch:"seq"`
	At      time.Time `ch:"at"`
	AtMS    int64     `ch:"at_ms"`
	Company string    `ch:"company"`
	Project string    `ch:"project"`
	Device  string    `ch:"device"`
	Token   string    `ch:"token"`
	Who     string    `ch:"who"`
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

// seqOf orders copies of one event: the same event stored twice has the
// same seq (ReplacingMergeTree keeps one).
func seqOf(at time.Time, n uint32) uint64 { return uint64(at.UnixMilli())<<8 | uint64(n&0xff) }

// ClickHouseLog keeps requests and links in ClickHouse.
type ClickHouseLog struct {
	requests *store.EventLog[requestRow]
	links    *store.EventLog[linkRow]
}

// NewClickHouseLog returns the log over conn, whose default database holds
// the tables of Migrations.
func NewClickHouseLog(conn store.Querier) *ClickHouseLog {
	return &ClickHouseLog{
		requests: store.NewEventLog[requestRow](conn, tableRequests, "request_id"),
		links:    store.NewEventLog[linkRow](conn, tableLinks, "link_id"),
	}
}

// AppendRequestEvents stores request events in one insert.
func (l *ClickHouseLog) AppendRequestEvents(ctx context.Context, evs []Event) error {
	rows := make([]requestRow, len(evs))
	for i, ev := range evs {
		rows[i] = requestRow{ID: ev.ID, N: ev.N, Seq: seqOf(ev.At, ev.N), Action: ev.Action, At: ev.At.UTC().Truncate(time.Second),
			AtMS: ms(ev.At), Company: ev.Company, Project: ev.Project, TokenHash: ev.TokenHash, WorkOrder: ev.WorkOrder,
			Category: ev.Category, Location: ev.Location, Description: ev.Description, Phone: ev.Phone,
			SubmittedMS: ms(ev.SubmittedAt), Rating: uint8(ev.Rating), Comment: ev.Comment, RatedMS: ms(ev.RatedAt)}
	}
	if err := l.requests.Append(ctx, rows); err != nil {
		return fmt.Errorf("cannot store resident requests: %w", err)
	}
	return nil
}

// LoadRequestEvents returns every stored request event, each once.
func (l *ClickHouseLog) LoadRequestEvents(ctx context.Context) ([]Event, error) {
	rows, err := l.requests.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot read resident requests: %w", err)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = Event{N: r.N, Action: r.Action, At: fromMS(r.AtMS), TokenHash: r.TokenHash, Request: Request{
			ID: r.ID, Company: r.Company, Project: r.Project, WorkOrder: r.WorkOrder, Category: r.Category,
			Location: r.Location, Description: r.Description, Phone: r.Phone, SubmittedAt: fromMS(r.SubmittedMS),
			Rating: int(r.Rating), Comment: r.Comment, RatedAt: fromMS(r.RatedMS)}}
	}
	return out, nil
}

// AppendLinkEvents stores link events in one insert.
func (l *ClickHouseLog) AppendLinkEvents(ctx context.Context, evs []LinkEvent) error {
	rows := make([]linkRow, len(evs))
	for i, ev := range evs {
		rows[i] = linkRow{ID: ev.Company + "/" + ev.Project, N: ev.N, Seq: seqOf(ev.At, ev.N), At: ev.At.UTC().Truncate(time.Second),
			AtMS: ms(ev.At), Company: ev.Company, Project: ev.Project, Token: ev.Token, Who: ev.Who}
	}
	if err := l.links.Append(ctx, rows); err != nil {
		return fmt.Errorf("cannot store resident request links: %w", err)
	}
	return nil
}

// LoadLinkEvents returns every stored link event, each once.
func (l *ClickHouseLog) LoadLinkEvents(ctx context.Context) ([]LinkEvent, error) {
	rows, err := l.links.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot read resident request links: %w", err)
	}
	out := make([]LinkEvent, len(rows))
	for i, r := range rows {
		out[i] = LinkEvent{Company: r.Company, Project: r.Project, N: r.N, Token: r.Token, Who: r.Who, At: fromMS(r.AtMS)}
	}
	return out, nil
}
