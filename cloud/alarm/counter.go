package alarm

import (
	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/config"
)

// counterWalk follows a device's energy counter reading by reading with the
// plausibility walk energy reports use (energy.Step), so that a
// counter_discontinuity rule raises on exactly the readings a report
// credits 0. A reading that is not a plausible step waits for the next one,
// which decides whether it was an outlier.
type counterWalk struct {
	maxKW, rollover float64
	prev, pending   energy.Point
	hasPrev, hasPen bool
	decided         energy.Point // the reading the last decision was about
}

// observe feeds one reading. decided is false while nothing was decided
// (the first reading, a reading waiting for the next, one out of order);
// otherwise kind is the event of the reading decided ("" for a plausible
// step).
func (w *counterWalk) observe(ts int64, v float64) (kind string, decided bool) {
	cur := energy.Point{TS: ts, V: v}
	switch {
	case !w.hasPrev:
		w.prev, w.hasPrev = cur, true
		return "", false
	case ts <= w.prev.TS || (w.hasPen && ts <= w.pending.TS):
		return "", false // a duplicate or late reading: the walk has passed it
	}
	if w.hasPen {
		w.decided = w.pending
		_, kind, accepted := energy.Step(w.prev, w.pending, &cur, w.maxKW, w.rollover)
		if accepted {
			w.prev = w.pending
		}
		w.hasPen = false
		w.next(cur)
		return kind, true
	}
	if w.next(cur) {
		w.decided = cur
		return "", true
	}
	return "", false
}

// next takes cur after prev: accepted at once when plausible, else held.
func (w *counterWalk) next(cur energy.Point) bool {
	if energy.Plausible(w.prev, cur, w.maxKW) {
		w.prev = cur
		return true
	}
	w.pending, w.hasPen = cur, true
	return false
}

// bindCounterRules gives each counter_discontinuity tracker its device's
// counter: the template's energy.counter (or the rule's metric), maximum
// power (the device's max_power_kw, else the template's) and rollover. A
// device without an energy counter keeps the tracker idle.
func bindCounterRules(devices map[string]*subject, org *config.Org, templates config.Templates) {
	for _, di := range org.Devices() {
		s := devices[di.Device.ID]
		if s == nil {
			continue
		}
		// bindRules filed rules without a metric under ""; these find
		// their metric here.
		var keep []*tracker
		for _, t := range s.byMetric[""] {
			if t.rule.Kind != config.RuleCounterDiscontinuity {
				keep = append(keep, t)
			}
		}
		if len(keep) == 0 {
			delete(s.byMetric, "")
		} else {
			s.byMetric[""] = keep
		}
		var tpl *config.Template
		if templates != nil {
			tpl = templates[di.Device.Template]
		}
		for _, t := range s.trackers {
			if t.rule.Kind != config.RuleCounterDiscontinuity || tpl == nil || tpl.Energy == nil || tpl.Energy.Counter == "" {
				continue
			}
			metric := tpl.Energy.Counter
			if t.rule.Metric != "" {
				metric = t.rule.Metric
			}
			w := &counterWalk{maxKW: tpl.Energy.MaxPowerKW}
			if di.Device.MaxPowerKW > 0 {
				w.maxKW = di.Device.MaxPowerKW
			}
			if pt := tpl.Point(metric); pt != nil {
				w.rollover = pt.Rollover
			} else if tpl.MQTT != nil {
				for _, f := range tpl.MQTT.Fields {
					if f.Metric == metric {
						w.rollover = f.Rollover
					}
				}
			}
			t.walk = w
			if t.rule.Metric == "" {
				s.byMetric[metric] = append(s.byMetric[metric], t)
			}
		}
	}
}
