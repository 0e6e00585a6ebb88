package mqttin

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/plantroom/plantroom/protocol"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func embeddedConfig(t *testing.T) Config {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("shelly-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Embedded: &Embedded{Listen: "127.0.0.1:0", Users: []User{
		{Username: "devsim", Password: "devsim-demo"},
		{Username: "shelly", PasswordHash: string(hash)},
	}}}
}

func TestEmbeddedTasmotaAndShelly(t *testing.T) {
	in := startInput(t, embeddedConfig(t), demoDevices(t))
	broker := "tcp://" + in.Addr()
	plug, err := device(t, broker, "devsim", "devsim-demo")
	if err != nil {
		t.Fatal(err)
	}
	shelly, err := device(t, broker, "shelly", "shelly-secret") // bcrypt-hashed login
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	publish(t, plug, "tele/garden_garage/LWT", true, "Online")
	publish(t, plug, "tele/garden_garage/SENSOR", false, tasmotaSensor)
	publish(t, plug, "stat/garden_garage/POWER", false, "ON")
	publish(t, shelly, "shellyplus1pm-garden01/online", true, "true")
	publish(t, shelly, "shellyplus1pm-garden01/status/switch:0", false, shellyStatus)
	// A broker acknowledges a publish before it delivers it: wait for the
	// last message of each device.
	waitFor(t, 10*time.Second, "both devices' readings", func() bool {
		return len(in.got.latest("garden-plug-1")) == 5 && len(in.got.latest("garden-shelly-1")) == 5
	})

	checkValues(t, in.got.latest("garden-plug-1"), map[string]float64{
		"energy_kwh": 123.456, "power_w": 60, "voltage_v": 230, "current_a": 0.283, "switch_on": 1})
	checkValues(t, in.got.latest("garden-shelly-1"), map[string]float64{
		"energy_kwh": 6.5321, "power_w": 8.9, "voltage_v": 237.5, "switch_on": 1, "temperature_c": 23.5})
	for _, r := range in.got.readings {
		if r.TS < before || r.TS > time.Now().UnixMilli() {
			t.Errorf("reading %+v not stamped with its arrival time", r)
		}
	}
	if got := strings.Join(in.got.stateLog(), " "); got != "garden-plug-1=online garden-shelly-1=online" {
		t.Errorf("states %q, want both devices online", got)
	}
	if n := in.messages(t, "garden-plug-1"); n != 3 {
		t.Errorf("plug messages = %v, want 3", n)
	}

	// Offline, a repeat of it (reported once), and back online.
	publish(t, plug, "tele/garden_garage/LWT", true, "Offline")
	publish(t, plug, "tele/garden_garage/LWT", true, "Offline")
	publish(t, plug, "tele/garden_garage/LWT", true, "Online")
	waitFor(t, 5*time.Second, "the plug back online", func() bool { return len(in.got.stateLog()) == 4 })
	if got := strings.Join(in.got.stateLog()[2:], " "); got != "garden-plug-1=offline garden-plug-1=online" {
		t.Errorf("states after LWT %q", got)
	}

	// Bad input is counted, the stream flows on.
	publish(t, plug, "tele/garden_garage/SENSOR", false, `{"ENERGY":{"Total":12`)
	publish(t, plug, "tele/garden_garage/SENSOR", false, `{"ENERGY":{"Power":"NaN","Voltage":231}}`)
	publish(t, plug, "tele/garden_garage/LWT", false, "Sleeping")
	publish(t, plug, "tele/unknown_plug/SENSOR", false, tasmotaSensor)
	publish(t, plug, "stat/garden_garage/POWER", false, "OFF")
	waitFor(t, 5*time.Second, "the switch off", func() bool { return in.got.latest("garden-plug-1")["switch_on"] == 0 })
	for cause, want := range map[string]float64{"malformed": 1, "value": 1, "availability": 1} {
		if got := in.errorCount(t, "garden-plug-1", cause); got != want {
			t.Errorf("errors{cause=%q} = %v, want %v", cause, got, want)
		}
	}
	if v := in.got.latest("garden-plug-1")["voltage_v"]; v != 231 {
		t.Errorf("voltage %v: the good field of a message with a NaN was lost", v)
	}
	if n := testutil.ToFloat64(in.metrics.unknown); n != 1 {
		t.Errorf("unknown topic messages = %v, want 1", n)
	}
	if n := testutil.ToFloat64(in.metrics.connected); n != 1 {
		t.Errorf("connected = %v, want 1 while serving", n)
	}
}

// A Tasmota plug's absurd energy total through the embedded broker: the
// reading is handed on with bad quality and its value, the message's other
// fields are good, and it is counted as out_of_range.
func TestEmbeddedOutOfRangeCounted(t *testing.T) {
	in := startInput(t, embeddedConfig(t), demoDevices(t))
	plug, err := device(t, "tcp://"+in.Addr(), "devsim", "devsim-demo")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, plug, "tele/garden_garage/SENSOR", false, `{"ENERGY":{"Total":1.7e308,"Power":60,"Voltage":230}}`)
	waitFor(t, 10*time.Second, "the plug's readings", func() bool { return len(in.got.latest("garden-plug-1")) == 3 })
	in.got.mu.Lock()
	for _, r := range in.got.readings {
		want := protocol.QualityGood
		if r.Metric == "energy_kwh" {
			want = protocol.QualityBad
			if r.Value != 1.7e308 {
				t.Errorf("energy_kwh = %v, want the plug's 1.7e308 kept", r.Value)
			}
		}
		if r.Quality != want {
			t.Errorf("%s = %v: quality %d, want %d", r.Metric, r.Value, r.Quality, want)
		}
	}
	in.got.mu.Unlock()
	if got := in.errorCount(t, "garden-plug-1", CauseOutOfRange); got != 1 {
		t.Errorf("errors{cause=out_of_range} = %v, want 1", got)
	}
}

func checkValues(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for m, v := range want {
		if g, ok := got[m]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", m, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
}

func TestEmbeddedRefusesUnknownLogins(t *testing.T) {
	in := startInput(t, embeddedConfig(t), demoDevices(t))
	broker := "tcp://" + in.Addr()
	for _, login := range [][2]string{{"devsim", "wrong"}, {"nobody", "devsim-demo"}, {"", ""}, {"shelly", "devsim-demo"}} {
		if _, err := device(t, broker, login[0], login[1]); err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Errorf("login %q/%q: error %v, want not Authorized", login[0], login[1], err)
		}
	}
	if n := testutil.ToFloat64(in.metrics.refused); n != 4 {
		t.Errorf("refused connections = %v, want 4", n)
	}
	if _, err := device(t, broker, "devsim", "devsim-demo"); err != nil {
		t.Errorf("a good login after refused ones: %v", err)
	}
}

// A payload over MaxPayload is counted and dropped; a packet far beyond it
// costs the sender its connection. Neither reaches the sink.
func TestEmbeddedPayloadLimit(t *testing.T) {
	in := startInput(t, embeddedConfig(t), demoDevices(t))
	c, err := device(t, "tcp://"+in.Addr(), "devsim", "devsim-demo")
	if err != nil {
		t.Fatal(err)
	}
	pad := func(n int) string { return `{"ENERGY":{"Total":1,"Pad":"` + strings.Repeat("x", n) + `"}}` }
	publish(t, c, "tele/garden_garage/SENSOR", false, pad(MaxPayload))
	waitFor(t, 5*time.Second, "a too_large error", func() bool { return in.errorCount(t, "garden-plug-1", "too_large") == 1 })
	c.Publish("tele/garden_garage/SENSOR", 0, false, pad(2*MaxPayload))
	waitFor(t, 10*time.Second, "the broker to drop the connection", func() bool { return !c.IsConnectionOpen() })
	if n := in.got.count(); n != 0 {
		t.Errorf("%d readings from oversized messages", n)
	}
	if n := in.messages(t, "garden-plug-1"); n != 1 {
		t.Errorf("messages = %v, want 1 (the packet beyond the broker's limit never arrives)", n)
	}
}

// Update adds a device that announced itself before it was configured
// (its retained availability counts) and removes another.
func TestEmbeddedUpdate(t *testing.T) {
	devs := demoDevices(t)
	in := startInput(t, embeddedConfig(t), devs[:1])
	c, err := device(t, "tcp://"+in.Addr(), "devsim", "devsim-demo")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, c, "shellyplus1pm-garden01/online", true, "true")
	publish(t, c, "shellyplus1pm-garden01/status/switch:0", false, shellyStatus)
	waitFor(t, 5*time.Second, "two messages on unknown topics", func() bool { return testutil.ToFloat64(in.metrics.unknown) == 2 })
	if err := in.Update(devs[1:]); err != nil {
		t.Fatal(err)
	}
	if !in.got.hasState("garden-shelly-1=online") {
		t.Errorf("states %v: the retained online message of the new device was not picked up", in.got.stateLog())
	}
	publish(t, c, "shellyplus1pm-garden01/status/switch:0", false, shellyStatus)
	waitFor(t, 5*time.Second, "shelly readings", func() bool { return len(in.got.latest("garden-shelly-1")) == 5 })
	publish(t, c, "tele/garden_garage/SENSOR", false, tasmotaSensor)
	waitFor(t, 5*time.Second, "the removed plug's message", func() bool { return testutil.ToFloat64(in.metrics.unknown) == 3 })
	if got := in.got.latest("garden-plug-1"); len(got) != 0 {
		t.Errorf("readings %v of a removed device", got)
	}

	bad := []Device{devs[1], {ID: "x", Template: devs[1].Template, Topic: "shellyplus1pm-garden01"}}
	if err := in.Update(bad); err == nil || !strings.Contains(err.Error(), `devices[1].topic: topic "shellyplus1pm-garden01/status/switch:0" is also device "garden-shelly-1"'s`) {
		t.Errorf("update with a duplicate topic: %v", err)
	}
	if in.table.Load().devices["x"] != nil {
		t.Error("a refused update changed the device set")
	}
}

func TestEmbeddedLifecycle(t *testing.T) {
	in, err := New(embeddedConfig(t), demoDevices(t), Options{Sink: (&collector{}).sink, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	if in.Addr() != "" {
		t.Errorf("Addr %q before Start", in.Addr())
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err == nil {
		t.Error("a second Start succeeded")
	}
	addr := in.Addr()
	in.Stop()
	in.Stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
	if err := in.Start(context.Background()); err == nil {
		t.Error("Start after Stop succeeded")
	}
	// The port is free again: a new input can take it.
	cfg := embeddedConfig(t)
	cfg.Embedded.Listen = addr
	startInput(t, cfg, demoDevices(t))
}

func TestEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := embeddedConfig(t)
	cfg.Embedded.Listen = l.Addr().String()
	in, err := New(cfg, demoDevices(t), Options{Sink: (&collector{}).sink, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	if err := in.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot listen for MQTT devices on \""+l.Addr().String()) {
		t.Errorf("Start on a taken port: %v", err)
	}
}

// Stop while a device is publishing: it waits for the message in hand, and
// the sink is never called after it returned.
func TestEmbeddedStopWhilePublishing(t *testing.T) {
	var stopped atomic.Bool
	var calls, late atomic.Int64
	in, err := New(embeddedConfig(t), demoDevices(t), Options{Log: discard, Sink: func([]protocol.Reading) {
		calls.Add(1)
		if stopped.Load() {
			late.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := device(t, "tcp://"+in.Addr(), "devsim", "devsim-demo")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 5000 && c.IsConnectionOpen(); i++ {
			c.Publish("tele/garden_garage/SENSOR", 0, false, tasmotaSensor)
		}
	}()
	waitFor(t, 10*time.Second, "messages flowing", func() bool { return calls.Load() >= 20 })
	in.Stop()
	stopped.Store(true)
	<-done
	if n := late.Load(); n != 0 {
		t.Errorf("the sink was called %d times after Stop returned", n)
	}
}

// Stopping the embedded broker ends every device's connection, and the
// broker publishes their last wills while it shuts down: that is the edge
// going away, not the devices, and no device is reported offline.
func TestEmbeddedStopIsNoDeviceOutage(t *testing.T) {
	got := &collector{}
	in, err := New(embeddedConfig(t), demoDevices(t), Options{Sink: got.sink, OnState: got.state, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Stop)
	opts := paho.NewClientOptions().AddBroker("tcp://"+in.Addr()).
		SetClientID(fmt.Sprintf("test-device-%d", clientSeq.Add(1))).
		SetUsername("devsim").SetPassword("devsim-demo").
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5*time.Second).
		SetWriteTimeout(2*time.Second).
		SetWill("tele/garden_garage/LWT", "Offline", 1, true)
	plug := paho.NewClient(opts)
	if tok := plug.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot connect the plug: %v", tok.Error())
	}
	publish(t, plug, "tele/garden_garage/LWT", true, "Online")
	waitFor(t, 10*time.Second, "the plug online", func() bool { return got.hasState("garden-plug-1=online") })

	in.Stop()
	// Stop returns after the broker closed every connection, so the will,
	// published on the way, has been handled or dropped by now.
	waitFor(t, 10*time.Second, "the plug to see its connection closed", func() bool { return !plug.IsConnectionOpen() })
	if s := got.stateLog(); len(s) != 1 {
		t.Errorf("states %v: the broker's shutdown was reported as a device outage", s)
	}

	// A will while the broker runs is still an outage:
	// TestSimulatedLightingDevices (the Shelly made unreachable).
}
