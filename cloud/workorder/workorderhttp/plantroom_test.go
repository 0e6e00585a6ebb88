package workorderhttp

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/edge/agent"
	"github.com/plantroom/plantroom/protocol"
)

// plantRoom is gw-garden-1's plant room: the simulated garden pump on
// loopback Modbus TCP and the real edge agent polling it and shipping its
// readings to the cloud's broker. The simulator's clock is manual and the
// agent stamps readings with it, so the test moves device time (the alarm
// rules' "for" and min_hold) in steps instead of waiting for it.
type plantRoom struct {
	t        *testing.T
	building *sim.Building
	agent    *agent.Agent
	tap      *telemetryTap
	seq      uint64 // seq of the batch that carried the latest poll's readings
}

func newPlantRoom(t *testing.T, c *cloud) *plantRoom {
	t.Helper()
	none := sim.PerDay(0)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	bld, err := sim.New(&sim.Config{Building: "garden", TimeZone: "Asia/Shanghai", Seed: 3,
		Clock:   sim.ClockConfig{Start: start, Manual: true},
		Devices: []sim.DeviceConfig{{ID: "garden-pump-1", Template: "pump-vfd", Listen: "127.0.0.1:0", FaultsPerDay: none}},
	}, c.b.Templates, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := bld.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bld.Stop)
	tap := newTelemetryTap(t, c, "gw-garden-1")

	// configs/edge-gw-garden-1.yaml's identity and device, with test
	// intervals: every poll step of the test is shipped within a few
	// hundred milliseconds, and a heartbeat below the step sends every
	// value at each step even when it did not move.
	cfg := &agent.Config{
		Gateway:   agent.GatewayConfig{ID: "gw-garden-1", Company: "acme", Project: "garden", Password: "demo-gw-garden-1-secret"},
		Templates: "../../../configs/templates",
		Uplink: agent.UplinkConfig{Broker: "tcp://" + c.broker.Addr(), KeepAlive: config.D(5 * time.Second),
			ConnectTimeout: config.D(5 * time.Second), BatchMaxDelay: config.D(20 * time.Millisecond),
			ReconnectMin: config.D(20 * time.Millisecond), ReconnectMax: config.D(500 * time.Millisecond)},
		Queue:  agent.QueueConfig{Path: filepath.Join(t.TempDir(), "queue.db"), CommitInterval: config.D(5 * time.Millisecond)},
		HTTP:   agent.HTTPConfig{Listen: "127.0.0.1:0"},
		Report: agent.ReportConfig{Heartbeat: config.D(time.Second)},
		Devices: []agent.DeviceConfig{{ID: "garden-pump-1", Template: "pump-vfd", Address: "tcp://" + bld.Addr("garden-pump-1"),
			UnitID: 1, PollInterval: config.D(200 * time.Millisecond), Timeout: config.D(2 * time.Second), Retries: 1}},
		Now: bld.Now,
	}
	var problems config.Problems
	cfg.Validate(&problems)
	if err := problems.Err(); err != nil {
		t.Fatalf("edge agent configuration: %v", err)
	}
	a, err := agent.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return &plantRoom{t: t, building: bld, agent: a, tap: tap}
}

// poll advances the simulator by step and waits until the agent has
// shipped the pump's readings of the new device time; it returns the
// outlet pressure shipped and remembers the batch's seq.
func (p *plantRoom) poll(step time.Duration) float64 {
	p.t.Helper()
	if err := p.building.Advance(step); err != nil {
		p.t.Fatal(err)
	}
	ts := p.building.Now().UnixMilli()
	var pressure float64
	deadline := time.Now().Add(20 * time.Second)
	for {
		seq, v, ok, err := p.tap.reading("garden-pump-1", "outlet_pressure_bar", ts)
		if err != nil {
			p.t.Fatalf("telemetry of gw-garden-1 does not decode: %v", err)
		}
		if ok {
			p.seq, pressure = seq, v
			return pressure
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the edge agent shipped no garden-pump-1 outlet pressure for device time %s within 20 s (agent metrics on %s)",
				p.building.Now().Format(time.RFC3339), p.agent.HTTPAddr())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// telemetryTap is a cloud service on the broker that records a gateway's
// telemetry batches as they pass, beside ingest.
type telemetryTap struct {
	mu      sync.Mutex
	err     error
	batches []protocol.Batch
}

func newTelemetryTap(t *testing.T, c *cloud, gateway string) *telemetryTap {
	t.Helper()
	gw, ok := c.b.Org.FindGateway(gateway)
	if !ok {
		t.Fatalf("gateway %q not in the organisation", gateway)
	}
	user := fmt.Sprintf("plantroom-tap-%d", time.Now().UnixNano())
	pw, err := c.broker.AddInternalService(user)
	if err != nil {
		t.Fatal(err)
	}
	tap := &telemetryTap{}
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + c.broker.Addr()).SetClientID(user).
		SetUsername(user).SetPassword(pw).SetCleanSession(true).SetConnectTimeout(10 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("tap connect: %v", tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	tok := cl.Subscribe(gw.Ref().Topic(protocol.KindTelemetry), 1, func(_ paho.Client, m paho.Message) {
		var b protocol.Batch
		err := protocol.DecodeBatch(m.Payload(), &b)
		b.Readings = append([]protocol.Reading(nil), b.Readings...)
		tap.mu.Lock()
		defer tap.mu.Unlock()
		if err != nil {
			tap.err = cmp.Or(tap.err, err)
			return
		}
		tap.batches = append(tap.batches, b)
	})
	if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("tap subscribe: %v", tok.Error())
	}
	return tap
}

// reading finds a shipped reading of device/metric at ts: its value and
// the highest seq of the batches carrying readings of that device at ts;
// err is the first batch that did not decode.
func (tp *telemetryTap) reading(device, metric string, ts int64) (seq uint64, value float64, ok bool, err error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.err != nil {
		return 0, 0, false, tp.err
	}
	for _, b := range tp.batches {
		for _, r := range b.Readings {
			if r.Device != device || r.TS != ts {
				continue
			}
			seq = max(seq, b.Seq)
			if r.Metric == metric {
				value, ok = r.Value, true
			}
		}
	}
	return seq, value, ok, nil
}

func connectGateway(t testing.TB, c *cloud, id, password string) paho.Client {
	t.Helper()
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + c.broker.Addr()).SetClientID(id).
		SetUsername(id).SetPassword(password).SetConnectTimeout(10 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	return cl
}
