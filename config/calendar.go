package config

import (
	"time"
)

// Day types of the calendar: which period schedule of a tariff season
// applies on a day.
const (
	DayWorking = "working_day"
	DayWeekend = "weekend"
	DayHoliday = "holiday"
)

// Calendar is the one calendar of public holidays and make-up working days
// (rules.yaml, under work_orders). Work orders use it for
// sla_next_working_day; tariffs use it for their working-day, weekend and
// holiday schedules.
type Calendar struct {
	// Holidays are public holidays ("2027-01-01"): no working day, and the
	// holiday schedule of a tariff applies, whatever the weekday.
	Holidays []string `yaml:"holidays"`
	// Workdays are Saturdays or Sundays that are working days (the make-up
	// days that come with public holidays in China).
	Workdays []string `yaml:"workdays"`
}

// DayType says what day is (its date as written in its location): a
// holiday if listed, a working day if listed as a workday or Monday to
// Friday, else a weekend day. A nil calendar knows no holidays.
func (c *Calendar) DayType(day time.Time) string {
	if c != nil {
		key := day.Format(dateLayout)
		if contains(c.Holidays, key) {
			return DayHoliday
		}
		if contains(c.Workdays, key) {
			return DayWorking
		}
	}
	if weekend(day) {
		return DayWeekend
	}
	return DayWorking
}

// WorkingDay reports whether day is a working day.
func (c *Calendar) WorkingDay(day time.Time) bool { return c.DayType(day) == DayWorking }

func weekend(day time.Time) bool {
	return day.Weekday() == time.Saturday || day.Weekday() == time.Sunday
}

// validate checks the dates under prefix (e.g. "work_orders").
func (c *Calendar) validate(p *Problems, prefix string) {
	seen := map[string]string{}
	for _, list := range []struct {
		name  string
		dates []string
	}{{"holidays", c.Holidays}, {"workdays", c.Workdays}} {
		for i, s := range list.dates {
			path := Join(prefix+"."+list.name, i)
			d, err := time.Parse(dateLayout, s)
			if err != nil {
				p.Addf(path, "invalid date %q (want YYYY-MM-DD)", s)
				continue
			}
			if prev, dup := seen[s]; dup {
				p.Addf(path, "%s is already listed in %s.%s", s, prefix, prev)
			}
			seen[s] = list.name
			if list.name == "workdays" && !weekend(d) {
				p.Addf(path, "%s is a %s, a working day anyway (workdays lists weekend days that are worked)", s, d.Weekday())
			}
		}
	}
}
