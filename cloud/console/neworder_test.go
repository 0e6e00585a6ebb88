package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/resident"
	"github.com/plantroom/plantroom/cloud/resident/residenthttp"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/storetest"
)

// newOrderServer is the console with the API's alarm, work-order and
// resident-request routes over a real ClickHouse, as bin/cloud wires them.
func newOrderServer(t *testing.T) *httptest.Server {
	t.Helper()
	b, err := config.LoadBundle("../../configs/org.yaml", "../../configs/tariffs.yaml", "../../configs/templates", "../../configs/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t, slices.Concat(alarm.Migrations(), workorder.Migrations(), resident.Migrations())...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	feed := alarm.NewFeed(0, time.Now)
	photos := photo.New(photo.Dir(t.TempDir()), 256<<10)
	desk, err := workorder.New(workorder.Config{Org: &b.Org, Rules: &b.Rules, Log: workorder.NewClickHouseLog(db.Conn()), Feed: feed, CheckInterval: time.Hour,
		Logger: log, Photos: photos})
	if err != nil {
		t.Fatal(err)
	}
	if err := desk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(desk.Stop)
	engine, err := alarm.New(alarm.Config{Org: &b.Org, Rules: &b.Rules, Log: alarm.NewClickHouseLog(db.Conn()), Feed: feed, Sinks: []alarm.Sink{desk}, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Stop)
	con, err := New(Config{}, Deps{Org: &b.Org, Logger: log, PhotoMaxBytes: photos.MaxBytes()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{}, api.Deps{Bundle: b, DB: db, Sessions: con, Logger: log, Latest: ingest.NewLatest()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(alarmhttp.Routes(engine)...)
	srv.Register(workorderhttp.Routes(desk, engine, photos)...)
	residents, err := resident.New(resident.Config{Org: &b.Org, Desk: desk, Log: resident.NewClickHouseLog(db.Conn()), Photos: photos, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := residents.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(residents.Stop)
	srv.Register(residenthttp.Routes(residents)...)
	con.Attach(srv)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// From a device's page, staff who may create work orders open a manual
// one with the device filled in; it goes through POST /api/v1/workorders
// and shows in the device's record. Staff who may not see no form, and the
// API refuses them.
func TestNewOrderFromDevicePage(t *testing.T) {
	ts := newOrderServer(t)
	pm := newBrowser(t, ts.URL)
	if code := pm.signIn("pm-garden", "demo-pw-pm-garden"); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	code, _, body := pm.do("GET", "/devices/garden-pump-1", nil)
	if code != 200 || !strings.Contains(body, `action="/devices/garden-pump-1/workorders"`) {
		t.Fatalf("device page for pm-garden: %d, form present: %v", code, strings.Contains(body, "/workorders"))
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	title := "水泵异响 <b>loud</b>"
	code, h, _ := pm.do("POST", "/devices/garden-pump-1/workorders", url.Values{"csrf": {tok}, "title": {title}, "description": {"夜间明显"}, "priority": {"2"}})
	loc := h.Get("Location")
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/devices/garden-pump-1?created=wo-") {
		t.Fatalf("POST new order: %d %q", code, loc)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(loc, "/devices/garden-pump-1?created="), "#orders")
	// The API has it, with the device and the form's fields.
	code, _, js := pm.do("GET", "/api/v1/workorders/"+id, nil)
	var o orderView
	if code != 200 || json.Unmarshal([]byte(js), &o) != nil {
		t.Fatalf("GET the new order %s: %d %s", id, code, js)
	}
	if o.Device != "garden-pump-1" || o.Project != "garden" || o.Title != title || o.Priority != 2 || o.Source != "manual" {
		t.Errorf("new order %+v, want garden-pump-1 in garden, the title, priority 2, source manual", o)
	}
	code, _, body = pm.do("GET", loc, nil)
	if code != 200 || !strings.Contains(body, `id="order-created"`) || !strings.Contains(body, "水泵异响 &lt;b&gt;loud&lt;/b&gt;") {
		t.Errorf("device page after creating: %d, notice %v, escaped title %v", code, strings.Contains(body, "order-created"), strings.Contains(body, "&lt;b&gt;loud"))
	}
	// An empty title: the API's 400 and its reason.
	if code, _, body := pm.do("POST", "/devices/garden-pump-1/workorders", url.Values{"csrf": {tok}, "title": {" "}}); code != http.StatusBadRequest || !strings.Contains(body, "title") {
		t.Errorf("empty title: %d", code)
	}

	// HQ viewer: sees the device, may not create: no form, the API says no.
	hv := newBrowser(t, ts.URL)
	hv.signIn("hq-viewer", "demo-pw-hq-viewer")
	code, _, body = hv.do("GET", "/devices/garden-pump-1", nil)
	if code != 200 || strings.Contains(body, "/devices/garden-pump-1/workorders") {
		t.Errorf("hq-viewer device page: %d, form shown: %v", code, strings.Contains(body, "/workorders"))
	}
	tok = csrfRE.FindStringSubmatch(body)[1]
	if code, _, _ := hv.do("POST", "/devices/garden-pump-1/workorders", url.Values{"csrf": {tok}, "title": {"x"}}); code != http.StatusForbidden {
		t.Errorf("hq-viewer creating: %d, want 403", code)
	}
	// A garden technician may create in the garden, not for a tower device.
	tech := newBrowser(t, ts.URL)
	tech.signIn("tech-garden-1", "demo-pw-tech-garden-1")
	tok = tech.csrf("/devices/garden-pump-2")
	if code, _, _ := tech.do("POST", "/devices/tower-pump-1/workorders", url.Values{"csrf": {tok}, "title": {"x"}}); code != http.StatusNotFound {
		t.Errorf("garden technician creating for a tower device: %d, want 404", code)
	}
}

// postJSON sends an API write with the browser's session cookie and its
// CSRF token, as console.js does.
func (b *browser) postJSON(path, csrf string, v any) (int, string) {
	b.t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

var myOrderRE = regexp.MustCompile(`data-order="([^"]+)"`)
var moveRE = regexp.MustCompile(`<form method="post" action="/my/([^/]+)/move"|name="to" value="([a-z_]+)"`)

// moves maps each order on /my to its step buttons, in page order.
func myMoves(body string) (ids []string, moves map[string][]string) {
	moves = map[string][]string{}
	for _, m := range myOrderRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	cur := ""
	for _, m := range moveRE.FindAllStringSubmatch(body, -1) {
		if m[1] != "" {
			cur = m[1]
		} else {
			moves[cur] = append(moves[cur], m[2])
		}
	}
	return ids, moves
}

// "My work orders": the technician's open assigned orders, critical first
// and then by SLA due time, with the steps the lifecycle and the role
// allow; a step goes through the API; a stale step shows the API's 409.
func TestMyOrders(t *testing.T) {
	ts := newOrderServer(t)
	pm := newBrowser(t, ts.URL)
	pm.signIn("pm-garden", "demo-pw-pm-garden")
	tok := pm.csrf("/my")
	create := func(title string, prio int, sla string) string {
		code, js := pm.postJSON("/api/v1/workorders", tok, map[string]any{"project": "garden", "device": "garden-pump-1", "title": title, "priority": prio, "sla": sla})
		var o orderView
		if code != http.StatusCreated || json.Unmarshal([]byte(js), &o) != nil {
			t.Fatalf("create %q: %d %s", title, code, js)
		}
		if code, js := pm.postJSON("/api/v1/workorders/"+o.ID+"/transitions", tok, map[string]any{"to": "assigned", "assignee": "tech-garden-1"}); code != 200 {
			t.Fatalf("assign %s: %d %s", o.ID, code, js)
		}
		return o.ID
	}
	soon := create("soon, normal", 3, "1h")
	crit := create("later, urgent", 1, "4h")
	later := create("later, normal", 3, "3h")

	tech := newBrowser(t, ts.URL)
	tech.signIn("tech-garden-1", "demo-pw-tech-garden-1")
	code, _, body := tech.do("GET", "/my", nil)
	if code != 200 {
		t.Fatalf("GET /my: %d", code)
	}
	ids, moves := myMoves(body)
	if want := []string{crit, soon, later}; !slices.Equal(ids, want) {
		t.Errorf("order on /my: %v, want critical first, then by due time %v", ids, want)
	}
	for _, id := range ids {
		if !slices.Equal(moves[id], []string{"accepted"}) {
			t.Errorf("%s (assigned) offers %v to its technician, want [accepted]", id, moves[id])
		}
	}
	if !strings.Contains(body, "剩余 0 小时 59 分") && !strings.Contains(body, "剩余 1 小时 0 分") {
		t.Errorf("no countdown for the order due in 1h")
	}
	tok2 := csrfRE.FindStringSubmatch(body)[1]
	code, h, _ := tech.do("POST", "/my/"+soon+"/move", url.Values{"csrf": {tok2}, "to": {"accepted"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/my?moved=1" {
		t.Fatalf("accept: %d %q", code, h.Get("Location"))
	}
	_, _, body = tech.do("GET", "/my?moved=1", nil)
	if _, moves = myMoves(body); !slices.Equal(moves[soon], []string{"in_progress"}) {
		t.Errorf("after accepting, %s offers %v, want [in_progress]", soon, moves[soon])
	}
	// Accepting again: the lifecycle says no; the page shows what is allowed.
	code, _, body = tech.do("POST", "/my/"+soon+"/move", url.Values{"csrf": {tok2}, "to": {"accepted"}})
	if code != http.StatusConflict || !strings.Contains(body, "in_progress") {
		t.Errorf("accepting twice: %d, allowed steps named: %v", code, strings.Contains(body, "in_progress"))
	}
	// Another technician sees none of these.
	other := newBrowser(t, ts.URL)
	other.signIn("tech-garden-2", "demo-pw-tech-garden-2")
	if _, _, body := other.do("GET", "/my", nil); strings.Contains(body, soon) || !strings.Contains(body, `class="empty"`) {
		t.Errorf("tech-garden-2 sees tech-garden-1's orders on /my")
	}
}
