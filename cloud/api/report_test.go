package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

// The "done when" dataset. Every device of acme/p1 reports every 10
// minutes, at hh:05, hh:15, … hh:55 Asia/Shanghai time, from 30 June 2026
// 22:05 to 1 August 2026 01:55: readings on both sides of both month
// boundaries, none on them. Index i counts readings from 30 June 22:05.
//
//	p1-pump  pump, 6 kWh/h (+1.00 per reading). Counter starts at 42949000.00
//	         and wraps at the template's rollover R = 42949672.96: reading 672
//	         (5 July 14:05) is 42949672.00, reading 673 (14:15) is 0.04, so
//	         the step is R − 42949672 + 0.04 = 1.00. A quality-2 reading of 5
//	         at 14:10 must be ignored.
//	p1-elev  elevator, 3 kWh/h (+0.50). Meter replaced: reading 2808
//	         (20 July 10:05) is 0.20 from a new meter, so that step is 0.20,
//	         not 0.50 (0.30 kWh less, in v2's peak at 1.20).
//	p1-light lighting, 1.2 kWh/h (+0.20), building p1-b2. No readings
//	         between 10 July 02:05 and 10:05 (8 h); the counter rose 4.00 over
//	         the gap instead of 9.60. Every reading is delivered twice.
//	p1-main  main meter, 60 kWh/h: listed, left out of every sum.
//	p1-plug  lighting, power only: 500 W throughout (counter never reported).
//	p2-pump  acme/p2, 3 kWh/h.
//	b1-pump  beta/b1, 6 kWh/h (another company: never in acme's reports).
//
// The tariff (testTariffs) changes version on 16 July. July in Shanghai has
// 744 hours; 1–15 July (v1, 15 days) and 16–31 July (v2, 16 days):
//
//	v1 per day: valley 10 h × 0.30, peak 8 h × 1.00, flat 6 h × 0.60
//	v2 per day: valley 10 h × 0.35, peak 8 h × 1.20, critical peak 2 h × 1.50, flat 4 h × 0.70
//
// So a steady r kWh/h over July costs
//
//	r × (150×0.30 + 120×1.00 + 90×0.60 + 160×0.35 + 128×1.20 + 32×1.50 + 64×0.70)
//	= r × (45 + 120 + 54 + 56 + 153.6 + 48 + 44.8) = r × 521.4
//
// and splits valley 310 h, peak 248 h, flat 154 h, critical peak 32 h.
func insertDataset(t *testing.T, db *store.DB) {
	t.Helper()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	start := time.Date(2026, 6, 30, 22, 5, 0, 0, sh)
	const n = 4488 // up to 1 August 01:55
	ts := func(i int) int64 { return start.Add(time.Duration(i) * 10 * time.Minute).UnixMilli() }
	var b store.ReadingBatch
	seq := uint64(1)
	add := func(company, project, gw, dev, metric string, i int, v float64, q protocol.Quality) {
		b.Add(company, project, gw, seq, &protocol.Reading{Device: dev, Metric: metric, TS: ts(i), Value: v, Quality: q})
	}
	round2 := func(v float64) float64 { return math.Round(v*100) / 100 }
	for i := 0; i < n; i++ {
		seq++
		pump := 42949000 + float64(i)
		if i >= 673 {
			pump = round2(float64(i) - 672.96)
		}
		add("acme", "p1", "p1-gw", "p1-pump", "energy_kwh", i, pump, protocol.QualityGood)
		elev := 5000 + 0.5*float64(i)
		if i >= 2808 {
			elev = 0.2 + 0.5*float64(i-2808)
		}
		add("acme", "p1", "p1-gw", "p1-elev", "energy_kwh", i, elev, protocol.QualityGood)
		if i <= 1320 || i >= 1368 {
			light := 100 + 0.2*float64(i)
			if i >= 1368 {
				light = 100 + 0.2*1320 + 4.0 + 0.2*float64(i-1368)
			}
			add("acme", "p1", "p1-gw", "p1-light", "energy_kwh", i, light, protocol.QualityGood)
		}
		add("acme", "p1", "p1-gw", "p1-main", "energy_import_kwh", i, 200000+10*float64(i), protocol.QualityGood)
		add("acme", "p1", "p1-gw", "p1-plug", "power_w", i, 500, protocol.QualityGood)
		add("acme", "p2", "p2-gw", "p2-pump", "energy_kwh", i, 1000+0.5*float64(i), protocol.QualityGood)
		add("beta", "b1", "b1-gw", "b1-pump", "energy_kwh", i, 7+float64(i), protocol.QualityGood)
	}
	// The bad reading inside the rollover hour (5 July 14:10).
	b.Add("acme", "p1", "p1-gw", seq, &protocol.Reading{Device: "p1-pump", Metric: "energy_kwh",
		TS: start.Add(6725 * time.Minute).UnixMilli(), Value: 5, Quality: protocol.QualityBad})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := db.InsertReadings(ctx, &b); err != nil {
		t.Fatal(err)
	}
	// Redeliveries: every lighting reading again, and the rollover day of
	// the pump, under later batch numbers.
	var again store.ReadingBatch
	for i := 0; i < b.Len(); i++ {
		if b.Device[i] == "p1-light" || b.Device[i] == "p1-pump" && b.TS[i] >= ts(600) && b.TS[i] < ts(750) {
			r := protocol.Reading{Device: b.Device[i], Metric: b.Metric[i], TS: b.TS[i], Value: b.Value[i], Quality: protocol.Quality(b.Quality[i])}
			again.Add(b.Company[i], b.Project[i], b.Gateway[i], b.Seq[i]+100000, &r)
		}
	}
	if err := db.InsertReadings(ctx, &again); err != nil {
		t.Fatal(err)
	}
}

func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestMonthlyReportDataset(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	s := newServer(t, testBundle(t), db, nil)
	var r energy.Monthly
	decode(t, call(t, s.Handler(), "acme-pm1", http.MethodGet, "/api/v1/projects/p1/energy/monthly?month=2026-07"), &r)

	// kWh: pump 6×744 = 4464; elevator 3×744 − 0.30 = 2231.7; lighting
	// panel 1.2×744 − 9.6 + 4.0 = 887.2; plug 0.5×744 = 372.
	// Total 4464 + 2231.7 + 887.2 + 372 = 7954.9 (the main meter is not in it).
	within(t, "kwh", r.KWh, 7954.9)
	// Cost: pump 6×521.4 = 3128.40; elevator 3×521.4 − 0.30×1.20 = 1563.84;
	// lighting panel 1.2×521.4 = 625.68, less the steady 02:05–10:05 of
	// 10 July (v1: valley 355 min = 7.1 kWh × 0.30, peak 125 min = 2.5 kWh
	// × 1.00: 4.63), plus the 4.00 kWh spread evenly over those 480 min
	// (4×355/480 × 0.30 + 4×125/480 × 1.00 = 0.8875 + 1.0416667): 622.9791667;
	// plug 0.5×521.4 = 260.70.
	// Sum 5575.9191667 → 5575.92 (half away from zero, on the final sum).
	within(t, "cost", r.Cost, 5575.92)
	within(t, "kwh_per_m2", r.KWhPerM2, 0.7955) // 7954.9 / 10000 = 0.79549
	if !r.Estimated || r.Partial {
		t.Errorf("estimated = %v (gap, power), partial = %v (July is over)", r.Estimated, r.Partial)
	}
	if want := time.Date(2026, 6, 30, 16, 0, 0, 0, time.UTC); !r.From.Equal(want) {
		t.Errorf("from = %s, want %s", r.From, want)
	}

	cat := map[string][2]float64{}
	for _, l := range r.ByCategory {
		cat[l.Key] = [2]float64{l.KWh, l.Cost}
	}
	// lighting: 887.2 + 372 = 1259.2 kWh, 622.9791667 + 260.70 = 883.68.
	for k, want := range map[string][2]float64{
		"pump": {4464, 3128.4}, "elevator": {2231.7, 1563.84}, "lighting": {1259.2, 883.68}, "other": {0, 0},
	} {
		if cat[k] != want {
			t.Errorf("category %s = %v, want %v", k, cat[k], want)
		}
	}
	// Steady rates add to 10.7 kWh/h.
	//   valley: 310×10.7 = 3317 − (7.1 − 2.9583333) = 3312.8583333 kWh;
	//           cost 101×10.7 = 1080.70 − 4.1416667×0.30 = 1079.4575 → 1079.46
	//   peak:   248×10.7 = 2653.6 − 0.30 − (2.5 − 1.0416667) = 2651.8416667;
	//           cost (120 + 153.6)×10.7 = 2927.52 − 0.36 − 1.4583333 = 2925.7016667 → 2925.70
	//   flat:   154×10.7 = 1647.8; cost (54 + 44.8)×10.7 = 1057.16
	//   critical peak: 32×10.7 = 342.4; cost 48×10.7 = 513.60
	per := map[string][2]float64{}
	var order []string
	for _, l := range r.ByPeriod {
		per[l.Key] = [2]float64{l.KWh, l.Cost}
		order = append(order, l.Key)
	}
	for k, want := range map[string][2]float64{
		"valley": {3312.858, 1079.46}, "peak": {2651.842, 2925.70}, "flat": {1647.8, 1057.16}, "critical_peak": {342.4, 513.6},
	} {
		if per[k] != want {
			t.Errorf("period %s = %v, want %v", k, per[k], want)
		}
	}
	if strings.Join(order, ",") != "critical_peak,peak,flat,valley" {
		t.Errorf("period order %v", order)
	}
	// Buildings: p1-b1 holds pump and elevator (the main meter is left
	// out): 6695.7 kWh, 4692.24, 6695.7/6000 = 1.11595 → 1.1160;
	// p1-b2 holds the lighting panel and the plug: 1259.2, 883.68, 0.3148.
	if len(r.ByBuilding) != 2 {
		t.Fatalf("buildings = %+v", r.ByBuilding)
	}
	b1, b2 := r.ByBuilding[0], r.ByBuilding[1]
	if b1.Building != "p1-b1" || b1.KWh != 6695.7 || b1.Cost != 4692.24 || b1.KWhPerM2 == nil || *b1.KWhPerM2 != 1.116 {
		t.Errorf("building 1 = %+v", b1)
	}
	if b2.Building != "p1-b2" || b2.KWh != 1259.2 || b2.Cost != 883.68 || b2.KWhPerM2 == nil || *b2.KWhPerM2 != 0.3148 {
		t.Errorf("building 2 = %+v", b2)
	}
	// Devices ranked by kWh; the plug comes from power, so it is estimated.
	var ids []string
	for _, d := range r.TopDevices {
		ids = append(ids, d.Device)
		if d.Device == "p1-plug" && (d.Source != energy.SourcePower || !d.Estimated || d.KWh != 372) {
			t.Errorf("plug line = %+v", d)
		}
		if d.Device == "p1-pump" && (d.Source != energy.SourceCounter || d.Estimated) {
			t.Errorf("pump line = %+v", d)
		}
	}
	if strings.Join(ids, ",") != "p1-pump,p1-elev,p1-light,p1-plug" {
		t.Errorf("top devices = %v", ids)
	}
	if len(r.MainMeters) != 1 || r.MainMeters[0].Device != "p1-main" || r.MainMeters[0].KWh != 44640 || r.MainMeters[0].Cost != 31284 {
		t.Errorf("main meters = %+v, want p1-main 60×744 = 44640 kWh, 60×521.4 = 31284", r.MainMeters)
	}

	// Counter events inside July: the rollover (1.00 kWh) and the
	// replacement (0.20); no discontinuity, so no review is needed.
	if len(r.CounterEvents) != 2 ||
		r.CounterEvents[0].Device != "p1-pump" || r.CounterEvents[0].Kind != energy.EventRollover || r.CounterEvents[0].KWh != 1 ||
		r.CounterEvents[1].Device != "p1-elev" || r.CounterEvents[1].Kind != energy.EventReplacement || r.CounterEvents[1].KWh != 0.2 {
		t.Errorf("counter events = %+v", r.CounterEvents)
	}
	if r.NeedsReview {
		t.Error("needs_review without a discontinuity")
	}
	// Completeness: 5 devices × 744 h; the lighting panel has no reading in
	// the 7 local hours 03:00–09:59 of 10 July: 3713/3720 = 0.99812 → 0.9981.
	c := r.Completeness
	if c.HoursExpected != 3720 || c.HoursPresent != 3713 || c.Ratio != 0.9981 {
		t.Errorf("completeness = %d/%d %v", c.HoursPresent, c.HoursExpected, c.Ratio)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	if len(c.Gaps) != 1 || c.Gaps[0].Device != "p1-light" || !c.Gaps[0].Interpolated || c.Gaps[0].Hours != 8 ||
		!c.Gaps[0].From.Equal(time.Date(2026, 7, 10, 2, 5, 0, 0, sh)) || !c.Gaps[0].To.Equal(time.Date(2026, 7, 10, 10, 5, 0, 0, sh)) {
		t.Errorf("gaps = %+v", c.Gaps)
	}

	// June has readings only from 30 June 22:05: 115 min × 10.7 kWh/h =
	// 20.5083333 kWh, all in v1's valley: 6.1525 → 6.15.
	// Change: (7954.9 − 20.5083333) / 20.5083333 = +38688.62 %.
	mom := r.MonthOverMonth
	if mom == nil || mom.Month != "2026-06" || mom.KWh != 20.508 || mom.Cost == nil || *mom.Cost != 6.15 ||
		mom.KWhChangePct == nil || *mom.KWhChangePct != 38688.62 || !mom.HasData {
		t.Errorf("month over month = %+v", mom)
	}
	// July 2025: no data, and no tariff version yet: no cost, no change.
	yoy := r.YearOverYear
	if yoy == nil || yoy.Month != "2025-07" || yoy.HasData || yoy.KWh != 0 || yoy.Cost != nil || yoy.KWhChangePct != nil {
		t.Errorf("year over year = %+v", yoy)
	}
}

func TestDailyReportDataset(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	s := newServer(t, testBundle(t), db, nil)
	var r energy.Daily
	decode(t, call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p1/energy/daily?from=2026-06-30&to=2026-07-10"), &r)
	if len(r.Days) != 11 {
		t.Fatalf("days = %d, want 11", len(r.Days))
	}
	// 30 June: readings from 22:05 only: 20.5083333 kWh at valley 0.30.
	d0 := r.Days[0]
	if d0.Date != "2026-06-30" || d0.KWh != 20.508 || d0.Cost == nil || *d0.Cost != 6.15 || !d0.Estimated {
		t.Errorf("30 June = %+v", d0)
	}
	// 1 July: a whole v1 day at 10.7 kWh/h: 256.8 kWh,
	// 10.7 × (10×0.30 + 8×1.00 + 6×0.60) = 10.7 × 14.6 = 156.22.
	d1 := r.Days[1]
	if d1.Date != "2026-07-01" || d1.KWh != 256.8 || *d1.Cost != 156.22 || d1.ByCategory["pump"] != 144 || d1.ByPeriod["peak"] != 85.6 {
		t.Errorf("1 July = %+v", d1)
	}
	// The main meter (60 kWh an hour) is listed apart, in no sum.
	if len(r.MainMeters) != 1 || r.MainMeters[0].Device != "p1-main" || d1.MainMeters["p1-main"] != 1440 || d1.DayType != "working_day" {
		t.Errorf("main meters = %+v, 1 July's = %v (%s)", r.MainMeters, d1.MainMeters, d1.DayType)
	}
	// 10 July: the lighting gap: 256.8 − 9.6 + 4.0 = 251.2 kWh;
	// 156.22 − 4.63 + 1.9291667 = 153.5191667 → 153.52.
	d10 := r.Days[10]
	if d10.Date != "2026-07-10" || d10.KWh != 251.2 || *d10.Cost != 153.52 || !d10.Estimated || d10.ByCategory["lighting"] != 23.2+12 {
		t.Errorf("10 July = %+v", d10)
	}

	rec := call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p1/energy/daily?from=2026-07-01&to=2026-07-01&format=csv")
	rows := readCSV(t, rec)
	if len(rows) != 3 || rows[1][0] != "2026-07-01" || rows[1][1] != "256.8" || rows[1][2] != "156.22" {
		t.Errorf("daily CSV = %v", rows)
	}
}

func TestCompanyReportDataset(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	s := newServer(t, testBundle(t), db, nil)
	var r energy.CompanyMonthly
	decode(t, call(t, s.Handler(), "acme-viewer", http.MethodGet, "/api/v1/energy/monthly?month=2026-07"), &r)
	// p2: 3×744 = 2232 kWh on 1000 m² = 2.232 kWh/m², cost 3×521.4 = 1564.20;
	// p1: 7954.9 kWh on 10000 m² = 0.7955. Company: 10186.9 kWh,
	// 5575.9191667 + 1564.20 = 7140.1191667 → 7140.12, on 11000 m² = 0.9261.
	if len(r.Projects) != 2 {
		t.Fatalf("projects = %+v (beta's must not appear)", r.Projects)
	}
	p2, p1 := r.Projects[0], r.Projects[1]
	if p2.Project != "p2" || p2.Rank != 1 || p2.KWh != 2232 || p2.Cost != 1564.2 || p2.KWhPerM2 != 2.232 {
		t.Errorf("rank 1 = %+v", p2)
	}
	if p1.Project != "p1" || p1.Rank != 2 || p1.KWh != 7954.9 || p1.Cost != 5575.92 || p1.KWhPerM2 != 0.7955 || p1.Gaps != 1 || !p1.Estimated {
		t.Errorf("rank 2 = %+v", p1)
	}
	if r.KWh != 10186.9 || r.Cost == nil || *r.Cost != 7140.12 || r.KWhPerM2 != 0.9261 || r.Currency != "CNY" || r.FloorAreaM2 != 11000 {
		t.Errorf("company totals: kwh %v cost %v kwh/m² %v %s %v", r.KWh, r.Cost, r.KWhPerM2, r.Currency, r.FloorAreaM2)
	}
	// June: p1 20.5083333 + p2 3×115/60 = 5.75 → 26.2583333 kWh; cost ×0.30 = 7.8775 → 7.88.
	// Change (10186.9 − 26.2583333) / 26.2583333 = +38694.92 %.
	m := r.MonthOverMonth
	if m.KWh != 26.258 || m.Cost == nil || *m.Cost != 7.88 || m.KWhChangePct == nil || *m.KWhChangePct != 38694.92 {
		t.Errorf("company month over month = %+v", m)
	}

	// The same month for beta's HQ: only b1.
	var rb energy.CompanyMonthly
	decode(t, call(t, s.Handler(), "beta-admin", http.MethodGet, "/api/v1/energy/monthly?month=2026-07"), &rb)
	if len(rb.Projects) != 1 || rb.Projects[0].Project != "b1" || rb.Company.ID != "beta" {
		t.Errorf("beta's report = %+v", rb.Projects)
	}

	rec := call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/energy/monthly?month=2026-07&format=csv")
	rows := readCSV(t, rec)
	if len(rows) != 4 || rows[1][1] != "p2" || rows[2][2] != "翠湖花园" || rows[3][5] != "10186.9" || rows[3][6] != "7140.12" {
		t.Errorf("company CSV = %v", rows)
	}
}

func TestMonthlyCSV(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	s := newServer(t, testBundle(t), db, nil)
	rec := call(t, s.Handler(), "acme-pm1", http.MethodGet, "/api/v1/projects/p1/energy/monthly?month=2026-07&format=csv")
	if ct := rec.Header().Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	if cd := rec.Header().Get("Content-Disposition"); !strings.Contains(cd, `filename=energy-p1-2026-07.csv`) {
		t.Errorf("content disposition %q", cd)
	}
	rows := readCSV(t, rec)
	total := rows[1]
	if total[0] != "total" || total[2] != "翠湖花园" || total[3] != "7954.9" || total[4] != "5575.92" {
		t.Errorf("total row = %v", total)
	}
	found := map[string]bool{}
	for _, r := range rows {
		found[r[0]+"/"+r[1]] = true
	}
	for _, k := range []string{"category/lighting", "period/critical_peak", "building/p1-b2", "device/p1-plug", "main_meter/p1-main", "gap/p1-light", "counter_event/p1-pump", "compare/2026-06"} {
		if !found[k] {
			t.Errorf("CSV has no %s row", k)
		}
	}
}

// readCSV checks the byte-order mark and parses the CSV.
func readCSV(t *testing.T, rec interface{ Result() *http.Response }) [][]string {
	t.Helper()
	res := rec.Result()
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, buf.String())
	}
	body := buf.Bytes()
	if !bytes.HasPrefix(body, []byte{0xEF, 0xBB, 0xBF}) {
		t.Fatalf("CSV does not start with a UTF-8 BOM: % x", body[:min(3, len(body))])
	}
	rows, err := csv.NewReader(bytes.NewReader(body[3:])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
