package ingest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Event kinds the ingest derives and passes to observers (and stores).
const (
	EventDeviceStale = "device_stale" // no reading for StaleAfterIntervals poll intervals
	EventDeviceFresh = "device_fresh" // readings again after device_stale
)

// GatewayState is what the cloud knows of a gateway's connection.
type GatewayState struct {
	Gateway string
	Known   bool      // a status was ever received
	Online  bool      // its last status was "online"
	Since   time.Time // time of that status
	Reason  string    // e.g. "last_will", "shutdown"
	Agent   string    // agent version from the last online status
}

// DeviceState is what the cloud knows of a device's data flow.
type DeviceState struct {
	Device, Gateway string
	LastTS          time.Time     // newest committed reading (zero: none known)
	StaleAfter      time.Duration // poll interval × stale_after_intervals
	Stale           bool          // no reading within StaleAfter of now (or never one)
}

// Presence tracks gateway online/offline (from status messages and last
// wills) and device data freshness. Safe for concurrent use; the API reads
// it through Ingest.Presence.
type Presence struct {
	now     func() time.Time
	devices map[string]config.DeviceInfo
	factor  int
	// MinStale is the shortest stale window whatever the poll interval.
	// Gateways report by exception: an unchanged value is re-sent only at
	// the edge's heartbeat (5 min by default), so a quiet device must not
	// count as stale sooner. Set it before the ingest starts.
	MinStale time.Duration

	mu       sync.RWMutex
	gateways map[string]*GatewayState
	lastTS   map[string]time.Time
}

// NewPresence tracks the gateways and devices of org; a device is stale
// after staleAfterIntervals of its poll intervals without a reading.
func NewPresence(org *config.Org, staleAfterIntervals int) *Presence {
	p := &Presence{now: time.Now, devices: map[string]config.DeviceInfo{}, factor: staleAfterIntervals,
		gateways: map[string]*GatewayState{}, lastTS: map[string]time.Time{}}
	for _, d := range org.Devices() {
		p.devices[d.Device.ID] = d
	}
	for _, c := range org.Companies {
		for _, pr := range c.Projects {
			for _, g := range pr.Gateways {
				p.gateways[g.ID] = &GatewayState{Gateway: g.ID}
			}
		}
	}
	return p
}

// Gateway returns a gateway's state; false for a gateway not in the org.
func (p *Presence) Gateway(id string) (GatewayState, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	g, ok := p.gateways[id]
	if !ok {
		return GatewayState{}, false
	}
	return *g, true
}

// Gateways returns every gateway's state, by id.
func (p *Presence) Gateways() []GatewayState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]GatewayState, 0, len(p.gateways))
	for _, g := range p.gateways {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Gateway < out[j].Gateway })
	return out
}

// Device returns a device's state now; false for a device not in the org.
func (p *Presence) Device(id string) (DeviceState, bool) {
	d, ok := p.devices[id]
	if !ok {
		return DeviceState{}, false
	}
	p.mu.RLock()
	last := p.lastTS[id]
	p.mu.RUnlock()
	return p.state(d, last, p.now()), true
}

// Devices returns every device's state now, by id.
func (p *Presence) Devices() []DeviceState {
	now := p.now()
	p.mu.RLock()
	out := make([]DeviceState, 0, len(p.devices))
	for id, d := range p.devices {
		out = append(out, p.state(d, p.lastTS[id], now))
	}
	p.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

func (p *Presence) state(d config.DeviceInfo, last, now time.Time) DeviceState {
	after := time.Duration(p.factor) * d.Device.PollInterval.Duration
	if after <= 0 {
		after = time.Duration(p.factor) * config.DefaultPollInterval
	}
	after = max(after, p.MinStale)
	return DeviceState{Device: d.Device.ID, Gateway: d.Gateway.ID, LastTS: last, StaleAfter: after,
		Stale: last.IsZero() || now.Sub(last) > after}
}

// seen records committed readings of a device up to ts.
func (p *Presence) seen(device string, ts time.Time) {
	p.mu.Lock()
	if ts.After(p.lastTS[device]) {
		p.lastTS[device] = ts
	}
	p.mu.Unlock()
}

// setStatus records a gateway status; it returns false when the status is
// older than what is known (a late redelivery).
func (p *Presence) setStatus(gateway string, online bool, at time.Time, reason, agent string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.gateways[gateway]
	if g == nil {
		return false
	}
	if g.Known && at.Before(g.Since) {
		return false
	}
	*g = GatewayState{Gateway: gateway, Known: true, Online: online, Since: at, Reason: reason, Agent: agent}
	if !online {
		g.Agent = ""
	}
	return true
}

// StatusSource is where Load reads the gateways' last status changes.
type StatusSource interface {
	LatestGatewayStatus(ctx context.Context) ([]store.GatewayStatusRow, error)
}

// Load sets gateway states from the stored status changes and device
// freshness from the latest values.
func (p *Presence) Load(ctx context.Context, src StatusSource, latest *Latest) error {
	rows, err := src.LatestGatewayStatus(ctx)
	if err != nil {
		return err
	}
	for _, r := range rows {
		p.setStatus(r.Gateway, r.Kind == store.KindGatewayOnline, time.UnixMilli(r.TS), r.Message, "")
	}
	for id := range p.devices {
		if ts, ok := latest.LastSeen(id); ok {
			p.seen(id, ts)
		}
	}
	return nil
}

// staleWatch turns device freshness into device_stale / device_fresh
// transitions. It starts with every device considered fresh as of start,
// so a device that never sends gets its device_stale after StaleAfter, and
// a device already stale at start (known from ClickHouse) gets one at the
// first check.
type staleWatch struct {
	p       *Presence
	start   time.Time
	stale   map[string]bool
	devices []string
}

func newStaleWatch(p *Presence, start time.Time) *staleWatch {
	w := &staleWatch{p: p, start: start, stale: map[string]bool{}}
	for id := range p.devices {
		w.devices = append(w.devices, id)
	}
	sort.Strings(w.devices)
	return w
}

// check returns the transitions since the last check as events.
func (w *staleWatch) check(now time.Time) []deviceEvent {
	var out []deviceEvent
	for _, id := range w.devices {
		d := w.p.devices[id]
		w.p.mu.RLock()
		last := w.p.lastTS[id]
		w.p.mu.RUnlock()
		ref := last
		if ref.IsZero() {
			ref = w.start
		}
		st := w.p.state(d, ref, now)
		if st.Stale == w.stale[id] {
			continue
		}
		w.stale[id] = st.Stale
		e := protocol.Event{V: protocol.MessageVersion, Gateway: d.Gateway.ID, Kind: EventDeviceFresh, Device: id, TS: now.UnixMilli()}
		if st.Stale {
			e.Kind = EventDeviceStale
			if last.IsZero() {
				e.Message = fmt.Sprintf("no reading since the cloud started (%s ago; expected every %s)", now.Sub(w.start).Round(time.Second), d.Device.PollInterval)
			} else {
				e.Message = fmt.Sprintf("no reading for %s (expected every %s)", now.Sub(last).Round(time.Second), d.Device.PollInterval)
				e.Attrs = map[string]float64{"last_ts": float64(last.UnixMilli())}
			}
		} else {
			e.Message = "readings again"
		}
		out = append(out, deviceEvent{gw: d.GatewayInfo, event: e})
	}
	return out
}

type deviceEvent struct {
	gw    config.GatewayInfo
	event protocol.Event
}

// interval is how often check should run: half the shortest poll interval,
// between 50 ms and 5 s.
func (w *staleWatch) interval() time.Duration {
	iv := 5 * time.Second
	for _, d := range w.p.devices {
		if h := d.Device.PollInterval.Duration / 2; h > 0 && h < iv {
			iv = h
		}
	}
	return max(iv, 50*time.Millisecond)
}
