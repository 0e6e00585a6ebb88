// Package ingest takes telemetry, status and events from the MQTT broker,
// validates them against the organisation, writes them to ClickHouse in
// batches and acknowledges each MQTT message only after its rows are
// committed.
//
// # Delivery
//
// The ingest subscribes with QoS 1, a persistent session (clean session
// false, a stable client id per replica) and manual acknowledgement. A
// message is acknowledged (PUBACK) when the flush holding its rows has been
// committed, or at once when it is rejected (malformed, unknown gateway):
// such a message can never become valid, and is counted and logged once per
// cause. If the ingest dies, everything not yet acknowledged is delivered
// again by the broker; storage is idempotent (see package store), so a
// redelivery changes nothing.
//
// # Commit acknowledgements (protocol version 2)
//
// Before a flush is written, every batch in it is checked against the
// durable table of committed batches (store.TableCommitted; the last few
// hundred per gateway are cached, and a batch above the highest committed
// seq of its gateway and epoch needs no lookup): a batch committed before with the same
// CRC is a duplicate and stores nothing; one with another CRC is a
// seq_conflict, stores nothing, is counted, logged once per gateway and
// recorded as a gateway event. After the commit (readings, events, then
// the batches' marks) the ingest PUBACKs the messages and publishes, per
// gateway, one ack on "…/down/ack" with the ranges of the seqs it committed
// or recognised as duplicates and the seqs it refused. A gateway's live
// "online" status makes it re-announce the committed seqs of the gateway's
// current epoch. Version-1 batches (epoch 0) are checked the same way but
// not acknowledged. See protocol/README.md, section 6.1.
//
// # Back-pressure
//
// At most MaxUnacked messages are held at a time. Paho runs each message's
// handler in its own goroutine (OrderMatters false), so the client's
// network loop, and with it keepalive, never blocks; a handler that finds
// the window full waits for a slot. The broker sees no acknowledgements and,
// once its own window for the ingest is full (the embedded broker:
// broker.max_pending; mosquitto: max_inflight_messages; EMQX:
// max_inflight), queues further messages and holds the gateways back (the
// embedded broker). While ClickHouse is down the writer retries with capped
// exponential backoff, so memory stays bounded by the window and nothing is
// acknowledged, and resumes when ClickHouse answers again.
//
// # Refused rows
//
// Only transient ClickHouse errors are retried. When ClickHouse refuses the
// data itself (store.Refused: a type mismatch, a failed check), the writer
// bisects the flush's readings (or events) to the refused rows, stores the
// rest, keeps the refused rows in store.TableQuarantine with their cause,
// counts them, and commits and acknowledges the flush, so one poison batch
// never stalls the stream. Refused rows reach neither the latest values nor
// the observers.
//
// # Observers
//
// Observers (the alarm engine) are called after a flush is committed, with
// the accepted readings of each batch, each status message and each event,
// the ingest's own device_stale/device_fresh events included. Calls come
// from one goroutine, in commit order; an observer must return quickly. A
// redelivered message can reach an observer twice.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Observer is told about every committed batch, status and event. See the
// package doc.
type Observer interface {
	ObserveBatch(ctx context.Context, gw config.GatewayInfo, b *protocol.Batch, arrived time.Time)
	ObserveStatus(ctx context.Context, gw config.GatewayInfo, s protocol.Status, arrived time.Time)
	ObserveEvent(ctx context.Context, gw config.GatewayInfo, e protocol.Event, arrived time.Time)
}

// Store is the storage the ingest writes to (a *store.DB).
type Store interface {
	InsertReadings(ctx context.Context, b *store.ReadingBatch) error
	InsertEvents(ctx context.Context, rows []store.EventRow) error
	InsertCommitted(ctx context.Context, rows []store.CommittedBatch) error
	InsertQuarantine(ctx context.Context, rows []store.QuarantineRow) error
	CommittedCRCs(ctx context.Context, keys []store.BatchKey) (map[store.BatchKey]uint32, error)
	MaxCommittedSeqs(ctx context.Context, spaces []store.GatewayEpoch) (map[store.GatewayEpoch]uint64, error)
	RecentCommitted(ctx context.Context, gateway string, limit int) (uint64, []uint64, error)
	LatestSource
	StatusSource
}

// Defaults of Config.
const (
	DefaultFlushRows           = 50000
	DefaultFlushInterval       = time.Second
	DefaultMaxUnacked          = 2000
	DefaultMaxFutureSkew       = 5 * time.Minute
	DefaultMaxAge              = 400 * 24 * time.Hour
	DefaultStaleAfterIntervals = 3
	DefaultLatestLookback      = 48 * time.Hour
	DefaultMaxRetryInterval    = 10 * time.Second
)

// Config configures the ingest.
type Config struct {
	Org   *config.Org
	Store Store
	MQTT  MQTTConfig
	// Templates declare each device's metrics and their valid ranges: a
	// reading of a metric its device's template does not declare is
	// rejected (cause unknown_metric), one outside the range is stored
	// with bad quality (cause out_of_range). Nil: metrics are not checked.
	Templates config.Templates

	// FlushRows and FlushInterval: a flush is written when it holds this many
	// readings, or this long after its first message arrived.
	FlushRows     int
	FlushInterval time.Duration
	// MaxUnacked bounds the messages held (received, not yet acknowledged).
	MaxUnacked int
	// MaxFutureSkew: readings further ahead of the cloud's clock are
	// rejected (counted as cause "future").
	MaxFutureSkew time.Duration
	// MaxAge: readings older than this are rejected (cause "too_old");
	// default DefaultMaxAge, 400 days.
	MaxAge time.Duration
	// StaleAfterIntervals: a device without readings for this many of its
	// poll intervals is reported stale.
	StaleAfterIntervals int
	// LatestLookback is how far back the latest-values cache is rebuilt at
	// start.
	LatestLookback time.Duration
	// MaxRetryInterval caps the backoff between ClickHouse retries.
	MaxRetryInterval time.Duration
	// ShutdownTimeout bounds how long Stop keeps trying to commit what the
	// ingest holds (default 10s).
	ShutdownTimeout time.Duration

	// GatewayConnected, when set, tells whether a gateway holds a live
	// connection to the broker now (the embedded broker knows). A last
	// will that arrives while its gateway is connected again (queued in
	// the ingest's session during a restart or backlog) is ignored.
	GatewayConnected func(gateway string) bool

	// withoutCommitAcks turns the committed-batches check, the marks and
	// the acks off: the no-ack baseline of BenchmarkEndToEnd only.
	withoutCommitAcks bool

	Observers  []Observer
	Latest     *Latest   // shared with the API; created when nil
	Presence   *Presence // shared with the API; created when nil
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.FlushRows <= 0 {
		c.FlushRows = DefaultFlushRows
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxUnacked <= 0 {
		c.MaxUnacked = DefaultMaxUnacked
	}
	if c.MaxFutureSkew <= 0 {
		c.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.StaleAfterIntervals <= 0 {
		c.StaleAfterIntervals = DefaultStaleAfterIntervals
	}
	if c.LatestLookback <= 0 {
		c.LatestLookback = DefaultLatestLookback
	}
	if c.MaxRetryInterval <= 0 {
		c.MaxRetryInterval = DefaultMaxRetryInterval
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Ingest is the MQTT → ClickHouse pipeline.
type Ingest struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics
	org      orgIndex
	latest   *Latest
	presence *Presence
	rejects  onceLog
	commits  *recentCommits
	acks     *ackQueue
	announce *announceRequests

	observersMu sync.Mutex
	observers   []Observer

	ready     chan struct{} // closed once subscribed
	readyOnce sync.Once
	slots     chan struct{} // one per unacknowledged message
	writer    *writer
	sub       *subscriber
	ctx       context.Context // cancelled by Stop
	cancel    context.CancelFunc
	stopping  chan struct{}
	wg        sync.WaitGroup

	started             atomic.Bool
	startOnce, stopOnce sync.Once
}

// New checks the configuration and builds the ingest.
func New(cfg Config) (*Ingest, error) {
	cfg.setDefaults()
	switch {
	case cfg.Org == nil:
		return nil, errors.New("cannot create ingest: no organisation")
	case cfg.Store == nil:
		return nil, errors.New("cannot create ingest: no store")
	}
	if err := cfg.MQTT.check(); err != nil {
		return nil, fmt.Errorf("cannot create ingest: %w", err)
	}
	in := &Ingest{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  newMetrics(cfg.Registerer),
		org:      newOrgIndex(cfg.Org, cfg.Templates),
		latest:   cfg.Latest,
		presence: cfg.Presence,
		commits:  newRecentCommits(),
		acks:     newAckQueue(),
		announce: newAnnounceRequests(),
		ready:    make(chan struct{}),
		slots:    make(chan struct{}, cfg.MaxUnacked),
		stopping: make(chan struct{}),
	}
	in.rejects.log = cfg.Logger
	in.observers = append(in.observers, cfg.Observers...)
	if in.latest == nil {
		in.latest = NewLatest()
	}
	if in.presence == nil {
		in.presence = NewPresence(cfg.Org, cfg.StaleAfterIntervals)
	}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	in.writer = newWriter(in)
	in.sub = newSubscriber(in)
	return in, nil
}

// AddObserver registers an observer; call it before Start.
func (in *Ingest) AddObserver(o Observer) {
	in.observersMu.Lock()
	in.observers = append(in.observers, o)
	in.observersMu.Unlock()
}

func (in *Ingest) observerList() []Observer {
	in.observersMu.Lock()
	defer in.observersMu.Unlock()
	return in.observers
}

// Latest is the latest-values cache.
func (in *Ingest) Latest() *Latest { return in.latest }

// Presence is the gateway and device presence.
func (in *Ingest) Presence() *Presence { return in.presence }

// Start rebuilds the latest values and presence from ClickHouse, starts the
// writer and connects to the broker. It waits up to MQTT.ConnectTimeout for
// the subscription; after that the client keeps retrying in the background.
func (in *Ingest) Start(ctx context.Context) error {
	err := errors.New("cannot start ingest: already started")
	in.startOnce.Do(func() { err = in.start(ctx) })
	return err
}

func (in *Ingest) start(ctx context.Context) error {
	since := time.Now().Add(-in.cfg.LatestLookback)
	if err := in.latest.Load(ctx, in.cfg.Store, since); err != nil {
		return fmt.Errorf("cannot start ingest: cannot rebuild latest values: %w", err)
	}
	if err := in.presence.Load(ctx, in.cfg.Store, in.latest); err != nil {
		return fmt.Errorf("cannot start ingest: cannot rebuild presence: %w", err)
	}
	// Staleness is not measured across the cloud's own downtime: every
	// device gets its stale window from now (start-up grace).
	in.presence.Resume(time.Now())
	in.started.Store(true)
	in.wg.Add(4)
	go in.writer.accumulate()
	go in.writer.commitLoop()
	go in.watchStale()
	go in.reannounceLoop()
	if err := in.sub.connect(ctx); err != nil {
		in.log.Warn("MQTT broker not reachable yet; retrying in the background", "broker", in.cfg.MQTT.URL, "error", err)
	}
	return nil
}

// Ready is closed once the ingest's first subscription is in place.
func (in *Ingest) Ready() <-chan struct{} { return in.ready }

// Stop stops taking messages, commits and acknowledges what it holds (for
// at most ShutdownTimeout while ClickHouse is down; the rest is left
// unacknowledged for the broker to deliver again), then disconnects. It is
// idempotent and waits for the ingest's goroutines.
func (in *Ingest) Stop() {
	in.stopOnce.Do(func() {
		close(in.stopping)
		if !in.started.Load() {
			in.cancel()
			return
		}
		in.writer.drain(in.cfg.ShutdownTimeout)
		in.cancel()
		in.wg.Wait()
		in.sub.disconnect()
	})
}

// watchStale reports devices going stale and fresh again.
func (in *Ingest) watchStale() {
	defer in.wg.Done()
	w := newStaleWatch(in.presence, time.Now())
	t := time.NewTicker(w.interval())
	defer t.Stop()
	for {
		select {
		case <-in.stopping:
			return
		case now := <-t.C:
			for _, de := range w.check(now) {
				in.metrics.events.WithLabelValues(de.event.Kind).Inc()
				it := &item{kind: protocol.KindEvents, gw: de.gw, event: de.event, arrived: now}
				if !in.writer.add(it) {
					return
				}
			}
		}
	}
}
