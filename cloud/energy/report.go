package energy

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plantroom/plantroom/config"
)

// ProjectRef names a project in a report.
type ProjectRef struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	TimeZone    string  `json:"time_zone"`
	FloorAreaM2 float64 `json:"floor_area_m2"`
	Tariff      string  `json:"tariff"`
	Currency    string  `json:"currency"`
}

// Line is one row of a breakdown (a category or a tariff period).
type Line struct {
	Key  string  `json:"key"`
	KWh  float64 `json:"kwh"`
	Cost float64 `json:"cost"`
}

// BuildingLine is one building's share.
type BuildingLine struct {
	Building    string   `json:"building"` // "" for devices assigned to no building
	Name        string   `json:"name"`
	FloorAreaM2 float64  `json:"floor_area_m2"`
	KWh         float64  `json:"kwh"`
	Cost        float64  `json:"cost"`
	KWhPerM2    *float64 `json:"kwh_per_m2"` // null without a floor area
}

// DeviceLine is one device's figures.
type DeviceLine struct {
	Device       string  `json:"device"`
	Name         string  `json:"name"`
	Kind         string  `json:"kind"`
	Category     string  `json:"category"`
	Building     string  `json:"building"`
	MainMeter    bool    `json:"main_meter"`
	Source       string  `json:"source"` // counter, power or none
	KWh          float64 `json:"kwh"`
	Cost         float64 `json:"cost"`
	Estimated    bool    `json:"estimated"`
	Completeness float64 `json:"completeness"`
	// NeedsReview: a discontinuity of the device's counter was credited 0.
	NeedsReview bool `json:"needs_review"`
}

// GapLine is one gap of one device.
type GapLine struct {
	Device       string    `json:"device"`
	From         time.Time `json:"from"`
	To           time.Time `json:"to"`
	Hours        float64   `json:"hours"`
	Interpolated bool      `json:"interpolated"`
}

// EventLine is a counter event: a reading the plausibility walk did not
// credit as a plausible step (an outlier, a rollover, a meter replacement
// or a discontinuity).
type EventLine struct {
	Device string    `json:"device"`
	At     time.Time `json:"at"`      // time of the reading
	Kind   string    `json:"kind"`    // outlier, rollover, replacement or discontinuity
	PrevAt time.Time `json:"prev_at"` // time of the last accepted reading before it
	From   float64   `json:"from_value"`
	To     float64   `json:"to_value"`
	KWh    float64   `json:"kwh"` // credited for the step
}

// Completeness is the share of expected data present.
type Completeness struct {
	Ratio         float64   `json:"ratio"` // hours_present / hours_expected
	HoursPresent  int       `json:"hours_present"`
	HoursExpected int       `json:"hours_expected"`
	Gaps          []GapLine `json:"gaps"`
}

// Change compares a figure with an earlier period of the same length.
type Change struct {
	Month         string   `json:"month"`
	From          string   `json:"from"` // YYYY-MM-DD
	To            string   `json:"to"`   // YYYY-MM-DD, exclusive
	KWh           float64  `json:"kwh"`
	Cost          *float64 `json:"cost"` // null where no tariff version was in effect
	HasData       bool     `json:"has_data"`
	KWhChangePct  *float64 `json:"kwh_change_pct"`  // null without data or with 0 kWh then
	CostChangePct *float64 `json:"cost_change_pct"` // likewise
}

// totals sums a result's counted devices (main meters excluded).
type totals struct {
	kwh, cost         float64
	present, expected int
	estimated         bool
	hasData           bool // a reading inside the period
	// unpriced: part of the period has no tariff version in effect, so its
	// cost is unknown even where no energy was measured.
	unpriced bool
}

func sum(r *Result) totals {
	var t totals
	for _, sl := range r.Job.Schedule.Slots {
		t.unpriced = t.unpriced || !sl.Priced
	}
	for i := range r.Devices {
		d := &r.Devices[i]
		t.present += d.HoursPresent
		t.expected += d.HoursExpected
		if d.HoursPresent > 0 {
			t.hasData = true
		}
		if d.Device.MainMeter {
			continue
		}
		t.kwh += d.KWh
		t.cost += d.Cost
		t.estimated = t.estimated || d.Estimated()
	}
	return t
}

func (t totals) ratio() float64 {
	if t.expected == 0 {
		return 0
	}
	return Round(float64(t.present)/float64(t.expected), 4)
}

func newChange(m Month, pd *period, prev *Result, cur totals) *Change {
	p := sum(prev)
	c := &Change{
		Month: m.String(), HasData: p.hasData, KWh: KWh(p.kwh),
		From: pd.from.Format(time.DateOnly), To: pd.to.Format(time.DateOnly),
	}
	if pd.to.Hour() != 0 || pd.to.Minute() != 0 {
		c.To = pd.to.Format("2006-01-02T15:04")
	}
	if !p.unpriced {
		c.Cost = ptr(Cents(p.cost))
	}
	if p.hasData && p.kwh > 0 {
		c.KWhChangePct = ptr(Round((cur.kwh-p.kwh)/p.kwh*100, 2))
		if c.Cost != nil && p.cost > 0 {
			c.CostChangePct = ptr(Round((cur.cost-p.cost)/p.cost*100, 2))
		}
	}
	return c
}

func ptr[T any](v T) *T { return &v }

func deviceLine(d *DeviceResult) DeviceLine {
	l := DeviceLine{
		Device: d.Device.ID, Name: d.Device.Name, Kind: d.Device.Kind, Category: d.Device.Category,
		Building: d.Device.Building, MainMeter: d.Device.MainMeter, Source: d.Source,
		KWh: KWh(d.KWh), Cost: Cents(d.Cost), Estimated: d.Estimated(), NeedsReview: d.NeedsReview(),
	}
	if d.HoursExpected > 0 {
		l.Completeness = Round(float64(d.HoursPresent)/float64(d.HoursExpected), 4)
	}
	return l
}

// gapLines lists every device's gaps, longest first.
func gapLines(r *Result, loc *time.Location) []GapLine {
	out := []GapLine{}
	for i := range r.Devices {
		d := &r.Devices[i]
		for _, g := range d.Gaps {
			out = append(out, GapLine{
				Device: d.Device.ID, From: time.UnixMilli(g.From).In(loc), To: time.UnixMilli(g.To).In(loc),
				Hours: Round(float64(g.To-g.From)/float64(HourMS), 2), Interpolated: g.Interpolated,
			})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].From.Equal(out[j].From) {
			return out[i].From.Before(out[j].From)
		}
		return out[i].Device < out[j].Device
	})
	return out
}

func eventLines(r *Result, loc *time.Location) []EventLine {
	out := []EventLine{}
	for i := range r.Devices {
		d := &r.Devices[i]
		for _, e := range d.Events {
			out = append(out, EventLine{Device: d.Device.ID, At: time.UnixMilli(e.TS).In(loc), Kind: e.Kind,
				PrevAt: time.UnixMilli(e.PrevTS).In(loc), From: e.Prev, To: e.Cur, KWh: KWh(e.Credited)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// periodOrder sorts tariff periods most expensive first.
func periodOrder(p string) int {
	for i, q := range config.Periods {
		if q == p {
			return i
		}
	}
	return len(config.Periods)
}

// Round rounds x to places decimals, half away from zero, the rule every
// figure of a report follows (cost: 2 places, kWh: 3). x is first written
// with 9 decimals so that binary floating-point noise (2.675 stored as
// 2.67499999…) does not decide the rounding.
func Round(x float64, places int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || places < 0 || places > 8 {
		return x
	}
	neg := x < 0
	s := strconv.FormatFloat(math.Abs(x), 'f', 9, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	if len(intPart) > 15-places {
		return x // beyond float64's exact integers: nothing sensible to round
	}
	n, err := strconv.ParseInt(intPart+frac[:places], 10, 64)
	if err != nil {
		return x
	}
	if frac[places] >= '5' {
		n++
	}
	r := float64(n) / math.Pow10(places)
	if neg && r != 0 {
		r = -r
	}
	return r
}

// Cents rounds a money amount to the cent.
func Cents(x float64) float64 { return Round(x, 2) }

// KWh rounds an energy figure to the watt-hour.
func KWh(x float64) float64 { return Round(x, 3) }
