package alarm

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/notify"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
)

// EventLog stores alarm events and gives the alarms back at start.
type EventLog interface {
	AppendAlarmEvents(ctx context.Context, evs []Event) error
	// LoadAlarms returns at least every active alarm, every alarm raised
	// at or after since, and the latest cleared alarm of each subject and
	// rule, as their latest events left them (it may return more).
	LoadAlarms(ctx context.Context, since time.Time) ([]Alarm, error)
}

// History reads stored alarms the engine no longer holds. A log that has
// it lets the engine keep only active and recent alarms in memory
// (Config.Window); without it (a log kept in memory) the engine holds
// every alarm.
type History interface {
	// FindAlarms returns the stored alarms within scope that match f,
	// newest first, at most f.Limit (500 when 0).
	FindAlarms(ctx context.Context, scope access.Scope, f Filter) ([]Alarm, error)
	// FindAlarm returns one stored alarm.
	FindAlarm(ctx context.Context, id string) (Alarm, bool, error)
	// LoadHeld returns what Start holds: at least every active alarm,
	// every alarm raised at or after since and the latest cleared alarm
	// of each subject and rule, with the feed's sequence and Unheld.
	LoadHeld(ctx context.Context, since time.Time) (Held, error)
	// SaveHeld stores a snapshot of the held alarms, which a later
	// LoadHeld starts from.
	SaveHeld(ctx context.Context, s store.Snapshot) error
}

// Held is what Start loads from a History.
type Held struct {
	Alarms []Alarm
	// MaxSeq is the highest feed sequence stored.
	MaxSeq uint64
	// Unheld is the latest raise time of a stored alarm that may not be
	// in Alarms (zero when there is none).
	Unheld time.Time
	// From is the snapshot the load started from; zero when it read the
	// whole log.
	From time.Time
}

// Sink receives every alarm event, in order, once it is stored (or queued
// for a storage retry). The work-order service is one.
type Sink interface {
	AlarmEvent(ctx context.Context, ev Event)
}

// Notifier sends messages to a project's webhooks without blocking.
type Notifier interface {
	Notify(m notify.Message)
}

// ReadingSource gives the stored readings of the given metrics since a
// time, oldest first. The engine replays them at start (see
// Config.Readings).
type ReadingSource interface {
	RecentReadings(ctx context.Context, since time.Time, metrics []string) ([]StoredReading, error)
}

// StoredReading is a reading with the gateway that sent it.
type StoredReading = store.GatewayReading

// Defaults shared by the engine and the work-order desk: how long an
// ended item stays in memory after it began (alarms.recent_window), and
// how often the held set is written to the log's journal.
const (
	DefaultWindow           = 7 * 24 * time.Hour
	DefaultSnapshotInterval = 5 * time.Minute
)

// Config configures an Engine. Org, Rules and Log are required.
type Config struct {
	Org   *config.Org
	Rules *config.RuleFile
	// Templates give counter_discontinuity rules each device's energy
	// counter, maximum power and rollover; without them those rules stay
	// idle.
	Templates config.Templates
	Log       EventLog
	// Feed is shared with the work-order desk; a private one when nil.
	// Start adds the log's Backfill to it when the log has one.
	Feed     *Feed
	Sinks    []Sink
	Notifier Notifier // optional
	Logger   *slog.Logger
	// Registerer takes the engine's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	Now        func() time.Time
	// TickInterval is how often timers (for, min_hold, gateway offline,
	// stale devices) are checked. Default 1s.
	TickInterval time.Duration
	// QueueQuiet is how long a queue-overflow alarm stays active after the
	// latest overflow (or the rule's min_hold when longer). Default 10m.
	QueueQuiet time.Duration
	// RetryInterval is the first delay before storing failed events again;
	// it doubles up to a minute. Default 2s.
	RetryInterval time.Duration
	// DefaultMinHold applies to rules without min_hold: how long the
	// condition must stay away before an alarm clears. Default 30s; a
	// negative value means none.
	DefaultMinHold time.Duration
	// Readings, when set, lets Start re-evaluate the readings stored in the
	// last ReplayWindow (default 15m) after the latest stored transition of
	// each rule: conditions that were pending, and readings committed but
	// not yet evaluated when the cloud stopped, are picked up again.
	Readings     ReadingSource
	ReplayWindow time.Duration
	// GatewayStatus, when set, tells Start which gateways the cloud knows to
	// be offline and since when (the ingest's presence), so their offline
	// timers run even though the status arrived before the engine did.
	GatewayStatus func(gateway string) (offline bool, since time.Time, known bool)
	// StartGrace is how long after Start a gateway gets to report before
	// its gateway-offline alarm can raise: a gateway the cloud knew (or
	// hears, from a queued last will) to be offline may simply not have
	// reconnected yet after the cloud's own restart. Default 6m: the edge's
	// default heartbeat (5m) plus a margin, longer than its reconnect
	// backoff (at most 2m). Negative: none. The engine's stale watch waits
	// each device's stale window from Start as well.
	StartGrace time.Duration
	// Window is how long after its raise a cleared alarm stays in memory
	// when the log has a History (older ones are read from it when a list
	// reaches back that far). Default 7 days.
	Window time.Duration
	// SnapshotInterval is how often the held alarms are written to the
	// log's snapshot (History.SaveHeld), when no event waits for storage;
	// also at start and at Stop. Default 5m.
	SnapshotInterval time.Duration
	// NoStaleWatch turns off the engine's own stale detection (a device seen
	// since start that sends nothing for its stale window); "device_stale"
	// events from ingest still raise.
	NoStaleWatch bool
}

func (c *Config) validate() error {
	var p config.Problems
	if c.Org == nil {
		p.Addf("Org", "required")
	}
	if c.Rules == nil {
		p.Addf("Rules", "required")
	}
	if c.Log == nil {
		p.Addf("Log", "required")
	}
	for name, d := range map[string]time.Duration{"TickInterval": c.TickInterval, "QueueQuiet": c.QueueQuiet, "RetryInterval": c.RetryInterval, "ReplayWindow": c.ReplayWindow, "Window": c.Window, "SnapshotInterval": c.SnapshotInterval} {
		if d < 0 {
			p.Addf(name, "must be >= 0, got %s", d)
		}
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("cannot create alarm engine: %w", err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Feed == nil {
		c.Feed = NewFeed(0, c.Now)
	}
	if c.TickInterval == 0 {
		c.TickInterval = time.Second
	}
	if c.QueueQuiet == 0 {
		c.QueueQuiet = 10 * time.Minute
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 2 * time.Second
	}
	if c.ReplayWindow == 0 {
		c.ReplayWindow = 15 * time.Minute
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.DefaultMinHold == 0 {
		c.DefaultMinHold = 30 * time.Second
	}
	c.DefaultMinHold = max(c.DefaultMinHold, 0)
	if c.StartGrace == 0 {
		c.StartGrace = 6 * time.Minute
	}
	c.StartGrace = max(c.StartGrace, 0)
	return nil
}

// Engine evaluates alarm rules. It implements the ingest observer. Create it
// with New, call Start before ingest starts delivering, Stop at the end.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	feed     *Feed
	hist     History // nil: every alarm is held
	devices  map[string]*subject
	gateways map[string]*subject
	m        *metrics

	// procMu serialises evaluation, storage and dispatch, so events reach
	// the log and the sinks in order.
	procMu sync.Mutex
	outbox *store.Outbox[Event] // events whose storage failed, oldest first

	mu     sync.RWMutex // guards alarms and the Alarm values for readers
	alarms map[string]*Alarm
	// unheld is the latest raise time of a stored alarm the engine may
	// not hold: every alarm raised after it is held.
	unheld  time.Time
	running bool
	loaded  bool      // Start loaded the held alarms: Snapshot may write them
	started time.Time // when Start ran (start-up grace)

	warnedIdle atomic.Bool // "not running" logged once

	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New checks the configuration and binds the rules to the organisation's
// devices and gateways.
func New(cfg Config) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, feed: cfg.Feed, alarms: map[string]*Alarm{}, m: newMetrics(cfg.Registerer)}
	e.hist, _ = cfg.Log.(History)
	e.outbox = store.NewOutbox("alarm events", cfg.Log.AppendAlarmEvents, cfg.RetryInterval, cfg.Logger)
	e.outbox.Failures, e.outbox.Pending = e.m.storeFailures, e.m.outbox
	e.devices, e.gateways = bindRules(cfg.Org, cfg.Rules, cfg.QueueQuiet, cfg.DefaultMinHold)
	bindCounterRules(e.devices, cfg.Org, cfg.Templates)
	return e, nil
}

// Feed is the engine's feed (shared with the work-order service).
func (e *Engine) Feed() *Feed { return e.feed }

// Start loads the active and recent alarms from the log (not the whole
// history: see Config.Window), replays the recent readings and the
// gateways' known status, and starts the timers. Inputs arriving while it
// runs wait for it, so nothing ingest commits around the start is lost.
func (e *Engine) Start(ctx context.Context) error {
	since := e.cfg.Now().Add(-e.cfg.Window)
	var held Held
	var err error
	if e.hist != nil {
		held, err = e.hist.LoadHeld(ctx, since)
	} else {
		held.Alarms, err = e.cfg.Log.LoadAlarms(ctx, since)
	}
	if err != nil {
		return fmt.Errorf("cannot start alarm engine: %w", err)
	}
	if !held.From.IsZero() {
		e.log.Info("alarms loaded from a snapshot", "snapshot", held.From.UTC().Format(time.RFC3339), "alarms", len(held.Alarms))
	}
	e.procMu.Lock()
	e.started = e.cfg.Now()
	e.feed.Advance(held.MaxSeq)
	e.mu.Lock()
	e.unheld = held.Unheld
	e.mu.Unlock()
	e.restore(held.Alarms)
	e.evict()
	e.mu.Lock()
	e.running = true
	e.mu.Unlock()
	if err := e.catchUp(ctx); err != nil {
		e.mu.Lock()
		e.running = false
		e.mu.Unlock()
		e.procMu.Unlock()
		return fmt.Errorf("cannot start alarm engine: %w", err)
	}
	e.mu.Lock()
	e.loaded = true
	e.mu.Unlock()
	e.procMu.Unlock()
	if bf, ok := e.cfg.Log.(interface {
		Backfill(ctx context.Context, after uint64, limit int) ([]Item, error)
	}); ok {
		e.feed.AddBackfill(bf.Backfill)
	}
	// A snapshot at once: the next start reads from here.
	e.saveSnapshot(ctx)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	e.wg.Add(1)
	go e.loop(ctx)
	return nil
}

// Stop ends the timers and makes a last attempt to store queued events. It
// may be called more than once.
func (e *Engine) Stop() {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		e.running = false
		e.mu.Unlock()
		if e.cancel == nil {
			return
		}
		e.cancel()
		e.wg.Wait()
		e.procMu.Lock()
		e.outbox.Close(10 * time.Second)
		e.procMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.saveSnapshot(ctx)
	})
}

func (e *Engine) loop(ctx context.Context) {
	defer e.wg.Done()
	tick := time.NewTicker(e.cfg.TickInterval)
	defer tick.Stop()
	var evicted time.Time
	snapped := e.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := e.cfg.Now()
		e.tick(ctx, now)
		e.procMu.Lock()
		e.outbox.Retry(ctx, now)
		if now.Sub(evicted) >= time.Minute || now.Before(evicted) {
			e.evict()
			evicted = now
		}
		e.procMu.Unlock()
		if now.Sub(snapped) >= e.cfg.SnapshotInterval || now.Before(snapped) {
			if e.saveSnapshot(ctx) {
				snapped = now
			}
		}
	}
}

// tick advances every tracker's timers and the stale watch to now.
func (e *Engine) tick(ctx context.Context, now time.Time) {
	e.procMu.Lock()
	defer e.procMu.Unlock()
	var trs []transition
	for _, s := range e.devices {
		for _, t := range s.trackers {
			trs = append(trs, t.tick(now)...)
		}
		if st := s.stale; st != nil && !e.cfg.NoStaleWatch && !s.lastArrived.IsZero() && !st.active() && st.pendingSince == 0 {
			// The window runs from the latest reading or, when later,
			// from the start: the cloud's downtime is not the device's.
			ref := s.lastArrived
			if e.started.After(ref) {
				ref = e.started
			}
			if since := now.Sub(ref); since >= s.staleAfter {
				at := ref.Add(s.staleAfter)
				trs = append(trs, st.step(input{ts: at.UnixMilli(), value: since.Seconds(), arrived: now}, true, false)...)
			}
		}
	}
	for _, s := range e.gateways {
		for _, t := range s.trackers {
			trs = append(trs, t.tick(now)...)
		}
	}
	if len(trs) > 0 {
		e.commit(ctx, e.apply(trs))
	}
}

// graceOffline keeps a gateway-offline condition that began before the
// end of the start-up grace from raising before it: the pending condition
// counts from StartGrace − after past the start. e.procMu must be held.
func (e *Engine) graceOffline(t *tracker) {
	if t == nil || t.pendingSince == 0 || e.cfg.StartGrace == 0 {
		return
	}
	if from := e.started.Add(e.cfg.StartGrace - t.rule.wait).UnixMilli(); t.pendingSince < from {
		t.pendingSince = from
	}
}

// running reports whether Start has run and Stop has not.
func (e *Engine) isRunning() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.running
}
