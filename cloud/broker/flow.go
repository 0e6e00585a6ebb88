package broker

import (
	"bytes"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// flow keeps the broker from accepting more than it can deliver to durable
// subscribers. The broker acknowledges a QoS 1 publish (PUBACK) before it
// hands the message to the subscribers; a subscriber with a persistent
// session that stops acknowledging (the ingest while ClickHouse is down, or
// while it restarts) would otherwise make the broker queue messages without
// bound until it drops them, and the gateway, having its PUBACK, would have
// deleted them already.
//
// So before a QoS 1/2 publish is accepted, flow looks at the persistent
// (clean-session false) subscribers of its topic: while one of them (or,
// for a shared subscription, every member of the group) holds maxPending or
// more unacknowledged messages, the publishing client waits, without a
// PUBACK. The gateway keeps the batch in its own durable queue and resends
// it if it reconnects. When a subscriber acknowledges, waiting publishers
// re-check. Shared subscriptions deliver to the least-loaded member.
// Only the ingest's backlog counts (a service that may publish commit
// acknowledgements): clean-session subscribers and every other service
// (dashboards, tools) are best effort and never hold anyone back, however
// many messages they leave unacknowledged.
type flow struct {
	mqtt.HookBase
	server     *mqtt.Server
	isIngest   func(user string) bool // whose backlog holds publishers back
	maxPending int
	metrics    *metrics
	done       <-chan struct{}

	mu       sync.Mutex
	progress chan struct{} // closed and replaced whenever a subscriber acknowledges

	guard takeoverGuard
}

func newFlow(maxPending int, m *metrics, done <-chan struct{}) *flow {
	return &flow{maxPending: maxPending, metrics: m, done: done, progress: make(chan struct{})}
}

// ID names the hook.
func (f *flow) ID() string { return "plantroom-flow" }

// Provides reports the hook methods flow implements.
func (f *flow) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublish, mqtt.OnQosComplete, mqtt.OnSelectSubscribers, mqtt.OnDisconnect,
		mqtt.OnSessionEstablish, mqtt.OnPublished, mqtt.OnPacketProcessed, mqtt.OnPacketSent}, []byte{b})
}

// OnSessionEstablish guards a session takeover (see takeoverGuard).
func (f *flow) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) { f.guard.takingOver(cl) }

// OnPacketSent ends a session takeover's guard once its CONNACK is out.
func (f *flow) OnPacketSent(cl *mqtt.Client, pk packets.Packet, b []byte) { f.guard.sent(cl, pk) }

// OnPublished ends a publish's delivery.
func (f *flow) OnPublished(cl *mqtt.Client, pk packets.Packet) { f.guard.delivered(cl) }

// OnPacketProcessed ends a publish's delivery also when it failed.
func (f *flow) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	if pk.FixedHeader.Type == packets.Publish {
		f.guard.delivered(cl)
	}
}

// OnQosComplete wakes publishers waiting for a subscriber to catch up, and
// starts the delivery of a QoS 1 publish just acknowledged.
func (f *flow) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	f.guard.acknowledged(cl)
	f.wake()
}

// OnDisconnect wakes waiting publishers: the client that left may have been
// one of them, or a subscriber they waited for.
func (f *flow) OnDisconnect(cl *mqtt.Client, err error, expire bool) { f.wake() }

func (f *flow) wake() {
	f.mu.Lock()
	close(f.progress)
	f.progress = make(chan struct{})
	f.mu.Unlock()
}

func (f *flow) progressed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.progress
}

// OnPublish holds a QoS > 0 publish while a durable subscriber of its topic
// is full. It gives up (the publish is dropped without PUBACK, so the
// sender will resend it) when the publishing client disconnects or the
// broker stops.
func (f *flow) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if pk.FixedHeader.Qos > 0 && f.congested(pk.TopicName) {
		if err := f.hold(cl, pk); err != nil {
			return pk, err
		}
	}
	f.guard.beforeDelivery(cl, pk)
	return pk, nil
}

// hold waits while a durable subscriber of the publish's topic is full.
func (f *flow) hold(cl *mqtt.Client, pk packets.Packet) error {
	f.metrics.held.Inc()
	start := time.Now()
	defer func() { f.metrics.heldSeconds.Add(time.Since(start).Seconds()) }()
	// A subscriber's session can also shrink without an acknowledgement
	// (it expires, or is taken over); re-check now and then.
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for f.congested(pk.TopicName) {
		select {
		case <-f.progressed():
		case <-recheck.C:
		case <-f.done:
			return packets.ErrRejectPacket
		}
		if cl.Closed() {
			return packets.ErrRejectPacket
		}
	}
	return nil
}

// load is the number of unacknowledged messages queued for a client.
func (f *flow) load(id string) (n int, durable bool) {
	cl, ok := f.server.Clients.Get(id)
	if !ok {
		return 0, false
	}
	return cl.State.Inflight.Len(), !cl.Properties.Clean && (f.isIngest == nil || f.isIngest(string(cl.Properties.Username)))
}

func (f *flow) congested(topic string) bool {
	subs := f.server.Topics.Subscribers(topic)
	for id := range subs.Subscriptions {
		if n, durable := f.load(id); durable && n >= f.maxPending {
			return true
		}
	}
	for _, group := range subs.Shared {
		full, durable := true, false
		for id := range group {
			n, d := f.load(id)
			durable = durable || d
			if !d || n < f.maxPending {
				full = false
				break
			}
		}
		if durable && full {
			return true
		}
	}
	return false
}

// OnSelectSubscribers picks, for each shared subscription group, the
// connected member with the fewest unacknowledged messages.
func (f *flow) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	if len(subs.Shared) == 0 {
		return subs
	}
	if subs.SharedSelected == nil {
		subs.SharedSelected = map[string]packets.Subscription{}
	}
	for _, group := range subs.Shared {
		best, bestLoad := "", 0
		for id := range group {
			load := 1 << 30 // disconnected members only when nobody else is there
			if cl, ok := f.server.Clients.Get(id); ok {
				if !cl.Closed() {
					load = cl.State.Inflight.Len()
				} else {
					load += cl.State.Inflight.Len()
				}
			}
			if best == "" || load < bestLoad {
				best, bestLoad = id, load
			}
		}
		sub := group[best]
		if prev, ok := subs.SharedSelected[best]; ok {
			sub = prev.Merge(sub)
		}
		subs.SharedSelected[best] = sub
	}
	return subs
}
