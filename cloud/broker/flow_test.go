package broker

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"
)

func (b *testBroker) held(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := b.flow.metrics.held.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func (b *inbox) ackAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		m.Ack()
	}
}

func (b *inbox) payloads() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for _, m := range b.msgs {
		out[string(m.Payload())]++
	}
	return out
}

func done(toks []paho.Token) int {
	n := 0
	for _, tok := range toks {
		select {
		case <-tok.Done():
			n++
		default:
		}
	}
	return n
}

func TestSlowDurableSubscriberHoldsPublishersBack(t *testing.T) {
	const maxPending = 5
	b := startBroker(t, func(c *Config) { c.MaxPending = maxPending })
	var in inbox
	sub := mustDial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-1", manualAck: true, handler: in.handler})
	subscribe(t, sub, "plantroom/v2/+/+/+/telemetry")
	gw := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})

	const total = 12
	var toks []paho.Token
	for i := 0; i < total; i++ {
		toks = append(toks, gw.Publish(gardenTelemetry, 1, false, fmt.Sprint(i)))
	}
	waitFor(t, "the subscriber's window to fill and a publish to be held", func() bool {
		return in.len() == maxPending && b.held(t) >= 1
	})
	// The broker acknowledged exactly what it could queue for the subscriber.
	if n := done(toks); n != maxPending {
		t.Errorf("%d publishes acknowledged while the subscriber is full, want %d", n, maxPending)
	}
	if n := in.len(); n != maxPending {
		t.Errorf("subscriber received %d, want %d", n, maxPending)
	}
	// Acknowledging lets the rest through, each exactly once.
	waitFor(t, "every message", func() bool {
		in.ackAll()
		return in.len() >= total
	})
	for _, tok := range toks {
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	got := in.payloads()
	for i := 0; i < total; i++ {
		if got[fmt.Sprint(i)] != 1 {
			t.Errorf("message %d delivered %d times", i, got[fmt.Sprint(i)])
		}
	}
}

func TestPersistentSessionKeepsMessagesWhileSubscriberIsAway(t *testing.T) {
	const maxPending = 4
	b := startBroker(t, func(c *Config) { c.MaxPending = maxPending })
	opts := clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-1", manualAck: true}
	sub := mustDial(t, b.Addr(), opts)
	subscribe(t, sub, "plantroom/v2/+/+/+/telemetry")
	sub.Disconnect(50) // the session stays: clean session is false

	gw := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	const total = 7
	var toks []paho.Token
	for i := 0; i < total; i++ {
		toks = append(toks, gw.Publish(gardenTelemetry, 1, false, fmt.Sprint(i)))
	}
	waitFor(t, "publishes to be held while the subscriber is away", func() bool {
		return done(toks) == maxPending && b.held(t) >= 1
	})

	var in inbox
	opts.handler = in.handler
	mustDial(t, b.Addr(), opts)
	waitFor(t, "every message after the subscriber came back", func() bool {
		in.ackAll()
		return done(toks) == total && len(in.payloads()) == total
	})
	for i, n := range in.payloads() {
		if n != 1 {
			t.Errorf("message %s delivered %d times", i, n)
		}
	}
}

func TestSharedSubscriptionSplitsMessages(t *testing.T) {
	b := startBroker(t, nil)
	var a, c inbox
	filter := "$share/ingest/plantroom/v2/+/+/+/telemetry"
	subscribe(t, mustDial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-a", handler: a.handler}), filter)
	subscribe(t, mustDial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-b", handler: c.handler}), filter)
	gw := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	const total = 40
	for i := 0; i < total; i++ {
		if err := publish(t, gw, gardenTelemetry, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every message", func() bool { return a.len()+c.len() == total })
	if a.len() == 0 || c.len() == 0 {
		t.Errorf("messages not split: %d and %d", a.len(), c.len())
	}
	seen := a.payloads()
	for p, n := range c.payloads() {
		seen[p] += n
	}
	for i := 0; i < total; i++ {
		if seen[fmt.Sprint(i)] != 1 {
			t.Errorf("message %d delivered %d times", i, seen[fmt.Sprint(i)])
		}
	}
}

// A durable subscriber that is not the ingest (a tool's persistent session
// that never acknowledges) holds no gateway back; the ingest still does.
func TestOnlyTheIngestsBacklogHoldsPublishersBack(t *testing.T) {
	const maxPending = 5
	b := startBroker(t, func(c *Config) {
		c.MaxPending = maxPending
		c.Services = append(c.Services, Service{Username: "viewer", PasswordHash: "sha256:" + sha256hex("viewer-secret"),
			Subscribe: []string{"plantroom/v2/#"}})
	})
	var stuck inbox
	tool := mustDial(t, b.Addr(), clientOpts{user: "viewer", password: "viewer-secret", id: "viewer-1", manualAck: true, handler: stuck.handler})
	subscribe(t, tool, "plantroom/v2/+/+/+/telemetry")
	var in inbox
	ing := mustDial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-1", handler: in.handler})
	subscribe(t, ing, "plantroom/v2/+/+/+/telemetry")
	gw := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	const total = 40
	var toks []paho.Token
	for i := 0; i < total; i++ {
		toks = append(toks, gw.Publish(gardenTelemetry, 1, false, fmt.Sprint(i)))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("a publish was held back by a subscriber that is not the ingest (%d of %d acknowledged)", done(toks), total)
		}
	}
	waitFor(t, "the ingest to receive everything", func() bool { return in.len() >= total })
}
