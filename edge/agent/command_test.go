package agent

import (
	"testing"
	"time"

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
