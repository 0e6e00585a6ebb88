package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/config"
)

// The access matrix. Every route the server registers must have an entry
// here saying which roles may use it (on resources they can see) and a
// query that makes a valid call; a new route without one fails
// TestAccessMatrix. Path parameters are filled from paramFixtures, so a
// route that forgets its scope check answers 200 where 404 is due and
// fails too.
//
// Adding routes from another package: register them in accessServer below
// (as cmd/cloud does), list them here, and give paramFixtures entries for
// new path parameters.
var accessTable = map[string]struct {
	roles []string // roles that may use the route
	query string
}{
	"GET /api/v1/me":                               {roles: allRoles},
	"GET /api/v1/openapi.yaml":                     {roles: allRoles},
	"GET /api/v1/projects":                         {roles: allRoles},
	"GET /api/v1/projects/:project":                {roles: allRoles},
	"GET /api/v1/projects/:project/devices":        {roles: allRoles},
	"GET /api/v1/devices/:device":                  {roles: allRoles},
	"GET /api/v1/devices/:device/series":           {roles: allRoles, query: "?metric=energy_kwh&from=2026-07-01&to=2026-07-03"},
	"GET /api/v1/projects/:project/energy/monthly": {roles: []string{hqAdmin, hqViewer, pm}, query: "?month=2026-07"},
	"GET /api/v1/projects/:project/energy/daily":   {roles: []string{hqAdmin, hqViewer, pm}, query: "?from=2026-07-01&to=2026-07-02"},
	"GET /api/v1/energy/monthly":                   {roles: []string{hqAdmin, hqViewer}, query: "?month=2026-07"},
}

const (
	hqAdmin  = config.RoleHQAdmin
	hqViewer = config.RoleHQViewer
	pm       = config.RoleProjectManager
	tech     = config.RoleTechnician
)

var allRoles = []string{hqAdmin, hqViewer, pm, tech}

// staffRoles are the fixture's staff members and their roles.
var staffRoles = map[string]string{
	"acme-admin": hqAdmin, "acme-viewer": hqViewer, "acme-pm1": pm, "acme-tech1": tech,
	"beta-admin": hqAdmin, "beta-pm": pm,
}

// paramFixtures: for each path parameter, resources and who can see them,
// written out by hand from testOrg.
var paramFixtures = map[string][]struct {
	id      string
	visible []string
}{
	"project": {
		{"p1", []string{"acme-admin", "acme-viewer", "acme-pm1", "acme-tech1"}},
		{"p2", []string{"acme-admin", "acme-viewer"}},
		{"b1", []string{"beta-admin", "beta-pm"}},
		{"no-such-project", nil},
	},
	"device": {
		{"p1-pump", []string{"acme-admin", "acme-viewer", "acme-pm1", "acme-tech1"}},
		{"p2-pump", []string{"acme-admin", "acme-viewer"}},
		{"b1-pump", []string{"beta-admin", "beta-pm"}},
		{"no-such-device", nil},
	},
}

// hidden lists, per staff member, quoted ids and names that must appear in
// no response they get.
var hidden = map[string][]string{
	"acme-admin":  betaStrings,
	"acme-viewer": betaStrings,
	"acme-pm1":    append(p2Strings, betaStrings...),
	"acme-tech1":  append(p2Strings, betaStrings...),
	"beta-admin":  append(p2Strings, p1Strings...),
	"beta-pm":     append(p2Strings, p1Strings...),
}

var (
	p1Strings   = []string{`"p1"`, `"p1-pump"`, `"p1-light"`, `"翠湖花园"`, `"一号楼"`, `"p1-gw"`, `"acme"`}
	p2Strings   = []string{`"p2"`, `"p2-pump"`, `"p2-gw"`, `"滨江中心"`, `"加压泵"`}
	betaStrings = []string{`"b1"`, `"b1-pump"`, `"b1-gw"`, `"Harbour View"`, `"Harbour pump"`, `"beta"`, `"Beta Estates"`}
)

// accessServer is the server as deployed, with every package's routes.
func accessServer(t *testing.T) *api.Server {
	db := openStore(t)
	insertDataset(t, db)
	return newServer(t, testBundle(t), db, nil)
}

func TestAccessMatrix(t *testing.T) {
	s := accessServer(t)
	h := s.Handler()
	routes := s.Routes()
	if len(routes) < len(accessTable) {
		t.Fatalf("server registers %d routes, the access table lists %d", len(routes), len(accessTable))
	}
	for _, r := range routes {
		key := r.Method + " " + r.Path
		entry, ok := accessTable[key]
		if !ok {
			t.Errorf("route %s has no entry in accessTable: say which roles may use it", key)
			continue
		}
		// The policy itself, asked directly, agrees with the table: a role
		// may take the route's action on a visible resource exactly when
		// the table lists it.
		for _, role := range allRoles {
			if got, want := r.Scope.Allows(role), slices.Contains(entry.roles, role); got != want {
				t.Errorf("%s: access policy allows %s to %s: %v, table says %v", key, role, r.Scope.Action(), got, want)
			}
		}
		t.Run(strings.TrimPrefix(key, "GET /api/v1/"), func(t *testing.T) {
			// No token, a malformed header and an unknown token: 401.
			target := fillFirst(r.Path) + entry.query
			for _, auth := range []string{"", "Bearer", "Basic dXNlcjpwdw==", "Bearer not-a-token"} {
				req := httptest.NewRequest(r.Method, target, nil)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				checkStatus(t, rec, http.StatusUnauthorized, "auth "+auth)
			}
			params := pathParamsOf(r.Path)
			for staff, role := range staffRoles {
				for _, target := range targets(t, r.Path, params, staff) {
					want := http.StatusOK
					switch {
					case !target.visible:
						want = http.StatusNotFound
					case !slices.Contains(entry.roles, role):
						want = http.StatusForbidden
					}
					rec := call(t, h, staff, r.Method, target.path+entry.query)
					checkStatus(t, rec, want, staff+" "+target.path)
					for _, s := range hidden[staff] {
						if strings.Contains(rec.Body.String(), s) {
							t.Errorf("%s %s: response leaks %s", staff, target.path, s)
						}
					}
				}
			}
		})
	}
}

type target struct {
	path    string
	visible bool
}

// targets fills a route's path parameters with every combination of
// fixtures; a target is visible when every resource in it is.
func targets(t *testing.T, path string, params []string, staff string) []target {
	out := []target{{path: path, visible: true}}
	for _, p := range params {
		fx, ok := paramFixtures[p]
		if !ok {
			t.Fatalf("no fixtures for path parameter :%s; add them to paramFixtures", p)
		}
		var next []target
		for _, tg := range out {
			for _, f := range fx {
				next = append(next, target{
					path:    strings.Replace(tg.path, ":"+p, f.id, 1),
					visible: tg.visible && slices.Contains(f.visible, staff),
				})
			}
		}
		out = next
	}
	return out
}

// fillFirst fills every path parameter with its first fixture.
func fillFirst(path string) string {
	for p, fx := range paramFixtures {
		path = strings.ReplaceAll(path, ":"+p, fx[0].id)
	}
	return path
}

func pathParamsOf(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if name, ok := strings.CutPrefix(seg, ":"); ok {
			out = append(out, name)
		}
	}
	return out
}

// checkStatus asserts a status and, for errors, the one error shape with
// the request id of the response header.
func checkStatus(t *testing.T, rec *httptest.ResponseRecorder, want int, what string) {
	t.Helper()
	if rec.Code != want {
		t.Errorf("%s: status %d, want %d: %.300s", what, rec.Code, want, rec.Body.String())
		return
	}
	if want < 400 {
		return
	}
	var body struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: error body is not JSON: %v: %s", what, err, rec.Body.String())
		return
	}
	e := body.Error
	if e.Code == "" || e.Message == "" || e.RequestID == "" || e.RequestID != rec.Header().Get("X-Request-Id") {
		t.Errorf("%s: error body %s (X-Request-Id %q)", what, rec.Body.String(), rec.Header().Get("X-Request-Id"))
	}
}

// Spot checks of the rules the matrix derives, written out on their own.
func TestAccessRules(t *testing.T) {
	s := accessServer(t)
	h := s.Handler()
	f := func(staff, path string, want int) {
		t.Helper()
		checkStatus(t, call(t, h, staff, http.MethodGet, path), want, staff+" "+path)
	}
	f("acme-tech1", "/api/v1/energy/monthly?month=2026-07", http.StatusForbidden)             // no HQ report for technicians
	f("acme-pm1", "/api/v1/energy/monthly?month=2026-07", http.StatusForbidden)               // nor for project managers
	f("acme-tech1", "/api/v1/projects/p1/energy/monthly?month=2026-07", http.StatusForbidden) // energy is for managers and HQ
	f("acme-tech1", "/api/v1/projects/p1/devices", http.StatusOK)                             // devices of their project
	f("acme-pm1", "/api/v1/projects/p2/devices", http.StatusNotFound)                         // P1's manager sees nothing of P2
	f("acme-pm1", "/api/v1/devices/p2-pump", http.StatusNotFound)
	f("acme-admin", "/api/v1/projects/b1", http.StatusNotFound) // company A's HQ sees nothing of B
	f("acme-admin", "/api/v1/devices/b1-pump/series?metric=energy_kwh", http.StatusNotFound)
	f("beta-admin", "/api/v1/projects/p1/energy/monthly?month=2026-07", http.StatusNotFound)
	f("acme-viewer", "/api/v1/projects/p2/energy/monthly?month=2026-07", http.StatusOK)

	// The lists are filtered by the handler.
	var list struct {
		Projects []struct{ ID string } `json:"projects"`
	}
	decode(t, call(t, h, "acme-pm1", http.MethodGet, "/api/v1/projects"), &list)
	if len(list.Projects) != 1 || list.Projects[0].ID != "p1" {
		t.Errorf("acme-pm1 lists %+v", list.Projects)
	}
	decode(t, call(t, h, "acme-admin", http.MethodGet, "/api/v1/projects"), &list)
	if len(list.Projects) != 2 {
		t.Errorf("acme-admin lists %+v", list.Projects)
	}
	// Unknown routes under the prefix need a token too, then answer 404.
	checkStatus(t, call(t, h, "", http.MethodGet, "/api/v1/nothing-here"), http.StatusUnauthorized, "unknown route")
	checkStatus(t, call(t, h, "acme-admin", http.MethodGet, "/api/v1/nothing-here"), http.StatusNotFound, "unknown route")
	checkStatus(t, call(t, h, "acme-admin", http.MethodPost, "/api/v1/projects"), http.StatusMethodNotAllowed, "wrong method")
}
