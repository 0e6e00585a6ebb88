// Package mqtttest runs real MQTT brokers for the edge agent's tests: an
// in-process mochi broker with per-user passwords and publish prefixes that
// records every accepted publish, a mosquitto process on a free loopback
// port, and a TCP proxy that can cut the path to either.
package mqtttest

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// User is a broker account. A user with a Prefix may publish (and set a
// last will) only below it, like the cloud broker's gateways.
type User struct {
	Password string
	Prefix   string
}

// Message is one publish the broker accepted.
type Message struct {
	Topic    string
	Payload  []byte
	Retain   bool
	QoS      byte
	ClientID string
	At       time.Time
}

// Mochi is an in-process mochi broker on 127.0.0.1. It records every
// publish it accepts, across restarts.
type Mochi struct {
	t     testing.TB
	users map[string]User
	addr  string
	tls   *tls.Config

	mu       sync.Mutex
	server   *mqtt.Server
	messages []Message
	connects map[string]int // client id → successful connects
	notify   chan struct{}
	hold     chan struct{} // non-nil: publishes below holdOn wait (no PUBACK) until it closes
	holdOn   string
}

// StartMochi starts a broker on a free port. users maps user name to
// account; a nil map lets anyone in.
func StartMochi(t testing.TB, users map[string]User) *Mochi {
	t.Helper()
	return StartMochiTLS(t, users, nil)
}

// StartMochiTLS starts a broker whose listener speaks TLS with the given
// configuration (nil: plain TCP).
func StartMochiTLS(t testing.TB, users map[string]User, tc *tls.Config) *Mochi {
	t.Helper()
	m := &Mochi{t: t, users: users, addr: "127.0.0.1:0", tls: tc, connects: map[string]int{}, notify: make(chan struct{}, 1)}
	m.start()
	t.Cleanup(m.Stop)
	return m
}

func (m *Mochi) start() {
	m.t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(&hook{m: m}, nil); err != nil {
		m.t.Fatalf("cannot add broker hook: %v", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: m.addr, TLSConfig: m.tls})
	var err error
	for i := 0; i < 50; i++ { // a restart may find the port still held for a moment
		if err = s.AddListener(l); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		m.t.Fatalf("cannot listen on %s: %v", m.addr, err)
	}
	if err := s.Serve(); err != nil {
		m.t.Fatalf("cannot start broker: %v", err)
	}
	m.mu.Lock()
	m.server = s
	m.addr = l.Address()
	m.mu.Unlock()
}

// Addr is the broker's host:port; it stays the same across restarts.
func (m *Mochi) Addr() string { return m.addr }

// URL is the broker's tcp:// (or ssl://) URL.
func (m *Mochi) URL() string {
	if m.tls != nil {
		return "ssl://" + m.addr
	}
	return "tcp://" + m.addr
}

// Stop closes the broker and every connection. Idempotent.
func (m *Mochi) Stop() {
	m.Release()
	m.mu.Lock()
	s := m.server
	m.server = nil
	m.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// Restart starts the broker again on the same port, with empty sessions
// and retained messages (like a broker without persistence).
func (m *Mochi) Restart() {
	m.Stop()
	m.start()
}

// Messages returns the accepted publishes whose topic starts with prefix.
func (m *Mochi) Messages(prefix string) []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Message
	for _, msg := range m.messages {
		if strings.HasPrefix(msg.Topic, prefix) {
			out = append(out, msg)
		}
	}
	return out
}

// Hold makes the broker withhold PUBACKs of QoS 1 publishes to topics
// starting with prefix (they wait before being accepted) until Release,
// like a broker applying flow control.
func (m *Mochi) Hold(prefix string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hold == nil {
		m.hold = make(chan struct{})
	}
	m.holdOn = prefix
}

// Release lets held publishes through.
func (m *Mochi) Release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hold != nil {
		close(m.hold)
		m.hold = nil
	}
}

// Connects is how often a client id connected successfully.
func (m *Mochi) Connects(clientID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connects[clientID]
}

// Changed receives a value after an accepted publish.
func (m *Mochi) Changed() <-chan struct{} { return m.notify }

// Retained returns the retained message on topic, if any.
func (m *Mochi) Retained(topic string) (Message, bool) {
	m.mu.Lock()
	s := m.server
	m.mu.Unlock()
	if s == nil {
		return Message{}, false
	}
	pk, ok := s.Topics.Retained.Get(topic)
	if !ok || len(pk.Payload) == 0 {
		return Message{}, false
	}
	return Message{Topic: pk.TopicName, Payload: pk.Payload, Retain: true, QoS: pk.FixedHeader.Qos}, true
}

// hook authenticates users, enforces publish prefixes and records
// accepted publishes.
type hook struct {
	mqtt.HookBase
	m *Mochi
}

func (h *hook) ID() string { return "mqtttest" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPublished, mqtt.OnSessionEstablished}, []byte{b})
}

func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.m.mu.Lock()
	hold, on := h.m.hold, h.m.holdOn
	h.m.mu.Unlock()
	if hold != nil && pk.FixedHeader.Qos > 0 && strings.HasPrefix(pk.TopicName, on) {
		<-hold
	}
	return pk, nil
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if h.m.users == nil {
		return true
	}
	u, ok := h.m.users[string(pk.Connect.Username)]
	if !ok || u.Password != string(pk.Connect.Password) {
		return false
	}
	if pk.Connect.WillFlag && u.Prefix != "" && !strings.HasPrefix(pk.Connect.WillTopic, u.Prefix) {
		return false
	}
	return true
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if !write || h.m.users == nil {
		return true
	}
	u := h.m.users[string(cl.Properties.Username)]
	return u.Prefix == "" || strings.HasPrefix(topic, u.Prefix)
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.m.mu.Lock()
	h.m.connects[cl.ID]++
	h.m.mu.Unlock()
}

func (h *hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	msg := Message{
		Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), Retain: pk.FixedHeader.Retain,
		QoS: pk.FixedHeader.Qos, ClientID: cl.ID, At: time.Now(),
	}
	h.m.mu.Lock()
	h.m.messages = append(h.m.messages, msg)
	h.m.mu.Unlock()
	select {
	case h.m.notify <- struct{}{}:
	default:
	}
}
