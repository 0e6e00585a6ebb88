package mqttin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
)

// Relay commands through the embedded plant-room broker to the simulated
// Tasmota plug and Shelly switch: the device's own command is published,
// the simulator switches its relay (power follows), and the state it
// reports is the read-back. A device off the network does not answer: the
// command fails with ErrNoAnswer once the caller's wait ends.
func TestSwitchSimulatedRelays(t *testing.T) {
	in := startInput(t, Config{Embedded: &Embedded{Listen: "127.0.0.1:0", Users: []User{{Username: "devsim", Password: "devsim-demo"}}}}, demoDevices(t))
	ts := templates(t)
	cfg := &sim.Config{
		Seed:  5,
		Clock: sim.ClockConfig{Start: time.Date(2026, 9, 16, 20, 0, 0, 0, time.FixedZone("CST", 8*3600)), Manual: true}, // lights on
		MQTT:  sim.MQTTConfig{Broker: "tcp://" + in.Addr(), Username: "devsim", Password: "devsim-demo", Interval: config.D(50 * time.Millisecond)},
		Devices: []sim.DeviceConfig{
			{ID: "garden-plug-1", Template: "tasmota-plug", Topic: "garden_garage", RatedKW: 0.4},
			{ID: "garden-shelly-1", Template: "shelly-plus-1pm", Topic: "shellyplus1pm-garden01", RatedKW: 0.25},
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
	waitFor(t, 20*time.Second, "both devices online", func() bool {
		return in.got.hasState("garden-plug-1=online") && in.got.hasState("garden-shelly-1=online")
	})
	model := func(id, m string) float64 {
		v, err := b.Values(id)
		if err != nil {
			t.Fatal(err)
		}
		return v[m]
	}
	for _, id := range []string{"garden-plug-1", "garden-shelly-1"} {
		if on := model(id, "switch_on"); on != 1 {
			t.Fatalf("%s: switch_on %v at 20:00, want 1 (lights on)", id, on)
		}
		for i, want := range []float64{0, 1, 1} { // the last one: already on, still answered
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			before, after, err := in.Switch(ctx, id, "switch_on", want)
			cancel()
			if err != nil {
				t.Fatalf("%s: Switch(%v): %v", id, want, err)
			}
			if after == nil || *after != want {
				t.Fatalf("%s: read back %v, want %v", id, after, want)
			}
			if i > 0 && (before == nil || *before != 1-want && i == 1) {
				t.Errorf("%s: before = %v at command %d", id, before, i)
			}
			if on := model(id, "switch_on"); on != want {
				t.Fatalf("%s: simulator switch_on %v after Switch(%v)", id, on, want)
			}
			if p := model(id, "power_w"); (p > 0) != (want == 1) {
				t.Errorf("%s: simulator power %v W with the relay at %v", id, p, want)
			}
		}
	}
	if _, _, err := in.Switch(context.Background(), "garden-plug-1", "power_w", 1); !errors.Is(err, config.ErrNotWritable) && !errors.Is(err, config.ErrUnknownPoint) {
		t.Errorf("Switch(power_w) = %v, want refused by the template", err)
	}

	if err := b.SetFault("garden-plug-1", sim.Fault{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the plug offline", func() bool { return in.got.hasState("garden-plug-1=offline") })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	before, after, err := in.Switch(ctx, "garden-plug-1", "switch_on", 0)
	if !errors.Is(err, ErrNoAnswer) || after != nil {
		t.Fatalf("Switch to an unreachable plug = %v, %v; want ErrNoAnswer", after, err)
	}
	if before == nil || *before != 1 {
		t.Errorf("before = %v, want the last state reported (1)", before)
	}
	if on := model("garden-plug-1", "switch_on"); on != 1 {
		t.Errorf("unreachable plug switched: switch_on %v", on)
	}
}

// TestRPCAnswers: a Shelly RPC response frame reaches the request with its
// id, once; error frames too; frames that are no answer (not JSON, no
// result and no error, an id nobody waits for) are not taken.
func TestRPCAnswers(t *testing.T) {
	var r relays
	ch, done := r.awaitRPC(7)
	defer done()
	for _, p := range []string{`not json`, `{"id":7,"src":"shelly","dst":"plantroom-edge-gw-1"}`, `{"id":8,"result":{"was_on":true}}`} {
		if r.answer([]byte(p)) {
			t.Errorf("answer(%s) taken", p)
		}
	}
	if !r.answer([]byte(`{"id":7,"src":"shellyplus1pm-a","dst":"plantroom-edge-gw-1","result":{"was_on":true}}`)) {
		t.Fatal("the answer to request 7 was not taken")
	}
	if a := <-ch; a.Result == nil || a.Result.WasOn == nil || !*a.Result.WasOn || a.Error != nil {
		t.Errorf("answer %+v", a)
	}
	if r.answer([]byte(`{"id":7,"result":{"was_on":false}}`)) {
		t.Error("a second answer to request 7 was taken")
	}
	ch2, done2 := r.awaitRPC(9)
	defer done2()
	if !r.answer([]byte(`{"id":9,"src":"shellyplus1pm-a","dst":"plantroom-edge-gw-1","error":{"code":-103,"message":"Invalid argument 'id'"}}`)) {
		t.Fatal("the error answer to request 9 was not taken")
	}
	if a := <-ch2; a.Error == nil || a.Error.Code != -103 {
		t.Errorf("error answer %+v", a)
	}
}

// TestShellyRPCAnswerIsTheReadBack: a Shelly that answers Switch.Set on
// "<src>/rpc" but publishes no status confirms the command by its answer
// alone (after = the commanded state, before = was_on); an error frame
// fails it with ErrDeviceError. The request carries the input's src.
func TestShellyRPCAnswerIsTheReadBack(t *testing.T) {
	got := &collector{}
	in, err := New(Config{Embedded: &Embedded{Listen: "127.0.0.1:0", Users: []User{{Username: "devsim", Password: "devsim-demo"}}}}, demoDevices(t),
		Options{Sink: got.sink, OnState: got.state, Log: discard, RPCSource: RPCSource("gw-test")})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Stop)
	dev, err := device(t, "tcp://"+in.Addr(), "devsim", "devsim-demo")
	if err != nil {
		t.Fatal(err)
	}
	fail := make(chan bool, 1)
	fail <- false
	srcs := make(chan string, 4)
	tok := dev.Subscribe("shellyplus1pm-garden01/rpc", 1, func(c paho.Client, m paho.Message) {
		var req struct {
			ID     int64  `json:"id"`
			Src    string `json:"src"`
			Method string `json:"method"`
		}
		if json.Unmarshal(m.Payload(), &req) != nil || req.Method != "Switch.Set" {
			return
		}
		srcs <- req.Src
		answer := fmt.Sprintf(`{"id":%d,"src":"shellyplus1pm-garden01","dst":%q,"result":{"was_on":false}}`, req.ID, req.Src)
		if f := <-fail; f {
			answer = fmt.Sprintf(`{"id":%d,"src":"shellyplus1pm-garden01","dst":%q,"error":{"code":-108,"message":"Output is locked"}}`, req.ID, req.Src)
		}
		fail <- true
		c.Publish(req.Src+"/rpc", 1, false, answer)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before, after, err := in.Switch(ctx, "garden-shelly-1", "switch_on", 1)
	if err != nil || before == nil || *before != 0 || after == nil || *after != 1 {
		t.Fatalf("Switch answered by RPC only: before %v, after %v, %v; want 0, 1", before, after, err)
	}
	if src := <-srcs; src != "plantroom-edge-gw-test" {
		t.Errorf("request src %q, want plantroom-edge-gw-test", src)
	}
	_, _, err = in.Switch(ctx, "garden-shelly-1", "switch_on", 0)
	if !errors.Is(err, ErrDeviceError) || !strings.Contains(err.Error(), "Output is locked") {
		t.Errorf("Switch answered with an RPC error: %v, want ErrDeviceError with the device's message", err)
	}
	if n := testutil.ToFloat64(in.metrics.unknown); n != 0 {
		t.Errorf("%v messages on unknown topics: the requests and answers were counted", n)
	}
}
