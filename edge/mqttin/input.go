package mqttin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Options are the Input's collaborators.
type Options struct {
	// Sink receives the readings of one message at a time (required). It is
	// called from the broker's or the client's receive path and must not
	// block for long; the edge queue's Add is meant to be called here.
	Sink func([]protocol.Reading)
	// OnState is told when a device announces it is online or offline
	// (Tasmota LWT, Shelly online): once at the first announcement and then
	// at every change. Optional; like Sink it must not block for long, and
	// neither may call Stop.
	OnState func(deviceID string, online bool)
	// Log [slog.Default()].
	Log *slog.Logger
	// Registerer for the metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock that stamps readings [time.Now].
	Now func() time.Time
	// RPCSource is the src of the gateway's Shelly RPC requests; the
	// answers come on "<RPCSource>/rpc". Gateways sharing a site broker
	// need their own: RPCSource(gateway) [DefaultRPCSource].
	RPCSource string
}

// transport delivers device messages to Input.handle: the embedded broker
// or a client of an external one.
type transport interface {
	start() error
	stop()
	// update follows a change of the device set (subscriptions, retained
	// availability of new devices).
	update(old, cur *routes) error
	// publish sends a command to a device (QoS 1, not retained).
	publish(topic string, payload []byte) error
}

// Input receives MQTT device messages and turns them into readings.
type Input struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	tr      transport

	table    atomic.Pointer[routes]
	updateMu sync.Mutex

	// mu is held for reading while a message is handled and taken by Stop
	// to wait for the handlers in progress; after Stop none starts.
	mu      sync.RWMutex
	stopped bool
	done    chan struct{} // closed when Stop begins

	stateMu sync.Mutex
	online  map[string]bool

	logs logLimiter

	relays relays
	rpcSrc string

	runMu   sync.Mutex
	started bool
	ended   bool
}

// New checks the configuration and the devices and prepares the input; it
// opens nothing until Start. Every problem is reported with its path
// ("embedded.users[0].password: …", "devices[2].topic: …").
func New(cfg Config, devs []Device, opts Options) (*Input, error) {
	cfg = cfg.clone()
	var p config.Problems
	cfg.Validate(&p)
	devs = append([]Device(nil), devs...)
	ValidateDevices(&p, "devices", devs)
	if opts.Sink == nil {
		p.Addf("options.sink", "required")
	}
	if opts.RPCSource == "" {
		opts.RPCSource = DefaultRPCSource
	}
	if strings.ContainsAny(opts.RPCSource, "/+#") {
		p.Addf("options.rpc_source", "%q is not one topic level", opts.RPCSource)
	}
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("cannot configure MQTT device input: %w", err)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	in := &Input{
		opts: opts, log: opts.Log, now: opts.Now, metrics: m, rpcSrc: opts.RPCSource,
		done: make(chan struct{}), online: map[string]bool{},
	}
	in.table.Store(newRoutes(devs))
	if cfg.Embedded != nil {
		in.tr, err = newEmbedded(in, *cfg.Embedded)
	} else {
		in.tr, err = newExternal(in, *cfg.External)
	}
	if err != nil {
		return nil, err
	}
	return in, nil
}

// clone copies the configuration so that defaults never change the caller's.
func (c Config) clone() Config {
	if c.Embedded != nil {
		e := *c.Embedded
		e.Users = append([]User(nil), e.Users...)
		c.Embedded = &e
	}
	if c.External != nil {
		x := *c.External
		if x.TLS != nil {
			t := *x.TLS
			x.TLS = &t
		}
		c.External = &x
	}
	return c
}

// Start opens the embedded broker's listener (bound when Start returns),
// or starts connecting to the external broker in the background: a site
// broker that is down is retried with backoff, not an error.
func (in *Input) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cannot start MQTT device input: %w", err)
	}
	in.runMu.Lock()
	defer in.runMu.Unlock()
	switch {
	case in.ended:
		return errors.New("cannot start MQTT device input: stopped")
	case in.started:
		return errors.New("cannot start MQTT device input: already started")
	}
	if err := in.tr.start(); err != nil {
		return err
	}
	in.started = true
	return nil
}

// Stop closes the broker or the connection and waits until no message is
// being handled; the sink is not called after Stop returns. Idempotent.
func (in *Input) Stop() {
	in.runMu.Lock()
	defer in.runMu.Unlock()
	if in.ended {
		return
	}
	in.ended = true
	close(in.done)
	if in.started {
		in.tr.stop()
	}
	in.mu.Lock()
	in.stopped = true
	in.mu.Unlock()
	in.metrics.connected.Set(0)
}

// Update replaces the device set (configuration reload). Devices are
// checked as in New; on a problem nothing changes. Removed devices' state
// and metric series are dropped; new devices' retained availability is
// picked up. An error after the check (a subscription the external broker
// refused) leaves the new set in place; the subscription is retried at the
// next reconnect.
func (in *Input) Update(devs []Device) error {
	devs = append([]Device(nil), devs...)
	var p config.Problems
	ValidateDevices(&p, "devices", devs)
	if err := p.Err(); err != nil {
		return fmt.Errorf("cannot update MQTT devices: %w", err)
	}
	in.updateMu.Lock()
	defer in.updateMu.Unlock()
	cur := newRoutes(devs)
	old := in.table.Swap(cur)
	in.stateMu.Lock()
	for id := range old.devices {
		if cur.devices[id] == nil {
			delete(in.online, id)
			in.metrics.forget(id)
		}
	}
	in.stateMu.Unlock()
	in.runMu.Lock()
	running := in.started && !in.ended
	in.runMu.Unlock()
	if !running {
		return nil
	}
	return in.tr.update(old, cur)
}

// handle maps one message. retained marks a message the broker kept and
// hands out on subscription: its availability counts, its telemetry is of
// unknown age and is not turned into readings.
func (in *Input) handle(topic string, payload []byte, retained bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.stopped || strings.HasPrefix(topic, "$") {
		return
	}
	if topic == in.rpcTopic() {
		in.relays.answer(payload) // an answer to a request of ours, or a late one
		return
	}
	if ownTopic(topic) {
		return
	}
	now := in.now()
	rt, ok := in.table.Load().byTopic[topic]
	if !ok {
		in.metrics.unknown.Inc()
		if in.logs.first("topic:" + topic) {
			in.log.Info("MQTT message on a topic of no configured device", "topic", topic)
		}
		return
	}
	d := rt.dev
	in.metrics.messages.WithLabelValues(d.ID).Inc()
	if len(payload) > MaxPayload {
		in.fail(d, topic, fmt.Errorf("cannot take message on %q of device %q: %w: %d bytes (max %d)", topic, d.ID, ErrTooLarge, len(payload), MaxPayload))
		return
	}
	if rt.availability && in.stopping() {
		// The embedded broker fires the last will of every device still
		// connected while it shuts down: that is the edge going away, not
		// the devices. Their state is not ours to report any more.
		return
	}
	if rt.availability {
		online, err := ParseAvailability(payload)
		if err != nil {
			in.fail(d, topic, fmt.Errorf("cannot read availability on %q of device %q: %w", topic, d.ID, err))
		} else {
			in.setState(d.ID, online)
		}
	}
	if retained {
		return
	}
	rs, err := Map(d.Template, d.ID, d.Topic, topic, payload, now)
	if err != nil {
		in.fail(d, topic, err)
	}
	for _, r := range rs {
		if d.Template.Relay(r.Metric) != nil {
			in.relays.observe(d.ID, r.Metric, r.Value)
		}
	}
	if len(rs) > 0 {
		in.metrics.readings.WithLabelValues(d.ID).Add(float64(len(rs)))
		for _, r := range rs {
			if r.Quality == protocol.QualityBad {
				in.metrics.errors.WithLabelValues(d.ID, CauseOutOfRange).Inc()
			}
		}
		in.opts.Sink(rs)
	}
}

// stopping tells whether Stop has begun.
func (in *Input) stopping() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// setState reports a device's availability when it changed.
func (in *Input) setState(id string, online bool) {
	in.stateMu.Lock()
	defer in.stateMu.Unlock()
	if _, still := in.table.Load().devices[id]; !still {
		return
	}
	if prev, ok := in.online[id]; ok && prev == online {
		return
	}
	in.online[id] = online
	in.log.Info("MQTT device availability", "device", id, "online", online)
	if in.opts.OnState != nil {
		in.opts.OnState(id, online)
	}
}
