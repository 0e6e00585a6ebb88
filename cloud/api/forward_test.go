package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/api"
)

// Forwarded routes are served here while this replica owns them, answer
// 503 while nobody does, and go to the owner otherwise: the request with
// its credentials (the owner checks access again), the answer unchanged.
// Unauthenticated requests are refused here, never forwarded.
func TestForward(t *testing.T) {
	var mu sync.Mutex
	var got []string // what the owner received
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" xff="+r.Header.Get("X-Forwarded-For"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte(`{"served_by":"owner"}`))
	}))
	defer owner.Close()

	s := newServer(t, testBundle(t), openStore(t), nil)
	s.Register(api.Route{Method: http.MethodGet, Path: "/things/:thing", Scope: api.AnyStaff(),
		Handler: func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"served_by": "here"}) }})
	var where struct {
		target    string
		local, ok bool
	}
	s.Forward([]string{"/things/:thing"}, func() (string, bool, bool) { return where.target, where.local, where.ok })
	s.Mount(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"served_by":"console here"}`))
	}))
	s.ForwardMounted(func() (string, bool, bool) { return where.target, where.local, where.ok })
	h := s.Handler()

	servedBy := func(rec *httptest.ResponseRecorder) string {
		var body struct {
			ServedBy string `json:"served_by"`
			Error    struct{ Code string }
		}
		json.Unmarshal(rec.Body.Bytes(), &body)
		return body.ServedBy + body.Error.Code
	}
	where.local, where.ok = true, true
	if rec := call(t, h, "acme-pm1", http.MethodGet, "/api/v1/things/x"); rec.Code != http.StatusOK || servedBy(rec) != "here" {
		t.Errorf("owner here: %d %s", rec.Code, rec.Body)
	}
	if rec := call(t, h, "", http.MethodGet, "/projects/p1"); rec.Code != http.StatusOK || servedBy(rec) != "console here" {
		t.Errorf("console page, owner here: %d %s", rec.Code, rec.Body)
	}
	where.local, where.ok = false, false
	if rec := call(t, h, "acme-pm1", http.MethodGet, "/api/v1/things/x"); rec.Code != http.StatusServiceUnavailable || servedBy(rec) != "unavailable" {
		t.Errorf("no owner: %d %s", rec.Code, rec.Body)
	}
	where.target, where.ok = owner.URL, true
	if rec := call(t, h, "acme-pm1", http.MethodGet, "/api/v1/things/x?from=1"); rec.Code != http.StatusTeapot || servedBy(rec) != "owner" {
		t.Errorf("owner elsewhere: %d %s", rec.Code, rec.Body)
	}
	if rec := call(t, h, "", http.MethodGet, "/api/v1/things/x"); rec.Code != http.StatusUnauthorized {
		t.Errorf("without a token: %d %s", rec.Code, rec.Body)
	}
	// The console's pages go to the owner too (its sessions live there),
	// signed in or not; the operational endpoints do not.
	if rec := call(t, h, "", http.MethodGet, "/projects/p1"); rec.Code != http.StatusTeapot || servedBy(rec) != "owner" {
		t.Errorf("console page, owner elsewhere: %d %s", rec.Code, rec.Body)
	}
	if rec := call(t, h, "", http.MethodGet, "/healthz"); rec.Code != http.StatusOK {
		t.Errorf("/healthz: %d %s", rec.Code, rec.Body)
	}
	// Other routes are not forwarded.
	if rec := call(t, h, "acme-pm1", http.MethodGet, "/api/v1/projects"); rec.Code != http.StatusOK {
		t.Errorf("an own route: %d %s", rec.Code, rec.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || !strings.HasPrefix(got[0], "GET /api/v1/things/x?from=1 Bearer tok-acme-pm1 xff=") || strings.HasSuffix(got[0], "xff=") ||
		!strings.HasPrefix(got[1], "GET /projects/p1  xff=") {
		t.Errorf("the owner received %q, want the API request with its token and X-Forwarded-For, and the console page", got)
	}
	owner.Close()
	if rec := call(t, h, "acme-pm1", http.MethodGet, "/api/v1/things/x"); rec.Code != http.StatusBadGateway || servedBy(rec) != "unavailable" {
		t.Errorf("owner unreachable: %d %s", rec.Code, rec.Body)
	}
}
