package agent

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"

	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

// TestCommandsThroughBroker sends commands to the agent's down/cmd on a
// real broker and a simulated lighting panel over Modbus TCP: a switched
// circuit is applied, read back and shown by the next readings; a
// redelivered command executes once; an expired one and a forged write to
// a meter point are not executed.
func TestCommandsThroughBroker(t *testing.T) {
	cloud, acker := startCloud(t)
	b := startSim(t, sim.MQTTConfig{}, sim.DeviceConfig{ID: "lighting-1", Template: "lighting-panel"})
	a := startAgent(t, agentYAML(cloud.URL(), t.TempDir(), "devices:\n"+deviceLine(b, "lighting-1", "lighting-panel", "100ms")))
	waitFor(t, 10*time.Second, "the agent connected", func() bool { return a.uplink.Connected() })
	topic := testGW.DownlinkTopic(protocol.DownCmd)
	send := func(c protocol.Command) {
		c.Device, c.By = "lighting-1", "pm-garden"
		acker.Publish(t, topic, protocol.EncodeCommand(c))
	}
	results := func(id string) []protocol.Event {
		var out []protocol.Event
		for _, e := range events(t, cloud) {
			if e.Kind == protocol.EventCommand && e.CommandID == id {
				out = append(out, e)
			}
		}
		return out
	}
	waitResult := func(id string) protocol.Event {
		t.Helper()
		waitFor(t, 10*time.Second, "the result of command "+id, func() bool { return len(results(id)) > 0 })
		return results(id)[0]
	}

	vals, err := b.Values("lighting-1")
	if err != nil {
		t.Fatal(err)
	}
	want := 1 - vals["circuit2_on"]
	now := time.Now().UnixMilli()
	send(protocol.Command{ID: "cmd-1", Point: "circuit2_on", Value: want, IssuedAt: now, ExpiresAt: now + 60_000})
	ev := waitResult("cmd-1")
	if ev.State != protocol.CommandApplied || ev.Before == nil || ev.After == nil || *ev.Before != 1-want || *ev.After != want {
		t.Fatalf("result of cmd-1: %+v", ev)
	}
	if v, _ := b.Values("lighting-1"); v["circuit2_on"] != want {
		t.Fatalf("the panel's circuit2_on is %v after the command, want %v", v["circuit2_on"], want)
	}
	waitFor(t, 10*time.Second, "a reading of circuit2_on after the command", func() bool {
		tm := decodeTelemetry(t, cloud.Messages(testGW.Topic(protocol.KindTelemetry)))
		for _, bt := range tm.batches {
			for _, r := range bt.Readings {
				if r.Device == "lighting-1" && r.Metric == "circuit2_on" && r.TS > ev.TS && r.Value == want {
					return true
				}
			}
		}
		return false
	})

	// Redelivered: not executed again. Switch the panel back by hand
	// first, so a second execution would show.
	if _, _, err := a.poller.Write("lighting-1", "circuit2_on", 1-want); err != nil {
		t.Fatal(err)
	}
	send(protocol.Command{ID: "cmd-1", Point: "circuit2_on", Value: want, IssuedAt: now, ExpiresAt: now + 60_000})
	// Expired (queued during an outage): not executed.
	old := time.Now().Add(-2 * time.Minute).UnixMilli()
	send(protocol.Command{ID: "cmd-2", Point: "circuit2_on", Value: want, IssuedAt: old, ExpiresAt: old + 60_000})
	if ev := waitResult("cmd-2"); ev.State != protocol.CommandExpired {
		t.Fatalf("result of cmd-2: %+v", ev)
	}
	// Forged: a meter point is not writable in the gateway's own template.
	send(protocol.Command{ID: "cmd-3", Point: "power_w", Value: 0, IssuedAt: time.Now().UnixMilli(), ExpiresAt: time.Now().UnixMilli() + 60_000})
	if ev := waitResult("cmd-3"); ev.State != protocol.CommandRejected {
		t.Fatalf("result of cmd-3: %+v", ev)
	}
	if n := len(results("cmd-1")); n != 1 {
		t.Fatalf("cmd-1 has %d results, want 1", n)
	}
	if v, _ := b.Values("lighting-1"); v["circuit2_on"] != 1-want {
		t.Fatalf("circuit2_on is %v: a redelivered or expired command was executed", v["circuit2_on"])
	}
}

// TestPumpSetpointCommand sends a pressure setpoint to a simulated pump
// (a holding register, function 06) through the broker: applied, read back
// as written, the simulator's setpoint follows; a forged out-of-range
// setpoint is rejected by the gateway and not written.
func TestPumpSetpointCommand(t *testing.T) {
	cloud, acker := startCloud(t)
	b := startSim(t, sim.MQTTConfig{}, sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd"})
	a := startAgent(t, agentYAML(cloud.URL(), t.TempDir(), "devices:\n"+deviceLine(b, "pump-1", "pump-vfd", "100ms")))
	waitFor(t, 10*time.Second, "the agent connected", func() bool { return a.uplink.Connected() })
	topic := testGW.DownlinkTopic(protocol.DownCmd)
	result := func(id string) *protocol.Event {
		for _, e := range events(t, cloud) {
			if e.Kind == protocol.EventCommand && e.CommandID == id {
				return &e
			}
		}
		return nil
	}
	send := func(id string, v float64) protocol.Event {
		t.Helper()
		now := time.Now().UnixMilli()
		acker.Publish(t, topic, protocol.EncodeCommand(protocol.Command{ID: id, Device: "pump-1", By: "pm-garden",
			Point: "setpoint_bar", Value: v, IssuedAt: now, ExpiresAt: now + 60_000}))
		waitFor(t, 10*time.Second, "the result of command "+id, func() bool { return result(id) != nil })
		return *result(id)
	}
	vals, err := b.Values("pump-1")
	if err != nil {
		t.Fatal(err)
	}
	want := 4.2
	if math.Abs(vals["setpoint_bar"]-want) < 0.01 {
		want = 3.8
	}
	ev := send("sp-1", want)
	if ev.State != protocol.CommandApplied || ev.Before == nil || ev.After == nil ||
		math.Abs(*ev.Before-vals["setpoint_bar"]) > 1e-9 || math.Abs(*ev.After-want) > 1e-9 {
		t.Fatalf("result of sp-1: %+v", ev)
	}
	if v, _ := b.Values("pump-1"); math.Abs(v["setpoint_bar"]-want) > 1e-9 {
		t.Fatalf("the pump's setpoint_bar is %v after the command, want %v", v["setpoint_bar"], want)
	}
	if ev := send("sp-2", 7.5); ev.State != protocol.CommandRejected || ev.Cause != "value_not_allowed" {
		t.Fatalf("result of the out-of-range sp-2: %+v", ev)
	}
	if v, _ := b.Values("pump-1"); math.Abs(v["setpoint_bar"]-want) > 1e-9 {
		t.Fatalf("the refused sp-2 changed setpoint_bar to %v", v["setpoint_bar"])
	}
}

// TestRelayCommandsThroughBroker sends commands for MQTT relays to the
// agent's down/cmd: the agent publishes the device's own command on its
// embedded plant-room broker, the simulated Tasmota plug and Shelly switch
// switch their relay, and the state they report is the read-back (applied
// with before/after). A plug off the network does not answer: failed
// no_answer once the wait ends at the command's expiry (before RelayWait),
// stamped with the expiry, and it was not switched.
func TestRelayCommandsThroughBroker(t *testing.T) {
	cloud, acker := startCloud(t)
	dir := t.TempDir()
	devices := "devices:\n" +
		"  - {id: plug-1, template: tasmota-plug, address: \"mqtt:garden_garage\"}\n" +
		"  - {id: shelly-1, template: shelly-plus-1pm, address: \"mqtt:shellyplus1pm-garden01\"}\n"
	mqttSection := "mqtt: {embedded: {listen: \"127.0.0.1:0\", users: [{username: devsim, password: devsim-demo}]}}\n"
	cfg := loadConfig(t, agentYAML(cloud.URL(), dir, mqttSection+devices))
	a, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	waitFor(t, 10*time.Second, "the agent connected", func() bool { return a.uplink.Connected() })

	ts, err := config.LoadTemplates(templatesDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sim.New(&sim.Config{Building: "test", Seed: 7,
		Clock: sim.ClockConfig{Start: time.Date(2026, 9, 16, 20, 0, 0, 0, time.FixedZone("CST", 8*3600)), Manual: true}, // lights on
		MQTT:  sim.MQTTConfig{Broker: "tcp://" + a.MQTTAddr(), Username: "devsim", Password: "devsim-demo", Interval: config.D(100 * time.Millisecond)},
		Devices: []sim.DeviceConfig{
			{ID: "plug-1", Template: "tasmota-plug", Topic: "garden_garage", RatedKW: 0.4},
			{ID: "shelly-1", Template: "shelly-plus-1pm", Topic: "shellyplus1pm-garden01", RatedKW: 0.25},
		}}, ts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	waitFor(t, 20*time.Second, "both relays' state at the cloud", func() bool {
		got := decodeTelemetry(t, cloud.Messages(testGW.Topic(protocol.KindTelemetry))).metrics()
		return got["plug-1"]["switch_on"] && got["shelly-1"]["switch_on"]
	})

	topic := testGW.DownlinkTopic(protocol.DownCmd)
	result := func(id string) protocol.Event {
		t.Helper()
		var ev *protocol.Event
		waitFor(t, 20*time.Second, "the result of command "+id, func() bool {
			for _, e := range events(t, cloud) {
				if e.Kind == protocol.EventCommand && e.CommandID == id {
					ev = &e
					return true
				}
			}
			return false
		})
		return *ev
	}
	for _, dev := range []string{"plug-1", "shelly-1"} {
		now := time.Now().UnixMilli()
		id := "off-" + dev
		acker.Publish(t, topic, protocol.EncodeCommand(protocol.Command{ID: id, Device: dev, Point: "switch_on", Value: 0,
			IssuedAt: now, ExpiresAt: now + 60_000, By: "pm-garden"}))
		ev := result(id)
		if ev.State != protocol.CommandApplied || ev.After == nil || *ev.After != 0 || ev.Before != nil && *ev.Before != 1 {
			t.Fatalf("result of %s: %+v", id, ev)
		}
		v, err := b.Values(dev)
		if err != nil {
			t.Fatal(err)
		}
		if v["switch_on"] != 0 || v["power_w"] != 0 {
			t.Fatalf("%s after the off command: switch_on %v, power %v W", dev, v["switch_on"], v["power_w"])
		}
	}

	if err := b.SetFault("plug-1", sim.Fault{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the plug offline", func() bool {
		return hasEvent(events(t, cloud), protocol.EventDeviceOffline, "plug-1")
	})
	// The relay wait (agent.RelayWait, 10 s) outlasts this command: the
	// wait ends at the command's expiry, and the result is stamped with it,
	// never later.
	now := time.Now().UnixMilli()
	expires := now + 4_000 // time enough to reach the agent on a loaded machine
	acker.Publish(t, topic, protocol.EncodeCommand(protocol.Command{ID: "on-unreachable", Device: "plug-1", Point: "switch_on", Value: 1,
		IssuedAt: now, ExpiresAt: expires, By: "pm-garden"}))
	ev := result("on-unreachable")
	if ev.State != protocol.CommandFailed || ev.Cause != "no_answer" || ev.After != nil {
		t.Fatalf("result of a command to an unreachable plug: %+v", ev)
	}
	if ev.TS != expires {
		t.Fatalf("the result of on-unreachable is stamped %d, want its expiry %d (the wait ends there)", ev.TS, expires)
	}
	if v, _ := b.Values("plug-1"); v["switch_on"] != 0 {
		t.Fatalf("the unreachable plug was switched: switch_on %v", v["switch_on"])
	}
}

// TestRelayDeadline: the relay wait ends after RelayWait (or the
// configured wait) or at the command's expiry, whichever comes first.
func TestRelayDeadline(t *testing.T) {
	start := time.UnixMilli(1_800_000_000_000)
	c := func(expiresIn time.Duration) protocol.Command {
		return protocol.Command{ExpiresAt: start.Add(expiresIn).UnixMilli()}
	}
	a := &Agent{cfg: &Config{}}
	if got := a.relayDeadline(c(time.Minute), start); !got.Equal(start.Add(RelayWait)) {
		t.Errorf("expiry in a minute: deadline %v, want start + RelayWait", got.Sub(start))
	}
	if got := a.relayDeadline(c(3*time.Second), start); !got.Equal(start.Add(3 * time.Second)) {
		t.Errorf("expiry in 3 s: deadline %v, want the expiry", got.Sub(start))
	}
	a.cfg.RelayWait = time.Second
	if got := a.relayDeadline(c(3*time.Second), start); !got.Equal(start.Add(time.Second)) {
		t.Errorf("configured wait 1 s, expiry in 3 s: deadline %v, want 1 s", got.Sub(start))
	}
}
