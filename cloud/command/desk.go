package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Errors of the Desk besides Check's.
var (
	// ErrNotFound: no such command (or device).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the command could not be recorded; nothing was sent.
	ErrUnavailable = errors.New("command log unavailable")
)

// Defaults of Config.
const (
	DefaultResultGrace = 30 * time.Second
	// recentSize is how many finished commands the desk keeps in memory
	// for GET after their outcome (older ones are read from the log).
	recentSize = 4096
	// restoreWindow is how far back Start looks for commands without an
	// outcome: longer than the longest expiry (1h) and its grace.
	restoreWindow = 2 * time.Hour
	// publishTimeout bounds the wait for the broker's PUBACK.
	publishTimeout = 10 * time.Second
)

// Config configures a Desk.
type Config struct {
	Org       *config.Org
	Templates config.Templates
	// Rules give the points each alarm rule interlocks; nil: none.
	Rules *config.RuleFile
	Log   Log
	// Publish sends a downlink message with QoS 1 and returns once the
	// broker has taken it (PUBACK) or ctx ends: *ingest.Ingest.Publish.
	Publish func(ctx context.Context, topic string, payload []byte) error
	// Alarms lists the alarms active on a device (ID, Rule, Name,
	// Severity); nil: none are known.
	Alarms func(device string) []Alarm
	// Feed, when set, receives every command event (the staff feed the
	// alarms and work orders share); it also numbers the events.
	Feed *alarm.Feed
	// ResultGrace is how long after a command's expiry the cloud waits for
	// the gateway's result before it marks the command expired itself
	// (cause no_result). Default DefaultResultGrace.
	ResultGrace time.Duration
	// Tick is how often the desk looks for overdue commands and retries
	// storing events (default 1s).
	Tick       time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Desk takes commands, publishes them and follows them to their outcome:
// New → Start → Submit / Get / List, and ObserveEvent from the ingest →
// Stop. It is an ingest observer (only events of kind command matter).
type Desk struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	devices map[string]config.DeviceInfo

	mu      sync.Mutex
	pending map[string]*Command // no outcome yet
	recent  map[string]*Command // finished, newest recentSize
	order   []string            // ids of recent, oldest first
	unread  []Event             // events waiting to be stored
	storing []Event             // events being stored by flush
	flushMu sync.Mutex          // one flush at a time (the loop, Submit)
	n       map[string]uint32   // events so far per command in memory

	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool
	once    sync.Once
}

// NewDesk checks the configuration and returns a desk.
func NewDesk(cfg Config) (*Desk, error) {
	var p config.Problems
	if cfg.Org == nil {
		p.Addf("org", "required")
	}
	if cfg.Log == nil {
		p.Addf("log", "required")
	}
	if cfg.Publish == nil {
		p.Addf("publish", "required")
	}
	if cfg.ResultGrace < 0 {
		p.Addf("result_grace", "must be >= 0, got %s", cfg.ResultGrace)
	}
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("cannot set up commands: %w", err)
	}
	if cfg.ResultGrace == 0 {
		cfg.ResultGrace = DefaultResultGrace
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Feed == nil {
		cfg.Feed = alarm.NewFeed(0, nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	d := &Desk{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registerer), devices: map[string]config.DeviceInfo{},
		pending: map[string]*Command{}, recent: map[string]*Command{}, n: map[string]uint32{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for _, di := range cfg.Org.Devices() {
		d.devices[di.Device.ID] = di
	}
	cfg.Feed.AddBackfill(d.backfill)
	return d, nil
}

// Start restores the commands of the last two hours that have no outcome
// yet and starts the loop that expires overdue commands.
func (d *Desk) Start(ctx context.Context) error {
	since := uint64(d.cfg.Now().Add(-restoreWindow).UnixMicro())
	evs, err := d.cfg.Log.Since(ctx, since, 0)
	if err != nil {
		return fmt.Errorf("cannot restore commands: %w", err)
	}
	var maxSeq uint64
	d.mu.Lock()
	for _, c := range latestOf(evs) {
		if !Final(c.State) {
			d.pending[c.Wire.ID] = c
		}
	}
	for _, ev := range evs {
		d.n[ev.Command.Wire.ID] = max(d.n[ev.Command.Wire.ID], ev.N)
		maxSeq = max(maxSeq, ev.Seq)
	}
	for id := range d.n {
		if d.pending[id] == nil {
			delete(d.n, id)
		}
	}
	restored := len(d.pending)
	d.started = true
	d.mu.Unlock()
	d.cfg.Feed.Advance(maxSeq)
	if restored > 0 {
		d.log.Info("commands without an outcome restored", "count", restored)
	}
	go d.loop()
	return nil
}

// Stop ends the loop after a last attempt to store what is unstored.
func (d *Desk) Stop() {
	d.once.Do(func() {
		d.mu.Lock()
		started := d.started
		d.mu.Unlock()
		close(d.stop)
		if started {
			<-d.done
		}
	})
}

func (d *Desk) loop() {
	defer close(d.done)
	t := time.NewTicker(d.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d.flush(ctx)
			cancel()
			return
		case <-t.C:
			d.expireOverdue(d.cfg.Now())
		case <-d.wake:
		}
		d.flush(context.Background())
	}
}

// newID returns a fresh command id.
func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return "cmd-" + hex.EncodeToString(b[:])
}

// Submit checks a request from p, records it (accepted), publishes it on
// the gateway's down/cmd and records it sent. It returns ErrNotFound for
// a device p may not see, access.ErrForbidden when p may not command it,
// Check's ErrInvalid or ErrRefused, ErrUnavailable when the command could
// not be stored (nothing sent). A command the broker did not take is
// returned failed (cause not_sent).
func (d *Desk) Submit(ctx context.Context, p access.Principal, r Request) (*Command, error) {
	di, ok := d.devices[r.Device]
	if !ok {
		return nil, fmt.Errorf("cannot command device %q: %w", r.Device, ErrNotFound)
	}
	res := access.Resource{Kind: access.KindDevice, Company: di.Company.ID, Project: di.Project.ID}
	switch err := p.Check(access.Command, res); {
	case errors.Is(err, access.ErrNotVisible):
		return nil, fmt.Errorf("cannot command device %q: %w", r.Device, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("cannot command device %q as %s: %w", r.Device, p.Role, err)
	}
	r.By = p.Staff
	dev := Device{ID: r.Device, Template: d.cfg.Templates[di.Device.Template], Alarms: d.alarmsOf(r.Device)}
	expiry, err := Check(r, dev)
	if err != nil {
		d.m.refused.Inc()
		return nil, err
	}
	now := d.cfg.Now()
	c, err := New(newID(), r, now, expiry)
	if err != nil {
		return nil, err
	}
	c.Company, c.Project, c.Gateway = di.Company.ID, di.Project.ID, di.Gateway.ID
	d.mu.Lock()
	accepted := d.record(c, p.Staff, now)
	d.mu.Unlock()
	if err := d.cfg.Log.Append(ctx, []Event{accepted}); err != nil {
		d.m.storeFailures.Inc()
		d.mu.Lock()
		delete(d.n, c.Wire.ID)
		d.mu.Unlock()
		return nil, fmt.Errorf("cannot record command for device %q: %w: %v", r.Device, ErrUnavailable, err)
	}
	d.mu.Lock()
	d.pending[c.Wire.ID] = c
	d.mu.Unlock()
	d.m.commands.WithLabelValues(StateAccepted).Inc()

	topic := protocol.GatewayRef{Company: c.Company, Project: c.Project, Gateway: c.Gateway}.DownlinkTopic(protocol.DownCmd)
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	pubErr := d.cfg.Publish(pctx, topic, protocol.EncodeCommand(c.Wire))
	cancel()
	d.mu.Lock()
	switch {
	case pubErr != nil:
		if c.GiveUp(StateFailed, CauseNotSent, "the broker did not take the command: "+pubErr.Error(), d.cfg.Now()) == nil {
			d.finish(c, "cloud")
		}
	case c.MarkSent(d.cfg.Now()) == nil:
		d.unread = append(d.unread, d.record(c, "cloud", c.Changed))
		d.m.commands.WithLabelValues(StateSent).Inc()
	}
	out := *c
	d.mu.Unlock()
	// The sent (or not_sent) state is stored before the answer says so: a
	// process that dies after answering leaves it in the log, and the next
	// owner restores the command as sent (alarms.owner: lease). A failure
	// leaves it to the loop's retries.
	d.flush(ctx)
	if pubErr != nil {
		d.log.Warn("cannot publish a command; check the cloud's connection to the broker and that its user may publish to …/down/cmd",
			"command", c.Wire.ID, "topic", topic, "err", pubErr)
	}
	return &out, nil
}

// alarmsOf returns the alarms active on device with the points their rules
// interlock.
func (d *Desk) alarmsOf(device string) []Alarm {
	if d.cfg.Alarms == nil {
		return nil
	}
	as := d.cfg.Alarms(device)
	for i := range as {
		if d.cfg.Rules != nil && len(as[i].Interlocks) == 0 {
			if rule := d.cfg.Rules.Rule(as[i].Rule); rule != nil {
				as[i].Interlocks = rule.Interlocks
			}
		}
	}
	return as
}

// record numbers an event of c's current state and publishes it to the
// feed. d.mu must be held.
func (d *Desk) record(c *Command, who string, at time.Time) Event {
	d.n[c.Wire.ID]++
	snap := *c
	ev := Event{N: d.n[c.Wire.ID], At: at.UTC(), Who: who, Command: &snap}
	d.cfg.Feed.Publish(func(seq uint64) alarm.Item {
		ev.Seq = seq
		return alarm.Item{Type: string(access.KindCommand), Company: c.Company, Project: c.Project, Data: ev.View()}
	})
	return ev
}

// finish records c's outcome and moves it from pending to recent. d.mu
// must be held.
func (d *Desk) finish(c *Command, who string) {
	d.unread = append(d.unread, d.record(c, who, c.Changed))
	delete(d.pending, c.Wire.ID)
	delete(d.n, c.Wire.ID)
	d.recent[c.Wire.ID] = c
	d.order = append(d.order, c.Wire.ID)
	if len(d.order) > recentSize {
		delete(d.recent, d.order[0])
		d.order = d.order[1:]
	}
	d.m.commands.WithLabelValues(c.State).Inc()
	if c.State == StateApplied {
		d.m.applied.Observe(c.Changed.Sub(time.UnixMilli(c.Wire.IssuedAt)).Seconds())
	}
}

func (d *Desk) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// expireOverdue gives up on commands whose result has not come by their
// expiry and the grace after it.
func (d *Desk) expireOverdue(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.pending {
		if now.Before(time.UnixMilli(c.Wire.ExpiresAt).Add(d.cfg.ResultGrace)) {
			continue
		}
		msg := fmt.Sprintf("no result from gateway %s within %s after the command expired; it was not executed after its expiry", c.Gateway, d.cfg.ResultGrace)
		if c.GiveUp(StateExpired, CauseNoResult, msg, now) == nil {
			d.finish(c, "cloud")
		}
	}
}

// flush stores unread events; on failure they wait for the next tick.
func (d *Desk) flush(ctx context.Context) {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	d.mu.Lock()
	evs := d.unread
	d.unread, d.storing = nil, evs
	d.mu.Unlock()
	if len(evs) == 0 {
		return
	}
	err := d.cfg.Log.Append(ctx, evs)
	d.mu.Lock()
	d.storing = nil
	if err != nil {
		d.unread = append(evs, d.unread...)
	}
	d.mu.Unlock()
	if err != nil {
		d.m.storeFailures.Inc()
		d.log.Warn("cannot store command events; retrying", "events", len(evs), "err", err)
	}
	d.m.unstored.Set(float64(d.unstoredLen()))
}

func (d *Desk) unstoredLen() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.unread)
}

// ObserveBatch is part of ingest.Observer; readings do not concern commands.
func (d *Desk) ObserveBatch(context.Context, config.GatewayInfo, *protocol.Batch, time.Time) {}

// ObserveStatus is part of ingest.Observer.
func (d *Desk) ObserveStatus(context.Context, config.GatewayInfo, protocol.Status, time.Time) {}

// ObserveEvent applies a gateway's command result. It does no I/O: the
// event is stored by the desk's loop.
func (d *Desk) ObserveEvent(_ context.Context, gw config.GatewayInfo, ev protocol.Event, _ time.Time) {
	if ev.Kind != protocol.EventCommand {
		return
	}
	d.mu.Lock()
	c := d.pending[ev.CommandID]
	switch {
	case c == nil:
		d.mu.Unlock()
		if d.recent[ev.CommandID] != nil {
			d.m.ignored.WithLabelValues("already_final").Inc() // a redelivered result
		} else {
			d.m.ignored.WithLabelValues("unknown_command").Inc()
		}
		return
	case c.Gateway != gw.Gateway.ID:
		d.mu.Unlock()
		d.m.ignored.WithLabelValues("other_gateway").Inc()
		d.log.Warn("command result from a gateway the command was not sent to; ignored", "command", ev.CommandID, "gateway", gw.Gateway.ID, "sent_to", c.Gateway)
		return
	}
	if err := c.ApplyResult(ev); err != nil {
		d.mu.Unlock()
		d.m.ignored.WithLabelValues("transition").Inc()
		d.log.Warn("command result not applied", "command", ev.CommandID, "err", err)
		return
	}
	d.finish(c, gw.Gateway.ID)
	d.mu.Unlock()
	d.signal()
}

// Resource says where command id belongs (access.KindCommand), from memory
// or the log.
func (d *Desk) Resource(ctx context.Context, id string) (access.Resource, error) {
	c, _, err := d.Get(ctx, id, false)
	if err != nil {
		return access.Resource{}, err
	}
	return access.Resource{Kind: access.KindCommand, Company: c.Company, Project: c.Project}, nil
}

// Get returns a command as it stands and, with history, its stored
// events, oldest first.
func (d *Desk) Get(ctx context.Context, id string, history bool) (*Command, []Event, error) {
	if protocol.CheckID(id) != nil {
		return nil, nil, fmt.Errorf("cannot find command %q: %w", id, ErrNotFound)
	}
	// Events not stored yet (the loop stores them within a tick) belong
	// to the history too: taken before the log is read, so an event stored
	// meanwhile is found in one or the other.
	d.mu.Lock()
	c := d.pending[id]
	if c == nil {
		c = d.recent[id]
	}
	var mem *Command
	if c != nil {
		cp := *c
		mem = &cp
	}
	var unstored []Event
	for _, ev := range slices.Concat(d.storing, d.unread) {
		if ev.Command.Wire.ID == id {
			unstored = append(unstored, ev)
		}
	}
	d.mu.Unlock()
	if mem != nil && !history {
		return mem, nil, nil
	}
	evs, err := d.cfg.Log.Of(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	have := map[uint32]bool{}
	for _, ev := range evs {
		have[ev.N] = true
	}
	for _, ev := range unstored {
		if !have[ev.N] {
			evs = append(evs, ev)
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].N < evs[j].N })
	if len(evs) == 0 && mem == nil {
		return nil, nil, fmt.Errorf("cannot find command %q: %w", id, ErrNotFound)
	}
	if mem == nil {
		mem = evs[len(evs)-1].Command
	}
	return mem, evs, nil
}

// List returns a device's commands issued since (zero: the last 30
// days), newest first, at most limit.
func (d *Desk) List(ctx context.Context, device string, since time.Time, limit int) ([]*Command, error) {
	if since.IsZero() {
		since = d.cfg.Now().Add(-30 * 24 * time.Hour)
	}
	di, ok := d.devices[device]
	if !ok {
		return nil, fmt.Errorf("cannot list commands of device %q: %w", device, ErrNotFound)
	}
	evs, err := d.cfg.Log.Device(ctx, di.Project.ID, device, since, d.cfg.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	out := latestOf(evs)
	d.mu.Lock()
	for i, c := range out {
		if m := d.pending[c.Wire.ID]; m != nil {
			cp := *m
			out[i] = &cp
		} else if m := d.recent[c.Wire.ID]; m != nil {
			cp := *m
			out[i] = &cp
		}
	}
	d.mu.Unlock()
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Record returns a device's commands with events between from and to
// (zero to: now), each with every state it went through (who, when,
// cause), newest command first, at most limit: the commands' part of the
// device's maintenance record. Times are in the project's zone.
func (d *Desk) Record(ctx context.Context, device string, from, to time.Time, limit int) ([]View, error) {
	di, ok := d.devices[device]
	if !ok {
		return nil, fmt.Errorf("cannot read the command record of device %q: %w", device, ErrNotFound)
	}
	if to.IsZero() {
		to = d.cfg.Now().Add(time.Hour)
	}
	// Events not stored yet belong to the record too: taken before the
	// log is read, so an event stored meanwhile is found in one or the
	// other (as Get).
	d.mu.Lock()
	var unstored []Event
	for _, ev := range slices.Concat(d.storing, d.unread) {
		if ev.Command.Wire.Device == device && !ev.At.Before(from) && ev.At.Before(to) {
			unstored = append(unstored, ev)
		}
	}
	d.mu.Unlock()
	evs, err := d.cfg.Log.Device(ctx, di.Project.ID, device, from, to)
	if err != nil {
		return nil, err
	}
	type key struct {
		id string
		n  uint32
	}
	have := map[key]bool{}
	for _, ev := range evs {
		have[key{ev.Command.Wire.ID, ev.N}] = true
	}
	for _, ev := range unstored {
		if !have[key{ev.Command.Wire.ID, ev.N}] {
			evs = append(evs, ev)
		}
	}
	byID := map[string][]Event{}
	for _, ev := range evs {
		byID[ev.Command.Wire.ID] = append(byID[ev.Command.Wire.ID], ev)
	}
	cmds := latestOf(evs)
	if len(cmds) > limit {
		cmds = cmds[:limit]
	}
	out := make([]View, len(cmds))
	for i, c := range cmds {
		steps := byID[c.Wire.ID]
		sort.Slice(steps, func(a, b int) bool { return steps[a].N < steps[b].N })
		out[i] = c.View(di.Project.Location).WithHistory(steps, di.Project.Location)
	}
	return out, nil
}

// backfill serves stored command events to feed readers from before the
// in-memory ring.
func (d *Desk) backfill(ctx context.Context, after uint64, limit int) ([]alarm.Item, error) {
	evs, err := d.cfg.Log.Since(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	items := make([]alarm.Item, len(evs))
	for i, ev := range evs {
		items[i] = alarm.Item{Seq: ev.Seq, Type: string(access.KindCommand), Company: ev.Command.Company,
			Project: ev.Command.Project, Data: ev.View()}
	}
	return items, nil
}

type metrics struct {
	commands      *prometheus.CounterVec
	refused       prometheus.Counter
	ignored       *prometheus.CounterVec
	storeFailures prometheus.Counter
	unstored      prometheus.Gauge
	applied       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		commands: f.NewCounterVec(prometheus.CounterOpts{Name: "plantroom_commands_total",
			Help: "Commands reaching each state (accepted, sent, applied, failed, rejected, expired)."}, []string{"state"}),
		refused: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_commands_refused_total",
			Help: "Command requests refused by the cloud's checks (template, alarms, interlocks, reason)."}),
		ignored: f.NewCounterVec(prometheus.CounterOpts{Name: "plantroom_command_results_ignored_total",
			Help: "Command result events not applied, by reason."}, []string{"reason"}),
		storeFailures: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_command_store_failures_total",
			Help: "Failed attempts to store command events."}),
		unstored: f.NewGauge(prometheus.GaugeOpts{Name: "plantroom_command_events_unstored",
			Help: "Command events waiting for a storage retry."}),
		applied: f.NewHistogram(prometheus.HistogramOpts{Name: "plantroom_command_apply_seconds",
			Help:    "Time from a command's acceptance to the gateway's applied result.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
	}
}
