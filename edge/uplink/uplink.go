// Package uplink sends the durable queue's telemetry batches and events to
// the cloud broker over MQTT 3.1.1 (paho): QoS 1, a persistent session, the
// gateway's retained status with an offline last will, reconnects with
// capped exponential backoff and jitter.
//
// A batch leaves the queue only when the cloud's commit acknowledgement on
// the gateway's own "…/down/ack" topic covers it (queue.Commit): the
// ingest sends it after the batch's rows are committed in ClickHouse. The
// broker's PUBACK only frees a slot of the in-flight window (at most
// InFlight messages are unacknowledged at a time) and starts the commit
// timer: a batch without a commit acknowledgement CommitTimeout after its
// PUBACK is re-sent, byte for byte under the same seq, and waits twice as
// long the next time, up to CommitTimeoutMax. A rejected batch is deleted
// and counted (queue.Reject); an acknowledgement for another epoch (another
// queue file of this gateway) is ignored and counted.
//
// On every connect the uplink subscribes to its downlink topics, announces
// the gateway online (the cloud answers with the ranges it has committed),
// re-sends the batches that were in flight (after a restart: every batch
// not committed), then sends live readings as they come and drains the
// backlog oldest-first at BacklogRate readings per second, keeping one slot
// of the window for live batches.
//
// Each connection uses a fresh paho client with its own in-memory store:
// the queue, not paho, is the record of what is unacknowledged, so nothing
// is sent twice by paho's own resume logic, and a lost connection simply
// leaves its batches in flight for the next one.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/protocol"
)

// Defaults for zero Config fields.
const (
	DefaultKeepAlive        = 30 * time.Second
	DefaultConnectTimeout   = 10 * time.Second
	DefaultPublishTimeout   = 2 * time.Minute
	DefaultInFlight         = 8
	DefaultBatchMaxReadings = 2000
	DefaultBatchMaxDelay    = time.Second
	DefaultBacklogRate      = 5000
	DefaultReconnectMin     = time.Second
	DefaultReconnectMax     = 2 * time.Minute
	DefaultCommitTimeout    = 30 * time.Second
	DefaultCommitTimeoutMax = 10 * time.Minute
	DefaultCommitDegraded   = 2 * time.Minute
)

// Config configures the uplink.
type Config struct {
	Gateway  protocol.GatewayRef
	Broker   string // tcp://host:port, ssl://host:port (also tls://, mqtt://, mqtts://)
	TLS      TLSFiles
	ClientID string // default: the gateway id
	Username string // default: the gateway id
	Password string

	KeepAlive      time.Duration
	ConnectTimeout time.Duration
	// PublishTimeout is the longest wait for a PUBACK before the
	// connection is considered stuck and replaced. The cloud broker holds
	// PUBACKs back while its ingest catches up, so keep it generous.
	PublishTimeout time.Duration
	InFlight       int // unacknowledged messages at most
	// BatchMaxReadings and BatchMaxDelay shape live batches: one leaves when
	// it is full or when the oldest reading waited BatchMaxDelay.
	BatchMaxReadings int
	BatchMaxDelay    time.Duration
	BacklogRate      float64 // readings per second drained from the backlog
	ReconnectMin     time.Duration
	ReconnectMax     time.Duration
	// CommitTimeout is how long a batch waits after its PUBACK for a commit
	// acknowledgement before it is re-sent; each re-send of the same batch
	// waits twice as long, at most CommitTimeoutMax.
	CommitTimeout    time.Duration
	CommitTimeoutMax time.Duration
	// CommitDegradedAfter: batches have waited this long with no commit
	// acknowledgement at all; Health reports it.
	CommitDegradedAfter time.Duration
	AgentVersion        string
}

// TLSFiles names PEM files; all empty means the system roots for ssl://.
type TLSFiles struct {
	CA, Cert, Key string
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.KeepAlive, DefaultKeepAlive)
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.PublishTimeout, DefaultPublishTimeout)
	def(&c.BatchMaxDelay, DefaultBatchMaxDelay)
	def(&c.ReconnectMin, DefaultReconnectMin)
	def(&c.ReconnectMax, DefaultReconnectMax)
	def(&c.CommitTimeout, DefaultCommitTimeout)
	def(&c.CommitTimeoutMax, max(DefaultCommitTimeoutMax, c.CommitTimeout))
	def(&c.CommitDegradedAfter, max(DefaultCommitDegraded, c.CommitTimeout))
	if c.InFlight == 0 {
		c.InFlight = DefaultInFlight
	}
	if c.BatchMaxReadings == 0 {
		c.BatchMaxReadings = DefaultBatchMaxReadings
	}
	if c.BacklogRate == 0 {
		c.BacklogRate = DefaultBacklogRate
	}
	if c.ClientID == "" {
		c.ClientID = c.Gateway.Gateway
	}
	if c.Username == "" {
		c.Username = c.Gateway.Gateway
	}
}

func (c *Config) validate() error {
	if err := c.Gateway.Validate(); err != nil {
		return fmt.Errorf("cannot configure uplink: %w", err)
	}
	if err := CheckBrokerURL(c.Broker); err != nil {
		return fmt.Errorf("cannot configure uplink: %w", err)
	}
	switch {
	case c.InFlight < 2:
		return fmt.Errorf("cannot configure uplink: in-flight window %d is below 2", c.InFlight)
	case c.BatchMaxReadings < 1 || c.BatchMaxReadings > protocol.MaxBatchReadings:
		return fmt.Errorf("cannot configure uplink: batch max readings %d not in 1…%d", c.BatchMaxReadings, protocol.MaxBatchReadings)
	case c.BacklogRate <= 0:
		return fmt.Errorf("cannot configure uplink: backlog rate %v must be > 0", c.BacklogRate)
	case c.ReconnectMax < c.ReconnectMin:
		return fmt.Errorf("cannot configure uplink: reconnect max %s below min %s", c.ReconnectMax, c.ReconnectMin)
	case c.CommitTimeout < 0 || c.CommitTimeoutMax < c.CommitTimeout:
		return fmt.Errorf("cannot configure uplink: commit timeout %s, max %s: want 0 < timeout <= max", c.CommitTimeout, c.CommitTimeoutMax)
	case c.CommitDegradedAfter < 0:
		return fmt.Errorf("cannot configure uplink: commit degraded after %s is negative", c.CommitDegradedAfter)
	}
	return nil
}

// CheckBrokerURL accepts tcp://, mqtt://, ssl://, tls:// and mqtts:// URLs
// with a host and a port.
func CheckBrokerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid broker URL %q: %w", s, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
	default:
		return fmt.Errorf("invalid broker URL %q: scheme must be tcp, mqtt, ssl, tls or mqtts", s)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return fmt.Errorf("invalid broker URL %q: needs host and port", s)
	}
	return nil
}

// IsTLS reports whether the broker URL asks for TLS.
func IsTLS(broker string) bool {
	u, err := url.Parse(broker)
	return err == nil && (u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts")
}

// Queue is what the uplink needs from the durable queue.
type Queue interface {
	Next(ctx context.Context, lane queue.Lane, maxReadings, maxBatches int) ([]*queue.Batch, error)
	Sent(seq uint64)
	Commit(ranges [][2]uint64)
	Reject(rs []queue.Rejection)
	Outstanding() []queue.OutstandingBatch
	Resend(seq uint64) (*queue.Batch, error)
	Epoch() uint64
	MarkLive()
	Events() []queue.Event
	AckEvent(seq uint64)
	Stats() queue.Stats
	Notify() <-chan struct{}
}

// Uplink is the connection to the cloud broker. New → Start → Stop.
type Uplink struct {
	cfg     Config
	q       Queue
	log     *slog.Logger
	m       *metrics
	topics  topics
	stopped chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once

	connected atomic.Bool
	started   atomic.Bool

	// Downlink handlers by name (below "…/down/"), set before Start.
	downlink map[string]func(payload []byte)
	// beforeSubscribe, set by tests, runs between CONNACK and the
	// session's SUBSCRIBE.
	beforeSubscribe func()
	acks            chan []byte // commit acknowledgements, from paho to the session loop

	// Batches PUBACKed and waiting for their commit acknowledgement, by
	// seq; owned by the run goroutine, kept across reconnects.
	awaiting map[uint64]*awaitState
	// resends counts the re-sends of a batch, by seq, for its backoff.
	resends map[uint64]int
	// waitingSince is when batches started to wait with no commit
	// acknowledgement since (Unix ms; 0: none waits); lastAck is the last
	// acknowledgement for this gateway's epoch (Unix ms; 0: none yet).
	waitingSince, lastAck atomic.Int64

	lastBadAckLog, lastResendLog time.Time // owned by the run goroutine
}

type topics struct{ telemetry, status, events string }

// New checks the configuration and registers the metrics with reg (nil:
// not registered).
func New(cfg Config, q Queue, log *slog.Logger, reg prometheus.Registerer) (*Uplink, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if IsTLS(cfg.Broker) {
		if _, err := tlsConfig(cfg.TLS); err != nil {
			return nil, fmt.Errorf("cannot configure uplink: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg, q, cfg.BacklogRate)
	if err != nil {
		return nil, err
	}
	g := cfg.Gateway
	return &Uplink{
		cfg: cfg, q: q, log: log, m: m,
		topics: topics{
			telemetry: g.Topic(protocol.KindTelemetry),
			status:    g.Topic(protocol.KindStatus),
			events:    g.Topic(protocol.KindEvents),
		},
		stopped:  make(chan struct{}),
		done:     make(chan struct{}),
		downlink: map[string]func([]byte){},
		acks:     make(chan []byte, 64),
		awaiting: map[uint64]*awaitState{},
		resends:  map[uint64]int{},
	}, nil
}

// HandleDownlink registers h for the gateway's downlink messages named
// name ("…/down/<name>", e.g. protocol.DownCmd). h runs on the MQTT
// client's goroutine and must not block for long. Call it before Start;
// "ack" is the uplink's own.
func (u *Uplink) HandleDownlink(name string, h func(payload []byte)) error {
	if u.started.Load() {
		return fmt.Errorf("cannot handle downlink %q: uplink already started", name)
	}
	if name == protocol.DownAck || protocol.CheckMetric(name) != nil {
		return fmt.Errorf("cannot handle downlink %q: reserved or invalid name", name)
	}
	u.downlink[name] = h
	return nil
}

// Start connects in the background; it does not wait for the broker.
func (u *Uplink) Start(ctx context.Context) error {
	if !u.started.CompareAndSwap(false, true) {
		return errors.New("cannot start uplink: already started")
	}
	ctx, u.cancel = context.WithCancel(ctx)
	go u.run(ctx)
	return nil
}

// Stop publishes the offline status (reason "shutdown"), disconnects
// cleanly (so the broker does not send the last will) and waits. Batches
// still in flight stay in the queue and are re-sent after the next start.
func (u *Uplink) Stop() {
	u.once.Do(func() {
		close(u.stopped)
		if u.cancel == nil {
			return
		}
		<-u.done
		u.cancel()
	})
}

// Connected reports whether a session with the broker is up.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// run connects, serves a session until it ends, waits a jittered, growing
// backoff and connects again, until Stop.
func (u *Uplink) run(ctx context.Context) {
	defer close(u.done)
	reconnect := backoff{u.cfg.ReconnectMin, u.cfg.ReconnectMax}
	failures := 0
	for {
		began := time.Now()
		err := u.session(ctx)
		if u.isStopped() || ctx.Err() != nil {
			return
		}
		// A session that lasted a while resets the backoff; a broker that
		// accepts and drops at once does not.
		if time.Since(began) > u.cfg.ReconnectMax {
			failures = 0
		}
		wait := Jitter(reconnect.step(failures))
		u.log.Warn("uplink down; reconnecting", "broker", u.cfg.Broker, "in", wait.Round(time.Millisecond), "err", err)
		failures++
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-u.stopped:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

func (u *Uplink) isStopped() bool {
	select {
	case <-u.stopped:
		return true
	default:
		return false
	}
}
