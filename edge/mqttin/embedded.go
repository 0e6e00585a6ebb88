package mqttin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// inlineSubscription is the id of the input's own subscription on the
// embedded broker.
const inlineSubscription = 1

// embedded runs the plant-room broker. The input subscribes through the
// broker's inline client, so messages reach it without a network hop.
type embedded struct {
	in   *Input
	cfg  Embedded
	auth *deviceAuth

	mu     sync.Mutex
	server *mqtt.Server
	addr   string
}

func newEmbedded(in *Input, cfg Embedded) (*embedded, error) {
	a := &deviceAuth{in: in, users: map[string]User{}}
	for _, u := range cfg.Users {
		a.users[u.Username] = u
	}
	return &embedded{in: in, cfg: cfg, auth: a}, nil
}

func (e *embedded) start() error {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = MaxPayload + 1024 // room for the topic and headers
	caps.MaximumClients = MaxClients
	caps.MaximumSessionExpiryInterval = 24 * 60 * 60
	s := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		Logger:                 slog.New(quietHandler{e.in.log.Handler()}),
		SysTopicResendInterval: 60,
	})
	if err := s.AddHook(e.auth, nil); err != nil {
		return fmt.Errorf("cannot start MQTT device broker: %w", err)
	}
	l, err := net.Listen("tcp", e.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen for MQTT devices on %q: %w", e.cfg.Listen, err)
	}
	if err := s.AddListener(listeners.NewNet("devices", l)); err != nil {
		l.Close()
		return fmt.Errorf("cannot start MQTT device broker: %w", err)
	}
	// Subscribed before serving: nothing is retained yet, so every message
	// the handler sees is live.
	err = s.Subscribe("#", inlineSubscription, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		e.in.handle(pk.TopicName, pk.Payload, false)
	})
	if err != nil {
		l.Close()
		return fmt.Errorf("cannot start MQTT device broker: %w", err)
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return fmt.Errorf("cannot start MQTT device broker: %w", err)
	}
	e.mu.Lock()
	e.server, e.addr = s, l.Addr().String()
	e.mu.Unlock()
	e.in.metrics.connected.Set(1)
	e.in.log.Info("MQTT device broker listening", "addr", e.addr, "users", len(e.cfg.Users))
	return nil
}

func (e *embedded) stop() {
	e.mu.Lock()
	s := e.server
	e.server = nil
	e.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

func (e *embedded) publish(topic string, payload []byte) error {
	e.mu.Lock()
	s := e.server
	e.mu.Unlock()
	if s == nil {
		return errNoBroker
	}
	return s.Publish(topic, payload, false, 1)
}

// update hands the retained availability of new devices to the input:
// they announced themselves before they were configured.
func (e *embedded) update(old, cur *routes) error {
	e.mu.Lock()
	s := e.server
	e.mu.Unlock()
	if s == nil {
		return nil
	}
	for topic, rt := range cur.byTopic {
		if !rt.availability {
			continue
		}
		if prev, ok := old.byTopic[topic]; ok && prev.dev.ID == rt.dev.ID {
			continue
		}
		for _, pk := range s.Topics.Messages(topic) {
			e.in.handle(pk.TopicName, pk.Payload, true)
		}
	}
	return nil
}

// Addr is the embedded broker's bound address ("127.0.0.1:1884"), or ""
// when the input does not run one or is not started.
func (in *Input) Addr() string {
	e, ok := in.tr.(*embedded)
	if !ok {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

// deviceAuth lets the configured device users in and refuses everyone
// else. It is a mochi hook.
type deviceAuth struct {
	mqtt.HookBase
	in       *Input
	users    map[string]User
	verified sync.Map // username + "\x00" + sha256(password) → true, for bcrypt hashes
}

func (a *deviceAuth) ID() string { return "plantroom-edge-devices" }

func (a *deviceAuth) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// OnConnectAuthenticate checks user name and password.
func (a *deviceAuth) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	name := string(pk.Connect.Username)
	u, ok := a.users[name]
	if ok && a.checkPassword(u, pk.Connect.Password) {
		return true
	}
	a.in.metrics.refused.Inc()
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		host = cl.Net.Remote
	}
	if a.in.logs.every("refused:"+host, time.Minute) {
		a.in.log.Warn("MQTT device login refused: unknown user or wrong password",
			"username", name, "remote", cl.Net.Remote, "client_id", pk.Connect.ClientIdentifier)
	}
	return false
}

func (a *deviceAuth) checkPassword(u User, password []byte) bool {
	sum := sha256.Sum256(password)
	switch h := u.PasswordHash; {
	case h == "":
		want := sha256.Sum256([]byte(u.Password))
		return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	case strings.HasPrefix(h, "sha256:"):
		want, err := hex.DecodeString(strings.TrimPrefix(h, "sha256:"))
		return err == nil && subtle.ConstantTimeCompare(want, sum[:]) == 1
	default:
		key := u.Username + "\x00" + string(sum[:])
		if _, ok := a.verified.Load(key); ok {
			return true
		}
		if bcrypt.CompareHashAndPassword([]byte(h), password) != nil {
			return false
		}
		a.verified.Store(key, true)
		return true
	}
}

// OnACLCheck lets a logged-in device publish and subscribe anywhere but
// the broker's own $ topics: Tasmota and Shelly subscribe to their command
// topics.
func (a *deviceAuth) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	_, ok := a.users[string(cl.Properties.Username)]
	return ok && !strings.HasPrefix(topic, "$")
}

// quietHandler passes mochi's log records on, except that the
// per-connection errors it logs with an empty message at warning level (a
// device closing its connection, a refused login already logged by
// deviceAuth) are lowered to debug.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "" && r.Level == slog.LevelWarn {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
		r.Message = "MQTT device connection ended"
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
