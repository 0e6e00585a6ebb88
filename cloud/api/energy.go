package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/timerange"
)

// DefaultReportCacheEntries bounds the computations of finished months the
// API keeps for its monthly and HQ reports (energy.Cache): a month's
// report takes two (the month with the month before, and the month a year
// before); one of a 50-project company holds some hundreds of kB.
const DefaultReportCacheEntries = 64

// warmReports computes every company's HQ report of last month, so that
// the first to ask finds it kept; a month not yet over in every project's
// time zone is left alone (it would not be kept). It runs once after
// Start, in the background, and logs once.
func (s *Server) warmReports(ctx context.Context) {
	now := s.now()
	m := energy.Month{Year: now.Year(), Month: now.Month()}.Add(-1)
	began := time.Now()
	for _, co := range s.deps.Bundle.Org.Companies {
		ref := energy.CompanyRef{ID: co.ID, Name: co.Name}
		var ps []*energy.Project
		over := true
		for _, p := range co.Projects {
			ep := s.energy[p.ID]
			ps = append(ps, ep)
			_, end := m.Bounds(ep.Location)
			over = over && !now.Before(end)
		}
		if !over || len(ps) == 0 {
			continue
		}
		if _, err := s.companyReport(ctx, ref, ps, m); err != nil {
			if ctx.Err() != nil {
				return // stopped
			}
			s.log.Warn("cannot compute last month's HQ report ahead of the first request", "company", co.ID, "month", m.String(), "err", err)
		}
	}
	s.log.Info("last month's HQ reports computed and kept", "month", m.String(), "companies", len(s.deps.Bundle.Org.Companies), "took", time.Since(began).Round(time.Millisecond))
}

// monthlyReport is project p's monthly report, through the report cache.
func (s *Server) monthlyReport(ctx context.Context, p *energy.Project, m energy.Month, top int) (*energy.Monthly, error) {
	if s.reports == nil {
		return energy.MonthlyReport(ctx, s.readings, p, m, s.now(), top)
	}
	return s.reports.MonthlyReport(ctx, p, m, s.now(), top)
}

// companyReport is the HQ report of company ref, through the report cache.
func (s *Server) companyReport(ctx context.Context, ref energy.CompanyRef, ps []*energy.Project, m energy.Month) (*energy.CompanyMonthly, error) {
	if s.reports == nil {
		return energy.CompanyMonthlyReport(ctx, s.readings, ref, ps, m, s.now())
	}
	return s.reports.CompanyMonthlyReport(ctx, ref, ps, m, s.now())
}

// reportCacheCollector exports the report cache's counts.
type reportCacheCollector struct{ c *energy.Cache }

var (
	reportCacheLookups = prometheus.NewDesc("plantroom_api_report_cache_lookups_total",
		"Lookups of finished months' energy computations by result: hit, miss (none kept), changed (readings changed since).", []string{"result"}, nil)
	reportCacheKept = prometheus.NewDesc("plantroom_api_report_cache_kept_total",
		"Energy computations of finished months kept.", nil, nil)
	reportCacheEntries = prometheus.NewDesc("plantroom_api_report_cache_entries",
		"Energy computations held by the report cache.", nil, nil)
)

func (r reportCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reportCacheLookups
	ch <- reportCacheKept
	ch <- reportCacheEntries
}

func (r reportCacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := r.c.Stats()
	ch <- prometheus.MustNewConstMetric(reportCacheLookups, prometheus.CounterValue, float64(st.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(reportCacheLookups, prometheus.CounterValue, float64(st.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(reportCacheLookups, prometheus.CounterValue, float64(st.Changed), "changed")
	ch <- prometheus.MustNewConstMetric(reportCacheKept, prometheus.CounterValue, float64(st.Kept))
	ch <- prometheus.MustNewConstMetric(reportCacheEntries, prometheus.GaugeValue, float64(st.Entries))
}

// energyProjects prepares every project for energy reports once.
func energyProjects(b *config.Bundle) (map[string]*energy.Project, error) {
	out := map[string]*energy.Project{}
	for ci := range b.Org.Companies {
		co := &b.Org.Companies[ci]
		for pi := range co.Projects {
			p, err := energy.NewProject(b, co, &co.Projects[pi])
			if err != nil {
				return nil, err
			}
			out[p.ID] = &p
		}
	}
	return out, nil
}

// format reads the format query parameter: json (default), csv or xlsx.
func format(c echo.Context) (string, error) {
	switch f := c.QueryParam("format"); f {
	case "", "json":
		return "json", nil
	case "csv", "xlsx":
		return f, nil
	default:
		return "", BadRequest("invalid format %q (want json, csv or xlsx)", f)
	}
}

func (s *Server) monthParam(c echo.Context) (energy.Month, error) {
	v := c.QueryParam("month")
	if v == "" {
		return energy.Month{}, BadRequest("query parameter month is required (YYYY-MM, e.g. 2026-07)")
	}
	m, err := energy.ParseMonth(v)
	if err != nil {
		return energy.Month{}, BadRequest("%s", err)
	}
	if err := timerange.Check("month", v, time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, time.UTC), s.now()); err != nil {
		return energy.Month{}, err
	}
	return m, nil
}

func (s *Server) projectMonthly(c echo.Context) error {
	_, pr := ProjectOf(c)
	p := s.energy[pr.ID]
	m, err := s.monthParam(c)
	if err != nil {
		return err
	}
	f, err := format(c)
	if err != nil {
		return err
	}
	top := energy.TopDevices
	if v := c.QueryParam("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return BadRequest("invalid top %q (want 1 to 1000)", v)
		}
		top = n
	}
	rep, err := s.monthlyReport(c.Request().Context(), p, m, top)
	if err != nil {
		return err
	}
	switch f {
	case "csv":
		return sendCSV(c, fmt.Sprintf("energy-%s-%s.csv", p.ID, m), monthlyCSV(rep))
	case "xlsx":
		return sendXLSX(c, fmt.Sprintf("energy-%s-%s.xlsx", p.ID, m), monthlySheets(rep))
	}
	return c.JSON(http.StatusOK, rep)
}

func (s *Server) projectDaily(c echo.Context) error {
	_, pr := ProjectOf(c)
	p := s.energy[pr.ID]
	f, err := format(c)
	if err != nil {
		return err
	}
	fromS, toS := c.QueryParam("from"), c.QueryParam("to")
	if fromS == "" || toS == "" {
		return BadRequest("query parameters from and to are required (YYYY-MM-DD, both days included)")
	}
	from, err := energy.ParseDate(fromS, p.Location)
	if err != nil {
		return BadRequest("from: %s", err)
	}
	if err := timerange.Check("from", fromS, from, s.now()); err != nil {
		return err
	}
	to, err := energy.ParseDate(toS, p.Location)
	if err != nil {
		return BadRequest("to: %s", err)
	}
	if err := timerange.Check("to", toS, to, s.now()); err != nil {
		return err
	}
	if to.Before(from) {
		return BadRequest("to %q is before from %q", toS, fromS)
	}
	if days := int(to.Sub(from).Hours()/24+0.5) + 1; days > energy.MaxDailyDays {
		return BadRequest("from %q to %q is %d days; the limit is %d", fromS, toS, days, energy.MaxDailyDays)
	}
	rep, err := energy.DailyReport(c.Request().Context(), s.readings, p, from, to, s.now())
	if err != nil {
		return err
	}
	switch f {
	case "csv":
		return sendCSV(c, fmt.Sprintf("energy-%s-%s-%s.csv", p.ID, fromS, toS), dailyCSV(rep))
	case "xlsx":
		return sendXLSX(c, fmt.Sprintf("energy-%s-%s-%s.xlsx", p.ID, fromS, toS), dailySheets(rep))
	}
	return c.JSON(http.StatusOK, rep)
}

func (s *Server) companyMonthly(c echo.Context) error {
	pr := PrincipalOf(c)
	m, err := s.monthParam(c)
	if err != nil {
		return err
	}
	f, err := format(c)
	if err != nil {
		return err
	}
	var ref energy.CompanyRef
	var ps []*energy.Project
	for _, co := range s.deps.Bundle.Org.Companies {
		if co.ID != pr.Company {
			continue
		}
		ref = energy.CompanyRef{ID: co.ID, Name: co.Name}
		for _, p := range co.Projects {
			ps = append(ps, s.energy[p.ID])
		}
	}
	rep, err := s.companyReport(c.Request().Context(), ref, ps, m)
	if err != nil {
		return err
	}
	switch f {
	case "csv":
		return sendCSV(c, fmt.Sprintf("energy-%s-%s.csv", ref.ID, m), companyCSV(rep))
	case "xlsx":
		return sendXLSX(c, fmt.Sprintf("energy-%s-%s.xlsx", ref.ID, m), companySheets(rep))
	}
	return c.JSON(http.StatusOK, rep)
}
