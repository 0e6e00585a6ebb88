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
// device's record: its alarms and work orders with every transition and
// the commands sent to it with every state.

type deviceData struct {
	Device  deviceView
	Metrics []string
	Default string // the metric the history chart opens with
	Alarms  []alarmView
	Orders  []orderView
	// Commands are the remote-control commands of the device's record.
	Commands []commandView
	Chart    deviceChart
	Now      time.Time
	// CanCreate: the viewer may open a manual work order for the device;
	// Created is the order just opened from this page.
	CanCreate bool
	Created   string
	// Controls are the writable points, when the viewer may command the
	// device; Pending is a command awaiting confirmation (or refused);
	// Command the command the page follows (?command=).
	Controls []control
	Pending  *pending
	Command  *commandView
}

type deviceChart struct {
	Device  string   `json:"device"`
	Metrics []string `json:"metrics"`
	Units   []string `json:"units"`
}

func (c *Console) devicePage(w http.ResponseWriter, r *http.Request, sess *Session) {
	c.renderDevice(w, r, sess, r.PathValue("device"), nil, 0)
}

// renderDevice writes the device page with pd (a command to confirm, or
// one the API refused) under status (0: 200).
func (c *Console) renderDevice(w http.ResponseWriter, r *http.Request, sess *Session, id string, pd *pending, status int) {
	d := deviceData{Now: c.now(), Pending: pd}
	if err := c.get(r, sess, "/devices/"+url.PathEscape(id), &d.Device); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	var hist struct {
		Alarms     []alarmView   `json:"alarms"`
		WorkOrders []orderView   `json:"work_orders"`
		Commands   []commandView `json:"commands"`
	}
	var g errgroup.Group
	g.Go(func() error { return c.get(r, sess, "/devices/"+url.PathEscape(id)+"/history", &hist) })
	if cid := r.URL.Query().Get("command"); cid != "" && pd == nil {
		g.Go(func() error {
			var cmd commandView
			if err := c.get(r, sess, "/commands/"+url.PathEscape(cid), &cmd); err != nil || cmd.Device != id {
				return nil // a stale or foreign link: the page without it
			}
			d.Command = &cmd
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	d.Alarms, d.Orders, d.Commands = hist.Alarms, hist.WorkOrders, hist.Commands
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
	if mayCommand(sess, d.Device.Project) {
		d.Controls = controlsOf(d.Device)
	}
	if pd != nil {
		d.Pending = nil
		for _, ct := range d.Controls {
			if ct.Point == pd.Point {
				pd.Switch, pd.Unit = ct.Switch, ct.Unit
				d.Pending = pd
			}
		}
	}
	l := c.cats.locale(languageOf(r), c.zone(d.Device.Project))
	c.render(w, r, sess, "device", &page{L: l, Nav: Nav{Active: d.Device.Project}, Data: d, Status: status})
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
