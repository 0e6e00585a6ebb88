package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/timerange"
)

// Series limits.
const (
	MaxSeriesRange  = 400 * 24 * time.Hour
	MaxSeriesPoints = 1000
)

// seriesSteps are the bucket sizes a series may use, in hours.
var seriesSteps = []struct {
	name  string
	hours int
}{{"1h", 1}, {"3h", 3}, {"6h", 6}, {"12h", 12}, {"1d", 24}}

type seriesPoint struct {
	T     time.Time `json:"t"` // bucket start, local time
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	First float64   `json:"first"`
	Last  float64   `json:"last"`
	LastT time.Time `json:"last_at"`
	N     uint64    `json:"n"` // readings (distinct timestamps)
}

// series answers GET /devices/:device/series: one metric downsampled from
// the hourly roll-up into buckets aligned to the project's local clock.
func (s *Server) series(c echo.Context) error {
	d := DeviceOf(c)
	loc := d.Project.Location
	metric := c.QueryParam("metric")
	if metric == "" {
		return BadRequest("query parameter metric is required (e.g. metric=power_kw)")
	}
	unit, ok := metricUnit(s.deps.Bundle.Templates[d.Device.Template], metric)
	if !ok {
		return BadRequest("unknown metric %q for device %q (template %q)", metric, d.Device.ID, d.Device.Template)
	}
	now := s.now()
	to, err := parseInstant(c.QueryParam("to"), loc, now)
	if err != nil {
		return BadRequest("invalid to %q: want RFC 3339 time or YYYY-MM-DD", c.QueryParam("to"))
	}
	if err := timerange.Check("to", c.QueryParam("to"), to, now); err != nil {
		return err
	}
	from, err := parseInstant(c.QueryParam("from"), loc, to.Add(-24*time.Hour))
	if err != nil {
		return BadRequest("invalid from %q: want RFC 3339 time or YYYY-MM-DD", c.QueryParam("from"))
	}
	if err := timerange.Check("from", c.QueryParam("from"), from, now); err != nil {
		return err
	}
	if !to.After(from) {
		return BadRequest("from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if to.Sub(from) > MaxSeriesRange {
		return BadRequest("range %s to %s is longer than %d days", from.Format(time.RFC3339), to.Format(time.RFC3339), int(MaxSeriesRange.Hours()/24))
	}
	stepH := 0
	stepName := c.QueryParam("step")
	for _, st := range seriesSteps {
		if stepName == st.name || stepName == "" && to.Sub(from).Hours()/float64(st.hours) <= MaxSeriesPoints {
			stepH, stepName = st.hours, st.name
			break
		}
	}
	if stepH == 0 {
		names := make([]string, len(seriesSteps))
		for i, st := range seriesSteps {
			names[i] = st.name
		}
		return BadRequest("invalid step %q (want one of %s)", c.QueryParam("step"), strings.Join(names, ", "))
	}
	if to.Sub(from).Hours()/float64(stepH) > MaxSeriesPoints {
		return BadRequest("step %s gives more than %d points over this range; use a larger step", stepName, MaxSeriesPoints)
	}
	h0 := from.UnixMilli() / energy.HourMS * energy.HourMS
	rows, err := s.readings.Series(c.Request().Context(), d.Company.ID, d.Project.ID, d.Device.ID, metric, h0, to.UnixMilli())
	if err != nil {
		return err
	}
	points := []seriesPoint{}
	var cur *seriesPoint
	var firstTS int64
	for _, h := range rows {
		b := bucket(time.UnixMilli(h.Hour).In(loc), stepH)
		if cur == nil || !cur.T.Equal(b) {
			points = append(points, seriesPoint{T: b, Min: h.Min, Max: h.Max, First: h.First})
			cur, firstTS = &points[len(points)-1], h.FirstTS
		}
		cur.Min, cur.Max = min(cur.Min, h.Min), max(cur.Max, h.Max)
		if h.FirstTS < firstTS {
			cur.First, firstTS = h.First, h.FirstTS
		}
		if lt := time.UnixMilli(h.LastTS).In(loc); !lt.Before(cur.LastT) {
			cur.Last, cur.LastT = h.Last, lt
		}
		cur.N += h.N
	}
	return c.JSON(http.StatusOK, map[string]any{
		"device": d.Device.ID, "metric": metric, "unit": unit, "step": stepName,
		"from": from.In(loc), "to": to.In(loc), "points": points,
	})
}

// bucket is the start of the step-hour bucket holding t, on t's local clock.
func bucket(t time.Time, stepH int) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour()/stepH*stepH, 0, 0, 0, t.Location())
}

// parseInstant reads RFC 3339 or a local date; empty gives def.
func parseInstant(v string, loc *time.Location, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.ParseInLocation(time.DateOnly, v, loc)
}

// metricUnit finds a metric in a template.
func metricUnit(t *config.Template, metric string) (string, bool) {
	if t == nil {
		return "", false
	}
	if pt := t.Point(metric); pt != nil {
		return pt.Unit, true
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			if f.Metric == metric {
				return f.Unit, true
			}
		}
	}
	return "", false
}
