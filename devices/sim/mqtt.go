package sim

import (
	"bytes"
	"context"
	"log/slog"
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
