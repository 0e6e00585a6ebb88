package broker

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Denial reasons, the values of the reason label of
// plantroom_broker_denied_total.
const (
	DenyCredentials = "credentials" // unknown user or wrong password
	DenyClientID    = "client_id"   // client id reserved for, or in use by, another user
	DenyWill        = "will"        // last-will topic outside the user's prefix
	DenyPublish     = "publish"     // publish outside the user's topics
	DenySubscribe   = "subscribe"   // subscribe (or delivery) outside the user's topics
)

// principal is a user the broker knows: a gateway or a service.
type principal struct {
	name      string
	hash      string   // bcrypt "$2…" or "sha256:<hex>"
	gateway   bool     // a gateway: publishes under prefix (or prefixV1) except down/, subscribes to prefix+"down/#"
	prefix    string   // gateway: "plantroom/v2/<company>/<project>/<gateway>/"
	prefixV1  string   // gateway: "plantroom/v1/<company>/<project>/<gateway>/", for version-1 agents
	subscribe []string // service: filters it may subscribe to
	publish   []string // service: filters it may publish to
}

// access authenticates clients and checks every publish and subscribe. It
// is a mochi hook.
type access struct {
	mqtt.HookBase
	server  *mqtt.Server
	log     *slog.Logger
	metrics *metrics

	mu         sync.RWMutex
	principals map[string]*principal
	services   []string // service user names: client ids starting with one are reserved

	verified sync.Map // user + "\x00" + sha256(password) → hash it was verified against

	logMu    sync.Mutex
	lastLogs map[string]time.Time // rate limit for denial logs
}

func newAccess(org *config.Org, services []Service, log *slog.Logger, m *metrics) (*access, error) {
	a := &access{log: log, metrics: m, principals: map[string]*principal{}, lastLogs: map[string]time.Time{}}
	if org != nil {
		for ci := range org.Companies {
			c := &org.Companies[ci]
			for pi := range c.Projects {
				p := &c.Projects[pi]
				for gi := range p.Gateways {
					g := &p.Gateways[gi]
					ref := protocol.GatewayRef{Company: c.ID, Project: p.ID, Gateway: g.ID}
					a.principals[g.ID] = &principal{name: g.ID, hash: g.PasswordHash, gateway: true,
						prefix: ref.Prefix() + "/", prefixV1: ref.PrefixV1() + "/"}
				}
			}
		}
	}
	for i, s := range services {
		if err := a.addService(s); err != nil {
			return nil, fmt.Errorf("cannot configure broker service %d: %w", i, err)
		}
	}
	return a, nil
}

func (a *access) addService(s Service) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.principals[s.Username]; dup {
		return fmt.Errorf("user name %q is already taken by a gateway or another service", s.Username)
	}
	sub, pub := s.Subscribe, s.Publish
	if sub == nil {
		sub = DefaultServiceSubscribe
	}
	a.principals[s.Username] = &principal{name: s.Username, hash: s.PasswordHash, subscribe: sub, publish: pub}
	a.services = append(a.services, s.Username)
	return nil
}

// ID names the hook.
func (a *access) ID() string { return "plantroom-access" }

// Provides reports the hook methods access implements.
func (a *access) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// isIngest reports whether user is an ingest: a service that may publish
// commit acknowledgements. Only an ingest's backlog holds gateways back.
func (a *access) isIngest(user string) bool {
	p := a.principal(user)
	if p == nil || p.gateway {
		return false
	}
	for _, f := range p.publish {
		if covers(f, IngestPublish[0]) {
			return true
		}
	}
	return false
}

func (a *access) principal(name string) *principal {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.principals[name]
}

// OnConnectAuthenticate checks user name and password, the client id and
// the last-will topic.
func (a *access) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	p := a.principal(user)
	if p == nil || !a.checkPassword(p, pk.Connect.Password) {
		a.deny(DenyCredentials, user, cl, "unknown user or wrong password")
		return false
	}
	id := pk.Connect.ClientIdentifier
	if reason := a.clientIDProblem(p, id); reason != "" {
		a.deny(DenyClientID, user, cl, reason)
		return false
	}
	if pk.Connect.WillFlag && !a.allowed(p, pk.Connect.WillTopic, true) {
		a.deny(DenyWill, user, cl, fmt.Sprintf("last-will topic %q is outside the user's topics", pk.Connect.WillTopic))
		return false
	}
	return true
}

// clientIDProblem explains why p may not use client id, or returns "".
// Client ids carry sessions (subscriptions, queued messages): a client
// taking over another user's session would read its messages, so a client
// id belongs to the user whose session holds it, and ids starting with a
// service's user name are reserved for that service.
func (a *access) clientIDProblem(p *principal, id string) string {
	if id == "" {
		return "" // the broker assigns a fresh id
	}
	if p.gateway {
		// A gateway's client id is its own id, or its id, "-" and a suffix
		// (gw-garden-1-backfill); never one another gateway may claim.
		if owner := a.gatewayOfClientID(id); owner != p.name {
			return fmt.Sprintf("gateway %q may use client id %q or %q, not %q", p.name, p.name, p.name+"-…", id)
		}
	}
	if !p.gateway && !strings.HasPrefix(id, p.name) {
		return fmt.Sprintf("a service's client id must start with its user name %q, got %q", p.name, id)
	}
	a.mu.RLock()
	for _, s := range a.services {
		if s != p.name && strings.HasPrefix(id, s) {
			a.mu.RUnlock()
			return fmt.Sprintf("client id %q is reserved for service %q", id, s)
		}
	}
	a.mu.RUnlock()
	if a.server != nil {
		if existing, ok := a.server.Clients.Get(id); ok {
			if owner := string(existing.Properties.Username); owner != p.name {
				return fmt.Sprintf("client id %q belongs to a session of user %q", id, owner)
			}
		}
	}
	return ""
}

// gatewayOfClientID is the gateway a client id belongs to: the gateway with
// the longest id that equals it or is followed in it by "-"; "" for none.
func (a *access) gatewayOfClientID(id string) string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	best := ""
	for name, p := range a.principals {
		if p.gateway && len(name) > len(best) && (id == name || strings.HasPrefix(id, name+"-")) {
			best = name
		}
	}
	return best
}

func (a *access) checkPassword(p *principal, password []byte) bool {
	sum := sha256.Sum256(password)
	key := p.name + "\x00" + string(sum[:])
	if h, ok := a.verified.Load(key); ok && h.(string) == p.hash {
		return true
	}
	var ok bool
	switch {
	case strings.HasPrefix(p.hash, "$2"):
		ok = bcrypt.CompareHashAndPassword([]byte(p.hash), password) == nil
	case strings.HasPrefix(p.hash, "sha256:"):
		want, err := hex.DecodeString(strings.TrimPrefix(p.hash, "sha256:"))
		ok = err == nil && subtle.ConstantTimeCompare(want, sum[:]) == 1
	}
	if ok {
		a.verified.Store(key, p.hash)
	}
	return ok
}

// OnACLCheck allows a gateway to publish under its own prefix, except its
// downlink topics, and to subscribe to its own downlink topics ("…/down/#"),
// nothing else; a service what its subscribe and publish filters cover. Only
// services (the ingest's acks, commands) publish to a gateway's down/.
func (a *access) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	p := a.principal(user)
	if p != nil && a.allowed(p, topic, write) {
		return true
	}
	if write {
		a.deny(DenyPublish, user, cl, fmt.Sprintf("publish to %q refused", topic))
	} else {
		a.deny(DenySubscribe, user, cl, fmt.Sprintf("subscription to %q refused", topic))
	}
	return false
}

func (a *access) allowed(p *principal, topic string, write bool) bool {
	if p.gateway {
		if !write {
			return covers(p.prefix+string(protocol.KindDownlink)+"/#", topic)
		}
		for _, prefix := range []string{p.prefix, p.prefixV1} {
			if strings.HasPrefix(topic, prefix) && len(topic) > len(prefix) {
				return !strings.HasPrefix(topic[len(prefix):], string(protocol.KindDownlink)+"/")
			}
		}
		return false
	}
	if write {
		for _, f := range p.publish {
			if covers(f, topic) {
				return true
			}
		}
		return false
	}
	topic = stripShare(topic)
	for _, f := range p.subscribe {
		if covers(f, topic) {
			return true
		}
	}
	return false
}

// stripShare turns "$share/<group>/<filter>" into "<filter>".
func stripShare(filter string) string {
	rest, ok := strings.CutPrefix(filter, "$share/")
	if !ok {
		return filter
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i+1:]
	}
	return filter
}

// covers reports whether every topic matched by filter f is matched by the
// allowed filter a. With a topic name as f it is plain MQTT matching.
func covers(a, f string) bool {
	al, fl := strings.Split(a, "/"), strings.Split(f, "/")
	for i, x := range al {
		if x == "#" {
			return true
		}
		if i >= len(fl) {
			return false
		}
		y := fl[i]
		switch {
		case y == "#":
			return false
		case x == "+":
			if strings.HasPrefix(y, "$") && i == 0 {
				return false
			}
		case y == "+" || x != y:
			return false
		}
	}
	return len(fl) == len(al)
}

// deny counts a refusal and logs it, at most once a minute per user and
// reason.
func (a *access) deny(reason, user string, cl *mqtt.Client, msg string) {
	a.metrics.denied.WithLabelValues(reason).Inc()
	key := reason + "\x00" + user
	now := time.Now()
	a.logMu.Lock()
	last, seen := a.lastLogs[key]
	if !seen || now.Sub(last) >= time.Minute {
		if len(a.lastLogs) >= 4096 {
			clear(a.lastLogs)
		}
		a.lastLogs[key] = now
	}
	a.logMu.Unlock()
	if !seen || now.Sub(last) >= time.Minute {
		a.log.Warn("MQTT access denied", "reason", reason, "user", user, "client", cl.ID, "remote", cl.Net.Remote, "detail", msg)
	}
}
