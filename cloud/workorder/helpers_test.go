package workorder

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/notify"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/fakes"
)

// memLog is an in-memory EventLog for the desk's logic tests; the
// ClickHouse log has its own tests against a real server.
type memLog struct{ fakes.Log[Event] }

func (l *memLog) AppendOrderEvents(_ context.Context, evs []Event) error { return l.Append(evs) }

func (l *memLog) LoadOrderEvents(context.Context, time.Time) ([]Event, error) { return l.Events(), nil }

func (l *memLog) len() int { return len(l.Events()) }

type notes struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (n *notes) Notify(m notify.Message) {
	n.mu.Lock()
	n.msgs = append(n.msgs, m)
	n.mu.Unlock()
}

func (n *notes) events() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.msgs {
		out = append(out, m.Event)
	}
	return out
}

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// monday10 is Monday 2025-03-03 10:00 in Shanghai: the garden day shift.
var monday10 = time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai)

func loadBundle(t testing.TB) *config.Bundle {
	t.Helper()
	b, err := config.LoadBundle("../../configs/org.yaml", "../../configs/tariffs.yaml", "../../configs/templates", "../../configs/rules.yaml")
	if err != nil {
		t.Fatalf("load demo configuration: %v", err)
	}
	// Without the device groups: these tests follow one pump's pressure
	// alarm and its order (cloud/alarm's group_test.go has the groups).
	for ci := range b.Org.Companies {
		for pi := range b.Org.Companies[ci].Projects {
			b.Org.Companies[ci].Projects[pi].Groups = nil
		}
	}
	return b
}

type rig struct {
	t     testing.TB
	b     *config.Bundle
	log   EventLog
	clock *fakes.Clock
	feed  *alarm.Feed
	notes *notes
	d     *Desk
}

func newRig(t testing.TB, b *config.Bundle, log EventLog) *rig {
	t.Helper()
	if b == nil {
		b = loadBundle(t)
	}
	if log == nil {
		log = &memLog{}
	}
	r := &rig{t: t, b: b, log: log, clock: fakes.NewClock(monday10), notes: &notes{}}
	r.feed = alarm.NewFeed(0, r.clock.Now)
	r.start()
	return r
}

func (r *rig) start() {
	r.t.Helper()
	d, err := New(Config{Org: &r.b.Org, Rules: &r.b.Rules, Log: r.log, Feed: r.feed, Notifier: r.notes, Now: r.clock.Now, CheckInterval: time.Hour})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(d.Stop)
	r.d = d
}

// raise hands the desk the raise of an alarm of rule on device at t.
func (r *rig) raise(device, rule string, at time.Time) alarm.Alarm {
	r.t.Helper()
	var di *config.DeviceInfo
	for _, d := range r.b.Org.Devices() {
		if d.Device.ID == device {
			di = &d
		}
	}
	ru := r.b.Rules.Rule(rule)
	if di == nil || ru == nil {
		r.t.Fatalf("no device %q or rule %q", device, rule)
	}
	a := alarm.Alarm{
		ID: device + "." + rule + "." + at.Format("150405"), Company: di.Company.ID, Project: di.Project.ID, Gateway: di.Gateway.ID,
		Device: device, Category: di.Device.Kind, Rule: rule, RuleName: ru.Name, RuleKind: ru.Kind, Severity: ru.Severity,
		Metric: ru.Metric, State: alarm.StateActive, RaisedAt: at.UTC(), Value: 1, Count: 1, WorkOrder: ru.WorkOrder != nil, N: 1,
	}
	r.clock.Set(at)
	r.d.AlarmEvent(context.Background(), alarm.Event{N: 1, Kind: alarm.EventRaise, At: at, From: alarm.StateNormal, To: alarm.StateActive, Alarm: a, Arrived: at})
	return a
}

func (r *rig) orderFor(a alarm.Alarm) *WorkOrder {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	w := r.d.orders[r.d.byAlarm[a.ID]]
	if w == nil {
		return nil
	}
	c := r.d.copyOf(w, true)
	return &c
}

func (r *rig) move(v alarm.Viewer, id, to string) (WorkOrder, error) {
	return r.d.Transition(context.Background(), v, id, TransitionRequest{To: to, Note: "note " + to})
}

var (
	hqAdmin     = alarm.Viewer{Staff: "hq-admin", Role: config.RoleHQAdmin, Company: "acme"}
	hqViewer    = alarm.Viewer{Staff: "hq-viewer", Role: config.RoleHQViewer, Company: "acme"}
	pmGarden    = alarm.Viewer{Staff: "pm-garden", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"garden"}}
	pmTower     = alarm.Viewer{Staff: "pm-tower", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"tower"}}
	techGarden1 = alarm.Viewer{Staff: "tech-garden-1", Role: config.RoleTechnician, Company: "acme", Projects: []string{"garden"}}
	techGarden2 = alarm.Viewer{Staff: "tech-garden-2", Role: config.RoleTechnician, Company: "acme", Projects: []string{"garden"}}
	techTower   = alarm.Viewer{Staff: "tech-tower-1", Role: config.RoleTechnician, Company: "acme", Projects: []string{"tower"}}
)

// ordersOf lists orders, failing the test on an error.
func ordersOf(t testing.TB, d *Desk, v alarm.Viewer, f Filter) []WorkOrder {
	t.Helper()
	out, err := d.List(context.Background(), v, f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	return out
}

// deviceOrders lists a device's orders, failing the test on an error.
func deviceOrders(t testing.TB, d *Desk, v alarm.Viewer, device string, f Filter) []WorkOrder {
	t.Helper()
	out, err := d.DeviceOrders(context.Background(), v, device, f)
	if err != nil {
		t.Fatalf("DeviceOrders(%s): %v", device, err)
	}
	return out
}

// engineAlarms lists alarms, failing the test on an error.
func engineAlarms(t testing.TB, e *alarm.Engine, v alarm.Viewer, f alarm.Filter) []alarm.Alarm {
	t.Helper()
	out, err := e.Alarms(context.Background(), v, f)
	if err != nil {
		t.Fatalf("Alarms(%+v): %v", f, err)
	}
	return out
}
