package energy

import (
	"context"
	"sort"
	"time"
)

// CompanyMonthly is the HQ view of a month: every project of a company
// ranked by energy intensity, with company totals.
type CompanyMonthly struct {
	Company CompanyRef `json:"company"`
	Month   string     `json:"month"`
	// Currency is the projects' common currency; "" when they differ, and
	// then the company cost is null.
	Currency       string     `json:"currency"`
	KWh            float64    `json:"kwh"`
	Cost           *float64   `json:"cost"`
	FloorAreaM2    float64    `json:"floor_area_m2"`
	KWhPerM2       float64    `json:"kwh_per_m2"`
	Estimated      bool       `json:"estimated"`
	Partial        bool       `json:"partial"`
	MonthOverMonth Comparison `json:"month_over_month"`
	YearOverYear   Comparison `json:"year_over_year"`
	Completeness   float64    `json:"completeness"`
	// ByCategory and ByPeriod add the projects' lines of the same name
	// (kWh; cost as the projects' common currency, 0 when they differ).
	ByCategory []Line `json:"by_category"`
	ByPeriod   []Line `json:"by_period"`
	// NeedsReview: some project's month has a counter discontinuity.
	NeedsReview bool          `json:"needs_review"`
	Projects    []ProjectLine `json:"projects"`
}

// CompanyRef names a company.
type CompanyRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Comparison is a total of an earlier stretch and the change since.
type Comparison struct {
	Month         string   `json:"month"`
	KWh           float64  `json:"kwh"`
	Cost          *float64 `json:"cost"`
	HasData       bool     `json:"has_data"`
	KWhChangePct  *float64 `json:"kwh_change_pct"`
	CostChangePct *float64 `json:"cost_change_pct"`
}

// ProjectLine is one project in the HQ ranking.
type ProjectLine struct {
	Rank              int      `json:"rank"` // 1: highest kWh/m²
	Project           string   `json:"project"`
	Name              string   `json:"name"`
	TimeZone          string   `json:"time_zone"`
	Currency          string   `json:"currency"`
	FloorAreaM2       float64  `json:"floor_area_m2"`
	KWh               float64  `json:"kwh"`
	Cost              float64  `json:"cost"`
	KWhPerM2          float64  `json:"kwh_per_m2"`
	MonthOverMonthPct *float64 `json:"month_over_month_pct"`
	YearOverYearPct   *float64 `json:"year_over_year_pct"`
	Completeness      float64  `json:"completeness"`
	Estimated         bool     `json:"estimated"`
	Gaps              int      `json:"gaps"`
	Partial           bool     `json:"partial"`
	CounterEvents     int      `json:"counter_events"` // of the month, every kind
	NeedsReview       bool     `json:"needs_review"`   // one of them is a discontinuity
}

// CompanyMonthlyReport computes the HQ report of month m over projects ps
// of company c (each month in its project's own time zone).
func CompanyMonthlyReport(ctx context.Context, src Readings, c CompanyRef, ps []*Project, m Month, now time.Time) (*CompanyMonthly, error) {
	return companyMonthly(ctx, src, nil, c, ps, m, now)
}

func companyMonthly(ctx context.Context, src Readings, cache *Cache, c CompanyRef, ps []*Project, m Month, now time.Time) (*CompanyMonthly, error) {
	rep := &CompanyMonthly{Company: c, Month: m.String(), Projects: []ProjectLine{}, ByCategory: []Line{}, ByPeriod: []Line{}}
	rep.MonthOverMonth.Month = m.Add(-1).String()
	rep.YearOverYear.Month = m.Add(-12).String()
	if len(ps) == 0 {
		return rep, nil
	}
	res, err := computeMonths(ctx, src, cache, c.ID, ps, m, now)
	if err != nil {
		return nil, err
	}
	var all, prev, yoy totals
	currencies := map[string]bool{}
	byCat, byPer := map[string]*Line{}, map[string]*Line{}
	var catOrder, perOrder []string
	add := func(m map[string]*Line, order *[]string, lines []Line) {
		for _, l := range lines {
			if m[l.Key] == nil {
				m[l.Key] = &Line{Key: l.Key}
				*order = append(*order, l.Key)
			}
			m[l.Key].KWh += l.KWh
			m[l.Key].Cost += l.Cost
		}
	}
	for i, p := range ps {
		mr := res[i]
		pm := buildMonthly(p, m, mr, 0)
		add(byCat, &catOrder, pm.ByCategory)
		add(byPer, &perOrder, pm.ByPeriod)
		t := sum(mr.cur)
		pt, yt := sum(mr.prev), sum(mr.yoy)
		line := ProjectLine{
			Project: p.ID, Name: p.Name, TimeZone: p.Location.String(), Currency: p.Tariff.Currency,
			FloorAreaM2: p.FloorAreaM2, KWh: KWh(t.kwh), Cost: Cents(t.cost),
			Completeness: t.ratio(), Estimated: t.estimated, Partial: mr.curPd.to.Before(mr.curPd.end),
			MonthOverMonthPct: changePct(t.kwh, pt), YearOverYearPct: changePct(t.kwh, yt),
		}
		for j := range mr.cur.Devices {
			d := &mr.cur.Devices[j]
			line.Gaps += len(d.Gaps)
			line.CounterEvents += len(d.Events)
			line.NeedsReview = line.NeedsReview || d.NeedsReview()
		}
		rep.NeedsReview = rep.NeedsReview || line.NeedsReview
		if p.FloorAreaM2 > 0 {
			line.KWhPerM2 = Round(t.kwh/p.FloorAreaM2, 4)
		}
		rep.Projects = append(rep.Projects, line)
		currencies[p.Tariff.Currency] = true
		rep.FloorAreaM2 += p.FloorAreaM2
		rep.Estimated = rep.Estimated || t.estimated
		rep.Partial = rep.Partial || line.Partial
		all = addTotals(all, t)
		prev = addTotals(prev, pt)
		yoy = addTotals(yoy, yt)
	}
	sort.SliceStable(rep.Projects, func(i, j int) bool {
		a, b := rep.Projects[i], rep.Projects[j]
		if a.KWhPerM2 != b.KWhPerM2 {
			return a.KWhPerM2 > b.KWhPerM2
		}
		return a.Project < b.Project
	})
	for i := range rep.Projects {
		rep.Projects[i].Rank = i + 1
	}
	rep.KWh = KWh(all.kwh)
	rep.Completeness = all.ratio()
	if rep.FloorAreaM2 > 0 {
		rep.KWhPerM2 = Round(all.kwh/rep.FloorAreaM2, 4)
	}
	sameCurrency := len(currencies) == 1
	if sameCurrency {
		for c := range currencies {
			rep.Currency = c
		}
		rep.Cost = ptr(Cents(all.cost))
	}
	sort.SliceStable(perOrder, func(i, j int) bool { return periodOrder(perOrder[i]) < periodOrder(perOrder[j]) })
	for _, k := range catOrder {
		l := *byCat[k]
		l.KWh, l.Cost = KWh(l.KWh), Cents(l.Cost)
		if !sameCurrency {
			l.Cost = 0
		}
		rep.ByCategory = append(rep.ByCategory, l)
	}
	for _, k := range perOrder {
		l := *byPer[k]
		l.KWh, l.Cost = KWh(l.KWh), Cents(l.Cost)
		if !sameCurrency {
			l.Cost = 0
		}
		rep.ByPeriod = append(rep.ByPeriod, l)
	}
	rep.MonthOverMonth = comparison(rep.MonthOverMonth.Month, all, prev, sameCurrency && !prev.unpriced)
	rep.YearOverYear = comparison(rep.YearOverYear.Month, all, yoy, sameCurrency && !yoy.unpriced)
	return rep, nil
}

func addTotals(a, b totals) totals {
	a.kwh += b.kwh
	a.cost += b.cost
	a.unpriced = a.unpriced || b.unpriced
	a.present += b.present
	a.expected += b.expected
	a.estimated = a.estimated || b.estimated
	a.hasData = a.hasData || b.hasData
	return a
}

func changePct(cur float64, prev totals) *float64 {
	if !prev.hasData || prev.kwh <= 0 {
		return nil
	}
	return ptr(Round((cur-prev.kwh)/prev.kwh*100, 2))
}

func comparison(month string, cur, prev totals, costOK bool) Comparison {
	c := Comparison{Month: month, KWh: KWh(prev.kwh), HasData: prev.hasData, KWhChangePct: changePct(cur.kwh, prev)}
	if costOK {
		c.Cost = ptr(Cents(prev.cost))
		if prev.hasData && prev.cost > 0 {
			c.CostChangePct = ptr(Round((cur.cost-prev.cost)/prev.cost*100, 2))
		}
	}
	return c
}
