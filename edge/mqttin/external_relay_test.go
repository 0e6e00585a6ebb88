package mqttin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/internal/nettest"
)

// edgeACL is the site broker ACL docs/edge.md gives a gateway's user on an
// external broker: read the devices' telemetry, state and availability,
// publish Tasmota commands (cmnd/#) and Shelly RPC requests (<id>/rpc),
// read the answers to its own requests (<src>/rpc).
func edgeACL(user, gateway string) string {
	return fmt.Sprintf(`user %s
topic read tele/#
topic read stat/#
topic read +/online
topic read +/status/#
topic write cmnd/#
topic write +/rpc
topic read %s/rpc
`, user, RPCSource(gateway))
}

// Relay commands through an external site broker, Debian's mosquitto with
// a password file and the ACL of docs/edge.md, to simulated devices:
//
//   - gateway A switches the Tasmota plug (cmnd/…/POWER) and its Shelly
//     (<id>/rpc, answered on plantroom-edge-gw-a/rpc: the answer is the
//     read-back, was_on the state before);
//   - gateway B, on the same broker, has a Shelly off the network: its
//     request (the same RPC id 1 as A's) gets no answer, although A's
//     answer with id 1 came meanwhile on A's own topic;
//   - a gateway whose user may not publish cmnd/# (no command right):
//     mosquitto drops its command, the plug is not switched, no_answer;
//     its user may not read its Shelly answers either, which costs it
//     nothing else (it connects and reads its devices).
func TestExternalRelaysThroughMosquittoACL(t *testing.T) {
	dir := t.TempDir()
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	users := map[string]string{"edge-gw-a": "a-secret", "edge-gw-b": "b-secret", "edge-gw-c": "c-secret", "devsim": "devsim-demo"}
	if err := os.WriteFile(pwFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for u, p := range users {
		if out, err := exec.Command("mosquitto_passwd", "-b", pwFile, u, p).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	acl := edgeACL("edge-gw-a", "gw-a") + edgeACL("edge-gw-b", "gw-b") +
		"user edge-gw-c\ntopic read tele/#\ntopic read stat/#\n" + // reads, may not command
		"user devsim\ntopic readwrite #\n"
	if err := os.WriteFile(aclFile, []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	// "user root": run as root, mosquitto would otherwise switch to its own
	// user, which cannot read the test's files.
	m := nettest.StartMosquitto(t, nettest.MosquittoOptions{
		Config: fmt.Sprintf("user root\nallow_anonymous false\npassword_file %s\nacl_file %s\n", pwFile, aclFile)})

	ts := templates(t)
	plug := Device{ID: "garden-plug-1", Template: ts["tasmota-plug"], Topic: "garden_garage"}
	shellyA := Device{ID: "shelly-a", Template: ts["shelly-plus-1pm"], Topic: "shellyplus1pm-a"}
	shellyB := Device{ID: "shelly-b", Template: ts["shelly-plus-1pm"], Topic: "shellyplus1pm-b"}
	gateway := func(name string, devs ...Device) *testInput {
		t.Helper()
		got := &collector{}
		in, err := New(Config{External: &External{URL: m.URL(), ClientID: "plantroom-edge-" + name, Username: "edge-" + name, Password: users["edge-"+name],
			MaxReconnectInterval: config.D(200 * time.Millisecond)}}, devs,
			Options{Sink: got.sink, OnState: got.state, Registerer: prometheus.NewRegistry(), Log: discard, RPCSource: RPCSource(name)})
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(in.Stop)
		ti := &testInput{Input: in, got: got}
		waitFor(t, 15*time.Second, name+" connected and subscribed", func() bool { return testutil.ToFloat64(ti.metrics.connected) == 1 })
		return ti
	}
	a := gateway("gw-a", plug, shellyA)
	b := gateway("gw-b", shellyB)
	c := gateway("gw-c", plug, shellyA) // may not read its Shelly answers either: connects all the same

	// Every RPC answer on the broker, to see where the Shelly sent A's.
	watch, err := device(t, m.URL(), "devsim", "devsim-demo")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	answers := map[string][]string{} // topic → payloads: requests and answers
	if tok := watch.Subscribe("+/rpc", 1, func(_ paho.Client, msg paho.Message) {
		mu.Lock()
		answers[msg.Topic()] = append(answers[msg.Topic()], string(msg.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe +/rpc: %v", tok.Error())
	}

	bld, err := sim.New(&sim.Config{Building: "test", Seed: 3,
		Clock: sim.ClockConfig{Start: time.Date(2026, 9, 16, 20, 0, 0, 0, time.FixedZone("CST", 8*3600)), Manual: true}, // lights on
		MQTT:  sim.MQTTConfig{Broker: m.URL(), Username: "devsim", Password: "devsim-demo", Interval: config.D(100 * time.Millisecond)},
		Devices: []sim.DeviceConfig{
			{ID: plug.ID, Template: "tasmota-plug", Topic: plug.Topic, RatedKW: 0.4},
			{ID: shellyA.ID, Template: "shelly-plus-1pm", Topic: shellyA.Topic, RatedKW: 0.25},
			{ID: shellyB.ID, Template: "shelly-plus-1pm", Topic: shellyB.Topic, RatedKW: 0.25},
		}}, ts, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := bld.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bld.Stop)
	model := func(id string) float64 {
		v, err := bld.Values(id)
		if err != nil {
			t.Fatal(err)
		}
		return v["switch_on"]
	}
	waitFor(t, 20*time.Second, "every relay's state at its gateway", func() bool {
		return a.got.latest(plug.ID)["switch_on"] == 1 && a.got.latest(shellyA.ID)["switch_on"] == 1 &&
			b.got.latest(shellyB.ID)["switch_on"] == 1 && c.got.latest(plug.ID)["switch_on"] == 1
	})

	// B's Shelly goes off the network; B commands it while A commands its
	// own. Both requests carry RPC id 1.
	if err := bld.SetFault(shellyB.ID, sim.Fault{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "B's Shelly offline", func() bool { return b.got.hasState("shelly-b=offline") })
	bErr := make(chan error, 1)
	bStarted := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		defer cancel()
		close(bStarted)
		_, after, err := b.Switch(ctx, shellyB.ID, "switch_on", 0)
		if err == nil {
			err = fmt.Errorf("switched, read back %v", *after)
		}
		bErr <- err
	}()
	<-bStarted
	// B's request is out (and B waits for its answer) before A's goes.
	waitFor(t, 10*time.Second, "B's request on the broker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answers[shellyB.Topic+"/rpc"]) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	before, after, err := a.Switch(ctx, shellyA.ID, "switch_on", 0)
	cancel()
	if err != nil || before == nil || *before != 1 || after == nil || *after != 0 {
		t.Fatalf("A switching its Shelly off: before %v, after %v, %v; want 1, 0", before, after, err)
	}
	if on := model(shellyA.ID); on != 0 {
		t.Errorf("A's Shelly: simulator switch_on %v after the command", on)
	}
	if err := <-bErr; !errors.Is(err, ErrNoAnswer) {
		t.Errorf("B's command to its unreachable Shelly: %v, want ErrNoAnswer (A's answer is not B's)", err)
	}
	if on := model(shellyB.ID); on != 1 {
		t.Errorf("B's unreachable Shelly switched: %v", on)
	}
	mu.Lock()
	var frame rpcAnswer
	if got := answers[RPCSource("gw-a")+"/rpc"]; len(got) != 1 || json.Unmarshal([]byte(got[0]), &frame) != nil ||
		frame.ID != 1 || frame.Dst != RPCSource("gw-a") || frame.Result == nil {
		t.Errorf("answers on %s/rpc: %q; want one, id 1, dst %s", RPCSource("gw-a"), got, RPCSource("gw-a"))
	}
	if got := answers[RPCSource("gw-b")+"/rpc"]; len(got) != 0 {
		t.Errorf("answers on B's topic: %q", got)
	}
	if got := answers[DefaultRPCSource+"/rpc"]; len(got) != 0 {
		t.Errorf("answers on the shared default topic: %q", got)
	}
	mu.Unlock()

	// The Tasmota plug through A: cmnd/garden_garage/POWER is allowed.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	before, after, err = a.Switch(ctx, plug.ID, "switch_on", 0)
	cancel()
	if err != nil || before == nil || *before != 1 || after == nil || *after != 0 {
		t.Fatalf("A switching the plug off: before %v, after %v, %v; want 1, 0", before, after, err)
	}
	if on := model(plug.ID); on != 0 {
		t.Errorf("plug: simulator switch_on %v after the command", on)
	}
	// Through C, whose user may not publish cmnd/#: mosquitto drops the
	// command (MQTT 3.1.1 acknowledges it all the same), nothing switches.
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	_, after, err = c.Switch(ctx, plug.ID, "switch_on", 1)
	cancel()
	if !errors.Is(err, ErrNoAnswer) || after != nil {
		t.Errorf("C switching the plug without the right to publish cmnd/#: after %v, %v; want ErrNoAnswer", after, err)
	}
	if on := model(plug.ID); on != 0 {
		t.Errorf("the plug was switched by a gateway whose user may not publish cmnd/#: %v", on)
	}
}
