package console

import (
	"net/http"
	"net/url"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/plantroom/plantroom/cloud/energy"
)

// The project page: buildings, devices with live values, the month's
// energy, alarms and work orders.

type projectData struct {
	Project     projectView
	Devices     []deviceView
	Month       string
	Prev, Next  string
	Report      *energy.Monthly // nil when the viewer's role reads no energy
	Daily       *energy.Daily
	NoEnergy    bool // the role may not read energy reports (403)
	Alarms      []alarmView
	Orders      []orderView
	OrderFilter orderFilter
	States      []string
	Chart       projectChart
	CSV, XLSX   string
	DailyCSV    string
	Now         time.Time
}

type orderFilter struct {
	State, Device string
}

type projectChart struct {
	Days   []string  `json:"days"`
	KWh    []float64 `json:"kwh"`
	Labels struct {
		KWh string `json:"kwh"`
	} `json:"labels"`
}

var orderStates = []string{"open", "assigned", "accepted", "in_progress", "resolved", "closed", "cancelled"}

func (c *Console) projectPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("project")
	loc := c.zone(id)
	now := c.now().In(loc)
	month, mt, ok := monthParam(r, now)
	if !ok {
		c.render(w, r, sess, "error", &page{Status: http.StatusBadRequest, Notice: "error.bad_request", Message: "month=" + month})
		return
	}
	q := r.URL.Query()
	d := projectData{Month: month, Prev: mt.AddDate(0, -1, 0).Format("2006-01"), Next: mt.AddDate(0, 1, 0).Format("2006-01"),
		OrderFilter: orderFilter{State: q.Get("state"), Device: q.Get("device")}, States: orderStates, Now: now}
	pe := url.PathEscape(id)
	// The project itself first: a project the viewer may not see answers 404
	// here, exactly as in the API, before anything else is asked.
	if err := c.get(r, sess, "/projects/"+pe, &d.Project); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	var devs struct {
		Devices []deviceView `json:"devices"`
	}
	var alarms struct {
		Alarms []alarmView `json:"alarms"`
	}
	var orders struct {
		WorkOrders []orderView `json:"work_orders"`
	}
	oq := url.Values{"project": {id}, "limit": {"200"}}
	if d.OrderFilter.State != "" {
		oq.Set("state", d.OrderFilter.State)
	}
	if d.OrderFilter.Device != "" {
		oq.Set("device", d.OrderFilter.Device)
	}
	var rep energy.Monthly
	var daily energy.Daily
	last := mt.AddDate(0, 1, -1)
	if today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC); last.After(today) {
		last = today
	}
	var g errgroup.Group
	g.Go(func() error { return c.get(r, sess, "/projects/"+pe+"/devices", &devs) })
	g.Go(func() error {
		return c.get(r, sess, "/alarms?"+url.Values{"project": {id}, "limit": {"100"}}.Encode(), &alarms)
	})
	g.Go(func() error { return c.get(r, sess, "/workorders?"+oq.Encode(), &orders) })
	var energyErr error
	g.Go(func() error {
		energyErr = c.get(r, sess, "/projects/"+pe+"/energy/monthly?month="+url.QueryEscape(month), &rep)
		if energyErr == nil && !last.Before(mt) {
			energyErr = c.get(r, sess, "/projects/"+pe+"/energy/daily?"+url.Values{"from": {mt.Format("2006-01-02")}, "to": {last.Format("2006-01-02")}}.Encode(), &daily)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	switch {
	case energyErr == nil:
		d.Report = &rep
		if daily.Days != nil {
			d.Daily = &daily
		}
	case statusOf(energyErr) == http.StatusForbidden:
		d.NoEnergy = true
	default:
		c.failAPI(w, r, sess, energyErr)
		return
	}
	d.Devices, d.Alarms, d.Orders = devs.Devices, alarms.Alarms, orders.WorkOrders
	sortAlarms(d.Alarms)
	markAck(sess, d.Alarms)
	l := c.cats.locale(languageOf(r), loc)
	d.Chart.Labels.KWh = l.T("unit.kwh")
	if d.Daily != nil {
		for _, day := range d.Daily.Days {
			d.Chart.Days = append(d.Chart.Days, day.Date)
			d.Chart.KWh = append(d.Chart.KWh, day.KWh)
		}
	}
	d.CSV = "/api/v1/projects/" + pe + "/energy/monthly?" + url.Values{"month": {month}, "format": {"csv"}}.Encode()
	d.XLSX = "/api/v1/projects/" + pe + "/energy/monthly?" + url.Values{"month": {month}, "format": {"xlsx"}}.Encode()
	d.DailyCSV = "/api/v1/projects/" + pe + "/energy/daily?" + url.Values{"from": {mt.Format("2006-01-02")}, "to": {last.Format("2006-01-02")}, "format": {"csv"}}.Encode()
	c.render(w, r, sess, "project", &page{L: l, Nav: Nav{Active: id}, Data: d})
}

// projectDevices is the device table alone, which the page polls every few
// seconds for live values and states.
func (c *Console) projectDevices(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("project")
	var devs struct {
		Devices []deviceView `json:"devices"`
	}
	if err := c.get(r, sess, "/projects/"+url.PathEscape(id)+"/devices", &devs); err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			c.toSignIn(w, r, true)
			return
		}
		w.WriteHeader(statusOf(err))
		c.fragment(w, r, sess, "project", "devices-error", &page{})
		return
	}
	d := projectData{Devices: devs.Devices, Project: projectView{ID: id}, Now: c.now()}
	c.fragment(w, r, sess, "project", "devices", &page{L: c.cats.locale(languageOf(r), c.zone(id)), Data: d})
}

// sortAlarms puts active ones first, then newest first.
func sortAlarms(a []alarmView) {
	sort.SliceStable(a, func(i, j int) bool {
		if (a[i].State == "active") != (a[j].State == "active") {
			return a[i].State == "active"
		}
		return a[i].RaisedAt.After(a[j].RaisedAt)
	})
}
