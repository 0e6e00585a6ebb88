package console

import (
	"net/http"
	"net/url"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
)

// The device page: current values, a zoomable history of any metric (the
// page's script reads GET /api/v1/devices/{device}/series), and the
// device's record: its alarms and work orders with every transition.

type deviceData struct {
	Device  deviceView
	Metrics []string
	Default string // the metric the history chart opens with
	Alarms  []alarmView
	Orders  []orderView
	Chart   deviceChart
	Now     time.Time
	// CanCreate: the viewer may open a manual work order for the device;
	// Created is the order just opened from this page.
	CanCreate bool
	Created   string
}

type deviceChart struct {
	Device  string   `json:"device"`
	Metrics []string `json:"metrics"`
	Units   []string `json:"units"`
}

func (c *Console) devicePage(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("device")
	d := deviceData{Now: c.now()}
	if err := c.get(r, sess, "/devices/"+url.PathEscape(id), &d.Device); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	var hist struct {
		Alarms     []alarmView `json:"alarms"`
		WorkOrders []orderView `json:"work_orders"`
	}
	var g errgroup.Group
	g.Go(func() error { return c.get(r, sess, "/devices/"+url.PathEscape(id)+"/history", &hist) })
	if err := g.Wait(); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	d.Alarms, d.Orders = hist.Alarms, hist.WorkOrders
	sortAlarms(d.Alarms)
	markAck(sess, d.Alarms)
	for m := range d.Device.Values {
		d.Metrics = append(d.Metrics, m)
	}
	sort.Strings(d.Metrics)
	d.Default = defaultMetric(d.Device.Values, d.Metrics)
	d.Chart = deviceChart{Device: d.Device.ID, Metrics: d.Metrics}
	for _, m := range d.Metrics {
		d.Chart.Units = append(d.Chart.Units, d.Device.Values[m].Unit)
	}
	d.CanCreate = mayCreateOrder(sess, d.Device.Project)
	d.Created = r.URL.Query().Get("created")
	l := c.cats.locale(languageOf(r), c.zone(d.Device.Project))
	c.render(w, r, sess, "device", &page{L: l, Nav: Nav{Active: d.Device.Project}, Data: d})
}

// defaultMetric is the metric the history opens with: a measured quantity
// (power first, then anything with a unit and no state names), else the
// first.
func defaultMetric(values map[string]metricValue, metrics []string) string {
	for _, m := range []string{"power_kw", "power_total_w", "power_w", "outlet_pressure_bar", "flow_m3h"} {
		if _, ok := values[m]; ok {
			return m
		}
	}
	for _, m := range metrics {
		if v := values[m]; v.Unit != "" && v.State == "" {
			return m
		}
	}
	if len(metrics) > 0 {
		return metrics[0]
	}
	return ""
}
