package config

import (
	"fmt"
	"math"
)

// ValidRange is what a metric of a template may plausibly read: between
// Min and Max where the template sets them, and never below 0 for a
// counter. A reading outside it is kept, with bad quality and the cause
// "out_of_range", and left out of energy, latest values and alarms.
type ValidRange struct {
	Min, Max *float64
	Counter  bool
}

// Contains reports whether v is a plausible reading.
func (r ValidRange) Contains(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	if r.Min != nil && v < *r.Min || r.Max != nil && v > *r.Max {
		return false
	}
	return !r.Counter || v >= 0
}

// String describes the range: "[0, 1e+06]", "[0, ∞)".
func (r ValidRange) String() string {
	lo, hi := "(-∞", "∞)"
	switch {
	case r.Min != nil:
		lo = fmt.Sprintf("[%g", *r.Min)
		if r.Counter && *r.Min < 0 {
			lo = "[0"
		}
	case r.Counter:
		lo = "[0"
	}
	if r.Max != nil {
		hi = fmt.Sprintf("%g]", *r.Max)
	}
	return lo + ", " + hi
}

// Metric returns the valid range of a metric the template declares (a
// Modbus point or an MQTT field); ok is false for any other metric.
func (t *Template) Metric(metric string) (r ValidRange, ok bool) {
	if pt := t.Point(metric); pt != nil {
		return ValidRange{Min: pt.Min, Max: pt.Max, Counter: pt.Counter}, true
	}
	if t.MQTT != nil {
		for i := range t.MQTT.Fields {
			if f := &t.MQTT.Fields[i]; f.Metric == metric {
				return ValidRange{Min: f.Min, Max: f.Max, Counter: f.Counter}, true
			}
		}
	}
	return ValidRange{}, false
}

// MetricCount is how many metrics the template declares.
func (t *Template) MetricCount() int {
	n := len(t.Points)
	if t.MQTT != nil {
		n += len(t.MQTT.Fields)
	}
	return n
}

func checkRange(p *Problems, path string, lo, hi *float64) {
	for _, b := range []struct {
		name string
		v    *float64
	}{{"min", lo}, {"max", hi}} {
		if b.v != nil && (math.IsNaN(*b.v) || math.IsInf(*b.v, 0)) {
			p.Addf(Join(path, b.name), "must be a finite number, got %v", *b.v)
		}
	}
	if lo != nil && hi != nil && *lo > *hi {
		p.Addf(Join(path, "max"), "%v is below min %v", *hi, *lo)
	}
}

// Range is the point's valid range.
func (pt *Point) Range() ValidRange { return ValidRange{Min: pt.Min, Max: pt.Max, Counter: pt.Counter} }

// Range is the field's valid range.
func (f *MQTTField) Range() ValidRange { return ValidRange{Min: f.Min, Max: f.Max, Counter: f.Counter} }
