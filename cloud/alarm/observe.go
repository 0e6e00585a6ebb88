package alarm

import (
	"context"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Ingest event kinds the engine understands besides the protocol's own:
// ingest synthesizes these when a device stops and resumes reporting.
const (
	EventDeviceStale = "device_stale"
	EventDeviceFresh = "device_fresh"
)

// ObserveBatch evaluates a committed telemetry batch. Readings of a device
// and metric at or before the latest one already evaluated are ignored, so
// a redelivered batch changes nothing. It returns once the resulting events
// are stored (or queued for retry) and dispatched.
func (e *Engine) ObserveBatch(ctx context.Context, gw config.GatewayInfo, b *protocol.Batch, arrived time.Time) {
	if !e.accept("batch") {
		return
	}
	e.procMu.Lock()
	defer e.procMu.Unlock()
	var trs []transition
	g := e.gateways[gw.Gateway.ID]
	if g != nil && g.offline != nil {
		// Telemetry proves the gateway is connected.
		trs = append(trs, g.offline.step(input{ts: arrived.UnixMilli(), arrived: arrived}, false, true)...)
	}
	evs := e.apply(trs)
	seen := map[*subject]bool{}
	for i := range b.Readings {
		// Each reading's decisions are applied before the next reading is
		// judged: a tracker fed twice in one batch (the members of a
		// group, several polls of a device) must see the alarm the first
		// one raised, or it raises a second.
		evs = append(evs, e.apply(e.evaluate(gw.Gateway.ID, &b.Readings[i], arrived, false, seen))...)
	}
	e.commit(ctx, evs)
}

// evaluate runs one reading through the trackers of its device. seen
// marks the devices already noted as reporting in this batch. A replayed
// reading (from storage, at start) arrived at its own time and carries no
// arrival for latency measurement. e.procMu must be held.
func (e *Engine) evaluate(gateway string, r *protocol.Reading, arrived time.Time, replay bool, seen map[*subject]bool) []transition {
	s := e.devices[r.Device]
	if s == nil || s.gateway != gateway {
		e.m.ignored.WithLabelValues("unknown_device").Inc()
		return nil
	}
	if r.Quality == protocol.QualityBad {
		e.m.ignored.WithLabelValues("bad_quality").Inc()
		return nil
	}
	var trs []transition
	if !seen[s] {
		seen[s] = true
		s.lastArrived = arrived
		if st := s.stale; st != nil && st.active() {
			trs = append(trs, st.step(input{ts: arrived.UnixMilli(), arrived: arrived, replay: replay}, false, true)...)
		} else if st != nil {
			st.pendingSince = 0
		}
	}
	if _, ok := s.latest[r.Metric]; ok {
		s.latest[r.Metric] = r.Value
	}
	for _, t := range s.byMetric[r.Metric] {
		if r.TS <= t.lastTS {
			if !replay {
				e.m.ignored.WithLabelValues("old_reading").Inc()
			}
			continue
		}
		in := input{ts: r.TS, value: r.Value, metric: r.Metric, arrived: arrived, replay: replay}
		raise, clear, ok := t.conditions(in)
		if !ok {
			t.lastTS, t.lastArrived, t.last = in.ts, in.arrived, in
			continue
		}
		if w := t.rule.When; w != nil && !w.Holds(s.latest[w.Metric]) {
			// Outside the rule's condition (the pump is not running): the
			// reading says nothing about the problem; it is absent.
			raise, clear = false, true
		}
		if w := t.walk; w != nil && raise {
			in.ts, in.value = w.decided.TS, w.decided.V // the alarm names the jump, not the reading after it
		}
		trs = append(trs, t.step(in, raise, clear)...)
	}
	return trs
}

// ObserveStatus handles a gateway status: "offline" (the last will) starts
// the gateway-offline timer, "online" stops it or clears the alarm.
func (e *Engine) ObserveStatus(ctx context.Context, gw config.GatewayInfo, s protocol.Status, arrived time.Time) {
	if !e.accept("status") {
		return
	}
	g := e.gateways[gw.Gateway.ID]
	if g == nil || g.offline == nil {
		return
	}
	e.procMu.Lock()
	defer e.procMu.Unlock()
	in := input{ts: arrived.UnixMilli(), arrived: arrived}
	var trs []transition
	switch s.State {
	case protocol.StateOffline:
		trs = g.offline.step(in, true, false)
		e.graceOffline(g.offline)
	case protocol.StateOnline:
		trs = g.offline.step(in, false, true)
	}
	e.commit(ctx, e.apply(trs))
}

// ObserveEvent handles gateway and device events: queue overflows, and
// devices going stale or offline and coming back.
func (e *Engine) ObserveEvent(ctx context.Context, gw config.GatewayInfo, ev protocol.Event, arrived time.Time) {
	if !e.accept("event") {
		return
	}
	e.procMu.Lock()
	defer e.procMu.Unlock()
	var trs []transition
	switch ev.Kind {
	case protocol.EventQueueOverflow:
		g := e.gateways[gw.Gateway.ID]
		if g == nil || g.overflow == nil {
			return
		}
		t := g.overflow
		if ev.TS <= t.lastTS {
			e.m.ignored.WithLabelValues("old_event").Inc()
			return
		}
		trs = t.occurred(input{ts: ev.TS, value: ev.Attrs["dropped"], metric: "dropped", arrived: arrived})
	case EventDeviceStale, protocol.EventDeviceOffline, EventDeviceFresh, protocol.EventDeviceOnline:
		s := e.devices[ev.Device]
		if s == nil || s.gateway != gw.Gateway.ID || s.stale == nil {
			return
		}
		in := input{ts: arrived.UnixMilli(), arrived: arrived}
		if ev.Kind == EventDeviceStale || ev.Kind == protocol.EventDeviceOffline {
			if !s.lastArrived.IsZero() {
				in.value = arrived.Sub(s.lastArrived).Seconds()
			}
			trs = s.stale.step(in, true, false)
		} else {
			trs = s.stale.step(in, false, true)
		}
	default:
		return
	}
	e.commit(ctx, e.apply(trs))
}

func (e *Engine) accept(what string) bool {
	if e.isRunning() {
		return true
	}
	e.m.ignored.WithLabelValues("not_started").Inc()
	if e.warnedIdle.CompareAndSwap(false, true) {
		e.log.Error("alarm engine is not running: inputs are dropped (counted in plantroom_alarm_inputs_ignored_total{reason=\"not_started\"})", "input", what)
	}
	return false
}
