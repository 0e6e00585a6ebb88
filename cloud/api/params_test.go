package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/energy"
)

func TestReportParameters(t *testing.T) {
	s := newServer(t, testBundle(t), openStore(t), nil) // now: 1 September 2026
	f := func(path string, want int, code string) {
		t.Helper()
		rec := call(t, s.Handler(), "acme-admin", http.MethodGet, path)
		checkStatus(t, rec, want, path)
		if code != "" && !strings.Contains(rec.Body.String(), `"code":"`+code+`"`) {
			t.Errorf("%s: %s, want code %s", path, rec.Body.String(), code)
		}
	}
	f("/api/v1/projects/p1/energy/monthly", 400, "bad_request")                 // month missing
	f("/api/v1/projects/p1/energy/monthly?month=2026-7", 400, "bad_request")    // malformed
	f("/api/v1/projects/p1/energy/monthly?month=2026-13", 400, "bad_request")   // no such month
	f("/api/v1/projects/p1/energy/monthly?month=2026-10", 400, "bad_request")   // not started yet
	f("/api/v1/projects/p1/energy/monthly?month=2025-12", 422, "unprocessable") // before the tariff's first version
	f("/api/v1/projects/p1/energy/monthly?month=2026-07&format=pdf", 400, "bad_request")
	f("/api/v1/projects/p1/energy/monthly?month=2026-07&top=0", 400, "bad_request")
	f("/api/v1/projects/p1/energy/monthly?month=2026-07&top=5", 200, "")
	f("/api/v1/projects/p1/energy/daily?from=2026-07-01", 400, "bad_request") // to missing
	f("/api/v1/projects/p1/energy/daily?from=2026-07-05&to=2026-07-01", 400, "bad_request")
	f("/api/v1/projects/p1/energy/daily?from=2025-01-01&to=2026-07-01", 400, "bad_request") // over 366 days
	f("/api/v1/projects/p1/energy/daily?from=2026-07-01&to=2026-07-32", 400, "bad_request")
	f("/api/v1/energy/monthly?month=July", 400, "bad_request")

	// Days after now are listed, empty and partial; days before the tariff
	// have no cost.
	var d energy.Daily
	decode(t, call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p1/energy/daily?from=2026-08-31&to=2026-09-02"), &d)
	if len(d.Days) != 3 || d.Days[0].Partial || !d.Days[1].Partial || !d.Days[2].Partial {
		t.Errorf("days around now = %+v", d.Days)
	}
	decode(t, call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p1/energy/daily?from=2025-12-31&to=2026-01-01"), &d)
	if d.Cost != nil || d.Days[0].Cost != nil || d.Days[1].Cost == nil {
		t.Errorf("daily across the tariff's start: total %v, days %+v", d.Cost, d.Days)
	}
}

// TestRunningMonth reports July while it runs: up to now, marked partial.
func TestRunningMonth(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	s := newServer(t, testBundle(t), db, func(d *api.Deps) {
		d.Now = func() time.Time { return time.Date(2026, 7, 20, 0, 0, 0, 0, sh) }
	})
	var r energy.Monthly
	decode(t, call(t, s.Handler(), "acme-pm1", http.MethodGet, "/api/v1/projects/p1/energy/monthly?month=2026-07"), &r)
	// 1–19 July, 456 h: pump 6 × 456 = 2736, elevator 3 × 456 = 1368 (its
	// meter is replaced on the 20th), lighting 1.2 × 456 − 9.6 + 4.0 = 541.6,
	// plug 0.5 × 456 = 228: 4873.6 kWh.
	if !r.Partial || r.KWh != 4873.6 || !r.To.Equal(time.Date(2026, 7, 20, 0, 0, 0, 0, sh)) {
		t.Errorf("running July: partial %v, %v kWh, to %s", r.Partial, r.KWh, r.To)
	}
	// The comparison covers the same 19 days of June, which have no data.
	if m := r.MonthOverMonth; m.From != "2026-06-01" || m.To != "2026-06-20" || m.HasData || m.KWhChangePct != nil {
		t.Errorf("month over month = %+v", m)
	}
}

// TestTimeParametersBounded: every time parameter outside 2000-01-01 …
// now+366 days is a 400 naming the allowed range, never a 500.
func TestTimeParametersBounded(t *testing.T) {
	s := newServer(t, testBundle(t), openStore(t), nil) // now: 1 September 2026
	for _, path := range []string{
		"/api/v1/devices/p1-pump/series?metric=outlet_pressure_bar&to=9999-12-31T23:59:59Z",
		"/api/v1/devices/p1-pump/series?metric=outlet_pressure_bar&from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z",
		"/api/v1/devices/p1-pump/series?metric=outlet_pressure_bar&from=9999-12-30&to=9999-12-31",
		"/api/v1/projects/p1/energy/monthly?month=9999-12",
		"/api/v1/projects/p1/energy/monthly?month=1000-01",
		"/api/v1/projects/p1/energy/daily?from=9999-12-30&to=9999-12-31",
		"/api/v1/projects/p1/energy/daily?from=1000-01-01&to=1000-01-02",
		"/api/v1/energy/monthly?month=0001-01",
	} {
		rec := call(t, s.Handler(), "acme-admin", http.MethodGet, path)
		checkStatus(t, rec, 400, path)
		if !strings.Contains(rec.Body.String(), "outside the allowed range 2000-01-01T00:00:00Z to 2027-09-02T12:00:00Z") {
			t.Errorf("%s: %s, want the allowed range", path, rec.Body.String())
		}
	}
}
