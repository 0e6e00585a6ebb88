package config

import (
	"testing"
	"time"
)

func TestParseClock(t *testing.T) {
	for s, want := range map[string]int{"00:00": 0, "08:30": 510, "23:59": 1439, "24:00": 1440} {
		if got, err := ParseClock(s); err != nil || got != want {
			t.Errorf("ParseClock(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "8:00", "08:0", "0800", "08-00", "24:01", "25:00", "12:60", "-1:30", "+8:00", " 8:00", "08: 5", "0x:00", "08:00 "} {
		if got, err := ParseClock(s); err == nil {
			t.Errorf("ParseClock(%q) = %d, want an error", s, got)
		}
	}
}

// at is a local time on a day of the week starting Monday 2026-03-16.
func at(day time.Weekday, hhmm string) time.Time {
	m, err := ParseClock(hhmm)
	if err != nil {
		panic(err)
	}
	monday := time.Date(2026, 3, 16, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	return monday.AddDate(0, 0, (int(day)+6)%7).Add(time.Duration(m) * time.Minute)
}

func TestShiftOnDutyAt(t *testing.T) {
	day := Shift{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "08:00", To: "20:00"}
	night := Shift{Days: []string{"fri", "sat"}, From: "20:00", To: "08:00"}
	allDay := Shift{Days: []string{"sun"}, From: "00:00", To: "24:00"}
	cases := []struct {
		name  string
		shift Shift
		t     time.Time
		want  bool
	}{
		{"day shift start", day, at(time.Monday, "08:00"), true},
		{"day shift before start", day, at(time.Monday, "07:59"), false},
		{"day shift last minute", day, at(time.Friday, "19:59"), true},
		{"day shift end is exclusive", day, at(time.Friday, "20:00"), false},
		{"day shift not on saturday", day, at(time.Saturday, "12:00"), false},
		{"night shift evening of listed day", night, at(time.Friday, "20:00"), true},
		{"night shift before its evening", night, at(time.Friday, "19:59"), false},
		{"night shift morning after friday", night, at(time.Saturday, "07:59"), true},
		{"night shift end is exclusive", night, at(time.Saturday, "08:00"), false},
		{"night shift morning after saturday", night, at(time.Sunday, "03:00"), true},
		{"night shift sunday evening not listed", night, at(time.Sunday, "22:00"), false},
		{"night shift monday morning: sunday not listed", night, at(time.Monday, "03:00"), false},
		{"night shift friday morning: thursday not listed", night, at(time.Friday, "03:00"), false},
		{"all day from midnight", allDay, at(time.Sunday, "00:00"), true},
		{"all day last minute", allDay, at(time.Sunday, "23:59"), true},
		{"all day not monday", allDay, at(time.Monday, "00:00"), false},
		{"invalid clock is never on duty", Shift{Days: []string{"mon"}, From: "8:00", To: "20:00"}, at(time.Monday, "12:00"), false},
	}
	for _, c := range cases {
		if got := c.shift.OnDutyAt(c.t); got != c.want {
			t.Errorf("%s: OnDutyAt(%s) = %v, want %v", c.name, c.t.Format("Mon 15:04"), got, c.want)
		}
	}
}

func TestTariffVersionAt(t *testing.T) {
	b := loadDemo(t)
	tariff := b.Tariffs.Tariff("sh-general")
	sh := b.Org.Companies[0].Projects[0].Location
	cases := []struct {
		t    time.Time
		want string // effective_from, "" for none
	}{
		{time.Date(2025, 12, 31, 23, 59, 0, 0, sh), ""},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, sh), "2026-01-01"},
		{time.Date(2026, 6, 30, 23, 59, 0, 0, sh), "2026-01-01"},
		{time.Date(2026, 7, 1, 0, 0, 0, 0, sh), "2026-07-01"},
		{time.Date(2031, 1, 1, 0, 0, 0, 0, sh), "2026-07-01"},
		// 16:30 UTC on 30 June is already 1 July in Shanghai.
		{time.Date(2026, 6, 30, 16, 30, 0, 0, time.UTC).In(sh), "2026-07-01"},
	}
	for _, c := range cases {
		v := tariff.VersionAt(c.t)
		got := ""
		if v != nil {
			got = v.EffectiveFrom
		}
		if got != c.want {
			t.Errorf("VersionAt(%s) = %q, want %q", c.t.Format(time.RFC3339), got, c.want)
		}
	}
	if b.Tariffs.Tariff("no-such-tariff") != nil {
		t.Error("Tariff found a tariff that does not exist")
	}
}

func TestTariffPeriodAt(t *testing.T) {
	b := loadDemo(t)
	sh := b.Org.Companies[0].Projects[0].Location
	general := b.Tariffs.Tariff("sh-general")
	commercial := b.Tariffs.Tariff("sh-commercial")
	local := func(month time.Month, day, h, m int) time.Time { return time.Date(2026, month, day, h, m, 0, 0, sh) }
	cases := []struct {
		tariff *Tariff
		t      time.Time
		period string
		price  float64
	}{
		{general, local(3, 14, 0, 0), PeriodValley, 0.3120},
		{general, local(3, 14, 5, 59), PeriodValley, 0.3120},
		{general, local(3, 14, 6, 0), PeriodFlat, 0.6620},
		{general, local(3, 14, 8, 0), PeriodPeak, 1.0630},
		{general, local(3, 14, 21, 30), PeriodFlat, 0.6620},
		{general, local(3, 14, 23, 59), PeriodValley, 0.3120},
		// From July the second version applies, with a summer critical peak.
		{general, local(7, 15, 12, 0), PeriodCriticalPeak, 1.3290},
		{general, local(7, 15, 13, 59), PeriodCriticalPeak, 1.3290},
		{general, local(7, 15, 14, 0), PeriodFlat, 0.6890},
		{general, local(8, 31, 11, 0), PeriodPeak, 1.1070},
		{general, local(9, 1, 12, 0), PeriodFlat, 0.6890}, // rest of year: no critical peak
		{general, local(9, 1, 10, 0), PeriodPeak, 1.1070},
		{commercial, local(7, 15, 7, 59), PeriodValley, 0.2750},
		{commercial, local(7, 15, 13, 0), PeriodPeak, 0.9860},
	}
	for _, c := range cases {
		v := c.tariff.VersionAt(c.t)
		if v == nil {
			t.Fatalf("%s: no version at %s", c.tariff.ID, c.t)
		}
		period, price, ok := v.PeriodAt(c.t, DayWorking)
		if !ok || period != c.period || price != c.price {
			t.Errorf("%s at %s: %q %v %v, want %q %v", c.tariff.ID, c.t.Format("2006-01-02 15:04"), period, price, ok, c.period, c.price)
		}
	}
	// The five-period demo tariff: a holiday's midday is deep valley, the
	// same hour of a working day is flat; summer has its own peak price.
	zj := b.Tariffs.Tariff("zj-tou-2024")
	for _, c := range []struct {
		t       time.Time
		dayType string
		period  string
		price   float64
	}{
		{local(10, 1, 11, 0), DayHoliday, PeriodDeepValley, 0.1850},
		{local(10, 1, 11, 0), DayWorking, PeriodFlat, 0.6520},
		{local(10, 3, 9, 0), DayWeekend, PeriodFlat, 0.6520},
		{local(10, 3, 9, 0), DayHoliday, PeriodValley, 0.3060},
		{local(7, 15, 9, 0), DayWorking, PeriodPeak, 1.1260},
		{local(7, 15, 9, 0), DayWeekend, PeriodPeak, 1.1260}, // summer has no weekend schedule: the working day's
		{local(7, 15, 14, 0), DayWorking, PeriodCriticalPeak, 1.5310},
		{local(7, 15, 12, 0), DayWorking, PeriodFlat, 0.6520},
	} {
		period, price, ok := zj.VersionAt(c.t).PeriodAt(c.t, c.dayType)
		if !ok || period != c.period || price != c.price {
			t.Errorf("zj-tou-2024 at %s (%s): %q %v %v, want %q %v", c.t.Format("2006-01-02 15:04"), c.dayType, period, price, ok, c.period, c.price)
		}
	}
	// A version with a month in no season has no period then.
	v := &TariffVersion{Prices: map[string]float64{PeriodFlat: 1}, Seasons: []Season{
		{Months: []int{1}, Periods: []PeriodSpan{{Period: PeriodFlat, From: "00:00", To: "24:00"}}},
	}}
	if p, _, ok := v.PeriodAt(local(2, 1, 12, 0), DayWorking); ok {
		t.Errorf("PeriodAt in a month of no season = %q, want none", p)
	}
}

// The working-day calendar behind sla_next_working_day, around China's
// National Day week of 2026: 1 October is a Thursday; the 1st, 2nd and the
// 5th to 7th are holidays and Saturday the 10th is worked instead.
func TestNextWorkingDayStart(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	day := func(m time.Month, d, h, min int) time.Time { return time.Date(2026, m, d, h, min, 0, 0, sh) }
	cal := &WorkOrderSettings{
		WorkdayStart: "08:30",
		Calendar: Calendar{
			Holidays: []string{"2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"},
			Workdays: []string{"2026-10-10"},
		},
	}
	for _, c := range []struct {
		name     string
		cal      *WorkOrderSettings
		at, want time.Time
	}{
		{"Wednesday before the holidays → Thursday 8 October", cal, day(9, 30, 15, 0), day(10, 8, 8, 30)},
		{"Friday 9 October → the worked Saturday", cal, day(10, 9, 15, 0), day(10, 10, 8, 30)},
		{"the worked Saturday → Monday 12 October", cal, day(10, 10, 10, 0), day(10, 12, 8, 30)},
		{"a holiday → the next working day", cal, day(10, 6, 23, 59), day(10, 8, 8, 30)},
		{"no calendar: Friday → Monday 09:00", nil, day(10, 9, 15, 0), day(10, 12, 9, 0)},
		{"no calendar: Wednesday → Thursday 09:00", nil, day(9, 30, 15, 0), day(10, 1, 9, 0)},
		{"UTC evening is already the next day in Shanghai", cal, time.Date(2026, 10, 8, 17, 0, 0, 0, time.UTC), day(10, 10, 8, 30)},
	} {
		if got := c.cal.NextWorkingDayStart(c.at, sh); !got.Equal(c.want) {
			t.Errorf("%s: NextWorkingDayStart(%s) = %s, want %s", c.name, c.at, got.In(sh), c.want)
		}
	}
}
