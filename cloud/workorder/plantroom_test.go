package workorder

import (
	"context"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/goburrow/modbus"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

// plantRoom stands in for the edge agent of gw-garden-1 (and one tower
// device): it polls the simulated pump over Modbus TCP, decodes the
// registers with the template, stamps readings with the simulator's clock
// and publishes telemetry batches to the broker as the gateway.
type plantRoom struct {
	t        *testing.T
	building *sim.Building
	modbus   *modbus.TCPClientHandler
	template *config.Template
	gateway  paho.Client
	ref      protocol.GatewayRef
	seq      uint64
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
	h := modbus.NewTCPClientHandler(bld.Addr("garden-pump-1"))
	h.SlaveId, h.Timeout = 1, 5*time.Second
	if err := h.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	gw, _ := c.b.Org.FindGateway("gw-garden-1")
	opts := paho.NewClientOptions().AddBroker("tcp://" + c.broker.Addr()).SetClientID("gw-garden-1").
		SetUsername("gw-garden-1").SetPassword("demo-gw-garden-1-secret").SetCleanSession(false).SetConnectTimeout(10 * time.Second)
	cl := paho.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway connect: %v", tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	return &plantRoom{t: t, building: bld, modbus: h, template: c.b.Templates["pump-vfd"], gateway: cl, ref: gw.Ref()}
}

// poll advances the simulator by step, reads the pump's holding registers
// and publishes them; it returns the outlet pressure published.
func (p *plantRoom) poll(step time.Duration) float64 {
	p.t.Helper()
	if err := p.building.Advance(step); err != nil {
		p.t.Fatal(err)
	}
	regs, err := modbus.NewClient(p.modbus).ReadHoldingRegisters(0, 10)
	if err != nil {
		p.t.Fatalf("modbus read: %v", err)
	}
	ts := p.building.Now().UnixMilli()
	p.seq++
	b := &protocol.Batch{Gateway: p.ref.Gateway, Seq: p.seq, SentAt: ts}
	var pressure float64
	for _, pt := range p.template.Points {
		if pt.Register != config.RegHolding || pt.Address >= 10 || (pt.Type != "uint16" && pt.Type != "int16") {
			continue
		}
		raw := float64(binary.BigEndian.Uint16(regs[2*pt.Address:]))
		if pt.Type == "int16" {
			raw = float64(int16(binary.BigEndian.Uint16(regs[2*pt.Address:])))
		}
		scale := pt.Scale
		if scale == 0 {
			scale = 1
		}
		v := raw*scale + pt.Offset
		if pt.Metric == "outlet_pressure_bar" {
			pressure = v
		}
		b.Readings = append(b.Readings, protocol.Reading{Device: "garden-pump-1", Metric: pt.Metric, TS: ts, Value: v})
	}
	p.publish(p.ref, b)
	return pressure
}

func (p *plantRoom) publish(ref protocol.GatewayRef, b *protocol.Batch) {
	p.t.Helper()
	payload, err := protocol.AppendBatch(nil, b)
	if err != nil {
		p.t.Fatal(err)
	}
	tok := p.gateway.Publish(ref.Topic(protocol.KindTelemetry), 1, false, payload)
	if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		p.t.Fatalf("publish: %v", tok.Error())
	}
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
