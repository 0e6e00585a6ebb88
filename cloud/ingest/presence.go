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
	eventStaleWill   = "stale_last_will"
)

// Device states: one judgement, shown by the API and behind the alarms.
const (
	DeviceOnline  = "online"  // readings within the stale window
	DeviceOffline = "offline" // its gateway is disconnected, or the gateway reported the device offline
	DeviceStale   = "stale"   // no reading within the stale window, gateway connected
	DeviceUnknown = "unknown" // nothing heard of device or gateway yet
)

// Reasons of a device that is not online.
const (
	ReasonGatewayOffline = "gateway_offline" // the gateway's status is offline
	ReasonDeviceOffline  = "device_offline"  // the gateway's latest event for it: device_offline
	ReasonNoData         = "no_data"         // no reading within the stale window
	ReasonWaiting        = "waiting"         // the cloud (or the gateway) is back; the device has not reported since
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
	// Stale: no reading within StaleAfter, counted from the newest reading
	// or, when later, from the moment the cloud could hear the device
	// again (start, end of an ingest outage, the gateway back online).
	Stale bool
	// Unreachable: the gateway's latest event for the device says it
	// stopped answering (device_offline), since UnreachableSince.
	Unreachable      bool
	UnreachableSince time.Time
	// State and Reason are the device's state as every screen shows it:
	// the edge's offline/online events first, staleness second.
	State  string
	Reason string
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
	offline  map[string]time.Time // device → time of the device_offline event in force
	reachTS  map[string]time.Time // device → time of its latest device_offline/online event
	resumed  time.Time            // the cloud could hear gateways again (start, ingest recovery)
}

// NewPresence tracks the gateways and devices of org; a device is stale
// after staleAfterIntervals of its poll intervals without a reading.
func NewPresence(org *config.Org, staleAfterIntervals int) *Presence {
	p := &Presence{now: time.Now, devices: map[string]config.DeviceInfo{}, factor: staleAfterIntervals,
		gateways: map[string]*GatewayState{}, lastTS: map[string]time.Time{},
		offline: map[string]time.Time{}, reachTS: map[string]time.Time{}}
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
	defer p.mu.RUnlock()
	return p.state(d, p.now()), true
}

// Devices returns every device's state now, by id.
func (p *Presence) Devices() []DeviceState {
	now := p.now()
	p.mu.RLock()
	out := make([]DeviceState, 0, len(p.devices))
	for _, d := range p.devices {
		out = append(out, p.state(d, now))
	}
	p.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// Resume marks the moment the cloud can hear gateways again: its start, or
// the end of an ingest outage. No device is stale before its stale window
// has passed since then: the cloud's own downtime is not the devices'.
func (p *Presence) Resume(at time.Time) {
	p.mu.Lock()
	if at.After(p.resumed) {
		p.resumed = at
	}
	p.mu.Unlock()
}

// staleAfter is the device's stale window.
func (p *Presence) staleAfter(d config.DeviceInfo) time.Duration {
	after := time.Duration(p.factor) * d.Device.PollInterval.Duration
	if after <= 0 {
		after = time.Duration(p.factor) * config.DefaultPollInterval
	}
	return max(after, p.MinStale)
}

// state judges a device. p.mu must be held (read).
func (p *Presence) state(d config.DeviceInfo, now time.Time) DeviceState {
	id := d.Device.ID
	last := p.lastTS[id]
	after := p.staleAfter(d)
	// The stale window runs from the newest reading, or from when the
	// device could be heard again if that is later.
	ref := last
	if p.resumed.After(ref) {
		ref = p.resumed
	}
	g := p.gateways[d.Gateway.ID]
	if g != nil && g.Known && g.Online && g.Since.After(ref) {
		ref = g.Since
	}
	st := DeviceState{Device: id, Gateway: d.Gateway.ID, LastTS: last, StaleAfter: after,
		Stale: ref.IsZero() || now.Sub(ref) > after}
	if off, ok := p.offline[id]; ok {
		st.Unreachable, st.UnreachableSince = true, off
	}
	switch {
	case g != nil && g.Known && !g.Online:
		st.State, st.Reason = DeviceOffline, ReasonGatewayOffline
	case st.Unreachable:
		st.State, st.Reason = DeviceOffline, ReasonDeviceOffline
	case !last.IsZero() && now.Sub(last) <= after:
		st.State = DeviceOnline
	case st.Stale && (!last.IsZero() || (g != nil && g.Known)):
		st.State, st.Reason = DeviceStale, ReasonNoData
	case !st.Stale:
		// Within the grace after the cloud's start, an ingest outage or
		// the gateway's return: not heard yet, not judged yet.
		st.State, st.Reason = DeviceUnknown, ReasonWaiting
	default:
		st.State = DeviceUnknown // nothing heard of device or gateway
	}
	return st
}

// reach records a device_offline (offline) or device_online event of a
// device at ts; an event older than the one in force changes nothing.
func (p *Presence) reach(device string, offline bool, ts time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.devices[device]; !ok || ts.Before(p.reachTS[device]) {
		return
	}
	p.reachTS[device] = ts
	if offline {
		p.offline[device] = ts
	} else {
		delete(p.offline, device)
	}
}

// seen records committed readings of a device up to ts.
func (p *Presence) seen(device string, ts time.Time) {
	p.mu.Lock()
	if ts.After(p.lastTS[device]) {
		p.lastTS[device] = ts
	}
	// A reading taken after the device_offline event: it answers again,
	// whether or not its device_online event has arrived yet.
	if off, ok := p.offline[device]; ok && ts.After(off) {
		delete(p.offline, device)
		p.reachTS[device] = ts
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
	if rs, ok := src.(interface {
		LatestDeviceReach(ctx context.Context) ([]store.DeviceReachRow, error)
	}); ok {
		rows, err := rs.LatestDeviceReach(ctx)
		if err != nil {
			return err
		}
		for _, r := range rows {
			p.reach(r.Device, r.Offline, time.UnixMilli(r.TS))
		}
	}
	for id := range p.devices {
		if ts, ok := latest.LastSeen(id); ok {
			p.seen(id, ts)
		}
	}
	return nil
}

// staleWatch turns device freshness into device_stale / device_fresh
// transitions. The stale window of every device runs from the newest of
// its reading, the cloud's start (Presence.Resume) and its gateway's
// return online, so neither the cloud's downtime nor a gateway's outage
// make devices stale; while its gateway is offline a device is left alone
// (the gateway's own alarm is the one alarm for it).
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
		st := w.p.state(d, now)
		w.p.mu.RUnlock()
		// Stale once its window passed without a reading; fresh again only
		// with a new reading (a gateway's return or the cloud's start
		// restart the window but prove nothing about the device).
		flip := st.Stale
		if w.stale[id] {
			flip = !st.LastTS.IsZero() && now.Sub(st.LastTS) <= st.StaleAfter
		}
		if st.Reason == ReasonGatewayOffline || !flip {
			continue
		}
		w.stale[id] = !w.stale[id]
		st.Stale = w.stale[id]
		last := st.LastTS
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
