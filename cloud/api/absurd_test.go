package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

// TestReportsSurviveAbsurdStoredValues: readings stored as good before any
// range check (1.7e308 and -1.7e308 on counters, a plug's power of
// 1.7e308) never make a report answer 500 or print Inf/NaN; the rest of
// the project is served.
func TestReportsSurviveAbsurdStoredValues(t *testing.T) {
	db := openStore(t)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	start := time.Date(2026, 7, 1, 0, 5, 0, 0, sh)
	var b store.ReadingBatch
	for i := 0; i < 6*24*31; i++ {
		ts := start.Add(time.Duration(i) * 10 * time.Minute).UnixMilli()
		add := func(dev, metric string, v float64) {
			b.Add("acme", "p1", "p1-gw", uint64(i+1), &protocol.Reading{Device: dev, Metric: metric, TS: ts, Value: v})
		}
		add("p1-main", "energy_import_kwh", 200000+10*float64(i))
		add("p1-light", "energy_kwh", 100+0.2*float64(i))
		pump := 1000 + 0.5*float64(i)
		elev := 5000 + 0.5*float64(i)
		plug := 500.0
		switch i {
		case 2000, 2001:
			pump = 1.7e308
			elev = -1.7e308
			plug = 1.7e308
		case 2002:
			pump, elev = 1.7e308, 1.7e308
		}
		add("p1-pump", "energy_kwh", pump)
		add("p1-elev", "energy_kwh", elev)
		add("p1-plug", "power_w", plug)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.InsertReadings(ctx, &b); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, testBundle(t), db, nil)
	for _, path := range []string{
		"/api/v1/projects/p1/energy/monthly?month=2026-07",
		"/api/v1/projects/p1/energy/monthly?month=2026-08", // July is the comparison
		"/api/v1/projects/p1/energy/monthly?month=2026-07&format=csv",
		"/api/v1/projects/p1/energy/daily?from=2026-07-01&to=2026-07-31",
		"/api/v1/projects/p1/energy/daily?from=2026-07-01&to=2026-07-31&format=csv",
		"/api/v1/energy/monthly?month=2026-07",
		"/api/v1/energy/monthly?month=2026-07&format=csv",
		"/api/v1/devices/p1-pump/series?metric=energy_kwh&from=2026-07-14&to=2026-07-16",
		"/api/v1/devices/p1-plug/series?metric=power_w&from=2026-07-14&to=2026-07-16",
		"/api/v1/projects/p1/devices",
	} {
		rec := call(t, s.Handler(), "acme-admin", http.MethodGet, path)
		body := rec.Body.String()
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", path, rec.Code, body)
			continue
		}
		figures := body
		if !strings.Contains(path, "csv") && !strings.Contains(path, "/series") {
			// counter_events is the audit of the readings set aside: it
			// shows the raw values. The figures must not hold them.
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			delete(m, "counter_events")
			out, _ := json.Marshal(m)
			figures = string(out)
		}
		for _, bad := range []string{"Inf", "NaN", "e+308", "e+30"} {
			// A series shows what is stored (finite, however absurd); the
			// reports must not add it up.
			if strings.Contains(figures, bad) && !(strings.Contains(path, "/series") && strings.HasPrefix(bad, "e+")) {
				t.Errorf("%s: the answer holds %q:\n%.600s", path, bad, body)
			}
		}
		if strings.HasSuffix(path, "/p1/energy/monthly?month=2026-07") && (!strings.Contains(body, `"device":"p1-light","name":"公共照明","kind":"lighting","category":"lighting","building":"p1-b2","main_meter":false,"source":"counter","kwh":892.6`) ||
			!strings.Contains(body, `{"device":"p1-plug","at":"2026-07-14T21:35:00+08:00","kind":"outlier"`)) {
			t.Errorf("%s: the rest of the project is not served, or the plug is not flagged:\n%s", path, body)
		}
	}
}
