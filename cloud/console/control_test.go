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
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/command"
	"github.com/plantroom/plantroom/cloud/command/commandhttp"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/storetest"
	"github.com/plantroom/plantroom/protocol"
)

// controlRig is the console with the API's command routes and the command
// desk over a real ClickHouse, as bin/cloud wires them; what the desk
// publishes is recorded (the broker path has its own tests in
// cloud/cmd/cloud).
type controlRig struct {
	ts   *httptest.Server
	desk *command.Desk
	b    *config.Bundle
	mu   sync.Mutex
	sent []protocol.Command
}

func newControlServer(t *testing.T) *controlRig {
	t.Helper()
	b, err := config.LoadBundle("../../configs/org.yaml", "../../configs/tariffs.yaml", "../../configs/templates", "../../configs/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t, slices.Concat(alarm.Migrations(), workorder.Migrations(), command.Migrations())...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rig := &controlRig{b: b}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rig.desk, err = command.NewDesk(command.Config{Org: &b.Org, Templates: b.Templates, Rules: &b.Rules,
		Log: command.NewClickHouseLog(db.Conn()), Feed: alarm.NewFeed(0, time.Now), Logger: log,
		Publish: func(_ context.Context, _ string, payload []byte) error {
			c, err := protocol.DecodeCommand(payload)
			if err != nil {
				t.Errorf("published command does not decode: %v", err)
			}
			rig.mu.Lock()
			rig.sent = append(rig.sent, c)
			rig.mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rig.desk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rig.desk.Stop)
	feed := alarm.NewFeed(0, time.Now)
	orders, err := workorder.New(workorder.Config{Org: &b.Org, Rules: &b.Rules, Log: workorder.NewClickHouseLog(db.Conn()), Feed: feed,
		CheckInterval: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := orders.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(orders.Stop)
	engine, err := alarm.New(alarm.Config{Org: &b.Org, Rules: &b.Rules, Log: alarm.NewClickHouseLog(db.Conn()), Feed: feed, Sinks: []alarm.Sink{orders}, TickInterval: time.Hour})
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
	srv.Register(workorderhttp.Routes(orders, engine, nil, workorderhttp.WithCommands(rig.desk))...)
	srv.Register(commandhttp.Routes(rig.desk)...)
	con.Attach(srv)
	rig.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(rig.ts.Close)
	return rig
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	controlFormRE = regexp.MustCompile(`<form method="post" action="/devices/garden-lighting-1/commands"`)
	progressRE    = regexp.MustCompile(`data-state="([a-z]+)"`)
)

// The device page's remote control: who sees it (the access policy), the
// confirmation step, the API's refusal of an empty reason, the command
// through the API, and its progress up to the desk applying the gateway's
// result.
func TestDeviceControl(t *testing.T) {
	rig := newControlServer(t)
	page := "/devices/garden-lighting-1"

	hq := newBrowser(t, rig.ts.URL)
	hq.signIn("hq-admin", "demo-pw-hq-admin")
	if code, _, body := hq.do("GET", page, nil); code != 200 || controlFormRE.MatchString(body) || strings.Contains(body, `id="control"`) {
		t.Errorf("HQ: %d, control shown: %v", code, controlFormRE.MatchString(body))
	}
	tower := newBrowser(t, rig.ts.URL)
	tower.signIn("tech-tower-1", "demo-pw-tech-tower-1")
	if code, _, _ := tower.do("GET", page, nil); code != http.StatusNotFound {
		t.Errorf("tower technician: %d, want 404", code)
	}

	pm := newBrowser(t, rig.ts.URL)
	pm.signIn("pm-garden", "demo-pw-pm-garden")
	code, _, body := pm.do("GET", page, nil)
	if code != 200 || !controlFormRE.MatchString(body) {
		t.Fatalf("PM: %d, control shown: %v", code, controlFormRE.MatchString(body))
	}
	for _, want := range []string{`id="control"`, "远程控制", `name="point" value="circuit1_on"`, `<button name="value" value="1">开</button>`, `name="point" value="circuit4_on"`} {
		if !strings.Contains(body, want) {
			t.Errorf("PM's device page lacks %q", want)
		}
	}
	tok := csrfRE.FindStringSubmatch(body)[1]

	// A setpoint: a number input with the template's range; a value outside
	// it is refused by the API (422) with its text, and nothing is sent.
	_, _, pump := pm.do("GET", "/devices/garden-pump-1", nil)
	for _, want := range []string{`name="point" value="setpoint_bar"`, `min="2" max="6"`, "允许 2 – 6", `name="point" value="run_command"`} {
		if !strings.Contains(pump, want) {
			t.Errorf("pump page lacks %q", want)
		}
	}
	code, _, body = pm.do("POST", "/devices/garden-pump-1/commands", url.Values{"csrf": {tok}, "point": {"setpoint_bar"}, "value": {"9"}, "confirm": {"1"}, "reason": {"test"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="control-error"`) || !strings.Contains(body, "setpoint_bar") {
		t.Errorf("setpoint out of range: %d, error shown: %v", code, strings.Contains(body, `id="control-error"`))
	}

	// Step one: the confirmation, which asks for the reason; nothing sent.
	code, _, body = pm.do("POST", page+"/commands", url.Values{"csrf": {tok}, "point": {"circuit1_on"}, "value": {"1"}})
	if code != 200 || !strings.Contains(body, `id="control-confirm"`) || !strings.Contains(body, `name="confirm" value="1"`) || !strings.Contains(body, `name="reason"`) {
		t.Fatalf("confirmation step: %d %s", code, body)
	}
	// Without a reason the API refuses and the page says why.
	code, _, body = pm.do("POST", page+"/commands", url.Values{"csrf": {tok}, "point": {"circuit1_on"}, "value": {"1"}, "confirm": {"1"}, "reason": {"  "}})
	if code != http.StatusBadRequest || !strings.Contains(body, `id="control-error"`) || !strings.Contains(body, "指令未发送") || !strings.Contains(body, "reason") {
		t.Errorf("empty reason: %d, error shown: %v", code, strings.Contains(body, `id="control-error"`))
	}
	// Without the CSRF token: refused.
	if code, _, _ := pm.do("POST", page+"/commands", url.Values{"point": {"circuit1_on"}, "value": {"1"}, "confirm": {"1"}, "reason": {"x"}}); code != http.StatusForbidden {
		t.Errorf("no CSRF token: %d, want 403", code)
	}
	rig.mu.Lock()
	if len(rig.sent) != 0 {
		t.Errorf("published before a confirmed command with a reason: %v", rig.sent)
	}
	rig.mu.Unlock()

	// Confirmed with a reason (markup in it stays text).
	code, h, _ := pm.do("POST", page+"/commands", url.Values{"csrf": {tok}, "point": {"circuit1_on"}, "value": {"1"}, "confirm": {"1"}, "reason": {"地库照明 <b>dark</b>"}})
	loc, _ := url.Parse(h.Get("Location"))
	if code != http.StatusSeeOther || loc == nil || loc.Path != page || loc.Query().Get("command") == "" {
		t.Fatalf("confirmed: %d Location %q", code, h.Get("Location"))
	}
	id := loc.Query().Get("command")
	_, _, js := pm.do("GET", "/api/v1/commands/"+id, nil)
	var v commandView
	if err := json.Unmarshal([]byte(js), &v); err != nil || (v.State != "accepted" && v.State != "sent") || v.By != "pm-garden" || v.Point != "circuit1_on" || v.Value != 1 {
		t.Fatalf("the command through the API: %v %s", err, js)
	}
	code, _, body = pm.do("GET", page+"?command="+id, nil)
	if code != 200 || !strings.Contains(body, `id="command-progress"`) || !strings.Contains(body, `hx-get="/devices/garden-lighting-1/commands/`+id+`"`) {
		t.Errorf("the page following the command: %d", code)
	}
	if strings.Contains(body, "<b>dark</b>") || !strings.Contains(body, "&lt;b&gt;dark&lt;/b&gt;") {
		t.Error("reason not escaped on the page")
	}
	progress := func() (int, string, string) {
		code, _, body := pm.do("GET", page+"/commands/"+id, nil)
		m := progressRE.FindStringSubmatch(body)
		if m == nil {
			return code, "", body
		}
		return code, m[1], body
	}
	var st string
	waitUntil(t, "the command sent", func() bool { _, st, _ = progress(); return st == "sent" })
	if _, _, body := progress(); !strings.Contains(body, "已发送到网关") || !strings.Contains(body, "hx-trigger") {
		t.Errorf("sent partial: %s", body)
	}
	// The partial of another device's page does not show it.
	if code, _, _ := pm.do("GET", "/devices/garden-pump-1/commands/"+id, nil); code != http.StatusNotFound {
		t.Errorf("progress under another device: %d, want 404", code)
	}
	if code, _, _ := tower.do("GET", page+"/commands/"+id, nil); code != http.StatusNotFound {
		t.Errorf("tower technician's progress: %d, want 404", code)
	}

	// The gateway's result, through the desk as the ingest delivers it.
	rig.mu.Lock()
	wire := rig.sent[len(rig.sent)-1]
	rig.mu.Unlock()
	if wire.ID != id {
		t.Fatalf("published %q, want %q", wire.ID, id)
	}
	gw, _ := rig.b.Org.FindGateway("gw-garden-1")
	before, after := 0.0, 1.0
	rig.desk.ObserveEvent(context.Background(), gw, protocol.Event{V: 2, Gateway: "gw-garden-1", Seq: 1, Kind: protocol.EventCommand,
		Device: "garden-lighting-1", TS: time.Now().UnixMilli(), CommandID: id, State: protocol.CommandApplied, Before: &before, After: &after}, time.Now())
	waitUntil(t, "the command applied", func() bool { _, st, _ = progress(); return st == "applied" })
	_, _, body = progress()
	for _, want := range []string{"已执行", "执行前 0，执行后 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("applied partial lacks %q: %s", want, body)
		}
	}
	if strings.Contains(body, "hx-trigger") {
		t.Error("the applied partial still polls")
	}
	// English catalogue.
	if _, _, body := pm.do("GET", page+"/commands/"+id, nil, "Cookie", langCookie+"=en"); !strings.Contains(body, "Applied (read back)") {
		t.Errorf("English partial: %s", body)
	}

	// The device's maintenance record (GET /devices/{device}/history, the
	// work-order desk's route) holds the command: who, when, why, before
	// and after, every state; the device page's record shows it.
	type recorded struct {
		ID, By, Reason, State, Point string
		Value                        float64
		Before, After                *float64
		IssuedAt                     time.Time `json:"issued_at"`
		History                      []struct{ State, Who string }
	}
	record := func(b *browser, path string) []recorded {
		t.Helper()
		code, _, js := b.do("GET", path, nil)
		var h struct{ Commands []recorded }
		if err := json.Unmarshal([]byte(js), &h); code != 200 || err != nil || h.Commands == nil {
			t.Fatalf("GET %s: %d %v %s", path, code, err, js)
		}
		return h.Commands
	}
	var rec []recorded
	waitUntil(t, "the applied command in the device's history", func() bool {
		rec = record(pm, "/api/v1/devices/garden-lighting-1/history")
		return len(rec) == 1 && len(rec[0].History) == 3
	})
	r := rec[0]
	var steps []string
	for _, h := range r.History {
		steps = append(steps, h.State+"/"+h.Who)
	}
	if r.ID != id || r.By != "pm-garden" || r.Reason != "地库照明 <b>dark</b>" || r.State != "applied" || r.Point != "circuit1_on" || r.Value != 1 ||
		r.Before == nil || *r.Before != 0 || r.After == nil || *r.After != 1 || r.IssuedAt.IsZero() ||
		strings.Join(steps, " ") != "accepted/pm-garden sent/cloud applied/gw-garden-1" {
		t.Errorf("the command in the record: %+v, steps %v", r, steps)
	}
	// HQ reads the record too; a window that ends before the command holds
	// none; the pump's refused setpoint was never accepted, so its record
	// has none.
	if hq := record(hq, "/api/v1/devices/garden-lighting-1/history"); len(hq) != 1 || hq[0].ID != id {
		t.Errorf("HQ's record: %+v", hq)
	}
	until := r.IssuedAt.Add(-time.Minute).UTC().Format(time.RFC3339)
	if early := record(pm, "/api/v1/devices/garden-lighting-1/history?until="+until); len(early) != 0 {
		t.Errorf("record until %s: %+v", until, early)
	}
	if p := record(pm, "/api/v1/devices/garden-pump-1/history"); len(p) != 0 {
		t.Errorf("the pump's record: %+v", p)
	}
	_, _, body = pm.do("GET", page, nil)
	for _, want := range []string{`id="commands"`, `data-command="` + id + `" data-state="applied"`, "远程控制记录", "执行前 0，执行后 1", "地库照明 &lt;b&gt;dark&lt;/b&gt;", "circuit1_on → 1", "· gw-garden-1"} {
		if !strings.Contains(body, want) {
			t.Errorf("the device page's record lacks %q", want)
		}
	}
	if strings.Contains(body, "<b>dark</b>") {
		t.Error("reason not escaped in the record")
	}
	if _, _, body := pm.do("GET", "/devices/garden-pump-1", nil); !strings.Contains(body, "此设备还没有远程控制指令") {
		t.Error("the pump page lacks the record's empty state")
	}
}
