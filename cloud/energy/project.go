package energy

import (
	"errors"
	"fmt"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Errors a report can fail with; the API answers them as client errors.
var (
	// ErrNoTariff: part of the period has no tariff version in effect.
	ErrNoTariff = errors.New("no tariff version in effect")
	// ErrFuture: the period has not started yet.
	ErrFuture = errors.New("period has not started")
)

// Project is a project as its energy reports need it.
type Project struct {
	Company     string
	ID          string
	Name        string
	Location    *time.Location
	FloorAreaM2 float64
	Buildings   []config.Building
	Tariff      *config.Tariff
	// Calendar gives each day its type (working day, weekend, holiday) for
	// the tariff: the deployment's one calendar (rules.yaml).
	Calendar *config.Calendar
	Devices  []Device
}

// NewProject gathers project p of company c from the bundle.
func NewProject(b *config.Bundle, c *config.Company, p *config.Project) (Project, error) {
	loc := p.Location
	if loc == nil {
		l, err := time.LoadLocation(p.TimeZone)
		if err != nil {
			return Project{}, fmt.Errorf("cannot load time zone %q of project %q: %w", p.TimeZone, p.ID, err)
		}
		loc = l
	}
	t := b.Tariffs.Tariff(p.Tariff)
	if t == nil {
		return Project{}, fmt.Errorf("cannot find tariff %q of project %q", p.Tariff, p.ID)
	}
	devs, err := ProjectDevices(b, p)
	if err != nil {
		return Project{}, err
	}
	return Project{
		Company: c.ID, ID: p.ID, Name: p.Name, Location: loc, FloorAreaM2: p.FloorAreaM2,
		Buildings: p.Buildings, Tariff: t, Calendar: &b.Rules.WorkOrders.Calendar, Devices: devs,
	}, nil
}

// Month is a calendar month.
type Month struct {
	Year  int
	Month time.Month
}

// ParseMonth parses "YYYY-MM".
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 {
		return Month{}, fmt.Errorf("invalid month %q (want YYYY-MM, e.g. 2026-07)", s)
	}
	return Month{t.Year(), t.Month()}, nil
}

func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// Add returns the month n months later (earlier for negative n).
func (m Month) Add(n int) Month {
	t := time.Date(m.Year, m.Month+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	return Month{t.Year(), t.Month()}
}

// Bounds is the month in loc: local midnight of the 1st to local midnight
// of the next month's 1st.
func (m Month) Bounds(loc *time.Location) (from, to time.Time) {
	return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc), time.Date(m.Year, m.Month+1, 1, 0, 0, 0, 0, loc)
}

// ParseDate parses "YYYY-MM-DD" as local midnight in loc.
func ParseDate(s string, loc *time.Location) (time.Time, error) {
	t, err := time.ParseInLocation(time.DateOnly, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid date %q (want YYYY-MM-DD)", s)
	}
	return t, nil
}

// period is a stretch of a project's time and the schedule pricing it.
type period struct {
	from, to time.Time // to is clipped to now for a running period
	end      time.Time // the period's natural end
	schedule *Schedule
}

// newPeriod lays the project's tariff over [from, end) clipped at now.
func (p *Project) newPeriod(from, end, now time.Time) (*period, error) {
	if !now.After(from) {
		return nil, fmt.Errorf("cannot report on %s in %s: %w", from.Format(time.DateOnly), p.Location, ErrFuture)
	}
	to := end
	if now.Before(to) {
		to = now
	}
	s, err := NewSchedule(p.Tariff, p.Calendar, p.Location, from, to)
	if err != nil {
		return nil, err
	}
	if !s.Contiguous() {
		return nil, fmt.Errorf("cannot price project %q: tariff %q leaves part of %s – %s without a period", p.ID, p.Tariff.ID, from.Format(time.DateOnly), end.Format(time.DateOnly))
	}
	return &period{from: from, to: to, end: end, schedule: s}, nil
}

// requirePriced fails when part of the period has no tariff version.
func (p *Project) requirePriced(pd *period) error {
	for _, sl := range pd.schedule.Slots {
		if !sl.Priced {
			return fmt.Errorf("cannot price project %q on %s: tariff %q: %w (its first version starts %s)",
				p.ID, pd.schedule.Days[sl.Day].Date, p.Tariff.ID, ErrNoTariff, p.Tariff.Versions[0].EffectiveFrom)
		}
	}
	return nil
}

func (p *Project) job(pd *period) Job {
	return Job{Project: p.ID, Devices: p.Devices, Schedule: pd.schedule}
}
