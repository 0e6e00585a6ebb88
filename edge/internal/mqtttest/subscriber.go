package mqtttest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Subscriber is a paho client that records every message on a filter
// (QoS 1), for brokers that cannot record publishes themselves.
type Subscriber struct {
	c paho.Client

	mu       sync.Mutex
	messages []Message
}

// Subscribe connects to url and subscribes to filter.
func Subscribe(t testing.TB, url, filter string) *Subscriber {
	t.Helper()
	s := &Subscriber{}
	opts := paho.NewClientOptions().AddBroker(url).
		SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).
		SetConnectTimeout(5 * time.Second)
	s.c = paho.NewClient(opts)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber cannot connect to %s: %v", url, tok.Error())
	}
	tok := s.c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.messages = append(s.messages, Message{
			Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), Retain: m.Retained(), QoS: m.Qos(), At: time.Now(),
		})
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot subscribe to %q: %v", filter, tok.Error())
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	return s
}

// Messages returns the received messages whose topic starts with prefix.
func (s *Subscriber) Messages(prefix string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if strings.HasPrefix(m.Topic, prefix) {
			out = append(out, m)
		}
	}
	return out
}
