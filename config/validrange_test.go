package config

import (
	"math"
	"strings"
	"testing"
)

func TestValidRange(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		r    ValidRange
		v    float64
		want bool
	}{
		{ValidRange{}, 1.7e308, true},
		{ValidRange{}, math.Inf(1), false},
		{ValidRange{}, math.NaN(), false},
		{ValidRange{Counter: true}, -0.5, false},
		{ValidRange{Counter: true}, 0, true},
		{ValidRange{Max: f(1e7), Counter: true}, 1.7e308, false},
		{ValidRange{Min: f(-40), Max: f(150)}, -40, true},
		{ValidRange{Min: f(-40), Max: f(150)}, 150.01, false},
		{ValidRange{Min: f(-40), Max: f(150)}, -41, false},
	} {
		if got := c.r.Contains(c.v); got != c.want {
			t.Errorf("%s contains %v = %v, want %v", c.r, c.v, got, c.want)
		}
	}
	tm := &Template{Points: []Point{{Metric: "energy_kwh", Counter: true, Max: f(1e9)}},
		MQTT: &MQTTFormat{Fields: []MQTTField{{Metric: "power_w", Min: f(0), Max: f(4000)}}}}
	if r, ok := tm.Metric("energy_kwh"); !ok || r.String() != "[0, 1e+09]" {
		t.Errorf("energy_kwh: %s %v", r, ok)
	}
	if r, ok := tm.Metric("power_w"); !ok || r.Contains(5000) {
		t.Errorf("power_w: %s %v", r, ok)
	}
	if _, ok := tm.Metric("invented_1"); ok {
		t.Error("an undeclared metric has a range")
	}
	var p Problems
	checkRange(&p, "points[0]", f(10), f(1))
	checkRange(&p, "points[1]", f(math.Inf(-1)), nil)
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "points[0].max: 1 is below min 10") || !strings.Contains(err.Error(), "points[1].min: must be a finite number") {
		t.Errorf("problems: %v", err)
	}
}
