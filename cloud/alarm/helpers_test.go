package alarm

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/fakes"
	"github.com/plantroom/plantroom/protocol"
)

// memLog is an in-memory EventLog for tests of the engine's logic; the
// ClickHouse log has its own tests against a real server.
type memLog struct{ fakes.Log[Event] }

func (l *memLog) AppendAlarmEvents(_ context.Context, evs []Event) error { return l.Append(evs) }

func (l *memLog) LoadAlarms(context.Context, time.Time) ([]Alarm, error) {
	latest := map[string]Alarm{}
	for _, ev := range l.Events() {
		if cur, ok := latest[ev.Alarm.ID]; !ok || ev.N > cur.N {
			latest[ev.Alarm.ID] = ev.Alarm
		}
	}
	out := make([]Alarm, 0, len(latest))
	for _, a := range latest {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// kinds lists the stored events as "kind rule subject" strings.
func (l *memLog) kinds() []string {
	var out []string
	for _, ev := range l.Events() {
		out = append(out, ev.Kind+" "+ev.Alarm.Rule+" "+ev.Alarm.Subject())
	}
	return out
}

func (l *memLog) count(kind, rule string) int {
	n := 0
	for _, ev := range l.Events() {
		if ev.Kind == kind && ev.Alarm.Rule == rule {
			n++
		}
	}
	return n
}

// t0 is a Monday 10:00 in Shanghai.
var t0 = time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC)

// loadBundle loads the demo configuration without its device groups: the
// tests of single-device rules read one pump's pressure (group_test.go has
// the groups).
func loadBundle(t testing.TB) *config.Bundle {
	t.Helper()
	b := loadBundleWithGroups(t)
	for ci := range b.Org.Companies {
		for pi := range b.Org.Companies[ci].Projects {
			b.Org.Companies[ci].Projects[pi].Groups = nil
		}
	}
	return b
}

func loadBundleWithGroups(t testing.TB) *config.Bundle {
	t.Helper()
	b, err := config.LoadBundle("../../configs/org.yaml", "../../configs/tariffs.yaml", "../../configs/templates", "../../configs/rules.yaml")
	if err != nil {
		t.Fatalf("load demo configuration: %v", err)
	}
	return b
}

type rig struct {
	t      testing.TB
	b      *config.Bundle
	log    *memLog
	clock  *fakes.Clock
	e      *Engine
	events []Event // delivered to the sink
	mu     sync.Mutex
}

func (r *rig) AlarmEvent(_ context.Context, ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func newRig(t testing.TB, b *config.Bundle, log *memLog) *rig {
	t.Helper()
	if b == nil {
		b = loadBundle(t)
	}
	if log == nil {
		log = &memLog{}
	}
	r := &rig{t: t, b: b, log: log, clock: fakes.NewClock(t0)}
	e, err := New(Config{Org: &b.Org, Rules: &b.Rules, Templates: b.Templates, Log: log, Sinks: []Sink{r}, Now: r.clock.Now, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	r.e = e
	return r
}

func (r *rig) gw(id string) config.GatewayInfo {
	r.t.Helper()
	g, ok := r.b.Org.FindGateway(id)
	if !ok {
		r.t.Fatalf("no gateway %q", id)
	}
	return g
}

// read feeds one reading of a device at t0+at, arriving at the same time.
func (r *rig) read(gw, device, metric string, at time.Duration, v float64) {
	ts := t0.Add(at)
	r.clock.Set(ts)
	b := &protocol.Batch{Epoch: 1, Gateway: gw, Seq: uint64(at / time.Millisecond), SentAt: ts.UnixMilli(),
		Readings: []protocol.Reading{{Device: device, Metric: metric, TS: ts.UnixMilli(), Value: v}}}
	r.e.ObserveBatch(context.Background(), r.gw(gw), b, ts)
}

func (r *rig) tick(at time.Duration) {
	r.clock.Set(t0.Add(at))
	r.e.tick(context.Background(), t0.Add(at))
}

func (r *rig) active(device, rule string) *Alarm {
	for _, a := range mustAlarms(r.e.Alarms(context.Background(), hqAdmin, Filter{Device: device, State: StateActive})) {
		if a.Rule == rule {
			return &a
		}
	}
	return nil
}

var (
	hqAdmin    = Viewer{Staff: "hq-admin", Role: config.RoleHQAdmin, Company: "acme"}
	hqViewer   = Viewer{Staff: "hq-viewer", Role: config.RoleHQViewer, Company: "acme"}
	pmGarden   = Viewer{Staff: "pm-garden", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"garden"}}
	pmTower    = Viewer{Staff: "pm-tower", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"tower"}}
	techGarden = Viewer{Staff: "tech-garden-1", Role: config.RoleTechnician, Company: "acme", Projects: []string{"garden"}}
	techTower  = Viewer{Staff: "tech-tower-1", Role: config.RoleTechnician, Company: "acme", Projects: []string{"tower"}}
	otherCo    = Viewer{Staff: "x", Role: config.RoleHQAdmin, Company: "other"}
)

var errDown = errors.New("storage down")

func config_override(rule, device string, below *float64, forDur *config.Duration, disabled bool) config.RuleOverride {
	return config.RuleOverride{Rule: rule, Device: device, Below: below, For: forDur, Disabled: disabled}
}

// alarmsOf lists alarms, failing the test on an error.
func alarmsOf(t testing.TB, e *Engine, v Viewer, f Filter) []Alarm {
	t.Helper()
	out, err := e.Alarms(context.Background(), v, f)
	if err != nil {
		t.Fatalf("Alarms(%+v): %v", f, err)
	}
	return out
}

func mustAlarms(as []Alarm, err error) []Alarm {
	if err != nil {
		panic(err)
	}
	return as
}
