// Package mqtttest runs a real MQTT broker (the embedded mochi-mqtt server
// the edge and cloud use) on a loopback port for tests, and subscribes to
// it with paho.
package mqtttest

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// StartBroker starts a broker that lets every client in on 127.0.0.1 and
// an ephemeral port; it returns the broker URL ("tcp://127.0.0.1:port").
// The broker closes at cleanup.
func StartBroker(t testing.TB) string {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatalf("cannot add allow hook: %v", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "test", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	if err := s.Serve(); err != nil {
		t.Fatalf("cannot serve: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return "tcp://" + l.Address()
}

// subscribers numbers subscriber client ids: a broker drops the older of
// two clients with the same id.
var subscribers atomic.Int64

// Message is one received publication.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Subscriber collects every message on a topic filter.
type Subscriber struct {
	mu   sync.Mutex
	msgs []Message
}

// Subscribe connects a paho client and subscribes to filter with QoS 1;
// the subscription is in place when it returns.
func Subscribe(t testing.TB, broker, filter string) *Subscriber {
	t.Helper()
	s := &Subscriber{}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("test-sub-%d", subscribers.Add(1))).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot connect subscriber to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, Message{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), Retained: m.Retained()})
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot subscribe to %q: %v", filter, tok.Error())
	}
	return s
}

// Messages returns a copy of what has arrived so far.
func (s *Subscriber) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Last returns the last message on topic, if any.
func (s *Subscriber) Last(topic string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.msgs) - 1; i >= 0; i-- {
		if s.msgs[i].Topic == topic {
			return s.msgs[i], true
		}
	}
	return Message{}, false
}

// Count is the number of messages on topic so far.
func (s *Subscriber) Count(topic string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if m.Topic == topic {
			n++
		}
	}
	return n
}
