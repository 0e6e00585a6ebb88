package energy

import (
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

// testTariff is configs/tariffs.yaml's sh-general: a version change on
// 2026-07-01 that adds a critical peak 12:00–14:00 in July and August.
func testTariff() *config.Tariff {
	allYear := []config.PeriodSpan{
		{Period: "valley", From: "00:00", To: "06:00"}, {Period: "flat", From: "06:00", To: "08:00"},
		{Period: "peak", From: "08:00", To: "11:00"}, {Period: "flat", From: "11:00", To: "18:00"},
		{Period: "peak", From: "18:00", To: "21:00"}, {Period: "flat", From: "21:00", To: "22:00"},
		{Period: "valley", From: "22:00", To: "24:00"},
	}
	summer := []config.PeriodSpan{
		{Period: "valley", From: "00:00", To: "06:00"}, {Period: "flat", From: "06:00", To: "08:00"},
		{Period: "peak", From: "08:00", To: "12:00"}, {Period: "critical_peak", From: "12:00", To: "14:00"},
		{Period: "flat", From: "14:00", To: "18:00"}, {Period: "peak", From: "18:00", To: "21:00"},
		{Period: "flat", From: "21:00", To: "22:00"}, {Period: "valley", From: "22:00", To: "24:00"},
	}
	return &config.Tariff{ID: "sh-general", Currency: "CNY", Versions: []config.TariffVersion{
		{EffectiveFrom: "2026-01-01", Prices: map[string]float64{"peak": 1.0630, "flat": 0.6620, "valley": 0.3120},
			Seasons: []config.Season{{Name: "all-year", Months: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Periods: allYear}}},
		{EffectiveFrom: "2026-07-01", Prices: map[string]float64{"critical_peak": 1.3290, "peak": 1.1070, "flat": 0.6890, "valley": 0.3250},
			Seasons: []config.Season{
				{Name: "summer", Months: []int{7, 8}, Periods: summer},
				{Name: "rest", Months: []int{1, 2, 3, 4, 5, 6, 9, 10, 11, 12}, Periods: allYear},
			}},
	}}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestScheduleVersionChange(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	from := time.Date(2026, 6, 30, 0, 0, 0, 0, sh)
	to := time.Date(2026, 7, 2, 0, 0, 0, 0, sh)
	s, err := NewSchedule(testTariff(), nil, sh, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Contiguous() {
		t.Fatal("schedule has holes")
	}
	// 30 June: old version, 7 spans; 1 July: new version, summer, 8 spans.
	if len(s.Slots) != 15 || len(s.Days) != 2 {
		t.Fatalf("slots = %d, days = %d; want 15, 2", len(s.Slots), len(s.Days))
	}
	// Local midnight of 30 June is 16:00 UTC on the 29th.
	if got := time.UnixMilli(s.Slots[0].From).UTC(); !got.Equal(time.Date(2026, 6, 29, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("first slot starts %s", got)
	}
	june := s.Slots[2] // 08:00–11:00 peak at the old price
	if june.Period != "peak" || june.Price != 1.0630 || june.Day != 0 {
		t.Errorf("30 June 08:00 slot = %+v", june)
	}
	cp := s.Slots[7+3] // 1 July 12:00–14:00
	if cp.Period != "critical_peak" || cp.Price != 1.3290 || cp.Day != 1 ||
		time.UnixMilli(cp.From).In(sh).Hour() != 12 || time.UnixMilli(cp.To).In(sh).Hour() != 14 {
		t.Errorf("1 July critical peak slot = %+v", cp)
	}
	if bs := s.InnerBounds(); len(bs) != 0 {
		t.Errorf("Shanghai on whole-hour spans has inner bounds %v", bs)
	}
}

func TestScheduleBeforeFirstVersion(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	s, err := NewSchedule(testTariff(), nil, sh, time.Date(2025, 12, 31, 0, 0, 0, 0, sh), time.Date(2026, 1, 2, 0, 0, 0, 0, sh))
	if err != nil {
		t.Fatal(err)
	}
	if s.Slots[0].Priced || s.Slots[0].To-s.Slots[0].From != 24*HourMS {
		t.Errorf("31 Dec 2025 slot = %+v, want one unpriced day", s.Slots[0])
	}
	if !s.Slots[1].Priced {
		t.Errorf("1 Jan 2026 is priced by the first version")
	}
}

func TestScheduleDaylightSaving(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	// 8 March 2026: clocks go from 02:00 to 03:00; the day has 23 hours.
	s, err := NewSchedule(testTariff(), nil, ny, time.Date(2026, 3, 8, 0, 0, 0, 0, ny), time.Date(2026, 3, 9, 0, 0, 0, 0, ny))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Contiguous() {
		t.Fatal("holes on a DST day")
	}
	if d := s.Days[0].To - s.Days[0].From; d != 23*HourMS {
		t.Errorf("spring-forward day lasts %d h", d/HourMS)
	}
	valley := s.Slots[0] // 00:00–06:00 wall clock: 5 real hours
	if valley.To-valley.From != 5*HourMS {
		t.Errorf("night valley lasts %d h, want 5", (valley.To-valley.From)/HourMS)
	}
	// 1 November 2026: 25 hours.
	s, err = NewSchedule(testTariff(), nil, ny, time.Date(2026, 11, 1, 0, 0, 0, 0, ny), time.Date(2026, 11, 2, 0, 0, 0, 0, ny))
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Days[0].To - s.Days[0].From; d != 25*HourMS || !s.Contiguous() {
		t.Errorf("fall-back day lasts %d h (contiguous %v)", d/HourMS, s.Contiguous())
	}
}

func TestScheduleQuarterHours(t *testing.T) {
	// A tariff switching at 07:45 in Asia/Kolkata (UTC+5:30): midnight and
	// 07:45 local fall at :30 and :15 past a UTC hour.
	tf := &config.Tariff{ID: "q", Currency: "INR", Versions: []config.TariffVersion{{
		EffectiveFrom: "2026-01-01", Prices: map[string]float64{"flat": 1, "peak": 2},
		Seasons: []config.Season{{Name: "all", Months: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Periods: []config.PeriodSpan{
			{Period: "flat", From: "00:00", To: "07:45"}, {Period: "peak", From: "07:45", To: "24:00"}}}},
	}}}
	in := mustLoc(t, "Asia/Kolkata")
	s, err := NewSchedule(tf, nil, in, time.Date(2026, 7, 1, 0, 0, 0, 0, in), time.Date(2026, 7, 2, 0, 0, 0, 0, in))
	if err != nil {
		t.Fatal(err)
	}
	// Bounds 2026-06-30T18:30Z, 07-01T02:15Z, 07-01T18:30Z: all inside UTC hours.
	bs := s.InnerBounds()
	want := []time.Time{time.Date(2026, 6, 30, 18, 30, 0, 0, time.UTC), time.Date(2026, 7, 1, 2, 15, 0, 0, time.UTC), time.Date(2026, 7, 1, 18, 30, 0, 0, time.UTC)}
	if len(bs) != len(want) {
		t.Fatalf("inner bounds = %v", bs)
	}
	for i := range want {
		if !time.UnixMilli(bs[i]).Equal(want[i]) {
			t.Errorf("inner bound %d = %s, want %s", i, time.UnixMilli(bs[i]).UTC(), want[i])
		}
	}
}
