package mqttin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func templates(t testing.TB) config.Templates {
	t.Helper()
	ts, err := config.LoadTemplates("../../configs/templates")
	if err != nil {
		t.Fatalf("cannot load templates: %v", err)
	}
	return ts
}

// demoDevices are the garden gateway's MQTT devices.
func demoDevices(t testing.TB) []Device {
	ts := templates(t)
	return []Device{
		{ID: "garden-plug-1", Template: ts["tasmota-plug"], Topic: "garden_garage"},
		{ID: "garden-shelly-1", Template: ts["shelly-plus-1pm"], Topic: "shellyplus1pm-garden01"},
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// collector is a Sink and OnState that keeps everything it is given.
type collector struct {
	mu       sync.Mutex
	readings []protocol.Reading
	calls    int
	states   []string // "device=online|offline"
}

func (c *collector) sink(rs []protocol.Reading) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.readings = append(c.readings, rs...)
}

func (c *collector) state(id string, online bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := "offline"
	if online {
		s = "online"
	}
	c.states = append(c.states, id+"="+s)
}

// latest returns the last value of every metric of a device.
func (c *collector) latest(device string) map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]float64{}
	for _, r := range c.readings {
		if r.Device == device {
			out[r.Metric] = r.Value
		}
	}
	return out
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.readings)
}

func (c *collector) stateLog() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.states...)
}

func (c *collector) hasState(s string) bool {
	for _, v := range c.stateLog() {
		if v == s {
			return true
		}
	}
	return false
}

// testInput is an Input with its collector and metrics registry.
type testInput struct {
	*Input
	got *collector
	reg *prometheus.Registry
}

func startInput(t *testing.T, cfg Config, devs []Device) *testInput {
	t.Helper()
	got := &collector{}
	reg := prometheus.NewRegistry()
	in, err := New(cfg, devs, Options{
		Sink: got.sink, OnState: got.state, Registerer: reg,
		Log: discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Stop)
	return &testInput{Input: in, got: got, reg: reg}
}

func (ti *testInput) messages(t testing.TB, device string) float64 {
	return testutil.ToFloat64(ti.metrics.messages.WithLabelValues(device))
}

func (ti *testInput) errorCount(t testing.TB, device, cause string) float64 {
	return testutil.ToFloat64(ti.metrics.errors.WithLabelValues(device, cause))
}

var clientSeq atomic.Int64

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// device connects a paho client as an MQTT device would.
func device(t *testing.T, broker, user, password string) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("test-device-%d", clientSeq.Add(1))).
		SetUsername(user).SetPassword(password).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(2 * time.Second) // a publish into a closed connection gives up
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect to %s timed out", broker)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// publish publishes QoS 1 and waits for the broker's acknowledgement.
func publish(t *testing.T, c paho.Client, topic string, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot publish to %q: %v", topic, tok.Error())
	}
}
