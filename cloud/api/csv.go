package api

import (
	"bytes"
	"encoding/csv"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/config"
)

// bom starts every CSV: Excel reads UTF-8 (Chinese project names) only
// with it.
const bom = "\ufeff"

// sendCSV writes rows as a UTF-8 CSV download with a byte-order mark.
func sendCSV(c echo.Context, filename string, rows [][]string) error {
	var b bytes.Buffer
	b.WriteString(bom)
	w := csv.NewWriter(&b)
	w.UseCRLF = true // what Excel writes and expects
	for _, row := range rows {
		for i, cell := range row {
			row[i] = cellText(cell)
		}
	}
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	return c.Blob(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
}

// cellText keeps a text cell from being read as a formula by a
// spreadsheet: names come from configuration people typed, and a cell
// starting with = + - @ (or a tab or carriage return) would be evaluated.
// Numbers are left as they are.
func cellText(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return "'" + s
}

// num formats a figure; a figure that is not finite (which no report
// should hold) is left empty rather than printed as +Inf or NaN.
func num(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func optNum(v *float64) string {
	if v == nil {
		return ""
	}
	return num(*v)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

func localTime(t time.Time) string { return t.Format("2006-01-02 15:04:05") }

// monthlyCSV lays a project's monthly report out as one table: a section
// column says what each row is.
func monthlyCSV(r *energy.Monthly) [][]string {
	rows := [][]string{{"section", "id", "name", "kwh", "cost", "kwh_per_m2", "change_pct", "from", "to", "note"}}
	add := func(cols ...string) { rows = append(rows, append(cols, make([]string, 10-len(cols))...)) }
	note := ""
	if r.Estimated {
		note = "estimated"
	}
	if r.Partial {
		note += " partial"
	}
	add("total", r.Project.ID, r.Project.Name, num(r.KWh), num(r.Cost), num(r.KWhPerM2), "", localTime(r.From), localTime(r.To), note)
	for _, l := range r.ByCategory {
		add("category", l.Key, l.Key, num(l.KWh), num(l.Cost))
	}
	for _, l := range r.ByPeriod {
		add("period", l.Key, l.Key, num(l.KWh), num(l.Cost))
	}
	for _, b := range r.ByBuilding {
		add("building", b.Building, b.Name, num(b.KWh), num(b.Cost), optNum(b.KWhPerM2))
	}
	for _, d := range r.Devices {
		add("device", d.Device, d.Name, num(d.KWh), num(d.Cost), "", "", "", "", d.Category+" "+d.Source+" "+yes(d.Estimated))
	}
	for _, d := range r.MainMeters {
		add("main_meter", d.Device, d.Name, num(d.KWh), num(d.Cost), "", "", "", "", "not in the total")
	}
	for _, ch := range []*energy.Change{r.MonthOverMonth, r.YearOverYear} {
		if ch != nil {
			add("compare", ch.Month, "", num(ch.KWh), optNum(ch.Cost), "", optNum(ch.KWhChangePct), ch.From, ch.To)
		}
	}
	add("completeness", "", "", "", "", "", "", "", "", num(r.Completeness.Ratio))
	for _, g := range r.Completeness.Gaps {
		n := "no readings"
		if g.Interpolated {
			n = "interpolated"
		}
		add("gap", g.Device, "", "", "", "", "", localTime(g.From), localTime(g.To), n)
	}
	for _, d := range r.CounterEvents {
		add("counter_event", d.Device, d.Kind, num(d.KWh), "", "", "", localTime(d.PrevAt), localTime(d.At), num(d.From)+" → "+num(d.To))
	}
	if r.NeedsReview {
		add("needs_review", r.Project.ID, r.Project.Name, "", "", "", "", "", "", "a counter discontinuity was credited 0: check the meter's readings")
	}
	return rows
}

// dailyCSV has one row per day.
func dailyCSV(r *energy.Daily) [][]string {
	head := []string{"date", "kwh", "cost"}
	for _, c := range energy.Categories {
		head = append(head, c+"_kwh")
	}
	for _, p := range config.Periods {
		head = append(head, p+"_kwh")
	}
	head = append(head, "estimated", "partial", "day_type")
	// Main meters are in no sum: a column each, after the day's figures.
	for _, m := range r.MainMeters {
		head = append(head, "main_meter "+m.Device+"_kwh")
	}
	rows := [][]string{head}
	for _, d := range r.Days {
		row := []string{d.Date, num(d.KWh), optNum(d.Cost)}
		for _, c := range energy.Categories {
			row = append(row, num(d.ByCategory[c]))
		}
		for _, p := range config.Periods {
			row = append(row, num(d.ByPeriod[p]))
		}
		row = append(row, yes(d.Estimated), yes(d.Partial), d.DayType)
		for _, m := range r.MainMeters {
			row = append(row, num(d.MainMeters[m.Device]))
		}
		rows = append(rows, row)
	}
	total := make([]string, len(head))
	total[0], total[1], total[2] = "total", num(r.KWh), optNum(r.Cost)
	for i, m := range r.MainMeters {
		total[len(head)-len(r.MainMeters)+i] = num(m.KWh)
	}
	return append(rows, total)
}

// companyCSV has one row per project in rank order, then the company total.
func companyCSV(r *energy.CompanyMonthly) [][]string {
	rows := [][]string{{"rank", "project", "name", "currency", "floor_area_m2", "kwh", "cost", "kwh_per_m2",
		"month_over_month_pct", "year_over_year_pct", "completeness", "estimated", "gaps"}}
	for _, p := range r.Projects {
		rows = append(rows, []string{strconv.Itoa(p.Rank), p.Project, p.Name, p.Currency, num(p.FloorAreaM2),
			num(p.KWh), num(p.Cost), num(p.KWhPerM2), optNum(p.MonthOverMonthPct), optNum(p.YearOverYearPct),
			num(p.Completeness), yes(p.Estimated), strconv.Itoa(p.Gaps)})
	}
	return append(rows, []string{"", r.Company.ID, r.Company.Name, r.Currency, num(r.FloorAreaM2),
		num(r.KWh), optNum(r.Cost), num(r.KWhPerM2), optNum(r.MonthOverMonth.KWhChangePct),
		optNum(r.YearOverYear.KWhChangePct), num(r.Completeness), yes(r.Estimated), ""})
}
