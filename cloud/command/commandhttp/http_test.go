package commandhttp

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/command"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/apitest"
	"github.com/plantroom/plantroom/internal/fakes"
	"github.com/plantroom/plantroom/internal/storetest"
	"github.com/plantroom/plantroom/protocol"
)

// Demo tokens (README).
var tokens = map[string]string{
	"hq-admin": "demo-hq-admin", "hq-viewer": "demo-hq-viewer", "pm-garden": "demo-pm-garden", "pm-tower": "demo-pm-tower",
	"tech-garden-1": "demo-tech-garden-1", "tech-tower-1": "demo-tech-tower-1",
}

// rig is the API with the command routes over a real ClickHouse; what the
// desk publishes is recorded (the broker path has its own end-to-end
// tests in cloud/cmd/cloud).
type rig struct {
	t      *testing.T
	b      *config.Bundle
	clock  *fakes.Clock
	desk   *command.Desk
	h      http.Handler
	db     *store.DB
	alarms []command.Alarm

	mu   sync.Mutex
	sent []sentMessage
	fail error
}

type sentMessage struct {
	topic string
	cmd   protocol.Command
}

var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func newRig(t *testing.T, grace time.Duration) *rig {
	t.Helper()
	return newRigWith(t, grace, nil)
}

// newRigWith is newRig with the demo bundle changed by edit first.
func newRigWith(t *testing.T, grace time.Duration, edit func(*config.Bundle)) *rig {
	t.Helper()
	b, err := config.LoadBundle("../../../configs/org.yaml", "../../../configs/tariffs.yaml", "../../../configs/templates", "../../../configs/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(b)
		var p config.Problems
		b.Rules.Validate(&p)
		b.CheckRefs(&p)
		if err := p.Err(); err != nil {
			t.Fatal(err)
		}
	}
	db := storetest.Open(t, command.Migrations()...)
	r := &rig{t: t, b: b, clock: fakes.NewClock(start), db: db}
	r.desk = r.newDesk(grace)
	srv, err := api.New(api.Config{Listen: "127.0.0.1:0"}, api.Deps{Bundle: b, DB: db, Now: r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(Routes(r.desk)...)
	r.h = srv.Handler()
	return r
}

// newDesk starts a desk over the rig's database (a cloud process).
func (r *rig) newDesk(grace time.Duration) *command.Desk {
	r.t.Helper()
	d, err := command.NewDesk(command.Config{Org: &r.b.Org, Templates: r.b.Templates, Rules: &r.b.Rules,
		Log: command.NewClickHouseLog(r.db.Conn()), Publish: r.publish, Alarms: r.activeAlarms,
		Feed: alarm.NewFeed(0, r.clock.Now), ResultGrace: grace, Tick: 10 * time.Millisecond, Now: r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(d.Stop)
	return d
}

func (r *rig) publish(_ context.Context, topic string, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	c, err := protocol.DecodeCommand(payload)
	if err != nil {
		r.t.Errorf("published command does not decode: %v", err)
	}
	r.sent = append(r.sent, sentMessage{topic, c})
	return nil
}

func (r *rig) activeAlarms(string) []command.Alarm {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]command.Alarm(nil), r.alarms...)
}

func (r *rig) lastSent() sentMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sent) == 0 {
		r.t.Fatal("nothing published")
	}
	return r.sent[len(r.sent)-1]
}

func (r *rig) call(staff, method, target string, body string) *httptest.ResponseRecorder {
	r.t.Helper()
	return apitest.Call(r.t, r.h, method, target, tokens[staff], body)
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder, want int) T {
	t.Helper()
	return apitest.Decode[T](t, rec, want)
}

// waitFor polls cond until it holds or a generous bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const lightOn = `{"point":"circuit1_on","value":1,"reason":"地库白天常亮 garage lit at noon"}`

// A command's whole life over the API: accepted and sent with its wire form
// on the gateway's down/cmd, applied from the gateway's result event, every
// state kept (who, when, why, before/after) and listed for the device.
func TestCommandLifeCycle(t *testing.T) {
	r := newRig(t, time.Minute)
	rec := r.call("pm-garden", http.MethodPost, "/api/v1/devices/garden-lighting-1/commands", lightOn)
	v := decode[command.View](t, rec, http.StatusAccepted)
	if v.State != command.StateSent || v.By != "pm-garden" || v.Point != "circuit1_on" || v.Value != 1 || v.Gateway != "gw-garden-1" {
		t.Fatalf("POST answered %+v", v)
	}
	if loc := rec.Header().Get("Location"); loc != "/api/v1/commands/"+v.ID {
		t.Errorf("Location %q", loc)
	}
	m := r.lastSent()
	if m.topic != "plantroom/v2/acme/garden/gw-garden-1/down/cmd" || m.cmd.ID != v.ID || m.cmd.By != "pm-garden" ||
		m.cmd.ExpiresAt-m.cmd.IssuedAt != 60_000 || m.cmd.Device != "garden-lighting-1" {
		t.Fatalf("published %s %+v", m.topic, m.cmd)
	}

	// The gateway's result, as the ingest hands it over.
	gw, _ := r.b.Org.FindGateway("gw-garden-1")
	before, after := 0.0, 1.0
	res := protocol.Event{V: 2, Gateway: "gw-garden-1", Seq: 9, Kind: protocol.EventCommand, Device: "garden-lighting-1",
		TS: start.Add(400 * time.Millisecond).UnixMilli(), CommandID: v.ID, State: protocol.CommandApplied, Before: &before, After: &after}
	other, _ := r.b.Org.FindGateway("gw-tower-1")
	r.desk.ObserveEvent(context.Background(), other, res, start) // from the wrong gateway: ignored
	if got := decode[command.View](t, r.call("pm-garden", http.MethodGet, "/api/v1/commands/"+v.ID, ""), http.StatusOK); got.State != command.StateSent {
		t.Fatalf("a result from another gateway changed the state to %s", got.State)
	}
	r.desk.ObserveEvent(context.Background(), gw, res, start)
	r.desk.ObserveEvent(context.Background(), gw, res, start) // redelivered: no second event

	var got command.View
	waitFor(t, "the applied event stored", func() bool {
		got = decode[command.View](t, r.call("tech-garden-1", http.MethodGet, "/api/v1/commands/"+v.ID, ""), http.StatusOK)
		return len(got.History) == 3
	})
	if got.State != command.StateApplied || *got.Before != 0 || *got.After != 1 || got.Reason != "地库白天常亮 garage lit at noon" {
		t.Fatalf("GET = %+v", got)
	}
	wantSteps := []struct{ state, who string }{{"accepted", "pm-garden"}, {"sent", "cloud"}, {"applied", "gw-garden-1"}}
	for i, w := range wantSteps {
		if h := got.History[i]; h.State != w.state || h.Who != w.who {
			t.Errorf("history[%d] = %+v, want %s by %s", i, h, w.state, w.who)
		}
	}
	if !got.History[2].At.Equal(start.Add(400 * time.Millisecond)) {
		t.Errorf("applied at %s, want the gateway's time", got.History[2].At)
	}

	list := decode[struct {
		Commands []command.View `json:"commands"`
	}](t, r.call("pm-garden", http.MethodGet, "/api/v1/devices/garden-lighting-1/commands", ""), http.StatusOK)
	if len(list.Commands) != 1 || list.Commands[0].ID != v.ID || list.Commands[0].State != command.StateApplied {
		t.Fatalf("list = %+v", list.Commands)
	}
}

// Malformed requests are 400, template and alarm refusals 422, each
// message naming the value; nothing is published for either.
func TestCommandRefusals(t *testing.T) {
	r := newRig(t, time.Minute)
	post := func(device, body string) *httptest.ResponseRecorder {
		return r.call("pm-garden", http.MethodPost, "/api/v1/devices/"+device+"/commands", body)
	}
	cases := []struct {
		name, device, body string
		status             int
		msg                string
	}{
		{"not JSON", "garden-lighting-1", `{"point":`, 400, "invalid JSON body"},
		{"unknown field", "garden-lighting-1", `{"point":"circuit1_on","value":1,"reason":"x","force":true}`, 400, "force"},
		{"no point", "garden-lighting-1", `{"value":1,"reason":"x"}`, 400, "point is required"},
		{"no value", "garden-lighting-1", `{"point":"circuit1_on","reason":"x"}`, 400, "value is required"},
		{"value not a number", "garden-lighting-1", `{"point":"circuit1_on","value":"on","reason":"x"}`, 400, "invalid JSON body"},
		{"no reason", "garden-lighting-1", `{"point":"circuit1_on","value":1,"reason":"  "}`, 400, "reason is required"},
		{"bad point name", "garden-lighting-1", `{"point":"Circuit 1","value":1,"reason":"x"}`, 400, "point"},
		{"unknown point", "garden-lighting-1", `{"point":"circuit9_on","value":1,"reason":"x"}`, 422, `cannot write \"circuit9_on\": unknown point`},
		{"not writable", "garden-lighting-1", `{"point":"power_w","value":1,"reason":"x"}`, 422, `cannot write \"power_w\": point is not writable`},
		{"out of range", "garden-lighting-1", `{"point":"circuit1_on","value":2,"reason":"x"}`, 422, "cannot write 2 to \\\"circuit1_on\\\""},
		{"elevator", "garden-elevator-1", `{"point":"floor","value":3,"reason":"x"}`, 422, "not writable"},
	}
	for _, c := range cases {
		rec := post(c.device, c.body)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.msg) {
			t.Errorf("%s: %d %s; want %d containing %s", c.name, rec.Code, rec.Body.String(), c.status, c.msg)
		}
	}
	r.mu.Lock()
	r.alarms = []command.Alarm{{ID: "a-1", Rule: "lighting-door", Name: "配电箱门开", Severity: "major", Interlocks: []string{"circuit2_on"}}}
	r.mu.Unlock()
	if rec := post("garden-lighting-1", `{"point":"circuit2_on","value":1,"reason":"x"}`); rec.Code != 422 || !strings.Contains(rec.Body.String(), `interlocked while alarm a-1`) {
		t.Errorf("interlocked point: %d %s", rec.Code, rec.Body.String())
	}
	if rec := post("garden-lighting-1", lightOn); rec.Code != http.StatusAccepted {
		t.Errorf("a point the alarm does not interlock: %d %s", rec.Code, rec.Body.String())
	}
	r.mu.Lock()
	n := len(r.sent)
	r.alarms = append(r.alarms, command.Alarm{ID: "a-2", Name: "配电箱过温", Severity: "critical"})
	r.mu.Unlock()
	if rec := post("garden-lighting-1", lightOn); rec.Code != 422 || !strings.Contains(rec.Body.String(), "active critical alarm (a-2") {
		t.Errorf("under a critical alarm: %d %s", rec.Code, rec.Body.String())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sent) != n {
		t.Errorf("%d commands published for refused requests", len(r.sent)-n)
	}
}

// Who may command: a project's manager and technicians; HQ roles are
// refused (403); staff of another project do not see the device (404).
func TestCommandRoles(t *testing.T) {
	r := newRig(t, time.Minute)
	want := map[string]int{"hq-admin": 403, "hq-viewer": 403, "pm-garden": 202, "tech-garden-1": 202, "pm-tower": 404, "tech-tower-1": 404, "": 401}
	var garden string
	for staff, status := range want {
		rec := r.call(staff, http.MethodPost, "/api/v1/devices/garden-lighting-1/commands", lightOn)
		if rec.Code != status {
			t.Errorf("%q: POST %d, want %d: %s", staff, rec.Code, status, rec.Body.String())
		}
		if status == 202 {
			garden = decode[command.View](t, rec, 202).ID
		}
	}
	// Reading: everyone who sees the project; others 404.
	read := map[string]int{"hq-admin": 200, "hq-viewer": 200, "pm-garden": 200, "tech-garden-1": 200, "pm-tower": 404, "tech-tower-1": 404}
	for staff, status := range read {
		if rec := r.call(staff, http.MethodGet, "/api/v1/commands/"+garden, ""); rec.Code != status {
			t.Errorf("%s: GET command %d, want %d", staff, rec.Code, status)
		}
		if rec := r.call(staff, http.MethodGet, "/api/v1/devices/garden-lighting-1/commands", ""); rec.Code != status {
			t.Errorf("%s: GET device commands %d, want %d", staff, rec.Code, status)
		}
	}
	if rec := r.call("pm-garden", http.MethodGet, "/api/v1/commands/cmd-nosuch", ""); rec.Code != 404 {
		t.Errorf("unknown command: %d", rec.Code)
	}
}

// A company that wants otherwise says so in the rules file
// (remote_control.roles): acme lets its HQ admins and project managers
// command, not its technicians. The API follows it: hq-admin 202 (its
// name on the published command), technicians 403, hq-viewer still 403,
// other projects' staff still 404.
func TestCommandRolesConfigured(t *testing.T) {
	r := newRigWith(t, time.Minute, func(b *config.Bundle) {
		b.Rules.RemoteControl.Roles = map[string][]string{"acme": {config.RoleHQAdmin, config.RoleProjectManager}}
	})
	want := map[string]int{"hq-admin": 202, "hq-viewer": 403, "pm-garden": 202, "tech-garden-1": 403, "pm-tower": 404, "tech-tower-1": 404, "": 401}
	for staff, status := range want {
		n := len(r.sent)
		rec := r.call(staff, http.MethodPost, "/api/v1/devices/garden-lighting-1/commands", lightOn)
		if rec.Code != status {
			t.Errorf("%q: POST %d, want %d: %s", staff, rec.Code, status, rec.Body.String())
			continue
		}
		switch {
		case status == 202 && (len(r.sent) != n+1 || r.lastSent().cmd.By != staff):
			t.Errorf("%q: accepted, but published %d commands (last by %q)", staff, len(r.sent)-n, r.lastSent().cmd.By)
		case status != 202 && len(r.sent) != n:
			t.Errorf("%q: refused %d, but a command was published", staff, status)
		}
	}
}

// A command whose result never comes is expired by the cloud after its
// expiry and the grace; one the broker did not take is failed (not_sent).
func TestCommandCloudOutcomes(t *testing.T) {
	r := newRig(t, 5*time.Second)
	v := decode[command.View](t, r.call("pm-garden", http.MethodPost, "/api/v1/devices/garden-lighting-1/commands", lightOn), http.StatusAccepted)
	r.clock.Set(start.Add(64 * time.Second)) // before expiry + grace
	time.Sleep(50 * time.Millisecond)        // several ticks: nothing may happen
	if got := decode[command.View](t, r.call("pm-garden", http.MethodGet, "/api/v1/commands/"+v.ID, ""), 200); got.State != command.StateSent {
		t.Fatalf("before expiry and grace: %s", got.State)
	}
	r.clock.Set(start.Add(66 * time.Second))
	var got command.View
	waitFor(t, "the cloud's expiry stored", func() bool {
		got = decode[command.View](t, r.call("pm-garden", http.MethodGet, "/api/v1/commands/"+v.ID, ""), 200)
		return len(got.History) == 3
	})
	if got.State != command.StateExpired || got.Cause != command.CauseNoResult || got.History[2].Who != "cloud" {
		t.Fatalf("after expiry and grace: %+v", got)
	}

	r.mu.Lock()
	r.fail = context.DeadlineExceeded
	r.mu.Unlock()
	f := decode[command.View](t, r.call("pm-garden", http.MethodPost, "/api/v1/devices/garden-lighting-1/commands", lightOn), http.StatusAccepted)
	if f.State != command.StateFailed || f.Cause != command.CauseNotSent {
		t.Fatalf("publish failed: %+v", f)
	}
}

// A command sent before the cloud restarts gets its outcome after: the new
// desk restores commands without an outcome from the log and applies the
// gateway's result, numbering its events on.
func TestCommandSurvivesRestart(t *testing.T) {
	r := newRig(t, time.Minute)
	v := decode[command.View](t, r.call("pm-garden", http.MethodPost, "/api/v1/devices/garden-lighting-1/commands", lightOn), http.StatusAccepted)
	r.desk.Stop() // stores what it has not yet
	again := r.newDesk(time.Minute)
	gw, _ := r.b.Org.FindGateway("gw-garden-1")
	before, after := 0.0, 1.0
	again.ObserveEvent(context.Background(), gw, protocol.Event{V: 2, Gateway: "gw-garden-1", Seq: 3, Kind: protocol.EventCommand,
		Device: "garden-lighting-1", TS: start.Add(time.Second).UnixMilli(), CommandID: v.ID, State: protocol.CommandApplied,
		Before: &before, After: &after}, start)
	var got *command.Command
	var evs []command.Event
	waitFor(t, "the applied event after the restart", func() bool {
		var err error
		got, evs, err = again.Get(context.Background(), v.ID, true)
		return err == nil && len(evs) == 3 && evs[2].Command.State == command.StateApplied
	})
	if got.State != command.StateApplied || evs[0].N != 1 || evs[1].N != 2 || evs[2].N != 3 || evs[1].Command.State != command.StateSent {
		t.Fatalf("after the restart: %+v, events %d", got, len(evs))
	}
}
