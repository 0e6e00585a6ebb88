package alarm

import (
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

// Alarms returns the alarms the viewer may see that match f, newest first.
func (e *Engine) Alarms(v Viewer, f Filter) []Alarm {
	limit := f.Limit
	if limit == 0 {
		limit = 500
	}
	e.mu.RLock()
	out := make([]Alarm, 0, 64)
	for _, a := range e.alarms {
		if !v.Sees(a.Resource()) ||
			f.Project != "" && a.Project != f.Project ||
			f.State != "" && a.State != f.State ||
			f.Severity != "" && a.Severity != f.Severity ||
			f.Device != "" && a.Subject() != f.Device ||
			!f.Since.IsZero() && a.RaisedAt.Before(f.Since) ||
			!f.Until.IsZero() && !a.RaisedAt.Before(f.Until) {
			continue
		}
		out = append(out, *a)
	}
	e.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RaisedAt.Equal(out[j].RaisedAt) {
			return out[i].RaisedAt.After(out[j].RaisedAt)
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Alarm returns one alarm if the viewer may see it.
func (e *Engine) Alarm(v Viewer, id string) (Alarm, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	a := e.alarms[id]
	if a == nil || !v.Sees(a.Resource()) {
		return Alarm{}, fmt.Errorf("cannot find alarm %q: %w", id, ErrNotFound)
	}
	return *a, nil
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
	}
}

// Resource says where an alarm belongs, for access decisions.
func (e *Engine) Resource(id string) (access.Resource, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	a := e.alarms[id]
	if a == nil {
		return access.Resource{}, false
	}
	return a.Resource(), true
}

// Org is the organisation the engine watches.
func (e *Engine) Org() *config.Org { return e.cfg.Org }
