package broker

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// takeoverGuard closes a window in which mochi 2.7.9 loses messages. When
// a client reconnects to its persistent session, the broker copies the old
// connection's queued messages to the new one, clears the old one's, and
// only then registers the new connection. A message published in between
// is queued on the old connection and lost with it: an ingest reconnecting
// while gateways publish would lose their batches after the gateways had
// their PUBACK.
//
// The guard is a read-write lock. Delivering a QoS 0 or 1 publish to the
// subscribers holds it for reading, from the moment the publisher's
// acknowledgement is written until delivery is done (in-memory work only:
// nothing under the lock waits on the network). Taking over a session holds
// it for writing until the new connection is registered and has its
// CONNACK.
type takeoverGuard struct {
	server *mqtt.Server
	mu     sync.RWMutex
	// Per publishing client (a client's packets are processed one at a
	// time): expecting marks a QoS 1 publish between OnPublish and its
	// OnQosComplete; holding marks a read lock taken for its delivery.
	expecting sync.Map
	holding   sync.Map
	// connacks maps a connection taking over a session to a channel closed
	// once its CONNACK is written.
	connacks sync.Map
}

// beforeDelivery is called from OnPublish once the publish is accepted.
func (g *takeoverGuard) beforeDelivery(cl *mqtt.Client, pk packets.Packet) {
	switch pk.FixedHeader.Qos {
	case 0:
		g.lock(cl)
	case 1:
		g.expecting.Store(cl, struct{}{}) // locked once the PUBACK is written
	}
}

// acknowledged is called from OnQosComplete: for a QoS 1 publish, the
// broker has just written its PUBACK and delivers next.
func (g *takeoverGuard) acknowledged(cl *mqtt.Client) {
	if _, ok := g.expecting.LoadAndDelete(cl); ok {
		g.lock(cl)
	}
}

func (g *takeoverGuard) lock(cl *mqtt.Client) {
	g.mu.RLock()
	g.holding.Store(cl, struct{}{})
}

// delivered is called from OnPublished and, for every publish packet, from
// OnPacketProcessed (which also runs when processing failed half-way).
func (g *takeoverGuard) delivered(cl *mqtt.Client) {
	g.expecting.Delete(cl)
	if _, ok := g.holding.LoadAndDelete(cl); ok {
		g.mu.RUnlock()
	}
}

// takingOver is called from OnSessionEstablish, right before mochi moves a
// session to a new connection. It holds deliveries back until the new
// connection has its CONNACK (so that no message overtakes it), until the
// connection fails, or for a second at most.
func (g *takeoverGuard) takingOver(cl *mqtt.Client) {
	if _, ok := g.server.Clients.Get(cl.ID); !ok {
		return // a new session: nothing to move
	}
	g.mu.Lock()
	acked := make(chan struct{})
	g.connacks.Store(cl, acked)
	go func() {
		defer g.mu.Unlock()
		defer g.connacks.Delete(cl)
		deadline := time.NewTimer(time.Second)
		defer deadline.Stop()
		poll := time.NewTicker(10 * time.Millisecond)
		defer poll.Stop()
		for !cl.Closed() {
			select {
			case <-acked:
				return
			case <-deadline.C:
				return
			case <-poll.C:
			}
		}
	}()
}

// sent is called from OnPacketSent.
func (g *takeoverGuard) sent(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Connack {
		return
	}
	if acked, ok := g.connacks.LoadAndDelete(cl); ok {
		close(acked.(chan struct{}))
	}
}
