package energy

import (
	"context"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

// dayTypeTariff is a tariff of the newer provincial shape: five periods,
// summer prices of its own for the peaks, and per season a working-day, a
// weekend and a holiday schedule. Holidays get a deep valley at midday.
func dayTypeTariff() *config.Tariff {
	span := func(p, from, to string) config.PeriodSpan { return config.PeriodSpan{Period: p, From: from, To: to} }
	return &config.Tariff{ID: "zj-tou", Currency: "CNY", Versions: []config.TariffVersion{{
		EffectiveFrom: "2026-01-01",
		Prices:        map[string]float64{"critical_peak": 1.40, "peak": 1.00, "flat": 0.60, "valley": 0.30, "deep_valley": 0.15},
		Seasons: []config.Season{
			{Name: "summer", Months: []int{7, 8},
				Prices: map[string]float64{"critical_peak": 1.60, "peak": 1.20}, // flat and valley: the version's
				Periods: []config.PeriodSpan{span("valley", "00:00", "08:00"), span("peak", "08:00", "12:00"),
					span("critical_peak", "12:00", "14:00"), span("flat", "14:00", "24:00")}},
			{Name: "rest", Months: []int{1, 2, 3, 4, 5, 6, 9, 10, 11, 12},
				Periods:        []config.PeriodSpan{span("valley", "00:00", "08:00"), span("flat", "08:00", "24:00")},
				WeekendPeriods: []config.PeriodSpan{span("valley", "00:00", "24:00")},
				HolidayPeriods: []config.PeriodSpan{span("valley", "00:00", "10:00"), span("deep_valley", "10:00", "15:00"),
					span("valley", "15:00", "24:00")}},
		},
	}}}
}

// National Day 2026 in the shared calendar: 1–7 October are holidays
// (Thursday to Wednesday, the weekend inside included), Saturday 10
// October is a make-up working day.
var nationalDay = &config.Calendar{
	Holidays: []string{"2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04", "2026-10-05", "2026-10-06", "2026-10-07"},
	Workdays: []string{"2026-10-10"},
}

func TestScheduleDayTypes(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	s, err := NewSchedule(dayTypeTariff(), nationalDay, sh, time.Date(2026, 10, 1, 0, 0, 0, 0, sh), time.Date(2026, 10, 12, 0, 0, 0, 0, sh))
	if err != nil {
		t.Fatal(err)
	}
	type slot struct {
		from   string
		period string
		price  float64
	}
	want := map[string]struct {
		typ   string
		slots []slot
	}{
		"2026-10-01": {config.DayHoliday, []slot{{"00:00", "valley", 0.30}, {"10:00", "deep_valley", 0.15}, {"15:00", "valley", 0.30}}},
		"2026-10-03": {config.DayHoliday, []slot{{"00:00", "valley", 0.30}, {"10:00", "deep_valley", 0.15}, {"15:00", "valley", 0.30}}},
		"2026-10-08": {config.DayWorking, []slot{{"00:00", "valley", 0.30}, {"08:00", "flat", 0.60}}},
		"2026-10-10": {config.DayWorking, []slot{{"00:00", "valley", 0.30}, {"08:00", "flat", 0.60}}}, // make-up Saturday
		"2026-10-11": {config.DayWeekend, []slot{{"00:00", "valley", 0.30}}},
	}
	got := map[string][]slot{}
	for _, sl := range s.Slots {
		d := s.Days[sl.Day]
		got[d.Date] = append(got[d.Date], slot{time.UnixMilli(sl.From).In(sh).Format("15:04"), sl.Period, sl.Price})
	}
	for _, d := range s.Days {
		w, ok := want[d.Date]
		if !ok {
			continue
		}
		if d.Type != w.typ {
			t.Errorf("%s: day type %q, want %q", d.Date, d.Type, w.typ)
		}
		if len(got[d.Date]) != len(w.slots) {
			t.Errorf("%s: slots %+v, want %+v", d.Date, got[d.Date], w.slots)
			continue
		}
		for i := range w.slots {
			if got[d.Date][i] != w.slots[i] {
				t.Errorf("%s slot %d: %+v, want %+v", d.Date, i, got[d.Date][i], w.slots[i])
			}
		}
	}
	// Summer: the season's own peak prices, the version's flat and valley.
	s, err = NewSchedule(dayTypeTariff(), nationalDay, sh, time.Date(2026, 7, 15, 0, 0, 0, 0, sh), time.Date(2026, 7, 16, 0, 0, 0, 0, sh))
	if err != nil {
		t.Fatal(err)
	}
	prices := map[string]float64{}
	for _, sl := range s.Slots {
		prices[sl.Period] = sl.Price
	}
	if prices["valley"] != 0.30 || prices["peak"] != 1.20 || prices["critical_peak"] != 1.60 || prices["flat"] != 0.60 {
		t.Errorf("summer prices = %v", prices)
	}
}

// A holiday in Asia/Shanghai with a deep valley at midday, worked by hand:
// a meter rising 2 kWh every hour, read on the hour, over 1 October 2026
// (a holiday) and 8 October (a working day).
func TestDailyHolidayDeepValley(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	m := newMem()
	start := time.Date(2026, 9, 30, 23, 0, 0, 0, sh)
	for h := 0; h <= 8*24+2; h++ {
		m.add("m1", "energy_kwh", Point{start.Add(time.Duration(h) * time.Hour).UnixMilli(), 1000 + 2*float64(h)})
	}
	p := &Project{Company: "acme", ID: "garden", Name: "Garden", Location: sh, Tariff: dayTypeTariff(), Calendar: nationalDay,
		Devices: []Device{{ID: "m1", Category: CategoryPump, Kind: "pump", Counter: "energy_kwh", MaxKW: 5, Poll: time.Hour}}}
	first := time.Date(2026, 10, 1, 0, 0, 0, 0, sh)
	last := time.Date(2026, 10, 8, 0, 0, 0, 0, sh)
	rep, err := DailyReport(context.Background(), m, p, first, last, time.Date(2026, 10, 20, 0, 0, 0, 0, sh))
	if err != nil {
		t.Fatal(err)
	}
	day := func(date string) DayLine {
		for _, d := range rep.Days {
			if d.Date == date {
				return d
			}
		}
		t.Fatalf("no day %s", date)
		return DayLine{}
	}
	// Holiday: valley 00–10 and 15–24 (19 h × 2 = 38 kWh at 0.30 = 11.40),
	// deep valley 10–15 (5 h × 2 = 10 kWh at 0.15 = 1.50): 48 kWh, 12.90.
	h := day("2026-10-01")
	if h.DayType != config.DayHoliday || h.KWh != 48 || *h.Cost != 12.90 || h.ByPeriod["deep_valley"] != 10 || h.ByPeriod["valley"] != 38 {
		t.Errorf("1 October = %+v (cost %v)", h, *h.Cost)
	}
	// Working day: valley 00–08 (16 kWh, 4.80), flat 08–24 (32 kWh, 19.20): 24.00.
	w := day("2026-10-08")
	if w.DayType != config.DayWorking || w.KWh != 48 || *w.Cost != 24 || w.ByPeriod["flat"] != 32 || w.ByPeriod["deep_valley"] != 0 {
		t.Errorf("8 October = %+v (cost %v)", w, *w.Cost)
	}
	// Sunday 4 October is inside the holidays: the holiday schedule, not the weekend's.
	if d := day("2026-10-04"); d.DayType != config.DayHoliday || d.ByPeriod["deep_valley"] != 10 {
		t.Errorf("4 October = %+v", d)
	}
}
