package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/plantroom/plantroom/cloud/energy"
)

// The HQ overview: the company at a glance for one month.

type hqData struct {
	Month, Prev, Next string
	Report            *energy.CompanyMonthly
	Rows              []hqRow
	SLA               slaSummary
	Faults            []hqFault
	Chart             hqChart
	CSV               string
	XLSX              string
	Now               time.Time
	Residents         *residentStats // GET /stats/residents: resident requests and satisfaction
}

type hqRow struct {
	energy.ProjectLine
	ActiveAlarms   int
	CriticalAlarms int
	OpenOrders     int
	OverdueOrders  int
	Stats          *projectStats
}

type slaSummary struct {
	Met, Breached, Pending int
	CompliancePct          *float64
	MTTA, MTTR             *float64 // minutes, weighted by each project's orders
}

type hqFault struct {
	fault
	Project, ProjectName string
}

// hqChart is what the page's script draws: the ranking and the splits.
type hqChart struct {
	Projects   []string  `json:"projects"`
	KWhPerM2   []float64 `json:"kwh_per_m2"`
	Flagged    []bool    `json:"flagged"` // gaps or completeness below 95 %
	Categories []kv      `json:"categories"`
	Periods    []kv      `json:"periods"`
	Month      string    `json:"month"`
}

type kv struct {
	Key   string  `json:"key"`
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

// monthParam is the month asked for, or the current month in zone.
func monthParam(r *http.Request, now time.Time) (string, time.Time, bool) {
	m := r.URL.Query().Get("month")
	if m == "" {
		m = now.Format("2006-01")
	}
	t, err := time.Parse("2006-01", m)
	return m, t, err == nil
}

func (c *Console) hqPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	loc := c.zone("")
	now := c.now().In(loc)
	month, mt, ok := monthParam(r, now)
	if !ok {
		c.render(w, r, sess, "error", &page{Status: http.StatusBadRequest, Notice: "error.bad_request", Message: "month=" + month})
		return
	}
	d := hqData{Month: month, Prev: mt.AddDate(0, -1, 0).Format("2006-01"), Next: mt.AddDate(0, 1, 0).Format("2006-01"), Now: now,
		CSV:  "/api/v1/energy/monthly?" + url.Values{"month": {month}, "format": {"csv"}}.Encode(),
		XLSX: "/api/v1/energy/monthly?" + url.Values{"month": {month}, "format": {"xlsx"}}.Encode()}
	var (
		rep    energy.CompanyMonthly
		stats  statsView
		alarms struct {
			Alarms []alarmView `json:"alarms"`
		}
		orders struct {
			WorkOrders []orderView `json:"work_orders"`
		}
	)
	var g errgroup.Group
	g.Go(func() error { return c.get(r, sess, "/energy/monthly?month="+url.QueryEscape(month), &rep) })
	g.Go(func() error { return c.get(r, sess, "/stats/monthly?month="+url.QueryEscape(month), &stats) })
	g.Go(func() error { return c.get(r, sess, "/alarms?state=active&limit=5000", &alarms) })
	g.Go(func() error { return c.get(r, sess, "/workorders?limit=5000", &orders) })
	var res residentStats
	g.Go(func() error {
		// A cloud without resident requests (no work-order desk in this
		// process) has no such route: the section is left out.
		if err := c.get(r, sess, "/stats/residents?month="+url.QueryEscape(month), &res); err != nil && statusOf(err) != http.StatusNotFound {
			return err
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	// The trend the page asks for next needs this report's months too.
	c.hqReports.put(sess.Staff.ID+"/"+month, trendPoints(&rep))
	d.Report = &rep
	if res.Projects != nil {
		d.Residents = &res
	}
	l := c.cats.locale(languageOf(r), loc)
	d.Rows, d.SLA, d.Faults = hqRows(&rep, &stats, alarms.Alarms, orders.WorkOrders, c.now())
	d.Chart = hqChart{Month: month}
	for _, p := range rep.Projects {
		d.Chart.Projects = append(d.Chart.Projects, p.Name)
		d.Chart.KWhPerM2 = append(d.Chart.KWhPerM2, p.KWhPerM2)
		d.Chart.Flagged = append(d.Chart.Flagged, p.Gaps > 0 || p.Completeness < 0.95)
	}
	for _, x := range rep.ByCategory {
		d.Chart.Categories = append(d.Chart.Categories, kv{x.Key, l.T("category." + x.Key), x.KWh})
	}
	for _, x := range rep.ByPeriod {
		d.Chart.Periods = append(d.Chart.Periods, kv{x.Key, l.T("period." + x.Key), x.KWh})
	}
	c.render(w, r, sess, "hq", &page{L: l, Nav: Nav{Active: "hq"}, Data: d})
}

// hqRows joins the energy ranking with each project's alarms, orders and
// maintenance statistics.
func hqRows(rep *energy.CompanyMonthly, st *statsView, alarms []alarmView, orders []orderView, now time.Time) ([]hqRow, slaSummary, []hqFault) {
	byProject := map[string]*projectStats{}
	for i := range st.Projects {
		byProject[st.Projects[i].Project] = &st.Projects[i]
	}
	var rows []hqRow
	idx := map[string]int{}
	for _, p := range rep.Projects {
		idx[p.Project] = len(rows)
		rows = append(rows, hqRow{ProjectLine: p, Stats: byProject[p.Project]})
	}
	for _, a := range alarms {
		if i, ok := idx[a.Project]; ok && a.State == "active" {
			rows[i].ActiveAlarms++
			if a.Severity == "critical" {
				rows[i].CriticalAlarms++
			}
		}
	}
	for _, o := range orders {
		if i, ok := idx[o.Project]; ok && o.Open() {
			rows[i].OpenOrders++
			if o.Overdue(now) {
				rows[i].OverdueOrders++
			}
		}
	}
	var sla slaSummary
	var ttaSum, ttaW, ttrSum, ttrW float64
	var faults []hqFault
	for _, s := range st.Projects {
		sla.Met += s.SLA.Met
		sla.Breached += s.SLA.Breached
		sla.Pending += s.SLA.Pending
		w := float64(s.WorkOrders.Total)
		if s.MTTA != nil {
			ttaSum += *s.MTTA * w
			ttaW += w
		}
		if s.MTTR != nil {
			ttrSum += *s.MTTR * w
			ttrW += w
		}
		for _, f := range s.TopFaults {
			faults = append(faults, hqFault{fault: f, Project: s.Project, ProjectName: s.Name})
		}
	}
	if n := sla.Met + sla.Breached; n > 0 {
		v := float64(sla.Met) / float64(n) * 100
		sla.CompliancePct = &v
	}
	if ttaW > 0 {
		v := ttaSum / ttaW
		sla.MTTA = &v
	}
	if ttrW > 0 {
		v := ttrSum / ttrW
		sla.MTTR = &v
	}
	sort.SliceStable(faults, func(i, j int) bool { return faults[i].Count > faults[j].Count })
	if len(faults) > 10 {
		faults = faults[:10]
	}
	return rows, sla, faults
}

// trendPoint is one month of the HQ trend.
type trendPoint struct {
	Month   string   `json:"month"`
	KWh     *float64 `json:"kwh"` // null: the month has no figures (no tariff in effect yet)
	Cost    *float64 `json:"cost"`
	Partial bool     `json:"partial"`
}

// hqTrend answers the 13 months up to ?month= as JSON for the trend chart,
// from the API's HQ reports. A report of month N also carries the whole
// month N-1 (month_over_month, for a finished N) and N-12
// (year_over_year), so every other month is asked: 6 or 7 reports instead
// of 13; a month that none of them covers is asked itself.
func (c *Console) hqTrend(w http.ResponseWriter, r *http.Request, sess *Session) {
	now := c.now().In(c.zone(""))
	month, mt, ok := monthParam(r, now)
	if !ok {
		http.Error(w, "invalid month", http.StatusBadRequest)
		return
	}
	running := !mt.Before(time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC))
	key := sess.Staff.ID + "/" + month
	if v, ok := c.trend.get(key); ok && !running {
		writeTrend(w, month, v.([]trendPoint))
		return
	}
	out := make([]trendPoint, 13) // out[12-k] is month M-k
	filled := make([]bool, 13)
	for k := 0; k <= 12; k++ {
		out[12-k].Month = mt.AddDate(0, -k, 0).Format("2006-01")
	}
	var mu sync.Mutex
	set := func(k int, p trendPoint) {
		if k >= 0 && k <= 12 && !filled[k] {
			p.Month = out[12-k].Month
			out[12-k], filled[k] = p, true
		}
	}
	setAll := func(k int, pts []monthPoint) {
		for _, p := range pts {
			set(k+p.k, p.p)
		}
	}
	// The HQ page this trend belongs to has just read the month's report
	// (the same figures): its months are not asked again.
	if v, ok := c.hqReports.get(key); ok {
		setAll(0, v.([]monthPoint))
	}
	ask := func(ks []int) error {
		var g errgroup.Group
		g.SetLimit(4)
		for _, k := range ks {
			mu.Lock()
			done := filled[k]
			mu.Unlock()
			if done {
				continue
			}
			g.Go(func() error {
				var rep energy.CompanyMonthly
				switch err := c.get(r, sess, "/energy/monthly?month="+out[12-k].Month, &rep); {
				case statusOf(err) == http.StatusUnprocessableEntity:
					// No figures for that month (before the first tariff version).
					mu.Lock()
					set(k, trendPoint{})
					mu.Unlock()
					return nil
				case err != nil:
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				setAll(k, trendPoints(&rep))
				return nil
			})
		}
		return g.Wait()
	}
	first := []int{0, 2, 4, 6, 8, 10}
	if running {
		first = []int{0, 1, 3, 5, 7, 9, 11}
	}
	err := ask(first)
	if err == nil {
		var rest []int
		for k, f := range filled {
			if !f {
				rest = append(rest, k)
			}
		}
		err = ask(rest)
	}
	if err != nil {
		st := statusOf(err)
		if st == http.StatusInternalServerError {
			st = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	if !running {
		c.trend.put(key, out) // finished months are worth keeping a while
	}
	writeTrend(w, month, out)
}

// monthPoint is a trend point k months before the month of a report.
type monthPoint struct {
	k int
	p trendPoint
}

// trendPoints are the trend points an HQ report gives: its month, and for
// a finished month the month before and the same month a year before.
func trendPoints(rep *energy.CompanyMonthly) []monthPoint {
	out := []monthPoint{{0, trendPoint{KWh: &rep.KWh, Cost: rep.Cost, Partial: rep.Partial}}}
	if !rep.Partial {
		mom, yoy := rep.MonthOverMonth, rep.YearOverYear
		out = append(out, monthPoint{1, trendPoint{KWh: &mom.KWh, Cost: mom.Cost}}, monthPoint{12, trendPoint{KWh: &yoy.KWh, Cost: yoy.Cost}})
	}
	return out
}

func writeTrend(w http.ResponseWriter, month string, points []trendPoint) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{"month": month, "points": points})
}

// zone is the time zone pages use for project: its own, or for company-wide
// pages the first project's (all projects of the demo share one).
func (c *Console) zone(project string) *time.Location {
	for _, co := range c.org.Companies {
		for _, p := range co.Projects {
			if (project == "" || p.ID == project) && p.Location != nil {
				return p.Location
			}
		}
	}
	return time.UTC
}

// monthCache keeps finished months' figures for a while, bounded.
type monthCache struct {
	ttl time.Duration
	max int
	now func() time.Time
	mu  sync.Mutex
	m   map[string]cached
}

type cached struct {
	v  any
	at time.Time
}

func newMonthCache(ttl time.Duration, max int, now func() time.Time) *monthCache {
	return &monthCache{ttl: ttl, max: max, now: now, m: map[string]cached{}}
}

func (mc *monthCache) get(k string) (any, bool) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	e, ok := mc.m[k]
	if !ok || mc.now().Sub(e.at) > mc.ttl {
		return nil, false
	}
	return e.v, true
}

func (mc *monthCache) put(k string, v any) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if len(mc.m) >= mc.max {
		for k2, e := range mc.m {
			if mc.now().Sub(e.at) > mc.ttl || len(mc.m) >= mc.max {
				delete(mc.m, k2)
			}
		}
	}
	mc.m[k] = cached{v, mc.now()}
}
