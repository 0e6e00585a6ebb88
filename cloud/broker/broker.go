// Package broker is the cloud's embedded MQTT broker (mochi-mqtt): TCP and
// TLS listeners, gateway and service authentication, a per-gateway topic
// ACL, and flow control that holds gateways back instead of dropping their
// data when the ingest falls behind.
package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Service is a non-gateway MQTT user: the ingest, another cloud service, a
// staff tool. Its client ids must start with its user name.
type Service struct {
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"` // bcrypt "$2a$…" or "sha256:<hex>"
	// Enabled: a service listed in the cloud's configuration may sign in
	// only when enabled (default false: an account nobody uses is off).
	Enabled bool `yaml:"enabled"`
	// Subscribe lists the topic filters it may subscribe to, shared
	// subscriptions ("$share/<group>/…") included; default
	// DefaultServiceSubscribe.
	Subscribe []string `yaml:"subscribe"`
	// Publish lists the topic filters it may publish to; default none.
	Publish []string `yaml:"publish"`
}

// DefaultServiceSubscribe is what a service may read unless configured
// otherwise: every Plantroom topic, version 1 gateways' included.
var DefaultServiceSubscribe = []string{
	protocol.TopicRoot + "/" + protocol.TopicVersion + "/#",
	protocol.TopicRoot + "/" + protocol.TopicVersionV1 + "/#",
}

// IngestPublish is what an ingest must be allowed to publish: the commit
// acknowledgements on every gateway's "…/down/ack". The in-process ingest
// gets it; a service account of an ingest replica needs it in its publish
// list.
var IngestPublish = []string{protocol.TopicRoot + "/" + protocol.TopicVersion + "/+/+/+/" + string(protocol.KindDownlink) + "/" + protocol.DownAck}

// CommandPublish is what the cloud's command desk must be allowed to
// publish: commands on every gateway's "…/down/cmd" (cloud/command). The
// desk publishes on the ingest's connection, so the in-process ingest gets
// it, and an ingest replica's service account needs it too where the
// replica's process serves commands. No gateway may publish to down/.
var CommandPublish = []string{protocol.TopicRoot + "/" + protocol.TopicVersion + "/+/+/+/" + string(protocol.KindDownlink) + "/" + protocol.DownCmd}

// Config configures the broker.
type Config struct {
	// Listen is the plain TCP address ("127.0.0.1:1883"); "" for none.
	Listen string
	// TLSListen, with TLSCert and TLSKey (PEM files), adds a TLS listener.
	TLSListen, TLSCert, TLSKey string
	// Org lists the gateways and their password hashes.
	Org *config.Org
	// Services are the other users.
	Services []Service
	// MaxPending is how many unacknowledged messages a durable subscriber
	// may hold before publishers are held back (default 1000).
	MaxPending int
	// StorePath, if set, keeps sessions, queued messages and retained
	// messages in a bbolt file, so a broker restart loses none of them.
	StorePath string
	// SessionExpiry is how long the broker keeps the session (subscriptions,
	// queued messages) of a disconnected client; default
	// DefaultSessionExpiry. Nothing is lost when one expires: the edge keeps
	// every batch until the cloud acknowledges its commit.
	SessionExpiry time.Duration
	Logger        *slog.Logger
	// Registerer receives the broker's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// DefaultMaxPending is the default of Config.MaxPending.
const DefaultMaxPending = 1000

// DefaultSessionExpiry is the default of Config.SessionExpiry.
const DefaultSessionExpiry = 7 * 24 * time.Hour

// Broker is the embedded MQTT broker.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	server  *mqtt.Server
	access  *access
	flow    *flow
	store   storeHook // with StorePath
	done    chan struct{}
	addr    string
	tlsAddr string

	startOnce, stopOnce sync.Once
}

// New checks the configuration and builds the broker; Start opens the
// listeners.
func New(cfg Config) (*Broker, error) {
	if cfg.Listen == "" && cfg.TLSListen == "" {
		return nil, errors.New("cannot create broker: no listener: set listen or tls_listen")
	}
	if cfg.TLSListen != "" && (cfg.TLSCert == "" || cfg.TLSKey == "") {
		return nil, fmt.Errorf("cannot create broker: tls_listen %q needs tls_cert and tls_key", cfg.TLSListen)
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := newMetrics(cfg.Registerer)
	acc, err := newAccess(cfg.Org, cfg.Services, cfg.Logger, m)
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, access: acc, done: make(chan struct{})}
	b.flow = newFlow(cfg.MaxPending, m, b.done)
	return b, nil
}

// AddInternalService registers a service user with a random password for a
// client in the same process (the ingest, when broker and ingest run
// together) and returns the password. Call it before Start.
func (b *Broker) AddInternalService(username string) (string, error) {
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("cannot create internal broker credential: %w", err)
	}
	password := hex.EncodeToString(buf)
	sum := sha256.Sum256([]byte(password))
	err := b.access.addService(Service{
		Username:     username,
		PasswordHash: "sha256:" + hex.EncodeToString(sum[:]),
		Subscribe:    DefaultServiceSubscribe,
		Publish:      slices.Concat(IngestPublish, CommandPublish),
	})
	if err != nil {
		return "", fmt.Errorf("cannot create internal broker credential: %w", err)
	}
	return password, nil
}

func (b *Broker) options() *mqtt.Options {
	caps := mqtt.NewDefaultServerCapabilities()
	// Queued messages of a persistent session (the ingest's) never expire:
	// the default would drop them after a day of ingest downtime.
	caps.MaximumMessageExpiryInterval = 0
	// Sessions of disconnected clients end after SessionExpiry (MQTT 5
	// clients may ask for less, not more).
	exp := b.cfg.SessionExpiry
	if exp <= 0 {
		exp = DefaultSessionExpiry
	}
	caps.MaximumSessionExpiryInterval = uint32(min(exp/time.Second, math.MaxUint32-1))
	// A telemetry batch is at most protocol.MaxBatchBytes; leave room for
	// the topic and headers.
	caps.MaximumPacketSize = uint32(protocol.MaxBatchBytes + 64<<10)
	if n := 4 * b.cfg.MaxPending; n > int(caps.MaximumInflight) {
		caps.MaximumInflight = uint16(min(n, 65000))
	}
	if n := 4 * b.cfg.MaxPending; n > int(caps.MaximumClientWritesPending) {
		caps.MaximumClientWritesPending = int32(n)
	}
	return &mqtt.Options{
		Capabilities: caps,
		Logger:       mochiLogger(b.log),
		// $SYS topics are refreshed rarely; nobody here reads them.
		SysTopicResendInterval: 60,
	}
}

// Start opens the listeners and starts serving. The listeners are bound
// when Start returns, so Addr is known.
func (b *Broker) Start(ctx context.Context) error {
	err := errors.New("cannot start broker: already started")
	b.startOnce.Do(func() { err = b.start() })
	return err
}

func (b *Broker) start() error {
	s := mqtt.New(b.options())
	b.server = s
	b.access.server = s
	b.flow.server = s
	b.flow.isIngest = b.access.isIngest
	b.flow.guard.server = s
	if err := s.AddHook(b.access, nil); err != nil {
		return fmt.Errorf("cannot start broker: %w", err)
	}
	if err := s.AddHook(b.flow, nil); err != nil {
		return fmt.Errorf("cannot start broker: %w", err)
	}
	if b.cfg.StorePath != "" {
		if err := os.MkdirAll(filepath.Dir(b.cfg.StorePath), 0o750); err != nil {
			return fmt.Errorf("cannot create the directory of broker store %q: %w", b.cfg.StorePath, err)
		}
		b.store = storeHook{new(bolt.Hook)}
		err := s.AddHook(b.store, &bolt.Options{Path: b.cfg.StorePath, Options: &bbolt.Options{Timeout: 5 * time.Second}})
		if err != nil {
			return fmt.Errorf("cannot open broker store %q: %w", b.cfg.StorePath, err)
		}
	}
	var opened []net.Listener
	fail := func(err error) error {
		for _, l := range opened {
			l.Close()
		}
		return err
	}
	if b.cfg.Listen != "" {
		l, err := net.Listen("tcp", b.cfg.Listen)
		if err != nil {
			return fail(fmt.Errorf("cannot listen for MQTT on %q: %w", b.cfg.Listen, err))
		}
		opened = append(opened, l)
		b.addr = l.Addr().String()
		if err := s.AddListener(listeners.NewNet("tcp", l)); err != nil {
			return fail(fmt.Errorf("cannot start broker: %w", err))
		}
	}
	if b.cfg.TLSListen != "" {
		cert, err := tls.LoadX509KeyPair(b.cfg.TLSCert, b.cfg.TLSKey)
		if err != nil {
			return fail(fmt.Errorf("cannot load broker TLS certificate %q / key %q: %w", b.cfg.TLSCert, b.cfg.TLSKey, err))
		}
		l, err := tls.Listen("tcp", b.cfg.TLSListen, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return fail(fmt.Errorf("cannot listen for MQTT over TLS on %q: %w", b.cfg.TLSListen, err))
		}
		opened = append(opened, l)
		b.tlsAddr = l.Addr().String()
		if err := s.AddListener(listeners.NewNet("tls", l)); err != nil {
			return fail(fmt.Errorf("cannot start broker: %w", err))
		}
	}
	if err := s.Serve(); err != nil {
		return fail(fmt.Errorf("cannot start broker: %w", err))
	}
	b.purgeUnknownSessions()
	b.log.Info("MQTT broker listening", "tcp", b.addr, "tls", b.tlsAddr)
	return nil
}

// purgeUnknownSessions drops the stored sessions of users the broker no
// longer knows (a gateway removed from org.yaml, a retired service): their
// subscriptions and queued messages would otherwise stay for good.
func (b *Broker) purgeUnknownSessions() {
	var purged []string
	for id, cl := range b.server.Clients.GetAll() {
		user := string(cl.Properties.Username)
		if b.access.principal(user) != nil || !cl.Closed() {
			continue
		}
		b.server.UnsubscribeClient(cl)
		b.server.Clients.Delete(id)
		if b.store.Hook != nil {
			b.store.OnClientExpired(cl) // and from the store file
		}
		purged = append(purged, id+" ("+user+")")
	}
	if len(purged) > 0 {
		sort.Strings(purged)
		b.log.Warn("purged the stored sessions of users no longer configured", "sessions", purged)
	}
}

// Addr is the bound TCP address ("" without a TCP listener).
func (b *Broker) Addr() string { return b.addr }

// TLSAddr is the bound TLS address ("" without a TLS listener).
func (b *Broker) TLSAddr() string { return b.tlsAddr }

// Stop disconnects every client and closes the listeners. Publishers held
// back by flow control are released without an acknowledgement.
func (b *Broker) Stop() {
	b.stopOnce.Do(func() {
		close(b.done)
		if b.server != nil {
			b.server.Close()
		}
	})
}

// GatewayConnected reports whether the gateway (the user it signs in as)
// holds a live connection now; a persisted session of a disconnected client
// does not count.
func (b *Broker) GatewayConnected(gateway string) bool {
	if b.server == nil {
		return false
	}
	for _, cl := range b.server.Clients.GetAll() {
		if string(cl.Properties.Username) == gateway && !cl.Closed() {
			return true
		}
	}
	return false
}

// Pending returns how many messages the broker holds for a client's
// session that the client has not acknowledged (0 for an unknown client).
func (b *Broker) Pending(clientID string) int {
	if b.server == nil {
		return 0
	}
	cl, ok := b.server.Clients.Get(clientID)
	if !ok {
		return 0
	}
	return cl.State.Inflight.Len()
}
