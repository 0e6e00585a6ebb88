package workorder

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/config"
)

// Monthly is HQ's monthly maintenance statistics, one entry per project.
type Monthly struct {
	Month    string         `json:"month"` // YYYY-MM, in each project's time zone
	Company  string         `json:"company"`
	Projects []ProjectStats `json:"projects"`
}

// ProjectStats are one project's figures for the month: alarms raised and
// work orders opened in it, and how those orders went.
type ProjectStats struct {
	Project    string      `json:"project"`
	Name       string      `json:"name"`
	Alarms     AlarmCounts `json:"alarms"`
	WorkOrders OrderCounts `json:"work_orders"`
	// MeanTimeToRespond is the mean time from the problem (alarm raise, or
	// a manual order's opening) to the order's acceptance, over accepted
	// orders; MeanTimeToResolve likewise to its resolution. Minutes; null
	// when no order got that far.
	MeanTimeToRespondMin *float64 `json:"mean_time_to_respond_minutes"`
	MeanTimeToResolveMin *float64 `json:"mean_time_to_resolve_minutes"`
	// MeanTimeToArriveMin is the mean time from the problem to the
	// assignee's recorded arrival on site (QR scan-in), over orders with one:
	// the real response time. Minutes; null when none was recorded.
	MeanTimeToArriveMin *float64 `json:"mean_time_to_arrive_minutes"`
	SLA                 SLAStats `json:"sla"`
	// TopFaults is the high-frequency problem list: alarm counts by rule
	// and, for state rules, fault code; most frequent first, at most 10.
	TopFaults []Fault `json:"top_faults"`
}

// AlarmCounts counts alarms by category (device kind) and severity.
type AlarmCounts struct {
	Total      int            `json:"total"`
	ByCategory map[string]int `json:"by_category"`
	BySeverity map[string]int `json:"by_severity"`
}

// OrderCounts counts work orders by category, source and current state.
type OrderCounts struct {
	Total      int            `json:"total"`
	ByCategory map[string]int `json:"by_category"`
	BySource   map[string]int `json:"by_source"`
	ByState    map[string]int `json:"by_state"`
}

// SLAStats says how many orders had someone on site in time. Orders still
// within their time and not started are pending and left out of the
// percentage; cancelled orders are not counted.
type SLAStats struct {
	Met           int      `json:"met"`
	Breached      int      `json:"breached"`
	Pending       int      `json:"pending"`
	CompliancePct *float64 `json:"compliance_pct"`
}

// Fault is one line of the high-frequency problem list.
type Fault struct {
	Rule     string   `json:"rule"`
	Name     string   `json:"name"`
	Category string   `json:"category"`
	Code     *float64 `json:"code,omitempty"` // fault code of state rules
	Count    int      `json:"count"`
}

// MaxMonthOrders is the most work orders one month's statistics read.
const MaxMonthOrders = 200_000

// ParseMonth parses "YYYY-MM".
func ParseMonth(s string) (year int, month time.Month, err error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid month %q (want YYYY-MM): %w", s, ErrInvalid)
	}
	return t.Year(), t.Month(), nil
}

// MonthlyStats computes the month's figures for every project of the
// viewer's company the viewer may see, from the alarms given (all alarms
// raised around the month) and the desk's orders.
func (d *Desk) MonthlyStats(ctx context.Context, v alarm.Viewer, month string, alarms []alarm.Alarm, now time.Time) (Monthly, error) {
	y, m, err := ParseMonth(month)
	if err != nil {
		return Monthly{}, err
	}
	out := Monthly{Month: month, Company: v.Company, Projects: []ProjectStats{}}
	// Orders opened in the month in any project's time zone: a day either
	// side of the month in UTC.
	start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	orders, err := d.List(ctx, v, Filter{Since: start.AddDate(0, 0, -1), Until: start.AddDate(0, 1, 1), Limit: MaxMonthOrders + 1})
	if err != nil {
		return Monthly{}, err
	}
	if len(orders) > MaxMonthOrders {
		return Monthly{}, fmt.Errorf("cannot compute the statistics of %s: more than %d work orders around the month", month, MaxMonthOrders)
	}
	if c, ok := d.cfg.Org.FindCompany(v.Company); ok {
		for i := range c.Projects {
			p := &c.Projects[i]
			if !v.May(access.Report, access.ProjectOf(c.ID, p.ID)) {
				continue
			}
			from, to := p.Month(y, m)
			in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
			out.Projects = append(out.Projects, projectStats(c.ID, p, alarms, orders, in, now))
		}
	}
	return out, nil
}

func projectStats(company string, p *config.Project, alarms []alarm.Alarm, orders []WorkOrder, in func(time.Time) bool, now time.Time) ProjectStats {
	ps := ProjectStats{
		Project: p.ID, Name: p.Name,
		Alarms:     AlarmCounts{ByCategory: map[string]int{}, BySeverity: map[string]int{}},
		WorkOrders: OrderCounts{ByCategory: map[string]int{}, BySource: map[string]int{}, ByState: map[string]int{}},
		TopFaults:  []Fault{},
	}
	type faultKey struct {
		rule string
		code float64
		has  bool
	}
	faults := map[faultKey]*Fault{}
	for _, a := range alarms {
		if a.Company != company || a.Project != p.ID || !in(a.RaisedAt) {
			continue
		}
		ps.Alarms.Total++
		ps.Alarms.ByCategory[a.Category]++
		ps.Alarms.BySeverity[a.Severity]++
		k := faultKey{rule: a.Rule}
		if a.RuleKind == config.RuleState {
			k.code, k.has = a.Value, true
		}
		f := faults[k]
		if f == nil {
			f = &Fault{Rule: a.Rule, Name: a.RuleName, Category: a.Category}
			if k.has {
				code := k.code
				f.Code = &code
			}
			faults[k] = f
		}
		f.Count++
	}
	for _, f := range faults {
		ps.TopFaults = append(ps.TopFaults, *f)
	}
	sort.Slice(ps.TopFaults, func(i, j int) bool {
		a, b := ps.TopFaults[i], ps.TopFaults[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Code != nil && (b.Code == nil || *a.Code < *b.Code)
	})
	if len(ps.TopFaults) > 10 {
		ps.TopFaults = ps.TopFaults[:10]
	}

	var respond, resolve, arrive time.Duration
	var nRespond, nResolve, nArrive int
	for i := range orders {
		w := &orders[i]
		if w.Company != company || w.Project != p.ID || !in(w.OpenedAt) {
			continue
		}
		ps.WorkOrders.Total++
		ps.WorkOrders.ByCategory[w.Category]++
		ps.WorkOrders.BySource[w.Source]++
		ps.WorkOrders.ByState[w.State]++
		if !w.AcceptedAt.IsZero() {
			respond += w.AcceptedAt.Sub(w.RaisedAt)
			nRespond++
		}
		if !w.ResolvedAt.IsZero() {
			resolve += w.ResolvedAt.Sub(w.RaisedAt)
			nResolve++
		}
		if !w.ArrivedAt.IsZero() {
			arrive += w.ArrivedAt.Sub(w.RaisedAt)
			nArrive++
		}
		switch met, decided := w.SLAMet(now); {
		case w.State == StateCancelled:
		case !decided:
			ps.SLA.Pending++
		case met:
			ps.SLA.Met++
		default:
			ps.SLA.Breached++
		}
	}
	minutes := func(total time.Duration, n int) *float64 {
		if n == 0 {
			return nil
		}
		v := total.Minutes() / float64(n)
		return &v
	}
	ps.MeanTimeToRespondMin = minutes(respond, nRespond)
	ps.MeanTimeToResolveMin = minutes(resolve, nResolve)
	ps.MeanTimeToArriveMin = minutes(arrive, nArrive)
	if n := ps.SLA.Met + ps.SLA.Breached; n > 0 {
		pct := 100 * float64(ps.SLA.Met) / float64(n)
		ps.SLA.CompliancePct = &pct
	}
	return ps
}
