package config

import (
	"fmt"
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
)

// Periods lists the tariff periods in report order.
var Periods = []string{PeriodCriticalPeak, PeriodPeak, PeriodFlat, PeriodValley}

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
	Name    string       `yaml:"name"`
	Months  []int        `yaml:"months"`
	Periods []PeriodSpan `yaml:"periods"`
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
			for _, k := range sortedKeys(v.Prices) {
				if !contains(Periods, k) {
					p.Addf(Join(Join(vp, "prices"), k), "unknown period (want one of %s)", strings.Join(Periods, ", "))
				} else if v.Prices[k] < 0 {
					p.Addf(Join(Join(vp, "prices"), k), "must be >= 0, got %v", v.Prices[k])
				}
			}
			var season [13]int // 1 + index of the season a month belongs to
			for si, s := range v.Seasons {
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
				checkDay(p, sp, s.Periods, v.Prices)
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

func checkDay(p *Problems, sp string, spans []PeriodSpan, prices map[string]float64) {
	type iv struct{ from, to int }
	var ivs []iv
	for i, s := range spans {
		pp := Join(Join(sp, "periods"), i)
		if !contains(Periods, s.Period) {
			p.Addf(Join(pp, "period"), "unknown period %q (want one of %s)", s.Period, strings.Join(Periods, ", "))
		} else if _, ok := prices[s.Period]; !ok {
			p.Addf(Join(pp, "period"), "no price for period %q", s.Period)
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
			ivs = append(ivs, iv{from, to})
		}
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].from < ivs[j].from })
	at := 0
	for _, v := range ivs {
		if v.from > at {
			p.Addf(Join(sp, "periods"), "%s–%s is in no period", clock(at), clock(v.from))
		} else if v.from < at {
			p.Addf(Join(sp, "periods"), "periods overlap at %s", clock(v.from))
		}
		if v.to > at {
			at = v.to
		}
	}
	if at < 24*60 && len(ivs) > 0 {
		p.Addf(Join(sp, "periods"), "%s–24:00 is in no period", clock(at))
	}
	if len(ivs) == 0 && len(spans) == 0 {
		p.Addf(Join(sp, "periods"), "at least one period is required")
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

// PeriodAt returns the period and price that apply at local time t under v.
func (v *TariffVersion) PeriodAt(local time.Time) (period string, price float64, ok bool) {
	m := int(local.Month())
	min := local.Hour()*60 + local.Minute()
	for _, s := range v.Seasons {
		if !containsInt(s.Months, m) {
			continue
		}
		for _, sp := range s.Periods {
			from, _ := ParseClock(sp.From)
			to, _ := ParseClock(sp.To)
			if min >= from && min < to {
				return sp.Period, v.Prices[sp.Period], true
			}
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
