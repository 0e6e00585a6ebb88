package modbus

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

// simStart is the virtual start of the test buildings: a Wednesday morning.
var simStart = time.Date(2026, 9, 16, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))

// startSim starts a simulated building with a manual clock and no random
// faults; devices listen on loopback port 0.
func startSim(t testing.TB, devs ...sim.DeviceConfig) *sim.Building {
	t.Helper()
	none := sim.PerDay(0)
	for i := range devs {
		if devs[i].Listen == "" {
			devs[i].Listen = "127.0.0.1:0"
		}
		if devs[i].Template == "pump-vfd" || devs[i].Template == "elevator" {
			devs[i].FaultsPerDay = none
		}
	}
	cfg := &sim.Config{Building: "test", Seed: 11, Clock: sim.ClockConfig{Start: simStart, Manual: true}, Devices: devs}
	b, err := sim.New(cfg, shippedTemplates(t), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	if err := b.Advance(time.Minute); err != nil { // models past their first step
		t.Fatal(err)
	}
	return b
}

// recorder is a poller's sink and state callback that remembers what it got.
type recorder struct {
	mu     sync.Mutex
	polls  map[string]int                // sink calls per device
	last   map[string][]protocol.Reading // readings of the last call per device
	states map[string][]bool             // online/offline reports per device, in order
	causes map[string]error              // cause of the last offline report
	hook   func()                        // called by onState, outside the lock
}

func newRecorder() *recorder {
	return &recorder{polls: map[string]int{}, last: map[string][]protocol.Reading{},
		states: map[string][]bool{}, causes: map[string]error{}}
}

func (r *recorder) sink(rs []protocol.Reading) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := rs[0].Device
	for _, x := range rs {
		if x.Device != id {
			panic("one sink call carries readings of two devices")
		}
	}
	r.polls[id]++
	r.last[id] = rs
}

func (r *recorder) onState(id string, online bool, cause error) {
	r.mu.Lock()
	r.states[id] = append(r.states[id], online)
	if !online {
		r.causes[id] = cause
	}
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		hook()
	}
}

func (r *recorder) setHook(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = f
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.polls[id]
}

func (r *recorder) lastReadings(id string) []protocol.Reading {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[id]
}

func (r *recorder) stateLog(id string) []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.states[id]...)
}

// startPoller starts a poller over devs with the recorder as sink; Stop
// runs at cleanup.
func startPoller(t testing.TB, rec *recorder, opts Options, devs ...Device) *Poller {
	t.Helper()
	opts.Sink, opts.OnState, opts.Log = rec.sink, rec.onState, testLogger()
	p, err := NewPoller(devs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// simDevice is a poller device for simulated device id.
func simDevice(t testing.TB, b *sim.Building, id, template, transport string, interval time.Duration) Device {
	t.Helper()
	addr := b.Addr(id)
	if addr == "" {
		t.Fatalf("simulated device %q does not listen", id)
	}
	return Device{ID: id, Template: shippedTemplates(t)[template], Address: transport + "://" + addr, UnitID: 1,
		PollInterval: interval, Timeout: 2 * time.Second}
}
