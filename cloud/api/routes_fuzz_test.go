package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/command"
	"github.com/plantroom/plantroom/cloud/command/commandhttp"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
)

// Values the generator draws from: valid ids of several tenants, edge
// cases of each parameter kind, and garbage.
var (
	genIDs = []string{"p1", "p2", "b1", "p1-pump", "p1-plug", "p1-main", "b1-pump", "wo-m-20260101T000000-abcdef", "al-1",
		"", "x", "..", "%2e%2e", "null", "0", "-1", "ü", "漏水", strings.Repeat("a", 300), "a b", "<script>", "a%00b", "%ff"}
	genTimes = []string{"2026-07-01", "2026-07-01T00:00:00Z", "2026-07-01T00:00:00+08:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
		"1999-12-31", "2026-13-01", "2026-02-30", "yesterday", "", "2026-07", "-1", "1e9", "2026-07-01T25:00:00Z"}
	genMonths = []string{"2026-07", "2026-08", "2025-07", "9999-12", "0001-01", "2026-13", "2026-7", "", "July", "2026-07-01"}
	genWords  = []string{"", "power_kw", "energy_kwh", "outlet_pressure_bar", "invented", "1h", "1d", "7d", "csv", "xlsx", "pdf", "json",
		"open", "assigned", "closed", "critical", "-5", "0", "1", "99999999999999999999", "NaN", "Inf", "true", "\x00", strings.Repeat("z", 2000)}
	// genValid are ids that exist, by path parameter: most requests reach
	// the handler's own checks.
	genValid  = map[string][]string{"project": {"p1", "p2", "b1"}, "device": {"p1-pump", "p1-plug", "p1-main", "p1-elev", "b1-pump"}}
	genParams = []string{"from", "to", "month", "metric", "step", "format", "top", "limit", "since", "until", "state", "project",
		"severity", "device", "assignee", "source", "category"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func genQuery(r *rand.Rand) string {
	q := url.Values{}
	for _, name := range genParams {
		if r.IntN(10) >= 3 {
			continue
		}
		var v string
		switch name {
		case "from", "to", "since", "until":
			v = pick(r, genTimes)
		case "month":
			v = pick(r, genMonths)
		case "project", "device", "assignee":
			v = pick(r, genIDs)
		case "metric":
			v = pick(r, []string{"energy_kwh", "outlet_pressure_bar", "power_w", "energy_import_kwh", "invented", ""})
		default:
			v = pick(r, genWords)
		}
		q.Add(name, v)
	}
	return q.Encode()
}

func genBody(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return ""
	case 1:
		return pick(r, []string{"{", "null", "[]", "42", `"x"`, "{\"to\":", strings.Repeat("[", 10000)})
	}
	m := map[string]any{}
	for _, k := range []string{"project", "device", "category", "title", "description", "skill", "priority", "sla", "to", "note", "photo", "assignee"} {
		if r.IntN(2) == 0 {
			continue
		}
		switch r.IntN(4) {
		case 0:
			m[k] = pick(r, genIDs)
		case 1:
			m[k] = pick(r, genWords)
		case 2:
			m[k] = pick(r, []any{-1, 0, 3, 1e308, true, nil, []int{1}})
		default:
			m[k] = pick(r, []string{"assigned", "accepted", "in_progress", "resolved", "closed", "cancelled", "tech-1", "2h", "-3h"})
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestRoutesNeverFail drives every registered route with generated path
// ids, query parameters and bodies, as each role, and fails on any 5xx or
// panic. The seed is fixed; 400 requests per route cover the value lists
// many times (about 8,800 requests, a few seconds).
func TestRoutesNeverFail(t *testing.T) {
	b := testBundle(t)
	db := openStore(t, slices.Concat(alarm.Migrations(), workorder.Migrations(), command.Migrations())...)
	insertDataset(t, db)
	feed := alarm.NewFeed(0, time.Now)
	desk, err := workorder.New(workorder.Config{Org: &b.Org, Rules: &b.Rules, Log: workorder.NewClickHouseLog(db.Conn()), Feed: feed, CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := alarm.New(alarm.Config{Org: &b.Org, Rules: &b.Rules, Log: alarm.NewClickHouseLog(db.Conn()), Feed: feed,
		Sinks: []alarm.Sink{desk}, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := desk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(desk.Stop)
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Stop)
	s := newServer(t, b, db, nil)
	s.Register(alarmhttp.Routes(engine)...)
	s.Register(workorderhttp.Routes(desk, engine, photo.New(photo.Dir(t.TempDir()), 0))...)
	s.Register(commandhttp.Routes(commandDesk(t, b, db, feed))...)

	r := rand.New(rand.NewPCG(11, 2026))
	staff := []string{"acme-admin", "acme-viewer", "acme-pm1", "acme-tech1", "beta-admin", ""}
	requests := 0
	for _, rt := range s.Endpoints() {
		if strings.HasSuffix(rt.Path, "/stream") {
			continue // a server-sent event stream: covered by its own tests
		}
		for i := 0; i < 400; i++ {
			path := rt.Path
			for strings.Contains(path, ":") {
				i := strings.IndexByte(path, ':')
				j := strings.IndexByte(path[i:], '/')
				if j < 0 {
					j = len(path) - i
				}
				id := pick(r, genIDs)
				if valid := genValid[path[i+1:i+j]]; valid != nil && r.IntN(3) > 0 {
					id = pick(r, valid)
				}
				path = path[:i] + url.PathEscape(id) + path[i+j:]
			}
			target := path
			if q := genQuery(r); q != "" {
				target += "?" + q
			}
			body := ""
			if rt.Method != http.MethodGet && rt.Method != http.MethodHead {
				body = genBody(r)
			}
			who := pick(r, staff)
			req := httptest.NewRequest(rt.Method, target, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if who != "" {
				req.Header.Set("Authorization", "Bearer "+token(who))
			}
			rctx, rcancel := context.WithTimeout(req.Context(), 20*time.Second)
			rec := httptest.NewRecorder()
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%s %s as %q (body %.200s): panic %v", rt.Method, target, who, body, p)
					}
				}()
				s.Handler().ServeHTTP(rec, req.WithContext(rctx))
			}()
			rcancel()
			requests++
			if rec.Code >= 500 {
				t.Errorf("%s %s as %q (body %.200s): %d %.300s", rt.Method, target, who, body, rec.Code, rec.Body.String())
			}
		}
	}
	t.Log(fmt.Sprintf("%d requests over %d routes", requests, len(s.Endpoints())))
}
