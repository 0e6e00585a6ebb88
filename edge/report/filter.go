package report

import (
	"math"
	"sync"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// DefaultHeartbeat is the heartbeat the agent uses unless configured.
const DefaultHeartbeat = 5 * time.Minute

// Spec says how one metric is reported: its deadband (0: any change) and
// whether it is a cumulative counter.
type Spec struct {
	Deadband float64
	Counter  bool
}

// Specs returns the report spec of every metric of a template, from its
// Modbus points or its MQTT fields.
func Specs(t *config.Template) map[string]Spec {
	out := make(map[string]Spec, len(t.Points))
	for _, pt := range t.Points {
		out[pt.Metric] = Spec{Deadband: pt.Deadband, Counter: pt.Counter}
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			out[f.Metric] = Spec{Deadband: f.Deadband, Counter: f.Counter}
		}
	}
	return out
}

// sent is what the filter remembers of the last reading it let through.
type sent struct {
	value   float64
	ts      int64 // reading time, Unix ms
	quality protocol.Quality
}

// Filter decides which readings are worth sending. It is safe for
// concurrent use (the Modbus poller's device goroutines and the MQTT input
// call it at once). It remembers one value per (device, metric) it let
// through.
type Filter struct {
	heartbeat int64 // ms

	mu               sync.Mutex
	last             map[string]map[string]sent // device → metric → last sent
	entries          int
	kept, suppressed uint64
}

// NewFilter returns a filter with the given heartbeat: an unchanged value
// is sent again once this much reading time passed since it was last sent.
// A heartbeat of 0 (or less) turns the filter off: every reading is kept.
func NewFilter(heartbeat time.Duration) *Filter {
	return &Filter{heartbeat: max(0, heartbeat.Milliseconds()), last: map[string]map[string]sent{}}
}

// Keep reports whether reading r should be sent, and if so remembers it as
// the metric's last sent reading. A reading is kept when it is:
//
//   - the first of its device and metric (since start or ResetDevice);
//   - of another quality than the last sent one;
//   - older than the last sent one (the clock was set back);
//   - a heartbeat or more after the last sent one;
//   - a counter's value that differs from the last sent one, by however
//     little: counters have no deadband, so every increment, reset or
//     rollover is sent the poll it is seen and energy lands in the right
//     tariff period;
//   - any other value that differs from the last sent one by at least
//     deadband (deadband 0: by anything; coded states and flags have no
//     deadband in the templates, so every change of state is sent).
//
// The deadband is measured from the last value sent, not the last value
// seen, so a slow drift is sent once it adds up. The filter does not judge
// values: a NaN or ±Inf reading is kept and not remembered.
func (f *Filter) Keep(r protocol.Reading, deadband float64, counter bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || f.keep(r, deadband, counter) {
		f.kept++
		return true
	}
	f.suppressed++
	return false
}

// keep decides and remembers; f.mu is held.
func (f *Filter) keep(r protocol.Reading, deadband float64, counter bool) bool {
	metrics := f.last[r.Device]
	if metrics == nil {
		metrics = map[string]sent{}
		f.last[r.Device] = metrics
	}
	prev, seen := metrics[r.Metric]
	switch {
	case !seen, f.heartbeat == 0, r.Quality != prev.quality, r.TS < prev.ts, r.TS-prev.ts >= f.heartbeat:
	case counter || deadband <= 0:
		if r.Value == prev.value {
			return false
		}
	case math.Abs(r.Value-prev.value) < deadband*(1-1e-9): // a change of exactly the deadband, decimal rounding aside, is sent
		return false
	}
	if !seen {
		f.entries++
	}
	metrics[r.Metric] = sent{value: r.Value, ts: r.TS, quality: r.Quality}
	return true
}

// Apply filters rs in place with the specs of their metrics and returns
// the readings to send (a prefix of rs). A reading of a metric without a
// spec is kept and not remembered, so memory stays bounded by the
// configured metrics.
func (f *Filter) Apply(rs []protocol.Reading, specs map[string]Spec) []protocol.Reading {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range rs {
		s, ok := specs[r.Metric]
		if !ok || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || f.keep(r, s.Deadband, s.Counter) {
			rs[n] = r
			n++
			f.kept++
		} else {
			f.suppressed++
		}
	}
	return rs[:n]
}

// ResetDevice forgets a device's last sent readings, so its next reading
// of every metric is sent: call it when the device is reconfigured or
// removed (configuration reload), and when it comes back online.
func (f *Filter) ResetDevice(deviceID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries -= len(f.last[deviceID])
	delete(f.last, deviceID)
}

// Retain forgets every device for which keep returns false: after a reload,
// with the set of configured devices.
func (f *Filter) Retain(keep func(deviceID string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, ms := range f.last {
		if !keep(id) {
			f.entries -= len(ms)
			delete(f.last, id)
		}
	}
}

// Stats are the filter's counters.
type Stats struct {
	Kept, Suppressed uint64 // readings let through and held back
	Entries          int    // (device, metric) pairs remembered
}

// Stats returns the filter's counters.
func (f *Filter) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Stats{Kept: f.kept, Suppressed: f.suppressed, Entries: f.entries}
}
