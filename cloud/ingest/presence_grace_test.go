package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

func demoPresence(t *testing.T, now *time.Time) *Presence {
	t.Helper()
	var org config.Org
	if err := config.LoadFile("../../configs/org.yaml", &org); err != nil {
		t.Fatal(err)
	}
	p := NewPresence(&org, 3)
	p.MinStale = 11 * time.Minute
	p.now = func() time.Time { return *now }
	return p
}

// Issue 19, point 2: after the cloud was down an hour, no device is stale
// before its window has passed since the start; a device that still sends
// nothing then is; one that reports is not. A gateway's return online
// restarts its devices' windows too, without calling them fresh.
func TestStaleWindowStartsAtResume(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	p := demoPresence(t, &now)
	for _, d := range p.devices {
		p.seen(d.Device.ID, now.Add(-time.Hour)) // last readings before the downtime
	}
	p.setStatus("gw-garden-1", true, now.Add(-time.Hour), "", "")
	p.setStatus("gw-tower-1", true, now.Add(-time.Hour), "", "")
	p.Resume(now)
	w := newStaleWatch(p, now)
	var events []string
	check := func() {
		for _, de := range w.check(now) {
			events = append(events, de.event.Kind+" "+de.event.Device)
		}
	}
	check()
	if len(events) != 0 {
		t.Fatalf("at start after an hour's downtime: %v, want nothing", events)
	}
	if d, _ := p.Device("garden-pump-1"); d.State != DeviceUnknown || d.Reason != ReasonWaiting {
		t.Errorf("device at start: %s/%s, want unknown/waiting", d.State, d.Reason)
	}
	now = now.Add(5 * time.Minute)
	for _, d := range p.devices {
		if d.Device.ID != "garden-pump-2" {
			p.seen(d.Device.ID, now) // heartbeats
		}
	}
	check()
	if d, _ := p.Device("garden-pump-1"); d.State != DeviceOnline {
		t.Errorf("device after a reading: %s, want online", d.State)
	}
	now = now.Add(6*time.Minute + time.Second) // 11m1s after the start
	check()
	if len(events) != 1 || events[0] != "device_stale garden-pump-2" {
		t.Fatalf("11m after the start: %v, want only garden-pump-2 stale", events)
	}
	// The tower gateway drops for an hour and comes back: its devices wait
	// for a report, and a device stale before stays stale (no "fresh"
	// without a reading).
	now = now.Add(time.Hour)
	p.setStatus("gw-tower-1", false, now.Add(-time.Hour), "last_will", "")
	events = nil
	check()
	if towerEvents(events) != 0 {
		t.Errorf("while its gateway is offline: %v, want nothing for its devices", events)
	}
	if d, _ := p.Device("tower-pump-1"); d.State != DeviceOffline || d.Reason != ReasonGatewayOffline {
		t.Errorf("tower device while its gateway is offline: %s/%s", d.State, d.Reason)
	}
	p.setStatus("gw-tower-1", true, now, "", "")
	events = nil
	check()
	if towerEvents(events) != 0 {
		t.Errorf("tower devices at their gateway's return: %v, want nothing yet", events)
	}
}

func towerEvents(events []string) int {
	n := 0
	for _, e := range events {
		if strings.Contains(e, " tower-") {
			n++
		}
	}
	return n
}

// Issue 19, point 4: the edge's device_offline event makes the device
// offline at once, ahead of staleness; a reading taken after it, or its
// device_online event, brings it back. An older event changes nothing.
func TestDeviceOfflineEventComesFirst(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	p := demoPresence(t, &now)
	p.Resume(now.Add(-time.Hour))
	p.setStatus("gw-garden-1", true, now.Add(-time.Hour), "", "")
	p.seen("garden-pump-1", now.Add(-20*time.Second))
	if d, _ := p.Device("garden-pump-1"); d.State != DeviceOnline {
		t.Fatalf("state %s, want online", d.State)
	}
	p.reach("garden-pump-1", true, now.Add(-5*time.Second))
	d, _ := p.Device("garden-pump-1")
	if d.State != DeviceOffline || d.Reason != ReasonDeviceOffline || !d.UnreachableSince.Equal(now.Add(-5*time.Second)) {
		t.Fatalf("after device_offline: %+v, want offline/device_offline", d)
	}
	p.reach("garden-pump-1", false, now.Add(-10*time.Second)) // an older device_online, redelivered late
	if d, _ := p.Device("garden-pump-1"); d.State != DeviceOffline {
		t.Errorf("an older device_online changed the state to %s", d.State)
	}
	markSeen(p, []protocol.Reading{{Device: "garden-pump-1", Metric: "running", TS: now.Add(-8 * time.Second).UnixMilli()}})
	if d, _ := p.Device("garden-pump-1"); d.State != DeviceOffline {
		t.Errorf("a reading taken before the device_offline event brought it back: %s", d.State)
	}
	markSeen(p, []protocol.Reading{{Device: "garden-pump-1", Metric: "running", TS: now.UnixMilli()}})
	if d, _ := p.Device("garden-pump-1"); d.State != DeviceOnline {
		t.Errorf("after a newer reading: %s, want online", d.State)
	}
}
