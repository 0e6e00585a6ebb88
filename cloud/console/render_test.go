package console

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/config"
)

// Every page renders with every list filled and every optional part
// present, so a renamed field of the API's answers fails here rather than
// in front of a user.
func TestPagesRender(t *testing.T) {
	_, con, _ := newServer(t, Config{})
	staff := &config.Staff{ID: "pm-garden", Name: "张伟", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"garden"}}
	sess := &Session{Staff: staff, Principal: api.NewPrincipal(*staff, nil), CSRF: "tok"}
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	f := 12.5
	yes := true
	alarm := alarmView{ID: "a1", Company: "acme", Project: "garden", Device: "garden-elevator-1", Category: "elevator", RuleName: "困人 <b>", Severity: "critical", State: "active", RaisedAt: now, Count: 2, CanAck: true}
	order := orderView{ID: "wo-1", Project: "garden", Device: "garden-pump-1", Source: "alarm", Title: "<script>alert(1)</script>", Severity: "critical", State: "assigned", Assignee: "tech-garden-1",
		Follows: "wo-<u>0", OpenedAt: now, SLADue: now.Add(-time.Hour), History: []orderEvent{{Action: "assign", At: now, Who: "system", From: "open", To: "assigned", Note: "note <i>"}}}
	dev := deviceView{ID: "garden-pump-1", Name: "1号泵", Kind: "pump", Project: "garden", State: "online", LastSeen: &now,
		Values: map[string]metricValue{"outlet_pressure_bar": {Value: 3.2, Unit: "bar", At: now}, "running": {Value: 1, State: "running"}}}
	var pv projectView
	pv.ID, pv.Name = "garden", "翠湖花园"
	pv.Gateways = append(pv.Gateways, struct {
		ID       string     `json:"id"`
		Name     string     `json:"name"`
		Building string     `json:"building"`
		Devices  int        `json:"devices"`
		Online   *bool      `json:"online"`
		Since    *time.Time `json:"since"`
	}{ID: "gw", Name: "泵房", Online: &yes, Since: &now})
	line := energy.Line{Key: "pump", KWh: 1, Cost: 1}
	monthly := &energy.Monthly{KWh: 10, Cost: 5, ByCategory: []energy.Line{line}, ByPeriod: []energy.Line{{Key: "peak", KWh: 1}},
		ByBuilding: []energy.BuildingLine{{Building: "b", Name: "一号楼", KWhPerM2: &f}}, TopDevices: []energy.DeviceLine{{Device: "d", Name: "泵", Estimated: true}},
		MainMeters: []energy.DeviceLine{{Device: "m", Name: "总表"}}, MonthOverMonth: &energy.Change{KWhChangePct: &f}, YearOverYear: &energy.Change{},
		Completeness:  energy.Completeness{Ratio: 0.9, Gaps: []energy.GapLine{{Device: "d", From: now, To: now, Hours: 2}}},
		CounterEvents: []energy.EventLine{{Device: "d", At: now, Kind: "replacement", From: 9, To: 1, KWh: 1}}, NeedsReview: true}
	monthly.Project.Currency = "CNY"
	company := &energy.CompanyMonthly{KWh: 10, Cost: &f, Currency: "CNY", Projects: []energy.ProjectLine{{Rank: 1, Project: "garden", Name: "翠湖花园", Gaps: 2, MonthOverMonthPct: &f}},
		ByCategory: []energy.Line{line}, ByPeriod: []energy.Line{line}}
	stats := &projectStats{Project: "garden", MTTA: &f}
	pages := map[string]any{
		"signin": signinData{Expired: true, Error: "signin.wrong"},
		"error":  nil,
		"hq": hqData{Month: "2026-11", Report: company, Rows: []hqRow{{ProjectLine: company.Projects[0], ActiveAlarms: 1, CriticalAlarms: 1, OpenOrders: 2, OverdueOrders: 1, Stats: stats}},
			SLA: slaSummary{CompliancePct: &f, MTTA: &f}, Residents: &residentStats{Total: residentRow{Requests: 1},
				Projects: []residentRow{{Project: "garden", Name: "翠湖花园", Requests: 1, ByCategory: map[string]int{"pump": 1}, Resolved: 1, MTTA: &f, MTTR: &f, Rated: 1, Satisfaction: &f}}}, Faults: []hqFault{{fault: fault{Name: "困人", Category: "elevator", Code: &f, Count: 3}, ProjectName: "翠湖花园"}}},
		"project": projectData{Project: pv, Devices: []deviceView{dev}, Month: "2026-11", Report: monthly, Alarms: []alarmView{alarm}, Orders: []orderView{order},
			States: orderStates, Chart: projectChart{Days: []string{"2026-11-01"}, KWh: []float64{1}}, Now: now},
		"device": deviceData{Device: dev, Metrics: []string{"outlet_pressure_bar", "running"}, Alarms: []alarmView{alarm}, Orders: []orderView{order}, Now: now, CanCreate: true, Created: "wo-<b>"},
		"alarms": alarmsData{Alarms: []alarmView{alarm}},
		"my":     myData{Orders: []myOrder{{orderView: order, Moves: []string{"accepted", "in_progress", "resolved", "closed", "cancelled", "assigned"}, Due: true, Late: true, H: 1}}, Now: now},
		"request": &residentForm{Link: "abc", ProjectName: "翠湖花园", Categories: []string{"elevator", "pump", "lighting", "other"},
			Category: "pump", Location: "一号楼 <b>", Description: "<script>alert(1)</script>", Phone: "138", Problem: "note <i>", Limited: true, RetryMin: 5},
		"track": &trackView{Token: "t", ProjectName: "翠湖花园", Category: "other", Location: "一号楼 <b>", Description: "<script>alert(1)</script>", Phone: "138****5678",
			Status: "resolved", SubmittedAt: now, ResolvedAt: now, CanRate: true, Problem: "note <i>",
			Steps: []trackStep{{Key: "submitted", Done: true}, {Key: "assigned", Done: true}, {Key: "in_progress", Done: true}, {Key: "resolved", Done: true, Now: true}}},
		"requests": &requestsData{Project: projectHead{ID: "garden", Name: "翠湖花园"}, Link: "http://x/r/abc", QR: "data:image/png;base64,AA==", LinkAt: now, LinkBy: "pm-garden",
			Requests: []requestView{{ID: "rq-1", WorkOrder: "wo-1", State: "resolved", Category: "lighting", Location: "一号楼 <b>", Description: "<script>alert(1)</script>",
				Phone: "138****5678", SubmittedAt: now, Rating: 4, Comment: "note <i>"}}},
		"order": func() orderData {
			o := order
			o.AlarmID, o.Descr, o.ArrivedAt = "a1", "描述 <b>", now
			o.History = append([]orderEvent{}, o.History...)
			o.History = append(o.History, orderEvent{Action: "arrive", At: now, Who: "tech-garden-1", To: "assigned", Note: "note <i>"})
			o.History[1].Photos = append(o.History[1].Photos, struct {
				ID     string `json:"id"`
				Width  int    `json:"width"`
				Height int    `json:"height"`
			}{ID: "ab12"})
			rec := &alarmRecord{alarmView: alarm}
			rec.Steps = append(rec.Steps, struct {
				Kind      string    `json:"kind"`
				At        time.Time `json:"at"`
				Who       string    `json:"who"`
				Note      string    `json:"note"`
				Value     float64   `json:"value"`
				ReadingTS time.Time `json:"reading_ts"`
			}{Kind: "raise", At: now, Value: 1, Note: "note <i>"})
			return orderData{Order: o, Device: &dev, Building: "一号楼 <b>", Project: "翠湖花园", Alarm: rec, Moves: []string{"accepted", "closed", "cancelled"},
				Due: true, H: 1, M: 2, Now: now, MaxPhotos: 10, MaxMB: 10}
		}(),
		"labels": labelsData{Project: pv, Labels: []deviceLabel{{Device: dev, Building: "一号楼 <b>", URL: "http://x/d/garden-pump-1", QR: "data:image/png;base64,AA=="}}},
	}
	for _, name := range pageNames {
		data, ok := pages[name]
		if !ok {
			t.Fatalf("page %q has no test data here", name)
		}
		for _, lang := range Languages {
			p := &page{L: con.cats.locale(lang, time.UTC), Sess: sess, CSRF: "tok", Nav: Nav{Projects: []navProject{{"garden", "翠湖花园"}}}, Data: data, Notice: "error.not_found"}
			var b bytes.Buffer
			if err := con.views.pages[name].ExecuteTemplate(&b, "layout.html", p); err != nil {
				t.Fatalf("page %s (%s): %v", name, lang, err)
			}
			out := b.String()
			if (name == "project" || name == "device") && !strings.Contains(out, "wo-&lt;u&gt;0") {
				t.Errorf("page %s (%s) does not show the order the listed order follows", name, lang)
			}
			if strings.Contains(out, "⟦") {
				i := strings.Index(out, "⟦")
				t.Errorf("page %s (%s) shows a missing catalogue key near %q", name, lang, out[i:min(len(out), i+60)])
			}
			if strings.Contains(out, "<script>alert(1)") || strings.Contains(out, "note <i>") || strings.Contains(out, "困人 <b>") || strings.Contains(out, "一号楼 <b>") || strings.Contains(out, "wo-<b>") || strings.Contains(out, "wo-<u>0") || strings.Contains(out, "描述 <b>") {
				t.Errorf("page %s (%s) shows user text unescaped", name, lang)
			}
		}
	}
	// The device list alone, as the project page polls it.
	var b bytes.Buffer
	p := &page{L: con.cats.locale("zh-CN", time.UTC), Data: projectData{Devices: []deviceView{dev}}}
	if err := con.views.pages["project"].ExecuteTemplate(&b, "devices", p); err != nil {
		t.Fatal(err)
	}
}
