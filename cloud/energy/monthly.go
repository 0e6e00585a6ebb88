package energy

import (
	"cmp"
	"context"
	"sort"
	"sync"
	"time"
)

// Monthly is a project's monthly energy report.
type Monthly struct {
	Project ProjectRef `json:"project"`
	Month   string     `json:"month"`
	From    time.Time  `json:"from"` // local midnight of the 1st
	To      time.Time  `json:"to"`   // local midnight of the next 1st, or now while the month runs
	// Partial: the month is still running; figures run up to To.
	Partial        bool           `json:"partial"`
	KWh            float64        `json:"kwh"`
	Cost           float64        `json:"cost"`
	KWhPerM2       float64        `json:"kwh_per_m2"`
	Estimated      bool           `json:"estimated"`
	ByCategory     []Line         `json:"by_category"`
	ByPeriod       []Line         `json:"by_period"`
	ByBuilding     []BuildingLine `json:"by_building"`
	TopDevices     []DeviceLine   `json:"top_devices"`
	Devices        []DeviceLine   `json:"devices"`
	MainMeters     []DeviceLine   `json:"main_meters"`
	MonthOverMonth *Change        `json:"month_over_month"`
	YearOverYear   *Change        `json:"year_over_year"`
	Completeness   Completeness   `json:"completeness"`
	// CounterEvents lists every counter event of the month; NeedsReview
	// is set when one is a discontinuity (credited 0: energy may be missing).
	CounterEvents []EventLine `json:"counter_events"`
	NeedsReview   bool        `json:"needs_review"`
}

// TopDevices is how many devices a report ranks by default.
const TopDevices = 10

// MonthlyReport computes project p's report for month m as of now, with
// the same stretch of the previous month and of the month a year before
// for comparison.
func MonthlyReport(ctx context.Context, src Readings, p *Project, m Month, now time.Time, top int) (*Monthly, error) {
	res, err := computeMonths(ctx, src, nil, p.Company, []*Project{p}, m, now)
	if err != nil {
		return nil, err
	}
	return buildMonthly(p, m, res[0], top), nil
}

// monthResult is one project's computation for a month and its comparisons.
type monthResult struct {
	cur, prev, yoy       *Result
	curPd, prevPd, yoyPd *period
}

// computeMonths computes month m for every project, and the comparison
// stretches, with one store round per month; through cache (when not nil)
// once the month is over in every project.
func computeMonths(ctx context.Context, src Readings, cache *Cache, company string, ps []*Project, m Month, now time.Time) ([]monthResult, error) {
	out := make([]monthResult, len(ps))
	var cur, prev, yoy []Job
	over := true
	for i, p := range ps {
		from, end := m.Bounds(p.Location)
		pd, err := p.newPeriod(from, end, now)
		if err != nil {
			return nil, err
		}
		if err := p.requirePriced(pd); err != nil {
			return nil, err
		}
		elapsed := pd.to.Sub(pd.from)
		cmp := func(cm Month) (*period, error) {
			f, e := cm.Bounds(p.Location)
			to := f.Add(elapsed)
			if pd.to.Equal(pd.end) || to.After(e) {
				to = e // a whole month compares with a whole month
			}
			return p.newPeriod(f, to, to)
		}
		out[i].curPd = pd
		over = over && pd.to.Equal(pd.end)
		if out[i].prevPd, err = cmp(m.Add(-1)); err != nil {
			return nil, err
		}
		if out[i].yoyPd, err = cmp(m.Add(-12)); err != nil {
			return nil, err
		}
		cur = append(cur, p.job(pd))
		prev = append(prev, p.job(out[i].prevPd))
		yoy = append(yoy, p.job(out[i].yoyPd))
	}
	// The month and the one before are adjacent: one read covers both,
	// and the readings around their common edge are read once. The month a
	// year before is read at the same time.
	compute := func(jobs []Job) ([]Result, error) {
		if cache != nil && over {
			return cache.compute(ctx, company, jobs)
		}
		return Compute(ctx, src, company, jobs)
	}
	var (
		wg             sync.WaitGroup
		recent, before []Result
		errRecent, err error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		recent, errRecent = compute(append(cur, prev...))
	}()
	before, err = compute(yoy)
	wg.Wait()
	if err = cmp.Or(errRecent, err); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].cur, out[i].prev, out[i].yoy = &recent[i], &recent[len(cur)+i], &before[i]
	}
	return out, nil
}

func buildMonthly(p *Project, m Month, mr monthResult, top int) *Monthly {
	if top <= 0 {
		top = TopDevices
	}
	r, pd := mr.cur, mr.curPd
	t := sum(r)
	rep := &Monthly{
		Project: ProjectRef{ID: p.ID, Name: p.Name, TimeZone: p.Location.String(), FloorAreaM2: p.FloorAreaM2,
			Tariff: p.Tariff.ID, Currency: p.Tariff.Currency},
		Month: m.String(), From: pd.from.In(p.Location), To: pd.to.In(p.Location).Truncate(time.Millisecond),
		Partial: pd.to.Before(pd.end),
		KWh:     KWh(t.kwh), Cost: Cents(t.cost), Estimated: t.estimated,
		MonthOverMonth: newChange(m.Add(-1), mr.prevPd, mr.prev, t),
		YearOverYear:   newChange(m.Add(-12), mr.yoyPd, mr.yoy, t),
		Completeness: Completeness{Ratio: t.ratio(), HoursPresent: t.present, HoursExpected: t.expected,
			Gaps: gapLines(r, p.Location)},
		CounterEvents: eventLines(r, p.Location),
		Devices:       []DeviceLine{},
		MainMeters:    []DeviceLine{},
	}
	if p.FloorAreaM2 > 0 {
		rep.KWhPerM2 = Round(t.kwh/p.FloorAreaM2, 4)
	}
	cats := map[string]*[2]float64{}
	periods := map[string]*[2]float64{}
	buildings := map[string]*[2]float64{}
	add := func(m map[string]*[2]float64, k string, kwh, cost float64) {
		v := m[k]
		if v == nil {
			v = &[2]float64{}
			m[k] = v
		}
		v[0] += kwh
		v[1] += cost
	}
	for _, s := range pd.schedule.Slots {
		add(periods, s.Period, 0, 0)
	}
	for i := range r.Devices {
		d := &r.Devices[i]
		line := deviceLine(d)
		rep.NeedsReview = rep.NeedsReview || line.NeedsReview
		if d.Device.MainMeter {
			rep.MainMeters = append(rep.MainMeters, line)
			continue
		}
		rep.Devices = append(rep.Devices, line)
		add(cats, d.Device.Category, d.KWh, d.Cost)
		add(buildings, d.Device.Building, d.KWh, d.Cost)
		for si, e := range d.Slots {
			s := &pd.schedule.Slots[si]
			add(periods, s.Period, e, e*s.Price)
		}
	}
	for _, c := range Categories {
		v := cats[c]
		if v == nil {
			v = &[2]float64{}
		}
		rep.ByCategory = append(rep.ByCategory, Line{Key: c, KWh: KWh(v[0]), Cost: Cents(v[1])})
	}
	for k, v := range periods {
		rep.ByPeriod = append(rep.ByPeriod, Line{Key: k, KWh: KWh(v[0]), Cost: Cents(v[1])})
	}
	sort.Slice(rep.ByPeriod, func(i, j int) bool { return periodOrder(rep.ByPeriod[i].Key) < periodOrder(rep.ByPeriod[j].Key) })
	rep.ByBuilding = buildingLines(p, buildings)
	sort.SliceStable(rep.Devices, func(i, j int) bool { return rep.Devices[i].KWh > rep.Devices[j].KWh })
	rep.TopDevices = rep.Devices[:min(top, len(rep.Devices))]
	return rep
}

func buildingLines(p *Project, sums map[string]*[2]float64) []BuildingLine {
	out := []BuildingLine{}
	for _, b := range p.Buildings {
		v := sums[b.ID]
		if v == nil {
			v = &[2]float64{}
		}
		l := BuildingLine{Building: b.ID, Name: b.Name, FloorAreaM2: b.FloorAreaM2, KWh: KWh(v[0]), Cost: Cents(v[1])}
		if b.FloorAreaM2 > 0 {
			l.KWhPerM2 = ptr(Round(v[0]/b.FloorAreaM2, 4))
		}
		out = append(out, l)
		delete(sums, b.ID)
	}
	if v := sums[""]; v != nil {
		out = append(out, BuildingLine{Building: "", Name: "", KWh: KWh(v[0]), Cost: Cents(v[1])})
	}
	return out
}
