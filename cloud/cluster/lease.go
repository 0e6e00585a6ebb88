// Package cluster makes one cloud process at a time the owner of the alarm
// engine and the work-order desk when several processes run (see
// docs/cloud.md, "Who owns alarms and work orders").
//
// # The lease is an MQTT session
//
// An MQTT broker keeps at most one connection per client id: a second
// CONNECT with the same id disconnects the first (MQTT 3.1.1, 3.1.4-2; both
// the embedded broker and mosquitto do it). The owner is the process
// connected under Config.ClientID ("plantroom-alarms"). Whoever connects
// under that id last holds it, and the one it displaced learns so from its
// connection dropping: it stops acting at once (OnLost; bin/cloud exits so
// that its supervisor starts it again as a follower).
//
// A claim is announced on the retained topic OwnerTopic with the owner's
// API address, re-published every Heartbeat. The owner's connection carries
// a retained last will on the same topic: when the owner dies (its TCP
// connection closes, or the broker misses its keepalive) the broker
// publishes the release. Followers watch the topic and try to take the
// lease only when it is vacant (the current owner's release, or no claim
// for five heartbeats), after a random delay, so two of them rarely
// collide; when they do, the session takeover still leaves exactly one.
//
// The owner's session is persistent (clean session off): observations
// published while no owner is connected (ObservedTopic, QoS 1) wait in it
// for the next owner, up to the broker's queue limit.
//
// # What is and is not guaranteed
//
// At most one connection holds the session at any instant (the broker's
// guarantee). A displaced owner may act until it sees its connection drop:
// a process paused (SIGSTOP, a stalled VM) for longer than the keepalive
// can write a few events after it lost the lease, before it exits. Event
// ids are deterministic, so such a write lands on the same (order, n) as
// the new owner's: readers keep one (see cloud/store EventLog). ClickHouse
// offers no compare-and-set that could fence it off entirely.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/protocol"
)

// Topics under the Plantroom root that only cloud services use: gateways
// may publish only under their own company/project/gateway prefix, so they
// cannot write these.
var (
	// OwnerTopic carries the retained claim or release of the lease.
	OwnerTopic = protocol.TopicRoot + "/" + protocol.TopicVersion + "/_cloud/alarms/owner"
	// ObservedTopic carries what the ingest replicas committed, for the
	// owner's alarm engine.
	ObservedTopic = protocol.TopicRoot + "/" + protocol.TopicVersion + "/_cloud/alarms/observed"
	// Topics is the filter a service account of a lease mode process must
	// be allowed to publish to (and, by default, subscribe to).
	Topics = protocol.TopicRoot + "/" + protocol.TopicVersion + "/_cloud/#"
)

// DefaultClientID is the MQTT client id that is the lease.
const DefaultClientID = "plantroom-alarms"

// Config configures a Lease.
type Config struct {
	URL, Username, Password string
	TLS                     *tls.Config
	// ClientID is the lease's session (default DefaultClientID); every
	// process of one deployment must use the same.
	ClientID string
	// Instance names this process in claims (default host-pid-random).
	Instance string
	// Advertise is the address other API replicas forward the alarm and
	// work-order routes to while this process owns them.
	Advertise string
	// Candidate processes may take the lease; the others only follow it
	// and publish observations.
	Candidate bool
	// Heartbeat is how often the owner re-publishes its claim (default
	// 2s); KeepAlive is the MQTT keepalive (default 10s), which bounds how
	// long the broker takes to notice an owner that vanished without its
	// TCP connection closing (about 1.5 keepalives).
	Heartbeat, KeepAlive time.Duration
	// OnAcquire starts the owned components; OnObserved is called with
	// each observation once OnAcquire returned, in order. OnLost is called
	// once when the lease is lost after it was acquired (not at Stop).
	OnAcquire  func(ctx context.Context) error
	OnObserved func(ctx context.Context, o Observation)
	OnLost     func(err error)
	// BeforeRelease, when set, runs in Stop after the lease stopped
	// acting and before it is given back: stop the owned components there,
	// so that they store what they hold before a successor starts.
	BeforeRelease func()
	Logger        *slog.Logger
}

// claim is the retained message on OwnerTopic.
type claim struct {
	Instance string `json:"instance"`
	API      string `json:"api,omitempty"`
	Held     bool   `json:"held"` // false: the release (the owner's last will or its Stop)
	At       int64  `json:"at"`   // ms
}

// Lease follows (and, for candidates, takes) the ownership of alarms.
type Lease struct {
	cfg Config
	log *slog.Logger

	watch paho.Client // every process: owner topic, observations out

	mu         sync.Mutex
	current    claim     // the latest claim seen (Held) or release
	known      bool      // current came from the broker since the watch (re)connected
	seenAt     time.Time // when current was last refreshed
	subscribed time.Time // when the watch's subscription was acknowledged
	owner      paho.Client
	owning     bool          // connected under the lease's client id
	ready      bool          // owning and OnAcquire returned: serve locally
	acquired   chan struct{} // closed once this process owns
	stopped    bool

	out     chan []byte // encoded observations, Publish → send
	dropped atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks the configuration.
func New(cfg Config) (*Lease, error) {
	if cfg.URL == "" {
		return nil, errors.New("cannot set up the alarm lease: no broker URL")
	}
	if cfg.Candidate && (cfg.OnAcquire == nil || cfg.OnObserved == nil || cfg.Advertise == "") {
		return nil, errors.New("cannot set up the alarm lease: a candidate needs OnAcquire, OnObserved and Advertise")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		cfg.Instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnLost == nil {
		cfg.OnLost = func(error) {}
	}
	return &Lease{cfg: cfg, log: cfg.Logger, acquired: make(chan struct{}), out: make(chan []byte, outboxSize)}, nil
}

// Instance is this process's name in claims.
func (l *Lease) Instance() string { return l.cfg.Instance }

func (l *Lease) options(clientID string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker(l.cfg.URL).SetClientID(clientID).
		SetUsername(l.cfg.Username).SetPassword(l.cfg.Password).SetTLSConfig(l.cfg.TLS).
		SetProtocolVersion(4).SetKeepAlive(l.cfg.KeepAlive).SetPingTimeout(l.cfg.KeepAlive).
		SetConnectTimeout(10 * time.Second).SetOrderMatters(true)
}

// Start connects the watch and, for a candidate, starts trying to take the
// lease when it is vacant. It does not wait for the lease.
func (l *Lease) Start(ctx context.Context) error {
	opts := l.options(l.cfg.ClientID + "-" + l.cfg.Instance).SetCleanSession(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(5 * time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			// (Re)subscribe and learn the owner again: the broker sends
			// the retained claim right after acknowledging the
			// subscription.
			l.mu.Lock()
			l.current, l.known, l.subscribed = claim{}, false, time.Time{}
			l.mu.Unlock()
			tok := c.Subscribe(OwnerTopic, 1, l.onClaim)
			go func() {
				if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
					l.mu.Lock()
					l.subscribed = time.Now()
					l.mu.Unlock()
				}
			}()
		})
	l.watch = paho.NewClient(opts)
	tok := l.watch.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("cannot connect the alarm lease watch to %s: %w", l.cfg.URL, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("cannot connect the alarm lease watch to %s: %w", l.cfg.URL, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	l.wg.Add(1)
	go l.send(ctx)
	if l.cfg.Candidate {
		l.wg.Add(1)
		go l.loop(ctx)
	}
	return nil
}

func (l *Lease) onClaim(_ paho.Client, m paho.Message) {
	var c claim
	if len(m.Payload()) == 0 || json.Unmarshal(m.Payload(), &c) != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A release counts only when it is the current holder's: a displaced
	// owner's last will may arrive after its successor's claim.
	if !c.Held && l.current.Held && l.current.Instance != c.Instance {
		return
	}
	l.current, l.seenAt, l.known = c, time.Now(), true
}

// Owner reports the current owner's API address and whether it is this
// process; ok is false while nobody holds the lease.
func (l *Lease) Owner() (api string, self, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready {
		return l.cfg.Advertise, true, true
	}
	if l.owning {
		return "", false, false // starting the owned components
	}
	if !l.known || l.vacantLocked() {
		return "", false, false
	}
	return l.current.API, false, true
}

// vacantLocked: the holder released; or no claim was refreshed for
// staleAfter heartbeats (an owner that vanished with the broker's memory of
// its will, e.g. across a broker restart); or nothing at all came a
// heartbeat after the subscription (the broker sends the retained claim at
// once).
func (l *Lease) vacantLocked() bool {
	if !l.known {
		return !l.subscribed.IsZero() && time.Since(l.subscribed) > l.cfg.Heartbeat
	}
	return !l.current.Held || time.Since(l.seenAt) > staleAfter*l.cfg.Heartbeat
}

// staleAfter heartbeats without a refreshed claim make the lease vacant.
const staleAfter = 5

// Acquired is closed once this process owns the lease.
func (l *Lease) Acquired() <-chan struct{} { return l.acquired }

func (l *Lease) loop(ctx context.Context) {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.Heartbeat / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		vacant := l.vacantLocked()
		l.mu.Unlock()
		if !vacant {
			continue
		}
		// A random delay spreads the candidates that saw the same release.
		select {
		case <-ctx.Done():
			return
		case <-time.After(mrand.N(l.cfg.Heartbeat / 2)):
		}
		l.mu.Lock()
		vacant = l.vacantLocked()
		l.mu.Unlock()
		if !vacant {
			continue
		}
		if err := l.acquire(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Warn("cannot take the alarm lease; retrying", "error", err)
			continue
		}
		l.hold(ctx)
		return
	}
}

func (l *Lease) claimPayload(held bool) []byte {
	b, _ := json.Marshal(claim{Instance: l.cfg.Instance, API: l.cfg.Advertise, Held: held, At: time.Now().UnixMilli()})
	return b
}

// acquire connects under the lease's client id, announces the claim, runs
// OnAcquire and lets the queued observations through.
func (l *Lease) acquire(ctx context.Context) (err error) {
	actx, acancel := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			acancel() // ends this attempt's delivery
		}
	}()
	gate := make(chan struct{})
	lost := make(chan error, 1)
	in := &inbox{wake: make(chan struct{}, 1)}
	opts := l.options(l.cfg.ClientID).SetCleanSession(false).SetAutoReconnect(false).
		SetBinaryWill(OwnerTopic, l.claimPayload(false), 1, true).
		SetDefaultPublishHandler(in.add).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("cannot connect as %q: %v", l.cfg.ClientID, tok.Error())
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.deliver(actx, gate, in)
	}()
	if tok := c.Subscribe(ObservedTopic, 1, in.add); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("cannot subscribe to %s: %v", ObservedTopic, tok.Error())
	}
	if tok := c.Publish(OwnerTopic, 1, true, l.claimPayload(true)); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("cannot announce the alarm lease: %v", tok.Error())
	}
	l.mu.Lock()
	l.owner, l.owning = c, true
	l.current, l.seenAt, l.known = claim{Instance: l.cfg.Instance, API: l.cfg.Advertise, Held: true}, time.Now(), true
	l.mu.Unlock()
	l.log.Info("connected as the alarm lease's session; starting the owned components", "instance", l.cfg.Instance)
	go func() {
		// Lost before or after OnAcquire: stop acting either way.
		var err error
		select {
		case err = <-lost:
		case <-ctx.Done(): // Stop
			return
		}
		l.mu.Lock()
		stopped := l.stopped
		l.owning, l.ready = false, false
		l.mu.Unlock()
		if !stopped {
			l.log.Error("lost the alarm lease (another process took it, or the broker dropped this one)", "error", err)
			l.cfg.OnLost(err)
		}
	}()
	if err := l.cfg.OnAcquire(ctx); err != nil {
		return l.fail(fmt.Errorf("cannot start the owned components: %w", err))
	}
	l.mu.Lock()
	l.ready = l.owning
	l.mu.Unlock()
	l.log.Info("took the alarm lease: this process owns alarm evaluation and work-order escalation", "instance", l.cfg.Instance)
	close(gate)
	close(l.acquired)
	return nil
}

// fail gives the lease back after OnAcquire failed.
func (l *Lease) fail(err error) error {
	l.mu.Lock()
	c := l.owner
	l.owner, l.owning, l.ready = nil, false, false
	l.mu.Unlock()
	if c != nil {
		c.Publish(OwnerTopic, 1, true, l.claimPayload(false)).WaitTimeout(5 * time.Second)
		c.Disconnect(250)
	}
	l.cfg.OnLost(err)
	return err
}

// inbox queues what the owner's session receives, so that the MQTT client
// never waits for the engine (a client that stops reading misses its
// keepalive and loses the lease): the handler only appends; deliver hands
// the observations on in order once the owned components run.
type inbox struct {
	mu    sync.Mutex
	queue [][]byte
	wake  chan struct{}
}

func (b *inbox) add(_ paho.Client, m paho.Message) {
	if m.Topic() != ObservedTopic {
		return
	}
	b.mu.Lock()
	b.queue = append(b.queue, m.Payload())
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (l *Lease) deliver(ctx context.Context, gate <-chan struct{}, b *inbox) {
	select {
	case <-gate:
	case <-ctx.Done():
		return
	}
	for {
		b.mu.Lock()
		q := b.queue
		b.queue = nil
		b.mu.Unlock()
		for _, p := range q {
			o, err := DecodeObservation(p)
			if err != nil {
				l.log.Warn("dropped an observation that does not decode", "error", err)
				continue
			}
			l.cfg.OnObserved(ctx, o)
		}
		select {
		case <-b.wake:
		case <-ctx.Done():
			return
		}
	}
}

// hold re-publishes the claim every heartbeat until ctx ends.
func (l *Lease) hold(ctx context.Context) {
	t := time.NewTicker(l.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		c, owning := l.owner, l.owning
		l.mu.Unlock()
		if !owning {
			return
		}
		c.Publish(OwnerTopic, 1, true, l.claimPayload(true))
	}
}

// outboxSize bounds the observations waiting for the broker.
const outboxSize = 10000

// Publish queues an observation for the owner (QoS 1) and never waits: the
// ingest calls it, and must not stall while the broker holds the owner's
// session back (no owner for a while). When the queue is full the
// observation is dropped and counted; the readings are stored all the same
// and a new owner replays the recent ones from ClickHouse at start.
func (l *Lease) Publish(o Observation) {
	// Encoded here: the ingest may reuse what it observed once this returns.
	p, err := o.Encode()
	if err != nil {
		l.log.Warn("cannot encode an observation", "error", err)
		return
	}
	select {
	case l.out <- p:
	default:
		if l.dropped.Add(1) == 1 {
			l.log.Warn("observations for the alarm owner are being dropped: the broker does not take them (no owner?)", "queued", outboxSize)
		}
	}
}

// Dropped is how many observations Publish dropped.
func (l *Lease) Dropped() uint64 { return l.dropped.Load() }

func (l *Lease) send(ctx context.Context) {
	defer l.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-l.out:
			// Waits (up to the write timeout) only while the client's
			// window is full; an unconnected client stores the message
			// for its reconnection.
			l.watch.Publish(ObservedTopic, 1, false, p)
		}
	}
}

// Stop gives the lease back (the release is published, so a follower
// takes over at once) and disconnects. Call it after stopping the owned
// components.
func (l *Lease) Stop() {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	if l.cfg.BeforeRelease != nil {
		l.cfg.BeforeRelease()
	}
	l.mu.Lock()
	c, owning := l.owner, l.owning
	l.ready = false
	l.mu.Unlock()
	if owning && c != nil {
		c.Publish(OwnerTopic, 1, true, l.claimPayload(false)).WaitTimeout(5 * time.Second)
		c.Disconnect(250)
	}
	if l.watch != nil {
		l.watch.Disconnect(250)
	}
}
