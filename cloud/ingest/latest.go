package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// LatestValue is the newest reading of one metric of one device.
type LatestValue struct {
	Value   float64
	TS      time.Time // reading time (the device's clock, via the gateway)
	Quality protocol.Quality
}

// Latest caches the newest value of every device's metrics for the API.
// The ingest rebuilds it from ClickHouse at start and updates it after each
// commit; only committed readings ever appear in it. Safe for concurrent
// use.
// Readings of bad quality never enter it, and with Declare only the
// metrics the org declares do: its size is bounded by the org.
type Latest struct {
	mu      sync.RWMutex
	devices map[string]map[string]LatestValue
	known   func(device, metric string) bool // nil: any
}

// NewLatest returns an empty cache.
func NewLatest() *Latest { return &Latest{devices: map[string]map[string]LatestValue{}} }

// Declare bounds the cache to the metrics that each device's template
// declares (devices of org without a template hold none).
func (l *Latest) Declare(org *config.Org, ts config.Templates) {
	tmpl := map[string]*config.Template{}
	for _, d := range org.Devices() {
		tmpl[d.Device.ID] = ts[d.Device.Template]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.known = func(device, metric string) bool {
		t := tmpl[device]
		if t == nil {
			return false
		}
		_, ok := t.Metric(metric)
		return ok
	}
	for dev, m := range l.devices {
		for metric := range m {
			if !l.known(dev, metric) {
				delete(m, metric)
			}
		}
		if len(m) == 0 {
			delete(l.devices, dev)
		}
	}
}

// Get returns a copy of the device's metrics and their newest values (nil
// when nothing is known).
func (l *Latest) Get(device string) map[string]LatestValue {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m := l.devices[device]
	if m == nil {
		return nil
	}
	out := make(map[string]LatestValue, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// LastSeen returns the time of the device's newest reading of any metric.
func (l *Latest) LastSeen(device string) (time.Time, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var last time.Time
	for _, v := range l.devices[device] {
		if v.TS.After(last) {
			last = v.TS
		}
	}
	return last, !last.IsZero()
}

// Devices lists the devices with at least one value.
func (l *Latest) Devices() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]string, 0, len(l.devices))
	for d := range l.devices {
		out = append(out, d)
	}
	return out
}

// update keeps v if it is newer than what the cache holds. The caller holds
// the write lock.
func (l *Latest) update(device, metric string, v LatestValue) {
	if v.Quality == protocol.QualityBad || l.known != nil && !l.known(device, metric) {
		return
	}
	m := l.devices[device]
	if m == nil {
		m = map[string]LatestValue{}
		l.devices[device] = m
	}
	if cur, ok := m[metric]; !ok || !v.TS.Before(cur.TS) {
		m[metric] = v
	}
}

// addBatch records the readings of a committed batch.
func (l *Latest) addBatch(rs []protocol.Reading) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range rs {
		r := &rs[i]
		l.update(r.Device, r.Metric, LatestValue{Value: r.Value, TS: time.UnixMilli(r.TS), Quality: r.Quality})
	}
}

// LatestSource is where Load reads the newest readings.
type LatestSource interface {
	LatestReadings(ctx context.Context, since time.Time) ([]store.LatestRow, error)
}

// Load merges the newest readings since the given time from ClickHouse
// into the cache (newer values already cached win).
func (l *Latest) Load(ctx context.Context, src LatestSource, since time.Time) error {
	rows, err := src.LatestReadings(ctx, since)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range rows {
		l.update(r.Device, r.Metric, LatestValue{Value: r.Value, TS: time.UnixMilli(r.TS), Quality: protocol.Quality(r.Quality)})
	}
	return nil
}
