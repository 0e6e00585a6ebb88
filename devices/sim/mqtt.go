package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// publisher is an MQTT lighting device: its own client connection with a
// last will, telemetry every interval (real time), its switch state when it
// changes, and an online/offline presence message.
type publisher struct {
	b      *Building
	d      *device
	log    *slog.Logger
	format string
	day    energyDay

	tickMu sync.Mutex // one tick at a time: the ticker's and a command's
	mu     sync.Mutex
	client paho.Client
	last   map[string][]byte // last payload per on-change topic

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newPublisher(b *Building, d *device) *publisher {
	return &publisher{b: b, d: d, log: b.log.With("device", d.cfg.ID, "topic", d.cfg.Topic), format: d.tmpl.MQTT.Format}
}

func (p *publisher) start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(1)
	go p.run(ctx)
}

func (p *publisher) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
	p.disconnect()
}

func (p *publisher) run(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.b.cfg.MQTT.Interval.Duration)
	defer t.Stop()
	p.tick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.tick()
		}
	}
}

// tick publishes the device's current messages, or takes it off the air
// while it is unreachable.
func (p *publisher) tick() {
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	f := p.d.currentFault()
	if f.Unreachable {
		p.disconnect()
		return
	}
	c := p.connect()
	if !c.IsConnectionOpen() {
		return
	}
	s := p.d.snap.Load()
	for _, m := range deviceMessages(p.d.tmpl, p.d.cfg.Topic, s.at, p.b.cfg.Location, s.values, &p.day, f.Garbage) {
		if m.onChange {
			p.mu.Lock()
			same := bytes.Equal(p.last[m.topic], m.payload)
			p.last[m.topic] = m.payload
			p.mu.Unlock()
			if same {
				continue
			}
		}
		c.Publish(m.topic, 0, m.retained, m.payload)
	}
}

// connect returns the client, creating and connecting it (in the
// background, retrying) when there is none.
func (p *publisher) connect() paho.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client
	}
	cfg := p.b.cfg.MQTT
	will := presence(p.format, p.d.cfg.Topic, false)
	online := presence(p.format, p.d.cfg.Topic, true)
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID("devsim-"+p.d.cfg.Topic).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(true).
		SetKeepAlive(30*time.Second).
		SetConnectTimeout(5*time.Second).
		SetWriteTimeout(5*time.Second).
		SetConnectRetry(true).
		SetConnectRetryInterval(2*time.Second).
		SetMaxReconnectInterval(10*time.Second).
		SetAutoReconnect(true).
		SetBinaryWill(will.topic, will.payload, 1, true).
		SetOnConnectHandler(func(c paho.Client) {
			p.log.Info("MQTT device connected", "broker", cfg.Broker)
			p.mu.Lock()
			p.last = map[string][]byte{} // announce the switch state again
			p.mu.Unlock()
			p.subscribeCommands(c) // before it announces itself: online means it takes commands
			c.Publish(online.topic, 1, true, online.payload)
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			p.log.Warn("MQTT device lost its broker connection", "broker", cfg.Broker, "error", err)
		})
	p.last = map[string][]byte{}
	p.client = paho.NewClient(opts)
	p.client.Connect() // retries in the background until connected or disconnected
	return p.client
}

// subscribeCommands subscribes to the device's command topic as the real
// device does: Tasmota "cmnd/<topic>/POWER" (ON, OFF, TOGGLE; empty asks
// for the state), Shelly Gen2 "<id>/rpc" (Switch.Set, Switch.Toggle).
func (p *publisher) subscribeCommands(c paho.Client) {
	topic := "cmnd/" + p.d.cfg.Topic + "/POWER"
	if p.format == formatShelly {
		topic = p.d.cfg.Topic + "/rpc"
	}
	tok := c.Subscribe(topic, 1, func(c paho.Client, m paho.Message) { p.command(c, m.Payload()) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		p.log.Warn("MQTT device cannot subscribe to its commands", "topic", topic, "error", tok.Error())
	}
}

// command executes a relay command: the plug's circuit switches by hand
// (as a coil write switches a panel's), and the device reports its state
// at once: Tasmota on stat/<topic>/POWER (and stat/<topic>/RESULT), Shelly
// on <id>/status/switch:0 and with an RPC answer on <src>/rpc.
func (p *publisher) command(c paho.Client, payload []byte) {
	if p.d.currentFault().Unreachable {
		return
	}
	pl, ok := p.d.model.(*plug)
	if !ok {
		return
	}
	var (
		on, query bool
		rpc       struct {
			ID     any    `json:"id"`
			Src    string `json:"src"`
			Method string `json:"method"`
			Params struct {
				ID int   `json:"id"`
				On *bool `json:"on"`
			} `json:"params"`
		}
	)
	p.b.mu.Lock()
	was := pl.circuits[0].state
	p.b.mu.Unlock()
	if p.format == formatShelly {
		if err := json.Unmarshal(payload, &rpc); err != nil || rpc.Params.ID != 0 {
			p.log.Warn("MQTT device ignored an RPC it cannot read", "payload", string(payload))
			return
		}
		switch {
		case rpc.Method == "Switch.Set" && rpc.Params.On != nil:
			on = *rpc.Params.On
		case rpc.Method == "Switch.Toggle":
			on = !was
		default:
			p.log.Warn("MQTT device ignored an unsupported RPC", "method", rpc.Method)
			return
		}
	} else {
		switch strings.ToUpper(strings.TrimSpace(string(payload))) {
		case "ON", "1":
			on = true
		case "OFF", "0":
		case "TOGGLE", "2":
			on = !was
		case "":
			query = true
		default:
			p.log.Warn("MQTT device ignored a command it cannot read", "payload", string(payload))
			return
		}
	}
	if !query {
		p.b.mu.Lock()
		err := pl.switchCircuit(0, on)
		if err == nil {
			p.b.publishLocked()
		}
		p.b.mu.Unlock()
		if err != nil {
			p.log.Warn("MQTT device cannot switch", "error", err)
			return
		}
		p.log.Info("relay switched by MQTT command", "on", on)
	}
	if p.format == formatShelly && rpc.Src != "" {
		b, _ := json.Marshal(map[string]any{"id": rpc.ID, "src": p.d.cfg.Topic, "dst": rpc.Src, "result": map[string]any{"was_on": was}})
		c.Publish(rpc.Src+"/rpc", 1, false, b)
	}
	if p.format == formatTasmota {
		st := onOff(on || query && was)
		c.Publish("stat/"+p.d.cfg.Topic+"/RESULT", 0, false, []byte(`{"POWER":"`+st+`"}`))
	}
	// The state messages follow at once, even when the state did not change.
	p.mu.Lock()
	p.last = map[string][]byte{}
	p.mu.Unlock()
	p.tick()
}

// disconnect publishes the offline presence and closes the connection.
func (p *publisher) disconnect() {
	p.mu.Lock()
	c := p.client
	p.client = nil
	p.mu.Unlock()
	if c == nil {
		return
	}
	if c.IsConnectionOpen() {
		off := presence(p.format, p.d.cfg.Topic, false)
		c.Publish(off.topic, 1, true, off.payload).WaitTimeout(2 * time.Second)
	}
	c.Disconnect(250)
	p.log.Info("MQTT device went offline")
}
