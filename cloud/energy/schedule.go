package energy

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Slot is a stretch of time with one tariff period and price, inside one
// local day.
type Slot struct {
	From, To int64 // Unix ms, [From, To)
	Day      int   // index into Schedule.Days
	Period   string
	Price    float64 // per kWh
	// Priced is false where no tariff version was in effect yet: kWh used
	// there has no cost.
	Priced bool
}

// Day is one local calendar day of a schedule.
type Day struct {
	Date     string // YYYY-MM-DD in the project's zone
	From, To int64  // Unix ms: local midnight to the next (clipped to the schedule)
	// Type is config.DayWorking, DayWeekend or DayHoliday, from the calendar.
	Type string
}

// Schedule prices every instant of [From, To) for one project: its tariff
// laid out on the local calendar, version by version and season by season.
type Schedule struct {
	Tariff   string
	Currency string
	Location *time.Location
	From, To int64
	Days     []Day
	Slots    []Slot
}

// NewSchedule lays tariff t out over [from, to) in loc. Each local day is
// priced by the version in effect on that date, the season of its month
// (its prices, else the version's) and the season's schedule for the day's
// type in calendar cal (working day, weekend or holiday; nil: no holidays);
// a period span's wall-clock times map to instants in loc (on a
// daylight-saving change, Go's time.Date normalisation decides). Days
// before t's first version get unpriced slots.
func NewSchedule(t *config.Tariff, cal *config.Calendar, loc *time.Location, from, to time.Time) (*Schedule, error) {
	if t == nil {
		return nil, fmt.Errorf("cannot lay out tariff: no tariff")
	}
	if loc == nil {
		return nil, fmt.Errorf("cannot lay out tariff %q: no time zone", t.ID)
	}
	if !to.After(from) {
		return nil, fmt.Errorf("cannot lay out tariff %q: empty period %s – %s", t.ID, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	s := &Schedule{Tariff: t.ID, Currency: t.Currency, Location: loc, From: from.UnixMilli(), To: to.UnixMilli()}
	clocks := map[string]int{}
	clock := func(v string) (int, error) {
		if m, ok := clocks[v]; ok {
			return m, nil
		}
		m, err := config.ParseClock(v)
		clocks[v] = m
		return m, err
	}
	f := from.In(loc)
	for day := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc); day.Before(to); {
		next := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
		d := Day{Date: day.Format(time.DateOnly), From: max(day.UnixMilli(), s.From), To: min(next.UnixMilli(), s.To), Type: cal.DayType(day)}
		di := len(s.Days)
		s.Days = append(s.Days, d)
		add := func(a, b int64, period string, price float64, priced bool) {
			a, b = max(a, d.From), min(b, d.To)
			if n := len(s.Slots); n > 0 && a < s.Slots[n-1].To {
				a = s.Slots[n-1].To // keep slots ordered across a clock change
			}
			if b > a {
				s.Slots = append(s.Slots, Slot{From: a, To: b, Day: di, Period: period, Price: price, Priced: priced})
			}
		}
		v := t.VersionAt(day)
		if v == nil {
			add(d.From, d.To, "", 0, false)
			day = next
			continue
		}
		season := v.SeasonOf(int(day.Month()))
		if season == nil {
			return nil, fmt.Errorf("cannot lay out tariff %q: version %s has no season for month %d", t.ID, v.EffectiveFrom, day.Month())
		}
		sched, _ := season.Schedule(d.Type)
		spans := slices.Clone(sched)
		sort.SliceStable(spans, func(i, j int) bool { return spans[i].From < spans[j].From })
		for _, sp := range spans {
			a, err1 := clock(sp.From)
			b, err2 := clock(sp.To)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("cannot lay out tariff %q: span %q–%q of version %s: invalid time of day", t.ID, sp.From, sp.To, v.EffectiveFrom)
			}
			price, ok := v.Price(season, sp.Period)
			if !ok {
				return nil, fmt.Errorf("cannot lay out tariff %q: version %s has no price for period %q", t.ID, v.EffectiveFrom, sp.Period)
			}
			at := func(min int) int64 {
				return time.Date(day.Year(), day.Month(), day.Day(), 0, min, 0, 0, loc).UnixMilli()
			}
			add(at(a), at(b), sp.Period, price, true)
		}
		day = next
	}
	return s, nil
}

// Bounds returns the slot boundaries: Slots[i] is [b[i], b[i+1]) when the
// slots are contiguous (see Contiguous), which they are for a validated
// tariff.
func (s *Schedule) Bounds() []int64 {
	b := make([]int64, 0, len(s.Slots)+1)
	for i, sl := range s.Slots {
		if i == 0 {
			b = append(b, sl.From)
		}
		b = append(b, sl.To)
	}
	return b
}

// Contiguous reports whether the slots cover [From, To) without holes.
func (s *Schedule) Contiguous() bool {
	at := s.From
	for _, sl := range s.Slots {
		if sl.From != at {
			return false
		}
		at = sl.To
	}
	return at == s.To
}

// InnerBounds returns the slot boundaries that are not on a UTC hour
// (Unix ms, in order): energy must be split there at an instant that an
// hour's first and last reading may not bracket.
func (s *Schedule) InnerBounds() []int64 {
	var out []int64
	for _, b := range s.Bounds() {
		if b%HourMS != 0 {
			out = append(out, b)
		}
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
