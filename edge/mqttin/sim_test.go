package mqttin

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The simulator's Tasmota plug and Shelly switch publish into the embedded
// broker with the demo credentials: what the input reads is what the
// device models hold, through the templates end to end.
func TestSimulatedLightingDevices(t *testing.T) {
	in := startInput(t, Config{Embedded: &Embedded{Listen: "127.0.0.1:0", Users: []User{{Username: "devsim", Password: "devsim-demo"}}}}, demoDevices(t))
	ts := templates(t)
	cfg := &sim.Config{
		Seed:  3,
		Clock: sim.ClockConfig{Start: time.Date(2026, 9, 16, 20, 0, 0, 0, time.FixedZone("CST", 8*3600)), Manual: true}, // lights on
		MQTT:  sim.MQTTConfig{Broker: "tcp://" + in.Addr(), Username: "devsim", Password: "devsim-demo", Interval: config.D(20 * time.Millisecond)},
		Devices: []sim.DeviceConfig{
			{ID: "garden-plug-1", Template: "tasmota-plug", Topic: "garden_garage", RatedKW: 0.4, Initial: map[string]float64{"energy_kwh": 2873.412}},
			{ID: "garden-shelly-1", Template: "shelly-plus-1pm", Topic: "shellyplus1pm-garden01", RatedKW: 0.25, Initial: map[string]float64{"energy_kwh": 51.2}},
		},
	}
	b, err := sim.New(cfg, ts, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)

	// expect waits until the latest readings of a device are the model's
	// values as the device prints them.
	expect := func(id string) {
		t.Helper()
		tmpl := ts[map[string]string{"garden-plug-1": "tasmota-plug", "garden-shelly-1": "shelly-plus-1pm"}[id]]
		model, err := b.Values(id)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]float64{}
		for _, f := range tmpl.MQTT.Fields {
			want[f.Metric] = sim.Quantizer(tmpl, f.Metric)(model[f.Metric])
		}
		var got map[string]float64
		match := func() bool {
			got = in.got.latest(id)
			for m, v := range want {
				if g, ok := got[m]; !ok || math.Abs(g-v) > 1e-9*math.Max(1, math.Abs(v)) {
					return false
				}
			}
			return len(got) == len(want)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !match() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: readings %v, want the model's %v", id, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	if err := b.Advance(10 * time.Minute); err != nil {
		t.Fatal(err)
	}
	expect("garden-plug-1")
	expect("garden-shelly-1")
	if e := in.got.latest("garden-plug-1")["energy_kwh"]; e <= 2873.412 {
		t.Errorf("plug energy %v did not grow over ten lit minutes", e)
	}
	if on := in.got.latest("garden-shelly-1")["switch_on"]; on != 1 {
		t.Errorf("shelly switch_on = %v at 20:10, want 1", on)
	}
	waitFor(t, 5*time.Second, "both devices online", func() bool {
		return in.got.hasState("garden-plug-1=online") && in.got.hasState("garden-shelly-1=online")
	})

	// A device that drops off the network announces it (its last will
	// message); back, it announces itself again.
	if err := b.SetFault("garden-shelly-1", sim.Fault{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the shelly offline", func() bool { return in.got.hasState("garden-shelly-1=offline") })
	if err := b.ClearFault("garden-shelly-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the shelly back online", func() bool {
		s := in.got.stateLog()
		return s[len(s)-1] == "garden-shelly-1=online"
	})

	// Switched off by hand, an hour on: the plug's switch and counters follow.
	if err := b.Event("garden-plug-1", "off"); err != nil {
		t.Fatal(err)
	}
	if err := b.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	expect("garden-plug-1")
	expect("garden-shelly-1")
	if on := in.got.latest("garden-plug-1")["switch_on"]; on != 0 {
		t.Errorf("plug switch_on = %v after the off event", on)
	}
	for _, id := range []string{"garden-plug-1", "garden-shelly-1"} {
		if n := testutil.ToFloat64(in.metrics.errors.WithLabelValues(id, "malformed")) + testutil.ToFloat64(in.metrics.errors.WithLabelValues(id, "unusable")); n != 0 {
			t.Errorf("%s: %v messages of the simulator could not be mapped", id, n)
		}
	}
	if n := testutil.ToFloat64(in.metrics.unknown); n != 0 {
		t.Errorf("%v simulator messages on unknown topics", n)
	}
}
