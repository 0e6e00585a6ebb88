package backfill

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Expected is the expected-totals file: the exact kWh per device per local
// day and hour that the published counter readings imply, so tests can
// check energy reports against it.
type Expected struct {
	Gateway      string                     `json:"gateway"`
	Company      string                     `json:"company"`
	Project      string                     `json:"project"`
	TimeZone     string                     `json:"time_zone"`
	From         time.Time                  `json:"from"`
	To           time.Time                  `json:"to"`
	Interval     string                     `json:"interval"`
	SeqFirst     uint64                     `json:"seq_first"`
	SeqLast      uint64                     `json:"seq_last"`
	Batches      int                        `json:"batches"`
	Readings     int                        `json:"readings"`
	Replacements []Replacement              `json:"replacements,omitempty"`
	Gaps         []Gap                      `json:"gaps,omitempty"`
	Devices      map[string]*DeviceExpected `json:"devices"`
}

// DeviceExpected is one device's energy: from its counter metric, with
// the counter's first and last published readings.
type DeviceExpected struct {
	Kind     string             `json:"kind"`
	Template string             `json:"template"`
	Metric   string             `json:"metric"`
	Rollover float64            `json:"rollover,omitempty"`
	First    *Point             `json:"first,omitempty"`
	Last     *Point             `json:"last,omitempty"`
	TotalKWh float64            `json:"total_kwh"`
	Daily    map[string]float64 `json:"daily"`  // local date "2006-01-02" → kWh
	Hourly   map[string]float64 `json:"hourly"` // local hour start, RFC 3339 with offset → kWh
}

// Point is one counter reading.
type Point struct {
	TS    time.Time `json:"ts"`
	Value float64   `json:"value"`
}

// WriteFile writes the expected totals as indented JSON.
func (e *Expected) WriteFile(path string) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode expected totals: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write expected totals: %w", err)
	}
	return nil
}

// ReadExpected reads an expected-totals file.
func ReadExpected(path string) (*Expected, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read expected totals: %w", err)
	}
	var e Expected
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("cannot decode expected totals %q: %w", path, err)
	}
	return &e, nil
}

// energyTotals turns one device's counter readings, in time order, into
// energy per local hour. Between two consecutive readings the counter
// rises linearly, so energy in [a, b) = C(b) − C(a) spreads a step's delta
// over the hours it spans in proportion to time. A drop is a rollover when
// the counter has a rollover R and the previous value was at least 0.9 R
// (delta = R − prev + new), otherwise a meter replacement (delta = new).
type energyTotals struct {
	loc      *time.Location
	rollover float64
	have     bool
	firstTS  time.Time
	firstV   float64
	prevTS   time.Time
	prevV    float64
	hourly   map[time.Time]float64 // local hour start → kWh
}

func newEnergyTotals(loc *time.Location, rollover float64) *energyTotals {
	return &energyTotals{loc: loc, rollover: rollover, hourly: map[time.Time]float64{}}
}

// counterDelta is the energy between two consecutive counter readings.
func counterDelta(prev, cur, rollover float64) float64 {
	switch {
	case cur >= prev:
		return cur - prev
	case rollover > 0 && prev >= 0.9*rollover:
		return rollover - prev + cur
	default:
		return cur
	}
}

func (e *energyTotals) add(ts time.Time, v float64) {
	if !e.have {
		e.have, e.prevTS, e.prevV, e.firstTS, e.firstV = true, ts, v, ts, v
		return
	}
	delta := counterDelta(e.prevV, v, e.rollover)
	span := ts.Sub(e.prevTS)
	for h := hourStart(e.prevTS, e.loc); h.Before(ts); h = h.Add(time.Hour) {
		lo, hi := maxTime(h, e.prevTS), minTime(h.Add(time.Hour), ts)
		if hi.After(lo) {
			e.hourly[h] += delta * float64(hi.Sub(lo)) / float64(span)
		}
	}
	e.prevTS, e.prevV = ts, v
}

// fill writes every hour and day of [from, to) into d, zero where no
// energy was drawn.
func (e *energyTotals) fill(d *DeviceExpected, from, to time.Time) {
	d.Daily, d.Hourly = map[string]float64{}, map[string]float64{}
	for h := hourStart(from, e.loc); h.Before(to); h = h.Add(time.Hour) {
		kwh := e.hourly[h]
		local := h.In(e.loc)
		d.Hourly[local.Format(time.RFC3339)] += kwh
		d.Daily[local.Format(time.DateOnly)] += kwh
		d.TotalKWh += kwh
	}
}

// hourStart is the start of the local hour containing t.
func hourStart(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), 0, 0, 0, loc)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
