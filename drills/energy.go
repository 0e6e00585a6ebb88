package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/plantroom/plantroom/config"
)

// energyCheck compares the API's energy figures with kWh computed here
// directly from the stored counter readings.
type energyCheck struct {
	direct   float64            // sub-metered devices (main meters left out, as in reports), from readings
	api      float64            // the daily report's total over the same days
	devices  map[string]float64 // per device (main meters included), from readings
	monthly  map[string]float64 // per device from the monthly report; nil when the drill crossed a month
	from, to string             // local days of the daily report
	// submetered is false for a building of main meters only: its daily
	// total is 0 by definition and only the per-device figures compare.
	submetered bool
}

// deviceKWh is the energy between a counter's first and last stored
// reading by the definition of docs/api.md, written here apart from
// cloud/energy: readings in time order (ts in ms, each once), allowance
// A = P·h + 0.05 kWh; a plausible step is credited, an isolated outlier is
// skipped, a rollover (template's R, prev ≥ 0.9 R) credits R − prev + cur,
// a drop to at most A is a replacement crediting cur, anything else a
// discontinuity crediting 0.
func deviceKWh(ts []int64, values []float64, rollover, maxPowerKW float64) float64 {
	allowance := func(a, b int) float64 { return maxPowerKW*float64(ts[b]-ts[a])/3.6e6 + 0.05 }
	plausible := func(a, b int) bool {
		d := values[b] - values[a]
		return d >= 0 && d <= allowance(a, b)
	}
	total, prev := 0.0, 0
	for cur := 1; cur < len(values); cur++ {
		p, c, a := values[prev], values[cur], allowance(prev, cur)
		switch {
		case plausible(prev, cur):
			total += c - p
		case cur+1 < len(values) && plausible(prev, cur+1):
			continue // an outlier: prev stays
		case rollover > 0 && p >= 0.9*rollover && rollover-p+c >= 0 && rollover-p+c <= a:
			total += rollover - p + c
		case c >= 0 && c < p && c <= a:
			total += c
		}
		prev = cur
	}
	return total
}

// round3 rounds half away from zero to Wh, as the reports do.
func round3(v float64) float64 {
	v = math.Round(v*1e9) / 1e9
	return math.Round(v*1000) / 1000
}

// checkEnergy reads every device's counter with FINAL, computes its kWh
// and asks the API for the daily and monthly reports of the days the
// readings cover.
func (s *Stand) checkEnergy(ctx context.Context) (*energyCheck, error) {
	loc, err := time.LoadLocation(drillTZ)
	if err != nil {
		return nil, fmt.Errorf("cannot load time zone %q: %w", drillTZ, err)
	}
	audit, err := s.audit()
	if err != nil {
		return nil, err
	}
	e := &energyCheck{devices: map[string]float64{}}
	var first, last int64
	for _, d := range s.devices {
		t := s.opts.templates[d.Template]
		if t == nil || t.Energy == nil || t.Energy.Counter == "" {
			return nil, fmt.Errorf("cannot check energy: template %q of device %q names no energy counter", d.Template, d.ID)
		}
		rollover := 0.0
		for _, pt := range t.Points {
			if pt.Metric == t.Energy.Counter {
				rollover = pt.Rollover
			}
		}
		stamps, values, err := audit.GoodSeries(ctx, s.scope(), d.ID, t.Energy.Counter)
		if err != nil {
			return nil, fmt.Errorf("cannot read the counter of %q: %w", d.ID, err)
		}
		for _, ts := range stamps {
			if first == 0 || ts < first {
				first = ts
			}
			last = max(last, ts)
		}
		kwh := deviceKWh(stamps, values, rollover, s.maxPowerKW(d))
		e.devices[d.ID] = kwh
		if d.kind != "meter" {
			e.direct += kwh
			e.submetered = true
		}
	}
	if first == 0 {
		return nil, fmt.Errorf("cannot check energy: no counter readings stored")
	}
	firstDay, lastDay := time.UnixMilli(first).In(loc), time.UnixMilli(last).In(loc)
	e.from, e.to = firstDay.Format(time.DateOnly), lastDay.Format(time.DateOnly)

	var daily struct {
		KWh float64 `json:"kwh"`
	}
	if err := s.apiGet(ctx, "/api/v1/projects/"+drillProject+"/energy/daily", url.Values{"from": {e.from}, "to": {e.to}}, &daily); err != nil {
		return nil, err
	}
	e.api = daily.KWh

	if month := firstDay.Format("2006-01"); month == lastDay.Format("2006-01") {
		type line struct {
			Device string  `json:"device"`
			KWh    float64 `json:"kwh"`
		}
		var monthly struct {
			Devices    []line `json:"devices"`
			MainMeters []line `json:"main_meters"`
		}
		if err := s.apiGet(ctx, "/api/v1/projects/"+drillProject+"/energy/monthly", url.Values{"month": {month}}, &monthly); err != nil {
			return nil, err
		}
		e.monthly = map[string]float64{}
		for _, l := range append(monthly.Devices, monthly.MainMeters...) {
			e.monthly[l.Device] = l.KWh
		}
	}
	return e, nil
}

// problems lists every figure of the reports that differs from the
// readings by more than the reports' rounding.
func (e *energyCheck) problems() []string {
	const tol = 0.0015 // kWh: both sides rounded to Wh
	var out []string
	total := 0.0
	for _, v := range e.devices {
		total += v
	}
	if total <= 0 || (e.submetered && e.direct <= 0) {
		out = append(out, "no energy in the readings: the comparison would prove nothing")
	}
	if math.Abs(e.api-round3(e.direct)) > tol {
		out = append(out, fmt.Sprintf("daily report %s..%s says %.3f kWh, the readings %.3f kWh", e.from, e.to, e.api, e.direct))
	}
	devs := make([]string, 0, len(e.devices))
	for dev := range e.devices {
		devs = append(devs, dev)
	}
	sort.Strings(devs)
	for _, dev := range devs {
		if e.monthly == nil {
			break
		}
		kwh := e.devices[dev]
		got, ok := e.monthly[dev]
		if !ok {
			out = append(out, fmt.Sprintf("monthly report lacks device %q", dev))
			continue
		}
		if math.Abs(got-round3(kwh)) > tol {
			out = append(out, fmt.Sprintf("monthly report says %.3f kWh for %q, the readings %.3f kWh", got, dev, kwh))
		}
	}
	return out
}

// apiGet calls the drill's API as its HQ admin and decodes the JSON.
func (s *Stand) apiGet(ctx context.Context, path string, q url.Values, v any) error {
	u := "http://" + s.apiAddr + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("cannot call %q: %w", u, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot call %q: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("cannot read the answer of %q: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot call %q: HTTP %d: %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("cannot decode the answer of %q: %w", u, err)
	}
	return nil
}

// loadTemplates reads the device templates the drills share with the
// processes they run.
func loadTemplates(dir string) (config.Templates, error) { return config.LoadTemplates(dir) }
