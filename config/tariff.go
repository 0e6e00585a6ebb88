package config

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Tariff periods, most expensive first.
const (
	PeriodCriticalPeak = "critical_peak"
	PeriodPeak         = "peak"
	PeriodFlat         = "flat"
	PeriodValley       = "valley"
	PeriodDeepValley   = "deep_valley" // 深谷: holidays and midday solar hours in several provinces
)

// Periods lists the tariff periods in report order.
var Periods = []string{PeriodCriticalPeak, PeriodPeak, PeriodFlat, PeriodValley, PeriodDeepValley}

// TariffFile is the tariffs file.
type TariffFile struct {
	Tariffs []Tariff `yaml:"tariffs"`
}

// Tariff is a time-of-use electricity tariff with dated versions.
type Tariff struct {
	ID       string          `yaml:"id"`
	Name     string          `yaml:"name"`
	Currency string          `yaml:"currency"`
	Versions []TariffVersion `yaml:"versions"`
}

// TariffVersion is in effect from EffectiveFrom (a date in the project's time
// zone) until the next version's date.
type TariffVersion struct {
	EffectiveFrom string             `yaml:"effective_from"` // YYYY-MM-DD
	Prices        map[string]float64 `yaml:"prices"`         // period → price per kWh
	Seasons       []Season           `yaml:"seasons"`
}

// Season is a schedule of periods that applies in some months.
type Season struct {
	Name   string `yaml:"name"`
	Months []int  `yaml:"months"`
	// Prices override the version's prices in this season, period by
	// period; a period the season leaves out takes the version's price.
	Prices map[string]float64 `yaml:"prices"`
	// Periods is the schedule of working days, and of every day type
	// without its own schedule.
	Periods []PeriodSpan `yaml:"periods"`
	// WeekendPeriods is the schedule of Saturdays and Sundays that are no
	// make-up working day (empty: Periods).
	WeekendPeriods []PeriodSpan `yaml:"weekend_periods"`
	// HolidayPeriods is the schedule of public holidays (empty: the
	// weekend's). Holidays and make-up working days come from the one
	// calendar in rules.yaml (work_orders.holidays and workdays).
	HolidayPeriods []PeriodSpan `yaml:"holiday_periods"`
}

// Schedule returns the season's spans for a day type (DayWorking,
// DayWeekend or DayHoliday) and the path of their field.
func (s *Season) Schedule(dayType string) ([]PeriodSpan, string) {
	switch dayType {
	case DayHoliday:
		if len(s.HolidayPeriods) > 0 {
			return s.HolidayPeriods, "holiday_periods"
		}
		return s.Schedule(DayWeekend)
	case DayWeekend:
		if len(s.WeekendPeriods) > 0 {
			return s.WeekendPeriods, "weekend_periods"
		}
	}
	return s.Periods, "periods"
}

// Price is the price of a period in season s of version v: the season's,
// else the version's.
func (v *TariffVersion) Price(s *Season, period string) (float64, bool) {
	if s != nil {
		if p, ok := s.Prices[period]; ok {
			return p, true
		}
	}
	p, ok := v.Prices[period]
	return p, ok
}

// PeriodSpan assigns a period to a time-of-day span [From, To).
type PeriodSpan struct {
	Period string `yaml:"period"`
	From   string `yaml:"from"` // HH:MM
	To     string `yaml:"to"`   // HH:MM, 24:00 for midnight
}

// Validate checks every tariff: versions in date order, each season's spans
// covering the whole day without overlap, each month in exactly one season,
// a price for every period used.
func (f *TariffFile) Validate(p *Problems) {
	ids := map[string]bool{}
	for ti := range f.Tariffs {
		t := &f.Tariffs[ti]
		tp := Join("tariffs", ti)
		checkID(p, Join(tp, "id"), t.ID)
		if ids[t.ID] {
			p.Addf(Join(tp, "id"), "duplicate tariff id %q", t.ID)
		}
		ids[t.ID] = true
		if t.Currency == "" {
			p.Addf(Join(tp, "currency"), "required (e.g. CNY)")
		}
		if len(t.Versions) == 0 {
			p.Addf(Join(tp, "versions"), "at least one version is required")
		}
		var prev time.Time
		for vi := range t.Versions {
			v := &t.Versions[vi]
			vp := Join(Join(tp, "versions"), vi)
			d, err := time.Parse(time.DateOnly, v.EffectiveFrom)
			if err != nil {
				p.Addf(Join(vp, "effective_from"), "invalid date %q (want YYYY-MM-DD)", v.EffectiveFrom)
			} else if vi > 0 && !d.After(prev) {
				p.Addf(Join(vp, "effective_from"), "%s is not after the previous version's %s", v.EffectiveFrom, prev.Format(time.DateOnly))
			}
			prev = d
			checkPrices(p, Join(vp, "prices"), v.Prices)
			var season [13]int // 1 + index of the season a month belongs to
			for si := range v.Seasons {
				s := &v.Seasons[si]
				sp := Join(Join(vp, "seasons"), si)
				for mi, m := range s.Months {
					if m < 1 || m > 12 {
						p.Addf(Join(Join(sp, "months"), mi), "month %d out of range 1–12", m)
					} else if season[m] != 0 {
						p.Addf(Join(Join(sp, "months"), mi), "month %d is already in season %q", m, seasonName(v.Seasons, season[m]-1))
					} else {
						season[m] = si + 1
					}
				}
				checkPrices(p, Join(sp, "prices"), s.Prices)
				price := func(period string) bool { _, ok := v.Price(s, period); return ok }
				checkDay(p, Join(sp, "periods"), s.Periods, price, true)
				checkDay(p, Join(sp, "weekend_periods"), s.WeekendPeriods, price, false)
				checkDay(p, Join(sp, "holiday_periods"), s.HolidayPeriods, price, false)
			}
			var missing []string
			for m := 1; m <= 12; m++ {
				if season[m] == 0 {
					missing = append(missing, fmt.Sprint(m))
				}
			}
			if len(missing) > 0 {
				p.Addf(Join(vp, "seasons"), "months %s belong to no season", strings.Join(missing, ", "))
			}
		}
	}
}

func checkPrices(p *Problems, path string, prices map[string]float64) {
	for _, k := range sortedKeys(prices) {
		if !contains(Periods, k) {
			p.Addf(Join(path, k), "unknown period (want one of %s)", strings.Join(Periods, ", "))
		} else if v := prices[k]; v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			p.Addf(Join(path, k), "must be a number >= 0, got %v", v)
		}
	}
}

// checkDay checks one day's schedule at path: every span a known period
// with a price, the spans covering 00:00–24:00 with no gap and no overlap.
// Each gap and each overlap is named. An optional schedule may be empty.
func checkDay(p *Problems, path string, spans []PeriodSpan, priced func(string) bool, required bool) {
	type iv struct{ from, to, i int }
	var ivs []iv
	for i, s := range spans {
		pp := Join(path, i)
		if !contains(Periods, s.Period) {
			p.Addf(Join(pp, "period"), "unknown period %q (want one of %s)", s.Period, strings.Join(Periods, ", "))
		} else if !priced(s.Period) {
			p.Addf(Join(pp, "period"), "no price for period %q (in the version's prices or the season's)", s.Period)
		}
		from, err1 := ParseClock(s.From)
		to, err2 := ParseClock(s.To)
		p.Add(Join(pp, "from"), err1)
		p.Add(Join(pp, "to"), err2)
		if err1 == nil && err2 == nil {
			if from >= to {
				p.Addf(Join(pp, "to"), "%s is not after %s (split a span that crosses midnight in two)", s.To, s.From)
				continue
			}
			ivs = append(ivs, iv{from, to, i})
		}
	}
	if len(spans) == 0 {
		if required {
			p.Addf(path, "at least one period is required")
		}
		return
	}
	sort.SliceStable(ivs, func(i, j int) bool { return ivs[i].from < ivs[j].from })
	at, last := 0, -1 // covered up to at, by span last
	for _, v := range ivs {
		if v.from > at {
			p.Addf(path, "%s–%s is in no period", clock(at), clock(v.from))
		} else if v.from < at {
			p.Addf(path, "[%d] %s–%s overlaps [%d] %s–%s at %s–%s", v.i, spans[v.i].From, spans[v.i].To,
				last, spans[last].From, spans[last].To, clock(v.from), clock(min(at, v.to)))
		}
		if v.to > at {
			at, last = v.to, v.i
		}
	}
	if at < 24*60 {
		p.Addf(path, "%s–24:00 is in no period", clock(at))
	}
}

// seasonName names season i for an error: its name, or its index when unnamed.
func seasonName(ss []Season, i int) string {
	if ss[i].Name != "" {
		return ss[i].Name
	}
	return fmt.Sprintf("#%d", i)
}

func clock(min int) string { return fmt.Sprintf("%02d:%02d", min/60, min%60) }

// Tariff returns the tariff with the given id, or nil.
func (f *TariffFile) Tariff(id string) *Tariff {
	for i := range f.Tariffs {
		if f.Tariffs[i].ID == id {
			return &f.Tariffs[i]
		}
	}
	return nil
}

// VersionAt returns the version in effect on the local date of t (t in the
// project's zone), or nil before the first version.
func (t *Tariff) VersionAt(local time.Time) *TariffVersion {
	day := local.Format(time.DateOnly)
	var v *TariffVersion
	for i := range t.Versions {
		if t.Versions[i].EffectiveFrom <= day {
			v = &t.Versions[i]
		}
	}
	return v
}

// SeasonOf returns the season of v that holds month (1–12), or nil.
func (v *TariffVersion) SeasonOf(month int) *Season {
	for i := range v.Seasons {
		if containsInt(v.Seasons[i].Months, month) {
			return &v.Seasons[i]
		}
	}
	return nil
}

// PeriodAt returns the period and price that apply at local time t under
// v, on a day of the given type (see Calendar.DayType).
func (v *TariffVersion) PeriodAt(local time.Time, dayType string) (period string, price float64, ok bool) {
	s := v.SeasonOf(int(local.Month()))
	if s == nil {
		return "", 0, false
	}
	min := local.Hour()*60 + local.Minute()
	spans, _ := s.Schedule(dayType)
	for _, sp := range spans {
		from, _ := ParseClock(sp.From)
		to, _ := ParseClock(sp.To)
		if min >= from && min < to {
			price, ok := v.Price(s, sp.Period)
			return sp.Period, price, ok
		}
	}
	return "", 0, false
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
