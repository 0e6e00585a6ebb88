package energy

import (
	"context"
	"fmt"
	"time"
)

// MaxDailyDays bounds a daily series.
const MaxDailyDays = 366

// Daily is a project's energy per local day, for charts.
type Daily struct {
	Project   ProjectRef `json:"project"`
	From      string     `json:"from"` // first day, YYYY-MM-DD
	To        string     `json:"to"`   // last day, inclusive
	KWh       float64    `json:"kwh"`
	Cost      *float64   `json:"cost"` // null when part of the range has no tariff version
	Estimated bool       `json:"estimated"`
	Days      []DayLine  `json:"days"`
	// MainMeters are the project's main meters (devices of kind meter)
	// with their kWh over the range: listed apart and in no sum, as in the
	// monthly report. Each day has their kWh too.
	MainMeters []MeterLine `json:"main_meters"`
}

// MeterLine is a main meter's total over a daily series.
type MeterLine struct {
	Device    string  `json:"device"`
	Name      string  `json:"name"`
	Building  string  `json:"building"`
	KWh       float64 `json:"kwh"`
	Estimated bool    `json:"estimated"`
}

// DayLine is one day of a daily series.
type DayLine struct {
	Date string `json:"date"`
	// DayType is working_day, weekend or holiday (the shared calendar).
	DayType string  `json:"day_type"`
	KWh     float64 `json:"kwh"`
	// Cost is null on a day without a tariff version in effect.
	Cost       *float64           `json:"cost"`
	ByCategory map[string]float64 `json:"by_category"` // kWh
	ByPeriod   map[string]float64 `json:"by_period"`   // kWh
	// MainMeters is each main meter's kWh of the day, by device id; not
	// in KWh.
	MainMeters map[string]float64 `json:"main_meters"`
	// Estimated: a device's figure for the day spans a gap or comes from power.
	Estimated bool `json:"estimated"`
	// Partial: the day is still running (or has not started).
	Partial bool `json:"partial"`
}

// DailyReport computes project p's energy per day for the local dates
// [first, last] (inclusive) as of now. Days after now are listed empty.
func DailyReport(ctx context.Context, src Readings, p *Project, first, last time.Time, now time.Time) (*Daily, error) {
	if last.Before(first) {
		return nil, fmt.Errorf("cannot build daily series: last day %s is before first day %s", last.Format(time.DateOnly), first.Format(time.DateOnly))
	}
	end := time.Date(last.Year(), last.Month(), last.Day()+1, 0, 0, 0, 0, p.Location)
	if days := end.Sub(first).Hours() / 24; days > MaxDailyDays+1 {
		return nil, fmt.Errorf("cannot build daily series: %s to %s is more than %d days", first.Format(time.DateOnly), last.Format(time.DateOnly), MaxDailyDays)
	}
	rep := &Daily{
		Project: ProjectRef{ID: p.ID, Name: p.Name, TimeZone: p.Location.String(), FloorAreaM2: p.FloorAreaM2,
			Tariff: p.Tariff.ID, Currency: p.Tariff.Currency},
		From: first.Format(time.DateOnly), To: last.Format(time.DateOnly), Days: []DayLine{}, MainMeters: []MeterLine{},
	}
	costOK := true
	var total, cost float64
	index := map[string]int{}
	for d := first; d.Before(end); d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, p.Location) {
		index[d.Format(time.DateOnly)] = len(rep.Days)
		rep.Days = append(rep.Days, DayLine{Date: d.Format(time.DateOnly), DayType: p.Calendar.DayType(d), Cost: ptr(0.0),
			ByCategory: map[string]float64{}, ByPeriod: map[string]float64{}, MainMeters: map[string]float64{}, Partial: !now.After(d)})
	}
	if now.After(first) {
		pd, err := p.newPeriod(first, end, now)
		if err != nil {
			return nil, err
		}
		res, err := Compute(ctx, src, p.Company, []Job{p.job(pd)})
		if err != nil {
			return nil, err
		}
		s := pd.schedule
		kwh := make([]float64, len(s.Days))
		money := make([]float64, len(s.Days))
		priced := make([]bool, len(s.Days))
		cats := make([]map[string]float64, len(s.Days))
		pers := make([]map[string]float64, len(s.Days))
		est := make([]bool, len(s.Days))
		for i := range s.Days {
			cats[i], pers[i], priced[i] = map[string]float64{}, map[string]float64{}, true
		}
		meters := map[string][]float64{} // main meter → kWh per day
		for _, d := range res[0].Devices {
			if d.Device.MainMeter {
				perDay := make([]float64, len(s.Days))
				for si, e := range d.Slots {
					perDay[s.Slots[si].Day] += e
				}
				meters[d.Device.ID] = perDay
				rep.MainMeters = append(rep.MainMeters, MeterLine{Device: d.Device.ID, Name: d.Device.Name,
					Building: d.Device.Building, KWh: KWh(d.KWh), Estimated: d.Estimated()})
				continue
			}
			for si, e := range d.Slots {
				sl := &s.Slots[si]
				kwh[sl.Day] += e
				money[sl.Day] += e * sl.Price
				priced[sl.Day] = priced[sl.Day] && sl.Priced
				cats[sl.Day][d.Device.Category] += e
				if sl.Period != "" {
					pers[sl.Day][sl.Period] += e
				}
			}
			for di, day := range s.Days {
				est[di] = est[di] || d.Source == SourcePower && d.KWh != 0 || overlaps(d.Gaps, day.From, day.To)
			}
		}
		for di, day := range s.Days {
			line := &rep.Days[index[day.Date]]
			line.KWh = KWh(kwh[di])
			line.DayType = day.Type
			line.Estimated = est[di]
			line.Partial = day.To < time.Date(first.Year(), first.Month(), first.Day()+di+1, 0, 0, 0, 0, p.Location).UnixMilli()
			total += kwh[di]
			cost += money[di]
			if priced[di] {
				line.Cost = ptr(Cents(money[di]))
			} else {
				line.Cost, costOK = nil, false
			}
			for _, c := range Categories {
				line.ByCategory[c] = KWh(cats[di][c])
			}
			for k, v := range pers[di] {
				line.ByPeriod[k] = KWh(v)
			}
			for id, perDay := range meters {
				line.MainMeters[id] = KWh(perDay[di])
			}
			rep.Estimated = rep.Estimated || line.Estimated
		}
	}
	rep.KWh = KWh(total)
	if costOK {
		rep.Cost = ptr(Cents(cost))
	}
	return rep, nil
}

func overlaps(gaps []Gap, from, to int64) bool {
	for _, g := range gaps {
		if g.From < to && g.To > from {
			return true
		}
	}
	return false
}
