package workorderhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/config"
)

var staffRole = map[string]string{
	"hq-admin": config.RoleHQAdmin, "hq-viewer": config.RoleHQViewer, "pm-garden": config.RoleProjectManager,
	"pm-tower": config.RoleProjectManager, "tech-garden-1": config.RoleTechnician, "tech-garden-2": config.RoleTechnician,
	"tech-tower-1": config.RoleTechnician, "beta-admin": config.RoleHQAdmin, "beta-tech": config.RoleTechnician,
}

// hiddenFrom lists, per staff member, JSON strings that must appear in no
// response they get (ids quoted as JSON values, so an id echoed inside an
// error message does not count).
var hiddenFrom = map[string][]string{
	"hq-admin":      {`"beta"`, `"harbour"`, `"harbour-pump"`},
	"hq-viewer":     {`"beta"`, `"harbour"`, `"harbour-pump"`},
	"pm-garden":     {`"tower"`, `"tower-pump-1"`, `"beta"`, `"harbour"`},
	"tech-garden-1": {`"tower"`, `"tower-pump-1"`, `"beta"`, `"harbour"`},
	"tech-garden-2": {`"tower"`, `"tower-pump-1"`, `"beta"`, `"harbour"`},
	"pm-tower":      {`"garden"`, `"garden-pump-1"`, `"beta"`, `"harbour"`},
	"tech-tower-1":  {`"garden"`, `"garden-pump-1"`, `"beta"`, `"harbour"`},
	"beta-admin":    {`"acme"`, `"garden"`, `"tower"`, `"garden-pump-1"`},
	"beta-tech":     {`"acme"`, `"garden"`, `"tower"`, `"garden-pump-1"`},
}

// TestAccessMatrix calls every alarm and work-order route as every staff
// member of two companies, on resources of each project and company and on
// ones that do not exist, and checks the status against rules written out
// here by hand.
func TestAccessMatrix(t *testing.T) {
	r := newAPIRig(t)
	r.raiseDemoAlarms()
	alarms := map[string]string{"garden": r.alarmOf("garden-pump-1").ID, "tower": r.alarmOf("tower-pump-1").ID, "beta": r.alarmOf("harbour-pump").ID, "none": "no-such-alarm"}
	orders := map[string]string{"garden": r.orderOf("garden-pump-1").ID, "tower": r.orderOf("tower-pump-1").ID, "beta": r.orderOf("harbour-pump").ID, "none": "no-such-order"}
	devices := map[string]string{"garden": "garden-pump-1", "tower": "tower-pump-1", "beta": "harbour-pump", "none": "no-such-device"}
	assignee := map[string]string{"garden": "tech-garden-1", "tower": "tech-tower-1", "beta": "beta-tech"}

	// seesProject: where each staff member works.
	seesProject := func(staff, where string) bool {
		switch staff {
		case "hq-admin", "hq-viewer":
			return where == "garden" || where == "tower"
		case "pm-garden", "tech-garden-1", "tech-garden-2":
			return where == "garden"
		case "pm-tower", "tech-tower-1":
			return where == "tower"
		case "beta-admin", "beta-tech":
			return where == "beta"
		}
		return false
	}
	seesOrder := func(staff, where string) bool {
		if staffRole[staff] == config.RoleTechnician {
			return assignee[where] == staff
		}
		return seesProject(staff, where)
	}
	type route struct {
		method, path string
		body         any
		status       func(staff, where string) int
	}
	readable := func(sees func(string, string) bool) func(string, string) int {
		return func(staff, where string) int {
			if !sees(staff, where) {
				return http.StatusNotFound
			}
			return http.StatusOK
		}
	}
	changing := func(sees func(string, string) bool, ok int) func(string, string) int {
		return func(staff, where string) int {
			switch {
			case !sees(staff, where):
				return http.StatusNotFound
			case staffRole[staff] == config.RoleHQViewer:
				return http.StatusForbidden
			}
			return ok
		}
	}
	always := func(staff, _ string) int { return http.StatusOK }
	hqOnly := func(staff, _ string) int {
		if r := staffRole[staff]; r == config.RoleHQAdmin || r == config.RoleHQViewer {
			return http.StatusOK
		}
		return http.StatusForbidden
	}
	// Each order (but "none") carries a photo: its assignee attached it to
	// accepting the order.
	photos := map[string]string{"none": strings.Repeat("0", 64)}
	for i, where := range []string{"garden", "tower", "beta"} {
		ph, err := r.photos.Save(context.Background(), bytes.NewReader(testJPEG(t, uint8(40*i))))
		if err != nil {
			t.Fatal(err)
		}
		photos[where] = ph.ID
		var w workorder.WorkOrder
		r.decode(r.call(assignee[where], "POST", "/api/v1/workorders/"+orders[where]+"/transitions",
			workorder.TransitionRequest{To: workorder.StateAccepted, Photos: []string{ph.ID}}), http.StatusOK, &w)
	}
	// Arriving is the assignee's alone.
	arriving := func(staff, where string) int {
		switch {
		case !seesOrder(staff, where):
			return http.StatusNotFound
		case assignee[where] != staff:
			return http.StatusForbidden
		}
		return http.StatusCreated
	}
	var routes []route
	for where := range alarms {
		routes = append(routes,
			route{"GET", "/api/v1/alarms/" + alarms[where], nil, readable(seesProject)},
			route{"POST", "/api/v1/alarms/" + alarms[where] + "/ack", map[string]string{"note": "seen"}, changing(seesProject, http.StatusOK)},
			route{"GET", "/api/v1/workorders/" + orders[where], nil, readable(seesOrder)},
			route{"POST", "/api/v1/workorders/" + orders[where] + "/transitions", map[string]string{"to": "closed"}, changing(seesOrder, http.StatusConflict)},
			route{"GET", "/api/v1/devices/" + devices[where] + "/history", nil, readable(seesProject)},
			// A body that is no picture: refused by content once the scope let it in.
			route{"POST", "/api/v1/workorders/" + orders[where] + "/photos", "not a photo", changing(seesOrder, http.StatusUnsupportedMediaType)},
			route{"GET", "/api/v1/workorders/" + orders[where] + "/photos/" + photos[where] + "?size=thumb", nil, readable(seesOrder)},
			route{"POST", "/api/v1/workorders/" + orders[where] + "/arrival", nil, arriving},
		)
		if where != "none" {
			// Another order's photo through this order: not found, even
			// for staff who may see both.
			other := photos[map[string]string{"garden": "tower", "tower": "garden", "beta": "garden"}[where]]
			routes = append(routes, route{"GET", "/api/v1/workorders/" + orders[where] + "/photos/" + other, nil,
				func(string, string) int { return http.StatusNotFound }})
		}
	}
	routes = append(routes,
		route{"GET", "/api/v1/alarms?state=active", nil, always},
		route{"GET", "/api/v1/workorders", nil, always},
		route{"POST", "/api/v1/workorders", workorder.NewOrder{Project: "garden", Title: "楼道灯不亮"}, changing(seesProject, http.StatusCreated)},
		route{"GET", "/api/v1/stats/monthly?month=2025-03", nil, hqOnly},
	)
	covered := map[string]bool{}
	for _, rt := range routes {
		where := "garden"
		for w, id := range map[string]string{"tower": "tower", "beta": "harbour", "none": "no-such"} {
			if strings.Contains(rt.path, id) {
				where = w
			}
		}
		if rt.method == "POST" && rt.path == "/api/v1/workorders" {
			where = "garden"
		}
		if r.call("", rt.method, rt.path, rt.body).Code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: not 401", rt.method, rt.path)
		}
		for staff := range staffRole {
			rec := r.call(staff, rt.method, rt.path, rt.body)
			if want := rt.status(staff, where); rec.Code != want {
				t.Errorf("%s %s %s: status %d, want %d: %.300s", staff, rt.method, rt.path, rec.Code, want, rec.Body.String())
			}
			if rec.Code >= 400 {
				var body struct {
					Error struct{ Code, Message, RequestID string } `json:"error"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
					t.Errorf("%s %s %s: error body %s", staff, rt.method, rt.path, rec.Body.String())
				}
			}
			for _, s := range hiddenFrom[staff] {
				if strings.Contains(rec.Body.String(), s) {
					t.Errorf("%s %s %s: response leaks %s", staff, rt.method, rt.path, s)
				}
			}
		}
		covered[rt.method+" "+templateOf(rt.path)] = true
	}
	// The policy asked directly answers the same as the routes.
	for _, s := range r.b.Org.Staff {
		if _, ok := staffRole[s.ID]; !ok {
			continue
		}
		p := access.Principal{Staff: s.ID, Role: s.Role, Company: s.Company, Projects: s.Projects}
		for _, where := range []string{"garden", "tower", "beta"} {
			a, w := r.alarmOf(devices[where]), r.orderOf(devices[where])
			if got, want := p.Sees(a.Resource()), seesProject(s.ID, where); got != want {
				t.Errorf("policy: %s sees the %s alarm: %v, want %v", s.ID, where, got, want)
			}
			if got, want := p.Sees(w.Resource()), seesOrder(s.ID, where); got != want {
				t.Errorf("policy: %s sees the %s order: %v, want %v", s.ID, where, got, want)
			}
			mayAck := seesProject(s.ID, where) && s.Role != config.RoleHQViewer
			if got := p.May(access.Acknowledge, a.Resource()); got != mayAck {
				t.Errorf("policy: %s may acknowledge the %s alarm: %v, want %v", s.ID, where, got, mayAck)
			}
		}
	}
	// Every registered route of these packages is in the matrix (the stream
	// has its own test).
	for _, ri := range r.srv.Routes() {
		key := ri.Method + " " + ri.Path
		mine := strings.Contains(key, "/alarms") || strings.Contains(key, "/workorders") || strings.Contains(key, "/history") || strings.Contains(key, "/stats")
		if mine && !covered[key] && key != "GET /api/v1/alarms/stream" {
			t.Errorf("route %s is not in the access matrix", key)
		}
	}
}

// templateOf turns a called path back into its route template.
func templateOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	names := map[string]string{"alarms": ":alarm", "workorders": ":workorder", "devices": ":device", "photos": ":photo"}
	for i := 3; i < len(parts); i++ {
		if n, ok := names[parts[i-1]]; ok && !slices.Contains([]string{"stream"}, parts[i]) {
			parts[i] = n
		}
	}
	return strings.Join(parts, "/")
}
