package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// Alarm rule kinds.
const (
	RuleThreshold      = "threshold"       // value above/below a limit for a duration, with hysteresis
	RuleState          = "state"           // value in (or not in) a set of codes
	RuleRate           = "rate"            // change per minute above a limit
	RuleStale          = "stale"           // device sent nothing for a while
	RuleGatewayOffline = "gateway_offline" // gateway status offline (last will) for a while
	RuleQueueOverflow  = "queue_overflow"  // gateway dropped readings
	// RuleCounterDiscontinuity: a device's energy counter made a step the
	// plausibility walk credits 0 (docs/api.md): check the meter.
	RuleCounterDiscontinuity = "counter_discontinuity"
)

// RuleKinds lists every rule kind.
var RuleKinds = []string{RuleThreshold, RuleState, RuleRate, RuleStale, RuleGatewayOffline, RuleQueueOverflow, RuleCounterDiscontinuity}

// Severities, most severe first.
var Severities = []string{"critical", "major", "minor", "warning"}

// RuleFile is the alarm rules file.
type RuleFile struct {
	Rules         []Rule            `yaml:"rules"`
	WorkOrders    WorkOrderSettings `yaml:"work_orders"`
	RemoteControl RemoteControl     `yaml:"remote_control"`
}

// RemoteControl adjusts who may command devices (cloud/access decides,
// with these settings as its input).
type RemoteControl struct {
	// Roles lists, by company id, the roles that may command that
	// company's devices, replacing the default (the project's manager and
	// technicians) for that company. Each role still commands only what it
	// sees: HQ every project of its company, the others their projects.
	// hq_viewer is read-only and may never be listed; a list may not be
	// empty (to switch remote control off, mark no point writable).
	Roles map[string][]string `yaml:"roles"`
}

// CommandRoles returns the roles company's configuration allows to
// command its devices, and false when the company keeps the default.
func (f *RuleFile) CommandRoles(company string) ([]string, bool) {
	if f == nil {
		return nil, false
	}
	roles, ok := f.RemoteControl.Roles[company]
	return roles, ok
}

func (rc *RemoteControl) validate(p *Problems) {
	companies := make([]string, 0, len(rc.Roles))
	for c := range rc.Roles {
		companies = append(companies, c)
	}
	sort.Strings(companies)
	for _, c := range companies {
		cp := Join("remote_control.roles", c)
		checkID(p, cp, c)
		roles := rc.Roles[c]
		if len(roles) == 0 {
			p.Addf(cp, "lists no role (want some of %s, %s, %s; to switch remote control off, mark no point writable)", RoleHQAdmin, RoleProjectManager, RoleTechnician)
		}
		seen := map[string]bool{}
		for i, r := range roles {
			switch {
			case r == RoleHQViewer:
				p.Addf(Join(cp, i), "%q is read-only and may never command devices", r)
			case !contains(Roles, r):
				p.Addf(Join(cp, i), "unknown role %q (want one of %s, %s, %s)", r, RoleHQAdmin, RoleProjectManager, RoleTechnician)
			case seen[r]:
				p.Addf(Join(cp, i), "duplicate role %q", r)
			}
			seen[r] = true
		}
	}
}

// WorkOrderSettings hold what work orders need beyond their rules: the
// working-day calendar behind sla_next_working_day, and the escalation to
// HQ.
type WorkOrderSettings struct {
	// WorkdayStart is when a working day begins, "HH:MM" in each project's
	// time zone [09:00].
	WorkdayStart string `yaml:"workday_start"`
	// Calendar (holidays, workdays) is the one calendar of the deployment:
	// tariffs' day types use it too.
	Calendar `yaml:",inline"`
	// EscalateHQAfter is how long after its escalation to the project
	// manager an order still not in progress escalates to HQ [1h].
	EscalateHQAfter Duration `yaml:"escalate_hq_after"`
	// ManualSLA is the on-site time of a manual order that names none, by
	// priority ("p1" … "p4"): a duration, or "next_working_day". Priorities
	// left out keep DefaultManualSLA.
	ManualSLA map[string]string `yaml:"manual_sla"`
}

// NextWorkingDay is the manual_sla value for "by the start of the next
// working day".
const NextWorkingDay = "next_working_day"

// DefaultManualSLA is the on-site time of manual orders by priority.
var DefaultManualSLA = map[string]string{"p1": "1h", "p2": "4h", "p3": NextWorkingDay, "p4": "72h"}

// ManualOrderSLA returns the on-site time of a manual order of priority
// 1–4, or workingDay for the start of the next working day.
func (w *WorkOrderSettings) ManualOrderSLA(priority int) (sla time.Duration, workingDay bool) {
	key := fmt.Sprintf("p%d", priority)
	v, ok := "", false
	if w != nil {
		v, ok = w.ManualSLA[key]
	}
	if !ok {
		v = DefaultManualSLA[key]
	}
	if v == NextWorkingDay || v == "" {
		return 0, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 { // Validate refuses these
		return 0, true
	}
	return d, false
}

// DefaultWorkdayStart is when a working day begins unless
// work_orders.workday_start says otherwise.
const DefaultWorkdayStart = 9 * time.Hour

const dateLayout = "2006-01-02"

// DayStart is the offset of WorkdayStart from midnight.
func (w *WorkOrderSettings) DayStart() time.Duration {
	if w == nil || w.WorkdayStart == "" {
		return DefaultWorkdayStart
	}
	m, err := ParseClock(w.WorkdayStart)
	if err != nil || m >= 24*60 {
		return DefaultWorkdayStart
	}
	return time.Duration(m) * time.Minute
}

// WorkingDay reports whether day (its date as written in its location) is
// a working day: Monday to Friday unless a holiday, or a listed workday.
func (w *WorkOrderSettings) WorkingDay(day time.Time) bool {
	if w == nil {
		return (*Calendar)(nil).WorkingDay(day)
	}
	return w.Calendar.WorkingDay(day)
}

// NextWorkingDayStart is the start of the first working day after t's
// date, in loc.
func (w *WorkOrderSettings) NextWorkingDayStart(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	d := time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, loc)
	// Validate refuses calendars without working days; the bound only
	// guards against one built in code.
	for i := 0; i < 366 && !w.WorkingDay(d); i++ {
		d = d.AddDate(0, 0, 1)
	}
	start := w.DayStart()
	return time.Date(d.Year(), d.Month(), d.Day(), int(start/time.Hour), int(start%time.Hour/time.Minute), 0, 0, loc)
}

func (w *WorkOrderSettings) validate(p *Problems) {
	if w.WorkdayStart != "" {
		if m, err := ParseClock(w.WorkdayStart); err != nil || m >= 24*60 {
			p.Addf("work_orders.workday_start", "invalid time %q (want HH:MM, like \"09:00\")", w.WorkdayStart)
		}
	}
	w.Calendar.validate(p, "work_orders")
	if w.EscalateHQAfter.Duration < 0 {
		p.Addf("work_orders.escalate_hq_after", "must be >= 0, got %s", w.EscalateHQAfter)
	}
	for _, k := range sortedKeys(w.ManualSLA) {
		path := "work_orders.manual_sla." + k
		if _, known := DefaultManualSLA[k]; !known {
			p.Addf(path, "unknown priority %q (want p1, p2, p3 or p4)", k)
			continue
		}
		if v := w.ManualSLA[k]; v != NextWorkingDay {
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				p.Addf(path, "invalid value %q (want a duration like \"4h\", or %s)", v, NextWorkingDay)
			}
		}
	}
}

// Rule is an alarm rule.
type Rule struct {
	ID        string    `yaml:"id"`
	Name      string    `yaml:"name"`
	Kind      string    `yaml:"kind"`
	Severity  string    `yaml:"severity"`
	AppliesTo AppliesTo `yaml:"applies_to"`
	Metric    string    `yaml:"metric"`
	// threshold
	Above      *float64 `yaml:"above"`
	Below      *float64 `yaml:"below"`
	For        Duration `yaml:"for"`        // condition must hold this long before raising
	Hysteresis float64  `yaml:"hysteresis"` // clear only this far back inside the limit
	// state
	In    []float64 `yaml:"in"`     // raise while the value is one of these
	NotIn []float64 `yaml:"not_in"` // raise while the value is none of these
	// rate: absolute change per minute
	RatePerMinute *float64 `yaml:"rate_per_minute"`
	// stale: no reading for this long (default 3 poll intervals)
	After Duration `yaml:"after"`
	// MinHold keeps a raised alarm active at least this long (flapping guard).
	MinHold   Duration       `yaml:"min_hold"`
	WorkOrder *WorkOrderSpec `yaml:"work_order"`
	// When limits the rule to readings taken while another metric of the
	// same device satisfies it (only while the pump is running).
	When *RuleWhen `yaml:"when"`
	// Safety marks a rule whose every raise is a new incident (a trapped
	// passenger): its own work order, dispatch and SLA, never joined to an
	// earlier order of the same device.
	Safety bool `yaml:"safety"`
	// InhibitedBy names rules whose active alarm already stands for the
	// physical fault behind this rule's condition (a tripped pump behind
	// the set's low pressure): while an alarm of one of them is active on
	// the same device, on a group the device belongs to or, for a group,
	// on one of its members, this rule raises nothing, for as long as its
	// condition lasts without a break.
	InhibitedBy []string `yaml:"inhibited_by"`
	// Escalates names the earlier stages of the same problem (a motor
	// heating fast, then hot, then tripped): when this rule raises while an
	// alarm of one of them is active on the same device, that alarm takes
	// this rule, its severity and its work order (an escalation) instead
	// of a second alarm being raised; while it is active, the rules it
	// escalated raise nothing. A rule escalates only rules of a severity
	// no higher than its own.
	Escalates []string `yaml:"escalates"`
	// Interlocks names writable points of the device that refuse remote
	// commands while this rule's alarm is active on it (a pump's start
	// while its dry-run alarm stands). An active critical alarm refuses
	// every command to the device anyway (cloud/command).
	Interlocks []string `yaml:"interlocks"`
}

// RuleWhen is a condition on another metric of the device: one of In, or
// above Above / below Below (both: inside the range).
type RuleWhen struct {
	Metric string    `yaml:"metric"`
	In     []float64 `yaml:"in"`
	Above  *float64  `yaml:"above"`
	Below  *float64  `yaml:"below"`
}

// Holds reports whether the condition holds for the metric's value v.
func (w *RuleWhen) Holds(v float64) bool {
	if len(w.In) > 0 {
		return slices.Contains(w.In, v)
	}
	return (w.Above == nil || v > *w.Above) && (w.Below == nil || v < *w.Below)
}

// AppliesTo selects devices by kind or template; empty selects every device.
type AppliesTo struct {
	Kinds     []string `yaml:"kinds"`
	Templates []string `yaml:"templates"`
}

// WorkOrderSpec makes a rule open a work order when its alarm raises.
type WorkOrderSpec struct {
	SLA           Duration `yaml:"sla"`                  // time to be on site
	SLAWorkingDay bool     `yaml:"sla_next_working_day"` // due at the start of the next working day instead
	Skill         string   `yaml:"skill"`                // technician skill wanted
	// ReopenWithin is the incident window: a raise within it of the earlier
	// alarm's clear joins that alarm's still-open order, and a raise within
	// it of the order's resolution reopens it. Later raises (and every
	// raise of a safety rule) are new incidents with their own order.
	ReopenWithin Duration `yaml:"reopen_within"`
}

// Validate checks every rule.
func (f *RuleFile) Validate(p *Problems) {
	f.WorkOrders.validate(p)
	f.RemoteControl.validate(p)
	ids := map[string]bool{}
	for i := range f.Rules {
		r := &f.Rules[i]
		rp := Join("rules", i)
		checkID(p, Join(rp, "id"), r.ID)
		if ids[r.ID] {
			p.Addf(Join(rp, "id"), "duplicate rule id %q", r.ID)
		}
		ids[r.ID] = true
		if !contains(RuleKinds, r.Kind) {
			p.Addf(Join(rp, "kind"), "unknown kind %q (want one of %s)", r.Kind, strings.Join(RuleKinds, ", "))
		}
		if !contains(Severities, r.Severity) {
			p.Addf(Join(rp, "severity"), "unknown severity %q (want one of %s)", r.Severity, strings.Join(Severities, ", "))
		}
		for ki, k := range r.AppliesTo.Kinds {
			if !contains(DeviceKinds, k) {
				p.Addf(Join(Join(rp, "applies_to.kinds"), ki), "unknown device kind %q", k)
			}
		}
		if r.Metric != "" {
			p.Add(Join(rp, "metric"), protocol.CheckMetric(r.Metric))
		}
		needMetric := func() {
			if r.Metric == "" {
				p.Addf(Join(rp, "metric"), "required for a %s rule", r.Kind)
			}
		}
		switch r.Kind {
		case RuleThreshold:
			needMetric()
			if r.Above == nil && r.Below == nil {
				p.Addf(rp, "a threshold rule needs above or below")
			}
			if r.Hysteresis < 0 {
				p.Addf(Join(rp, "hysteresis"), "must be >= 0, got %v", r.Hysteresis)
			}
			if r.Above != nil && r.Below != nil && *r.Below+r.Hysteresis >= *r.Above-r.Hysteresis {
				p.Addf(rp, "below %v and above %v leave no normal band with hysteresis %v", *r.Below, *r.Above, r.Hysteresis)
			}
		case RuleState:
			needMetric()
			if len(r.In) == 0 && len(r.NotIn) == 0 {
				p.Addf(rp, "a state rule needs in or not_in")
			}
			if len(r.In) > 0 && len(r.NotIn) > 0 {
				p.Addf(rp, "a state rule takes in or not_in, not both")
			}
		case RuleRate:
			needMetric()
			if r.RatePerMinute == nil || *r.RatePerMinute <= 0 {
				p.Addf(Join(rp, "rate_per_minute"), "required and > 0")
			}
		case RuleStale, RuleGatewayOffline:
			if r.After.Duration < 0 {
				p.Addf(Join(rp, "after"), "must be >= 0, got %s", r.After)
			}
		}
		if w := r.When; w != nil {
			wp := Join(rp, "when")
			switch r.Kind {
			case RuleThreshold, RuleState, RuleRate:
			default:
				p.Addf(wp, "only threshold, state and rate rules take a condition, not %q", r.Kind)
			}
			if w.Metric == "" {
				p.Addf(Join(wp, "metric"), "required")
			} else if w.Metric == r.Metric {
				p.Addf(Join(wp, "metric"), "%q is the rule's own metric", w.Metric)
			}
			if len(w.In) == 0 && w.Above == nil && w.Below == nil {
				p.Addf(wp, "needs in, above or below")
			}
			if len(w.In) > 0 && (w.Above != nil || w.Below != nil) {
				p.Addf(wp, "takes in, or above/below, not both")
			}
		}
		for ii, id := range r.InhibitedBy {
			ip := Join(Join(rp, "inhibited_by"), ii)
			switch {
			case id == r.ID:
				p.Addf(ip, "a rule cannot inhibit itself")
			case f.Rule(id) == nil:
				p.Addf(ip, "unknown rule %q", id)
			}
		}
		for ei, id := range r.Escalates {
			ep := Join(Join(rp, "escalates"), ei)
			o := f.Rule(id)
			switch {
			case id == r.ID:
				p.Addf(ep, "a rule cannot escalate itself")
			case o == nil:
				p.Addf(ep, "unknown rule %q", id)
			case slices.Contains(o.Escalates, r.ID):
				p.Addf(ep, "rule %q escalates this rule: escalation goes one way", id)
			case severityRank(o.Severity) < severityRank(r.Severity):
				p.Addf(ep, "rule %q is more severe (%s) than this rule (%s): a rule escalates only to a severity at least as high", id, o.Severity, r.Severity)
			case r.Kind == RuleGatewayOffline || r.Kind == RuleQueueOverflow || o.Kind == RuleGatewayOffline || o.Kind == RuleQueueOverflow:
				p.Addf(ep, "gateway rules neither escalate nor are escalated")
			}
		}
		for ii, pt := range r.Interlocks {
			if pt == "" || strings.TrimSpace(pt) != pt {
				p.Addf(Join(Join(rp, "interlocks"), ii), "invalid point name %q", pt)
			}
		}
		if r.For.Duration < 0 || r.MinHold.Duration < 0 {
			p.Addf(rp, "for and min_hold must be >= 0")
		}
		if w := r.WorkOrder; w != nil {
			if w.SLA.Duration <= 0 && !w.SLAWorkingDay {
				p.Addf(Join(rp, "work_order.sla"), "required: a duration > 0, or sla_next_working_day: true")
			}
		}
	}
}

// severityRank is a severity's place in Severities, 0 the most severe;
// an unknown one ranks last.
func severityRank(s string) int {
	if i := slices.Index(Severities, s); i >= 0 {
		return i
	}
	return len(Severities)
}

// Rule returns the rule with the given id, or nil.
func (f *RuleFile) Rule(id string) *Rule {
	for i := range f.Rules {
		if f.Rules[i].ID == id {
			return &f.Rules[i]
		}
	}
	return nil
}

// Matches reports whether the rule applies to a device of the given kind and template.
func (r *Rule) Matches(kind, template string) bool {
	a := r.AppliesTo
	if len(a.Kinds) == 0 && len(a.Templates) == 0 {
		return true
	}
	return contains(a.Kinds, kind) || contains(a.Templates, template)
}

// StaleAfter is the rule's stale window for a device polled every interval.
func (r *Rule) StaleAfter(interval time.Duration) time.Duration {
	if r.After.Duration > 0 {
		return r.After.Duration
	}
	return 3 * interval
}
