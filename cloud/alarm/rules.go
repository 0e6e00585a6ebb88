package alarm

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/plantroom/plantroom/config"
)

// boundRule is a rule as it applies to one device or gateway, with the
// project's and then the device's overrides applied.
type boundRule struct {
	config.Rule
	// hold is how long the condition must stay away before the alarm clears.
	hold time.Duration
	// wait is how long the condition must hold before the alarm raises.
	wait time.Duration
	// heldBy are the rules whose active alarm holds this rule's raise back:
	// its inhibited_by and the rules that escalate it.
	heldBy []string
}

// subject is a device or a gateway with the trackers of the rules bound to it.
type subject struct {
	company, project, gateway, device string
	category                          string
	location                          *time.Location
	staleAfter                        time.Duration // devices only
	trackers                          []*tracker
	byMetric                          map[string][]*tracker // devices: metric → trackers
	stale                             *tracker              // device-stale rule, if any
	offline                           *tracker              // gateways: gateway-offline rule
	overflow                          *tracker              // gateways: queue-overflow rule
	lastArrived                       time.Time             // last reading's arrival (stale watch)
	// latest holds the device's newest value of each metric a rule's
	// "when" condition reads.
	latest map[string]float64
	// group is set on a device group's subject: its trackers are fed by
	// the members' readings.
	group bool
	// groups are the device groups a device belongs to; members are a
	// group's devices (inhibition looks across both).
	groups, members []*subject
}

// bindRules binds every rule to the devices and gateways it applies to.
// Overrides naming an unknown rule or device are configuration errors that
// config.Bundle.CheckRefs reports; here they are ignored.
func bindRules(org *config.Org, rules *config.RuleFile, queueQuiet, defaultHold time.Duration) (devices, gateways map[string]*subject) {
	hold := func(r *config.Rule) time.Duration {
		if r.MinHold.Duration > 0 {
			return r.MinHold.Duration
		}
		return defaultHold
	}
	devices = map[string]*subject{}
	gateways = map[string]*subject{}
	for _, di := range org.Devices() {
		d := di.Device
		s := &subject{
			company: di.Company.ID, project: di.Project.ID, gateway: di.Gateway.ID, device: d.ID,
			category: d.Kind, location: di.Project.Location, byMetric: map[string][]*tracker{},
		}
		for i := range rules.Rules {
			r := &rules.Rules[i]
			switch r.Kind {
			case config.RuleGatewayOffline, config.RuleQueueOverflow:
				continue
			}
			if !r.Matches(d.Kind, d.Template) {
				continue
			}
			br, ok := applyOverrides(*r, di.Project, d.ID)
			if !ok {
				continue
			}
			br.wait, br.hold = br.For.Duration, hold(r)
			t := &tracker{rule: br, subject: s}
			s.trackers = append(s.trackers, t)
			if r.Kind == config.RuleStale {
				s.stale = t
				s.staleAfter = r.StaleAfter(d.PollInterval.Duration)
				continue
			}
			s.byMetric[r.Metric] = append(s.byMetric[r.Metric], t)
		}
		devices[d.ID] = s
	}
	bindGroups(org, rules, devices, hold)
	escalatedBy := map[string][]string{}
	for _, r := range rules.Rules {
		for _, id := range r.Escalates {
			escalatedBy[id] = append(escalatedBy[id], r.ID)
		}
	}
	for _, s := range devices {
		for _, t := range s.trackers {
			t.rule.heldBy = append(slices.Clip(t.rule.InhibitedBy), escalatedBy[t.rule.ID]...)
		}
		for _, ts := range s.byMetric {
			for _, t := range ts {
				if w := t.rule.When; w != nil {
					if s.latest == nil {
						s.latest = map[string]float64{}
					}
					s.latest[w.Metric] = math.NaN() // not known yet: the condition does not hold
				}
			}
		}
	}
	for ci := range org.Companies {
		c := &org.Companies[ci]
		for pi := range c.Projects {
			p := &c.Projects[pi]
			for gi := range p.Gateways {
				g := &p.Gateways[gi]
				s := &subject{company: c.ID, project: p.ID, gateway: g.ID, category: CategoryGateway, location: p.Location}
				for i := range rules.Rules {
					r := &rules.Rules[i]
					if r.Kind != config.RuleGatewayOffline && r.Kind != config.RuleQueueOverflow {
						continue
					}
					br, ok := applyOverrides(*r, p, "")
					if !ok {
						continue
					}
					t := &tracker{rule: br, subject: s}
					if r.Kind == config.RuleGatewayOffline {
						br.wait, br.hold = br.After.Duration, hold(r)
						s.offline = t
					} else {
						br.wait, br.hold = 0, max(br.MinHold.Duration, queueQuiet)
						s.overflow = t
					}
					s.trackers = append(s.trackers, t)
				}
				gateways[g.ID] = s
			}
		}
	}
	return devices, gateways
}

// bindGroups gives each device group of org.yaml one tracker per group
// rule, fed by the readings of every member in place of the members' own.
func bindGroups(org *config.Org, rules *config.RuleFile, devices map[string]*subject, hold func(*config.Rule) time.Duration) {
	for ci := range org.Companies {
		c := &org.Companies[ci]
		for pi := range c.Projects {
			p := &c.Projects[pi]
			for _, g := range p.Groups {
				var members []*subject
				for _, id := range g.Devices {
					if m := devices[id]; m != nil {
						members = append(members, m)
					}
				}
				if len(members) == 0 {
					continue
				}
				first := members[0]
				gs := &subject{company: c.ID, project: p.ID, gateway: first.gateway, device: g.ID,
					category: first.category, location: p.Location, byMetric: map[string][]*tracker{}, group: true, members: members}
				for _, m := range members {
					m.groups = append(m.groups, gs)
				}
				for _, id := range g.Rules {
					r := rules.Rule(id)
					if r == nil {
						continue
					}
					br, ok := applyOverrides(*r, p, g.ID)
					if !ok {
						continue
					}
					br.wait, br.hold = br.For.Duration, hold(r)
					t := &tracker{rule: br, subject: gs}
					gs.trackers = append(gs.trackers, t)
					for _, m := range members {
						m.trackers = slices.DeleteFunc(m.trackers, func(x *tracker) bool { return x.rule.ID == id })
						m.byMetric[r.Metric] = slices.DeleteFunc(m.byMetric[r.Metric], func(x *tracker) bool { return x.rule.ID == id })
						m.byMetric[r.Metric] = append(m.byMetric[r.Metric], t)
					}
				}
				devices[g.ID] = gs
			}
		}
	}
}

// applyOverrides applies the project-wide overrides of the rule, then the
// ones for the device. It reports false when the rule is disabled.
func applyOverrides(r config.Rule, p *config.Project, device string) (*boundRule, bool) {
	apply := func(o config.RuleOverride) bool {
		if o.Disabled {
			return false
		}
		if o.Above != nil {
			v := *o.Above
			r.Above = &v
		}
		if o.Below != nil {
			v := *o.Below
			r.Below = &v
		}
		if o.For != nil {
			r.For = *o.For
		}
		return true
	}
	for _, o := range p.RuleOverrides {
		if o.Rule == r.ID && o.Device == "" && !apply(o) {
			return nil, false
		}
	}
	if device != "" {
		for _, o := range p.RuleOverrides {
			if o.Rule == r.ID && o.Device == device && !apply(o) {
				return nil, false
			}
		}
	}
	return &boundRule{Rule: r}, true
}

// Thresholds describes the rules bound to one device with their effective
// limits, for operators checking what overrides resolved to.
func (e *Engine) Thresholds(device string) ([]string, error) {
	s := e.devices[device]
	if s == nil {
		return nil, fmt.Errorf("cannot describe rules of device %q: unknown device", device)
	}
	var out []string
	for _, t := range s.trackers {
		r := t.rule
		var b strings.Builder
		fmt.Fprintf(&b, "%s (%s, %s)", r.ID, r.Kind, r.Severity)
		if r.Metric != "" {
			fmt.Fprintf(&b, " metric=%s", r.Metric)
		}
		if r.Above != nil {
			fmt.Fprintf(&b, " above=%v", *r.Above)
		}
		if r.Below != nil {
			fmt.Fprintf(&b, " below=%v", *r.Below)
		}
		if r.wait > 0 {
			fmt.Fprintf(&b, " for=%s", r.wait)
		}
		if r.Hysteresis > 0 {
			fmt.Fprintf(&b, " hysteresis=%v", r.Hysteresis)
		}
		if r.hold > 0 {
			fmt.Fprintf(&b, " min_hold=%s", r.hold)
		}
		out = append(out, b.String())
	}
	sort.Strings(out)
	return out, nil
}
