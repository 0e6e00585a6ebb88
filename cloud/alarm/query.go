package alarm

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/notify"
	"github.com/plantroom/plantroom/config"
)

// Filter selects alarms. Empty fields match everything.
type Filter struct {
	Project  string
	State    string // active or cleared
	Severity string
	Device   string    // a device id, or a gateway id for gateway alarms
	Since    time.Time // raised at or after
	Until    time.Time // raised before
	Limit    int       // default 500
}

// Validate reports every bad field of the filter.
func (f *Filter) Validate() error {
	var p config.Problems
	if f.State != "" && f.State != StateActive && f.State != StateCleared {
		p.Addf("state", "unknown state %q (want active or cleared)", f.State)
	}
	if f.Severity != "" && !slices.Contains(config.Severities, f.Severity) {
		p.Addf("severity", "unknown severity %q (want one of %s)", f.Severity, strings.Join(config.Severities, ", "))
	}
	if f.Limit < 0 {
		p.Addf("limit", "must be >= 0, got %d", f.Limit)
	}
	return p.Err()
}

func (f *Filter) limit() int {
	if f.Limit == 0 {
		return 500
	}
	return f.Limit
}

// match reports whether a matches the filter (not the viewer's scope).
func (f *Filter) match(a *Alarm) bool {
	return (f.Project == "" || a.Project == f.Project) &&
		(f.State == "" || a.State == f.State) &&
		(f.Severity == "" || a.Severity == f.Severity) &&
		(f.Device == "" || a.Subject() == f.Device) &&
		(f.Since.IsZero() || !a.RaisedAt.Before(f.Since)) &&
		(f.Until.IsZero() || a.RaisedAt.Before(f.Until))
}

// newestFirst orders alarms by raise time, newest first, then by id.
func newestFirst(out []Alarm) {
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RaisedAt.Equal(out[j].RaisedAt) {
			return out[i].RaisedAt.After(out[j].RaisedAt)
		}
		return out[i].ID < out[j].ID
	})
}

// Alarms returns the alarms the viewer may see that match f, newest first.
// The engine holds every active alarm and every alarm raised within the
// recent window (Config.Window); a list that reaches further back reads
// the older alarms from the log's history, scoped to the viewer in the
// query, and merges them with the held ones.
func (e *Engine) Alarms(ctx context.Context, v Viewer, f Filter) ([]Alarm, error) {
	limit := f.limit()
	e.mu.RLock()
	out := make([]Alarm, 0, 64)
	for _, a := range e.alarms {
		if v.Sees(a.Resource()) && f.match(a) {
			out = append(out, *a)
		}
	}
	unheld := e.unheld
	e.mu.RUnlock()
	newestFirst(out)
	if e.hist == nil || unheld.IsZero() || f.State == StateActive || f.Since.After(unheld) ||
		len(out) >= limit && out[limit-1].RaisedAt.After(unheld) {
		// Held alarms answer it: every alarm not held is cleared and was
		// raised at or before unheld.
		return out[:min(len(out), limit)], nil
	}
	stored, err := e.hist.FindAlarms(ctx, v.ScopeOf(access.KindAlarm), f)
	if err != nil {
		return nil, fmt.Errorf("cannot list alarms: %w", err)
	}
	seen := make(map[string]bool, len(out))
	for i := range out {
		seen[out[i].ID] = true
	}
	e.mu.RLock()
	for i := range stored {
		a := &stored[i]
		// A held alarm is newer in memory than in storage (events may
		// wait in the outbox): its held copy decided above.
		if seen[a.ID] || e.alarms[a.ID] != nil || !v.Sees(a.Resource()) || !f.match(a) {
			continue
		}
		out = append(out, *a)
	}
	e.mu.RUnlock()
	newestFirst(out)
	return out[:min(len(out), limit)], nil
}

// Alarm returns one alarm if the viewer may see it.
func (e *Engine) Alarm(ctx context.Context, v Viewer, id string) (Alarm, error) {
	a, err := e.find(ctx, id)
	if err != nil {
		return Alarm{}, err
	}
	if a == nil || !v.Sees(a.Resource()) {
		return Alarm{}, fmt.Errorf("cannot find alarm %q: %w", id, ErrNotFound)
	}
	return *a, nil
}

// find returns a copy of a held alarm, else the stored one; nil when
// there is none.
func (e *Engine) find(ctx context.Context, id string) (*Alarm, error) {
	e.mu.RLock()
	if a := e.alarms[id]; a != nil {
		out := *a
		e.mu.RUnlock()
		return &out, nil
	}
	e.mu.RUnlock()
	if e.hist == nil {
		return nil, nil
	}
	a, ok, err := e.hist.FindAlarm(ctx, id)
	if err != nil || !ok {
		return nil, err
	}
	return &a, nil
}

// Held is how many alarms the engine holds in memory.
func (e *Engine) Held() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.alarms)
}

// windowStart is the start of the recent window: alarms raised before it
// are held only while active or their tracker's latest. Zero without a
// history to read them back from.
func (e *Engine) windowStart() time.Time {
	if e.hist == nil {
		return time.Time{}
	}
	return e.cfg.Now().Add(-e.cfg.Window)
}

// evict lets go of cleared alarms raised before the recent window that
// no tracker holds; the log's history serves them. Nothing goes while
// events wait in the outbox (their alarms' stored rows are behind).
// e.procMu must be held.
func (e *Engine) evict() {
	if e.hist == nil || e.outbox.Len() > 0 {
		return
	}
	from := e.windowStart()
	kept := map[*Alarm]bool{}
	for _, set := range []map[string]*subject{e.devices, e.gateways} {
		for _, s := range set {
			for _, t := range s.trackers {
				if t.alarm != nil {
					kept[t.alarm] = true
				}
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for id, a := range e.alarms {
		if a.State == StateCleared && a.RaisedAt.Before(from) && !kept[a] {
			delete(e.alarms, id)
			if a.RaisedAt.After(e.unheld) {
				e.unheld = a.RaisedAt
			}
			n++
		}
	}
	e.m.evicted.Add(float64(n))
}

// severityLabel is the Chinese label staff see in group-robot messages.
var severityLabel = map[string]string{"critical": "紧急", "major": "重要", "minor": "次要", "warning": "提示"}

// message renders an alarm event for the webhooks.
func message(ev Event) notify.Message {
	a := ev.Alarm
	verb := "告警 / raised"
	switch ev.Kind {
	case EventClear:
		verb = "恢复 / cleared"
	case EventEscalate:
		verb = "升级 / escalated"
	}
	// Rule names come from the rules file and subjects from org.yaml: text
	// people wrote, escaped like any other in the markdown.
	title := notify.Line(fmt.Sprintf("[%s] %s %s: %s", severityLabel[a.Severity], a.RuleName, verb, a.Subject()))
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n", notify.Markdown(title))
	fmt.Fprintf(&b, "> 项目 project: %s\n", notify.Markdown(a.Project))
	fmt.Fprintf(&b, "> 设备 device: %s\n", notify.Markdown(a.Subject()))
	if a.Metric != "" {
		fmt.Fprintf(&b, "> %s = %v\n", notify.Markdown(a.Metric), ev.Value)
	}
	fmt.Fprintf(&b, "> 时间 time: %s\n", ev.At.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "> 告警编号 alarm: %s", notify.Markdown(a.ID))
	return notify.Message{
		ID: fmt.Sprintf("alarm/%s/%d", a.ID, ev.N), Event: "alarm." + ev.Kind, Company: a.Company, Project: a.Project,
		Severity: a.Severity, Title: title, Text: b.String(), At: ev.At, Data: ev,
	}
}

type metrics struct {
	events        *prometheus.CounterVec
	ignored       *prometheus.CounterVec
	storeFailures prometheus.Counter
	outbox        prometheus.Gauge
	restored      prometheus.Counter
	replayed      prometheus.Counter
	evicted       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		events: f.NewCounterVec(prometheus.CounterOpts{Name: "plantroom_alarm_events_total",
			Help: "Alarm events by kind (raise, repeat, update, clear, ack) and severity."}, []string{"kind", "severity"}),
		ignored: f.NewCounterVec(prometheus.CounterOpts{Name: "plantroom_alarm_inputs_ignored_total",
			Help: "Inputs the alarm engine ignored, by reason."}, []string{"reason"}),
		storeFailures: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_alarm_store_failures_total",
			Help: "Failed attempts to store alarm events (they are retried)."}),
		outbox: f.NewGauge(prometheus.GaugeOpts{Name: "plantroom_alarm_events_unstored",
			Help: "Alarm events waiting for a storage retry."}),
		restored: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_alarm_restored_total",
			Help: "Alarms loaded from storage at start."}),
		replayed: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_alarm_replayed_readings_total",
			Help: "Stored readings re-evaluated at start."}),
		evicted: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_alarm_evicted_total",
			Help: "Cleared alarms older than the recent window let go from memory (read back from storage when asked for)."}),
	}
}

// Resource says where an alarm belongs, for access decisions; an alarm
// that does not exist is ErrNotFound.
func (e *Engine) Resource(ctx context.Context, id string) (access.Resource, error) {
	a, err := e.find(ctx, id)
	if err != nil {
		return access.Resource{}, err
	}
	if a == nil {
		return access.Resource{}, fmt.Errorf("cannot find alarm %q: %w", id, ErrNotFound)
	}
	return a.Resource(), nil
}

// Org is the organisation the engine watches.
func (e *Engine) Org() *config.Org { return e.cfg.Org }

// ActiveOn returns the active alarms of a device (or of a gateway, given
// its id), whoever asks: the engine holds every active alarm. The command
// desk's checks read it.
func (e *Engine) ActiveOn(subject string) []Alarm {
	f := Filter{Device: subject, State: StateActive}
	e.mu.RLock()
	var out []Alarm
	for _, a := range e.alarms {
		if f.match(a) {
			out = append(out, *a)
		}
	}
	e.mu.RUnlock()
	newestFirst(out)
	return out
}
