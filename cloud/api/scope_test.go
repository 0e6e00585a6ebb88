package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/internal/promtext"
)

// workOrders is a resource another package would own: who each order
// belongs to and whom it is assigned to.
var workOrders = map[string]access.Resource{
	"wo-1": {Company: "acme", Project: "p1", Assignee: "acme-tech1"},
	"wo-2": {Company: "acme", Project: "p1", Assignee: "someone-else"},
	"wo-3": {Company: "beta", Project: "b1"},
	"wo-4": {Company: "acme", Project: "p1"}, // unassigned
}

func resolveWorkOrder(_ context.Context, id string) (access.Resource, error) {
	if id == "wo-broken" {
		return access.Resource{}, errors.New("store down")
	}
	o, ok := workOrders[id]
	if !ok {
		return access.Resource{}, fmt.Errorf("work order %q: %w", id, api.ErrNotFound)
	}
	return o, nil
}

// TestResourceScopes registers routes the way the alarm and work-order
// packages do and checks the rules they get for free.
func TestResourceScopes(t *testing.T) {
	s := newServer(t, testBundle(t), openStore(t), nil)
	ok := func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"owner": api.OwnerOf(c).Project, "by": api.PrincipalOf(c).Staff})
	}
	s.Register(
		api.Route{Method: http.MethodGet, Path: "/workorders/:workorder", Scope: api.Resource(access.KindWorkOrder, "workorder", resolveWorkOrder), Handler: ok},
		api.Route{Method: http.MethodPost, Path: "/workorders/:workorder/ack", Scope: api.Resource(access.KindWorkOrder, "workorder", resolveWorkOrder).Do(access.Work), Handler: ok},
		api.Route{Method: http.MethodPost, Path: "/projects/:project/notes", Scope: api.Project("project").Do(access.Manage), Handler: func(c echo.Context) error {
			b, err := io.ReadAll(c.Request().Body)
			if err != nil {
				return err
			}
			return c.String(http.StatusOK, fmt.Sprint(len(b)))
		}},
	)
	h := s.Handler()
	f := func(staff, method, path string, want int) {
		t.Helper()
		checkStatus(t, call(t, h, staff, method, path), want, staff+" "+method+" "+path)
	}
	f("acme-tech1", "GET", "/api/v1/workorders/wo-1", 200) // assigned to them
	f("acme-tech1", "GET", "/api/v1/workorders/wo-2", 404) // assigned to someone else
	f("acme-tech1", "GET", "/api/v1/workorders/wo-4", 404) // unassigned: the manager's
	f("acme-pm1", "GET", "/api/v1/workorders/wo-4", 200)
	f("acme-tech1", "POST", "/api/v1/workorders/wo-1/ack", 200)
	f("acme-pm1", "POST", "/api/v1/workorders/wo-1/ack", 403) // visible, but not theirs to work on
	f("acme-pm1", "GET", "/api/v1/workorders/wo-2", 200)      // every order of their project
	f("acme-admin", "GET", "/api/v1/workorders/wo-2", 200)
	f("acme-admin", "GET", "/api/v1/workorders/wo-3", 404) // another company's
	f("beta-pm", "GET", "/api/v1/workorders/wo-3", 200)
	f("acme-admin", "GET", "/api/v1/workorders/wo-9", 404) // no such order
	f("acme-viewer", "GET", "/api/v1/workorders/wo-1", 200)
	f("acme-viewer", "POST", "/api/v1/workorders/wo-1/ack", 403) // read-only role
	f("acme-admin", "GET", "/api/v1/workorders/wo-broken", 500)
	f("acme-pm1", "POST", "/api/v1/projects/p1/notes", 200)
	f("acme-tech1", "POST", "/api/v1/projects/p1/notes", 403) // not among the scope's roles
	f("acme-pm1", "POST", "/api/v1/projects/p2/notes", 404)

	// Body limit: 1 MiB by default.
	req := httptest.NewRequest(http.MethodPost, "/api/v1/projects/p1/notes", strings.NewReader(strings.Repeat("x", 2<<20)))
	req.Header.Set("Authorization", "Bearer "+token("acme-pm1"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	checkStatus(t, rec, http.StatusRequestEntityTooLarge, "big body")
}

func TestRegisterRejectsRoutesWithoutScope(t *testing.T) {
	s := newServer(t, testBundle(t), openStore(t), nil)
	h := func(c echo.Context) error { return nil }
	mustPanic := func(what string, r api.Route) {
		t.Helper()
		defer func() {
			p := recover()
			if p == nil || !strings.HasPrefix(fmt.Sprint(p), "BUG:") {
				t.Errorf("%s: Register did not panic with BUG: (got %v)", what, p)
			}
		}()
		s.Register(r)
	}
	mustPanic("no scope", api.Route{Method: "GET", Path: "/things", Handler: h})
	mustPanic("parameter not in path", api.Route{Method: "GET", Path: "/things/:id", Scope: api.Project("project"), Handler: h})
	mustPanic("resource without resolver", api.Route{Method: "GET", Path: "/alarms/:alarm", Scope: api.Resource("alarm", "alarm", nil), Handler: h})
	mustPanic("unknown action", api.Route{Method: "GET", Path: "/x", Scope: api.AnyStaff().Do("sweep"), Handler: h})
	mustPanic("changing route without action", api.Route{Method: "POST", Path: "/x", Scope: api.AnyStaff(), Handler: h})
	mustPanic("duplicate", api.Route{Method: "GET", Path: "/me", Scope: api.AnyStaff(), Handler: h})
	mustPanic("no handler", api.Route{Method: "GET", Path: "/y", Scope: api.AnyStaff()})
}

func TestServerLifecycle(t *testing.T) {
	s := newServer(t, testBundle(t), openStore(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr()
	get := func(path, reqID string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token("acme-admin"))
		if reqID != "" {
			req.Header.Set("X-Request-Id", reqID)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	if res, body := get("/healthz", ""); res.StatusCode != 200 || !strings.Contains(body, "ok") {
		t.Errorf("healthz: %d %s", res.StatusCode, body)
	}
	if res, body := get("/readyz", ""); res.StatusCode != 200 {
		t.Errorf("readyz: %d %s", res.StatusCode, body)
	}
	res, _ := get("/api/v1/me", "trace-42")
	if res.StatusCode != 200 || res.Header.Get("X-Request-Id") != "trace-42" {
		t.Errorf("me: %d, request id %q", res.StatusCode, res.Header.Get("X-Request-Id"))
	}
	res, _ = get("/api/v1/me", "bad id with spaces")
	if id := res.Header.Get("X-Request-Id"); id == "" || strings.Contains(id, " ") {
		t.Errorf("a malformed request id was kept: %q", id)
	}
	_, body := get("/metrics", "")
	m, err := promtext.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("cannot read /metrics: %v", err)
	}
	if n := m.Int("plantroom_api_requests_total", "code", "200", "method", "GET", "route", "/api/v1/me"); n != 2 {
		t.Errorf("request counter for GET /api/v1/me = %d, want 2:\n%.2000s", n, body)
	}
	s.Stop()
	s.Stop() // idempotent
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after Stop")
	}
}

func TestReadyWithoutClickHouse(t *testing.T) {
	db := openStore(t)
	db.Close() // ClickHouse gone
	s := newServer(t, testBundle(t), db, nil)
	rec := call(t, s.Handler(), "", http.MethodGet, "/readyz")
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz with ClickHouse gone: %d %s", rec.Code, rec.Body.String())
	}
	if rec := call(t, s.Handler(), "", http.MethodGet, "/healthz"); rec.Code != http.StatusOK {
		t.Errorf("healthz must not depend on ClickHouse: %d", rec.Code)
	}
	// A report needs ClickHouse: 5xx in the one error shape, nothing leaked.
	rec = call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/energy/monthly?month=2026-07")
	if rec.Code < 500 || !strings.Contains(rec.Body.String(), `"code":"internal"`) || strings.Contains(rec.Body.String(), "closed") {
		t.Errorf("report with ClickHouse gone: %d %s", rec.Code, rec.Body.String())
	}
}
