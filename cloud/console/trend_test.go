package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/config"
)

// The HQ trend asks the API for every other month of the 13 (a report
// carries the month before and the year before too), and not for the
// months of the report the HQ page it belongs to has just shown.
func TestTrendReusesThePagesReport(t *testing.T) {
	_, con, _ := newServer(t, Config{})
	var mu sync.Mutex
	asked := map[string]int{}
	con.api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/energy/monthly" {
			http.Error(w, "unexpected", http.StatusNotFound)
			return
		}
		m := r.URL.Query().Get("month")
		mu.Lock()
		asked[m]++
		mu.Unlock()
		var month int
		fmt.Sscanf(m[5:], "%d", &month)
		json.NewEncoder(w).Encode(map[string]any{"kwh": float64(100 * month), "month_over_month": map[string]any{"kwh": float64(100*month - 1)},
			"year_over_year": map[string]any{"kwh": float64(100*month - 2)}})
	})
	sess := &Session{Staff: &config.Staff{ID: "hq-admin"}}
	trend := func() map[string]float64 {
		t.Helper()
		rec := httptest.NewRecorder()
		con.hqTrend(rec, httptest.NewRequest(http.MethodGet, "/hq/trend?month=2026-07", nil), sess)
		if rec.Code != http.StatusOK {
			t.Fatalf("trend: %d %s", rec.Code, rec.Body.String())
		}
		var out struct{ Points []trendPoint }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		kwh := map[string]float64{}
		for _, p := range out.Points {
			if p.KWh != nil {
				kwh[p.Month] = *p.KWh
			}
		}
		return kwh
	}
	// As the HQ page does after reading July's report.
	con.hqReports.put("hq-admin/2026-07", trendPoints(&energy.CompanyMonthly{KWh: 7777,
		MonthOverMonth: energy.Comparison{KWh: 6666}, YearOverYear: energy.Comparison{KWh: 5555}}))
	kwh := trend()
	for _, m := range []string{"2026-07", "2026-06", "2025-07"} {
		if asked[m] != 0 {
			t.Errorf("%s asked %d times, want 0 (the page's report has it)", m, asked[m])
		}
	}
	if kwh["2026-07"] != 7777 || kwh["2026-06"] != 6666 || kwh["2025-07"] != 5555 {
		t.Errorf("trend of the page's months: %v", kwh)
	}
	// The others come from every other month's report: May gives April,
	// and so on back to September 2025, which gives August.
	for _, m := range []string{"2026-05", "2026-03", "2026-01", "2025-11", "2025-09"} {
		if asked[m] != 1 {
			t.Errorf("%s asked %d times, want 1", m, asked[m])
		}
	}
	if len(asked) != 5 || kwh["2026-04"] != 499 || kwh["2025-08"] != 899 || len(kwh) != 13 {
		t.Errorf("asked %v; trend %v", asked, kwh)
	}
	// Without the page's report (another month), its month is asked.
	con.trend = newMonthCache(0, 1, con.now)
	con.hqReports = newMonthCache(0, 1, con.now)
	clear(asked)
	trend()
	if asked["2026-07"] != 1 || len(asked) != 6 {
		t.Errorf("without the page's report: asked %v", asked)
	}
}
