package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/chtest"
)

// newOrderServer is the console with the API's alarm and work-order routes
// over a real ClickHouse, as bin/cloud wires them.
func newOrderServer(t *testing.T) *httptest.Server {
	t.Helper()
	b, err := config.LoadBundle("../../configs/org.yaml", "../../configs/tariffs.yaml", "../../configs/templates", "../../configs/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, name := chtest.NewDatabase(t)
	o := chtest.Addr(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.Open(ctx, store.Options{Addr: o.Addr, User: o.User, Password: o.Password, Database: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, append(alarm.Migrations(), workorder.Migrations()...)...); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	feed := alarm.NewFeed(0, time.Now)
	desk, err := workorder.New(workorder.Config{Org: &b.Org, Rules: &b.Rules, Log: workorder.NewClickHouseLog(db.Conn()), Feed: feed, CheckInterval: time.Hour, Logger: log})
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
	con, err := New(Config{}, Deps{Org: &b.Org, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{}, api.Deps{Bundle: b, DB: db, Sessions: con, Logger: log, Latest: ingest.NewLatest()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(alarmhttp.Routes(engine)...)
	srv.Register(workorderhttp.Routes(desk, engine)...)
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
