package console

import (
	"time"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/command"
)

// markAck sets CanAck on the active, unacknowledged alarms the access
// policy lets the viewer acknowledge, to show the button; the API decides
// again when it is pressed.
func markAck(sess *Session, alarms []alarmView) {
	for i := range alarms {
		a := &alarms[i]
		r := access.Resource{Kind: access.KindAlarm, Company: a.Company, Project: a.Project}
		a.CanAck = a.State == "active" && !a.Acked && sess.Principal.May(access.Acknowledge, r)
	}
}

// The API's JSON answers, as far as the pages use them. Energy reports are
// decoded into package energy's own types; alarms, work orders and
// statistics into these, which follow the API's documented JSON
// (docs/api.md, docs/alarms.md, cloud/api/openapi.yaml).

type alarmView struct {
	ID        string    `json:"id"`
	Company   string    `json:"company"`
	Project   string    `json:"project"`
	Gateway   string    `json:"gateway"`
	Device    string    `json:"device"`
	Category  string    `json:"category"`
	Rule      string    `json:"rule"`
	RuleName  string    `json:"rule_name"`
	Severity  string    `json:"severity"`
	Metric    string    `json:"metric"`
	State     string    `json:"state"`
	Acked     bool      `json:"acked"`
	AckedBy   string    `json:"acked_by"`
	AckedAt   time.Time `json:"acked_at"`
	RaisedAt  time.Time `json:"raised_at"`
	ClearedAt time.Time `json:"cleared_at"`
	Value     float64   `json:"value"`
	Count     int       `json:"count"`
	Seq       uint64    `json:"seq"`
	// CanAck: the viewer may acknowledge it now (asked of the access policy).
	CanAck bool `json:"-"`
}

// Subject is the device an alarm is about, or its gateway.
func (a alarmView) Subject() string {
	if a.Device != "" {
		return a.Device
	}
	return a.Gateway
}

type orderEvent struct {
	Action   string    `json:"action"`
	At       time.Time `json:"at"`
	Who      string    `json:"who"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Note     string    `json:"note"`
	Assignee string    `json:"assignee"`
	Photos   []struct {
		ID     string `json:"id"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	} `json:"photos"`
}

type orderView struct {
	ID         string       `json:"id"`
	Project    string       `json:"project"`
	Device     string       `json:"device"`
	Category   string       `json:"category"`
	Source     string       `json:"source"`
	AlarmID    string       `json:"alarm_id"`
	Follows    string       `json:"follows"` // the earlier incident's order
	Title      string       `json:"title"`
	Descr      string       `json:"description"`
	Rule       string       `json:"rule"`
	Severity   string       `json:"severity"`
	Priority   int          `json:"priority"`
	State      string       `json:"state"`
	Assignee   string       `json:"assignee"`
	OpenedAt   time.Time    `json:"opened_at"`
	RaisedAt   time.Time    `json:"raised_at"`
	ArrivedAt  time.Time    `json:"arrived_at"`
	ClosedAt   time.Time    `json:"closed_at"`
	AcceptedAt time.Time    `json:"accepted_at"`
	StartedAt  time.Time    `json:"started_at"`
	ResolvedAt time.Time    `json:"resolved_at"`
	SLADue     time.Time    `json:"sla_due"`
	Escalation int          `json:"escalation"`
	History    []orderEvent `json:"history"`
}

// Open reports whether the order still needs someone.
func (o orderView) Open() bool {
	return o.State != "resolved" && o.State != "closed" && o.State != "cancelled"
}

// Overdue: open, nobody started work, and the SLA deadline has passed.
func (o orderView) Overdue(now time.Time) bool {
	return o.Open() && o.StartedAt.IsZero() && !o.SLADue.IsZero() && now.After(o.SLADue)
}

type statsView struct {
	Month    string         `json:"month"`
	Projects []projectStats `json:"projects"`
}

type projectStats struct {
	Project string `json:"project"`
	Name    string `json:"name"`
	Alarms  struct {
		Total int `json:"total"`
	} `json:"alarms"`
	WorkOrders struct {
		Total int `json:"total"`
	} `json:"work_orders"`
	MTTA *float64 `json:"mean_time_to_respond_minutes"`
	MTTR *float64 `json:"mean_time_to_resolve_minutes"`
	SLA  struct {
		Met           int      `json:"met"`
		Breached      int      `json:"breached"`
		Pending       int      `json:"pending"`
		CompliancePct *float64 `json:"compliance_pct"`
	} `json:"sla"`
	TopFaults []fault `json:"top_faults"`
}

type fault struct {
	Rule     string   `json:"rule"`
	Name     string   `json:"name"`
	Category string   `json:"category"`
	Code     *float64 `json:"code"`
	Count    int      `json:"count"`
}

type metricValue struct {
	Value   float64   `json:"value"`
	Unit    string    `json:"unit"`
	At      time.Time `json:"at"`
	Quality uint8     `json:"quality"`
	State   string    `json:"state"`
}

type deviceView struct {
	ID           string                 `json:"id"`
	Name         string                 `json:"name"`
	Kind         string                 `json:"kind"`
	Project      string                 `json:"project"`
	Building     string                 `json:"building"`
	Gateway      string                 `json:"gateway"`
	PollInterval string                 `json:"poll_interval"`
	State        string                 `json:"state"`
	LastSeen     *time.Time             `json:"last_seen"`
	Values       map[string]metricValue `json:"values"`
	Writable     []writablePoint        `json:"writable"`
}

// writablePoint is a point of the device's template a command may write.
type writablePoint struct {
	Point   string    `json:"point"`
	Unit    string    `json:"unit"`
	Allowed []float64 `json:"allowed"`
	Min     *float64  `json:"min"`
	Max     *float64  `json:"max"`
}

// commandView is a command as GET /commands/{id} shows it: the API's
// own type.
type commandView = command.View

type projectView struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	TimeZone    string  `json:"time_zone"`
	FloorAreaM2 float64 `json:"floor_area_m2"`
	Buildings   []struct {
		ID          string  `json:"id"`
		Name        string  `json:"name"`
		FloorAreaM2 float64 `json:"floor_area_m2"`
	} `json:"buildings"`
	Gateways []struct {
		ID       string     `json:"id"`
		Name     string     `json:"name"`
		Building string     `json:"building"`
		Devices  int        `json:"devices"`
		Online   *bool      `json:"online"`
		Since    *time.Time `json:"since"`
	} `json:"gateways"`
	Devices int `json:"devices"`
}
