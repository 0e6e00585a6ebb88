package modbus

import (
	"errors"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
)

func reading(rec *recorder, id, metric string) (float64, bool) {
	for _, r := range rec.lastReadings(id) {
		if r.Metric == metric {
			return r.Value, true
		}
	}
	return 0, false
}

// TestWriteCoil switches a simulated lighting panel's circuit over Modbus
// TCP while the poller polls it: the coil reads back as written, the
// simulator holds it, and the next poll reports it.
func TestWriteCoil(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "panel", Template: "lighting-panel", Transport: sim.TransportTCP},
		sim.DeviceConfig{ID: "lift", Template: "elevator", Transport: sim.TransportTCP})
	rec := newRecorder()
	p := startPoller(t, rec, Options{}, simDevice(t, b, "panel", "lighting-panel", "tcp", 50*time.Millisecond),
		simDevice(t, b, "lift", "elevator", "tcp", 50*time.Millisecond))
	eventually(t, 5*time.Second, "a first poll of the panel", func() bool { _, ok := reading(rec, "panel", "circuit2_on"); return ok })
	vals, err := b.Values("panel")
	if err != nil {
		t.Fatal(err)
	}
	want := 1 - vals["circuit2_on"] // the other state than now
	before, after, err := p.WriteCoil("panel", "circuit2_on", want)
	if err != nil {
		t.Fatal(err)
	}
	if before != 1-want || after != want {
		t.Fatalf("WriteCoil: before %v after %v, want %v then %v", before, after, 1-want, want)
	}
	if vals, _ := b.Values("panel"); vals["circuit2_on"] != want {
		t.Fatalf("simulator's circuit2_on = %v after the write, want %v", vals["circuit2_on"], want)
	}
	eventually(t, 5*time.Second, "a poll showing the switched circuit", func() bool {
		v, ok := reading(rec, "panel", "circuit2_on")
		return ok && v == want
	})

	// The poller checks the template again: never a meter point, an
	// out-of-range value, an elevator or a device it does not poll.
	for _, c := range []struct {
		device, metric string
		value          float64
		want           error
	}{
		{"panel", "power_w", 1, config.ErrNotWritable},
		{"panel", "circuit2_on", 2, config.ErrWriteValue},
		{"lift", "floor", 3, config.ErrNotWritable},
	} {
		if _, _, err := p.WriteCoil(c.device, c.metric, c.value); !errors.Is(err, c.want) {
			t.Errorf("WriteCoil(%s, %s, %v) = %v, want %v", c.device, c.metric, c.value, err, c.want)
		}
	}
	if _, _, err := p.WriteCoil("pump-9", "run", 1); err == nil {
		t.Error("WriteCoil to a device not polled here succeeded")
	}
	if vals, _ := b.Values("panel"); vals["circuit2_on"] != want {
		t.Fatalf("a refused write changed circuit2_on to %v", vals["circuit2_on"])
	}
}
