package alarm

import (
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/energy"
)

const counterRule = "energy-counter-discontinuity"

// The walk in the engine decides each reading as energy.Walk does: an
// isolated glitch is an outlier (no alarm), a jump that stays is a
// discontinuity (an alarm with a work order), decided when the next
// reading arrives; a meter replaced is no alarm either.
func TestCounterDiscontinuityRule(t *testing.T) {
	r := newRig(t, nil, nil)
	m := time.Minute
	// garden-pump-1: pump-vfd, energy_kwh, max_power_kw 22: A = 0.417 kWh a minute.
	vals := []float64{1000, 1000.2, 0, 1000.6, 1000.8, // a poll reading 0: an outlier
		953.674,                     // a step back that stays: decided by the next reading
		953.9, 954.1, 0.3, 0.5, 0.7} // then a meter replaced
	for i, v := range vals {
		r.read(gwGarden, pump, "energy_kwh", time.Duration(i)*m, v)
		if i == 5 && r.active(pump, counterRule) != nil {
			t.Fatalf("raised before the reading after the jump arrived: %v", r.log.kinds())
		}
	}
	a := r.active(pump, counterRule)
	if a == nil {
		t.Fatalf("no %s alarm; events %v", counterRule, r.log.kinds())
	}
	if a.Value != 953.674 || !a.WorkOrder || a.Severity != "minor" {
		t.Errorf("alarm %+v: want value 953.674 (the jump), a work order, minor", a)
	}
	if n := r.log.count(EventRaise, counterRule); n != 1 {
		t.Errorf("%d raises, want 1 (the outlier and the replacement raise nothing): %v", n, r.log.kinds())
	}
	// The same readings through the report's walk: one outlier, one
	// discontinuity, one replacement.
	pts := make([]energy.Point, len(vals))
	for i, v := range vals {
		pts[i] = energy.Point{TS: t0.Add(time.Duration(i) * m).UnixMilli(), V: v}
	}
	var kinds []string
	for _, e := range energy.Walk(pts, 22, 0).Events {
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, ","); got != "outlier,discontinuity,replacement" {
		t.Errorf("report walk events = %s", got)
	}
	// An hour of plausible readings clears it (min_hold 1h).
	for i := 0; i <= 61; i++ {
		r.read(gwGarden, pump, "energy_kwh", time.Duration(len(vals)+i)*m, 0.7+0.2*float64(i+1))
	}
	if r.active(pump, counterRule) != nil {
		t.Errorf("still active after an hour of plausible readings: %v", r.log.kinds())
	}
}
