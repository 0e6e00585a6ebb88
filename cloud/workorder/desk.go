package workorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/notify"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
)

// EventLog stores work-order events and gives them back at start.
type EventLog interface {
	AppendOrderEvents(ctx context.Context, evs []Event) error
	// LoadOrderEvents returns at least every event of the orders not
	// closed or cancelled, of those opened at or after since, and of the
	// latest alarm order of each device and rule (it may return more).
	LoadOrderEvents(ctx context.Context, since time.Time) ([]Event, error)
}

// History reads stored orders the desk no longer holds. A log that has it
// lets the desk keep only the orders being worked on and the recent ones
// in memory (Config.Window); without it (a log kept in memory) the desk
// holds every order.
type History interface {
	// FindOrders returns the stored orders within scope that match f,
	// newest first, at most f.Limit (500 when 0), with their history.
	FindOrders(ctx context.Context, scope access.Scope, f Filter) ([]WorkOrder, error)
	// FindOrder returns one stored order with its history.
	FindOrder(ctx context.Context, id string) (WorkOrder, bool, error)
	// LoadHeld returns what Start holds: at least every event of the
	// orders not closed or cancelled, of those opened at or after since,
	// and of the latest alarm order of each device and rule, with the
	// feed's sequence and Unheld.
	LoadHeld(ctx context.Context, since time.Time) (Held, error)
	// SaveHeld stores a snapshot of the held orders, which a later
	// LoadHeld starts from.
	SaveHeld(ctx context.Context, s store.Snapshot) error
}

// Held is what Start loads from a History.
type Held struct {
	Events []Event
	// MaxSeq is the highest feed sequence stored.
	MaxSeq uint64
	// Unheld is the latest opening time of a stored order that may not
	// be among Events (zero when there is none).
	Unheld time.Time
	// From is the snapshot the load started from; zero when it read the
	// whole log.
	From time.Time
}

// Notifier sends messages to a project's webhooks without blocking.
type Notifier interface {
	Notify(m notify.Message)
}

// Config configures a Desk. Org, Rules, Log and Feed are required.
type Config struct {
	Org      *config.Org
	Rules    *config.RuleFile
	Log      EventLog
	Feed     *alarm.Feed // the alarm engine's feed: one sequence for the staff feed
	Notifier Notifier    // optional
	// Photos describes stored photos, which steps may carry; nil: steps
	// carry none.
	Photos PhotoStat
	Logger *slog.Logger
	// Registerer takes the desk's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	Now        func() time.Time
	// CheckInterval is how often SLA due times are checked and failed
	// storage retried. Default 30s.
	CheckInterval time.Duration
	// Window is how long after its opening a closed or cancelled order
	// stays in memory when the log has a History (older ones are read
	// from it when asked for). Default 7 days.
	Window time.Duration
	// SnapshotInterval is how often the held orders are written to the
	// log's snapshot (History.SaveHeld), when no event waits for storage;
	// also at start and at Stop. Default 5m.
	SnapshotInterval time.Duration
	// EscalateHQAfter is how long after escalating to the project manager
	// an order still not in progress escalates to HQ. Default: the rules
	// file's work_orders.escalate_hq_after, else 1h.
	EscalateHQAfter time.Duration
}

func (c *Config) validate() error {
	var p config.Problems
	for name, missing := range map[string]bool{"Org": c.Org == nil, "Rules": c.Rules == nil, "Log": c.Log == nil, "Feed": c.Feed == nil} {
		if missing {
			p.Addf(name, "required")
		}
	}
	if c.CheckInterval < 0 {
		p.Addf("CheckInterval", "must be >= 0, got %s", c.CheckInterval)
	}
	if c.Window < 0 {
		p.Addf("Window", "must be >= 0, got %s", c.Window)
	}
	if c.SnapshotInterval < 0 {
		p.Addf("SnapshotInterval", "must be >= 0, got %s", c.SnapshotInterval)
	}
	if c.EscalateHQAfter < 0 {
		p.Addf("EscalateHQAfter", "must be >= 0, got %s", c.EscalateHQAfter)
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("cannot create work-order desk: %w", err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = 30 * time.Second
	}
	if c.Window == 0 {
		c.Window = alarm.DefaultWindow
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = alarm.DefaultSnapshotInterval
	}
	if c.EscalateHQAfter == 0 {
		c.EscalateHQAfter = c.Rules.WorkOrders.EscalateHQAfter.Duration
	}
	if c.EscalateHQAfter == 0 {
		c.EscalateHQAfter = time.Hour
	}
	return nil
}

// Desk keeps the work orders: it opens them for alarms (it is an
// alarm.Sink), takes manual orders and transitions, dispatches, and
// escalates SLA breaches. New → Start → Stop.
type Desk struct {
	cfg    Config
	log    *slog.Logger
	roster *roster
	m      *metrics
	hist   History // nil: every order is held

	mu      sync.Mutex
	orders  map[string]*WorkOrder
	open    map[string]*WorkOrder // orders still needing work
	latest  map[string]string     // subject/rule → latest alarm order id
	byAlarm map[string]string     // alarm id → order id
	// unheld is the latest opening time of a stored order the desk may
	// not hold: every order opened after it is held.
	unheld  time.Time
	outbox  *store.Outbox[Event] // events whose storage failed, oldest first
	running bool
	loaded  bool // Start loaded the held orders: Snapshot may write them

	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New checks the configuration.
func New(cfg Config) (*Desk, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Desk{
		cfg: cfg, log: cfg.Logger, roster: newRoster(cfg.Org), m: newMetrics(cfg.Registerer),
		orders: map[string]*WorkOrder{}, open: map[string]*WorkOrder{}, latest: map[string]string{}, byAlarm: map[string]string{},
	}
	d.hist, _ = cfg.Log.(History)
	d.outbox = store.NewOutbox("work-order events", cfg.Log.AppendOrderEvents, cfg.CheckInterval, cfg.Logger)
	d.outbox.Failures = d.m.storeFailures
	return d, nil
}

// Start loads the orders being worked on and the recent ones from the
// log (not the whole history: see Config.Window) and starts the SLA
// checks. Start it before the alarm engine, which hands it alarm events.
func (d *Desk) Start(ctx context.Context) error {
	since := d.cfg.Now().Add(-d.cfg.Window)
	var held Held
	var err error
	if d.hist != nil {
		held, err = d.hist.LoadHeld(ctx, since)
	} else {
		held.Events, err = d.cfg.Log.LoadOrderEvents(ctx, since)
	}
	if err != nil {
		return fmt.Errorf("cannot start work-order desk: %w", err)
	}
	if !held.From.IsZero() {
		d.log.Info("work orders loaded from a snapshot", "snapshot", held.From.UTC().Format(time.RFC3339), "events", len(held.Events))
	}
	d.cfg.Feed.Advance(held.MaxSeq)
	d.mu.Lock()
	d.unheld = held.Unheld
	d.restore(held.Events)
	d.evict()
	d.running, d.loaded = true, true
	d.mu.Unlock()
	if bf, ok := d.cfg.Log.(interface {
		Backfill(ctx context.Context, after uint64, limit int) ([]alarm.Item, error)
	}); ok {
		d.cfg.Feed.AddBackfill(bf.Backfill)
	}
	// A snapshot at once: the next start reads from here.
	d.saveSnapshot(ctx)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	d.wg.Add(1)
	go d.loop(ctx)
	return nil
}

// Stop ends the SLA checks and makes a last attempt to store queued
// events. It may be called more than once.
func (d *Desk) Stop() {
	d.stopOnce.Do(func() {
		if d.cancel != nil {
			d.cancel()
			d.wg.Wait()
		}
		d.mu.Lock()
		d.running = false
		d.outbox.Close(10 * time.Second)
		started := d.cancel != nil
		d.mu.Unlock()
		if started {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d.saveSnapshot(ctx)
		}
	})
}

var errNotLoaded = errors.New("cannot snapshot the held work orders: the desk has not started")

// Snapshot stores the held orders in the log's snapshot (History.SaveHeld):
// their ids, the feed's sequence and the opening time before which orders
// may not be held. It refuses (store.ErrSnapshotPending) while events wait
// in the outbox: a snapshot must come after every event recorded before it
// is stored, so a start from it misses nothing. Without a History it does
// nothing. The desk writes one at start, every SnapshotInterval and at
// Stop.
func (d *Desk) Snapshot(ctx context.Context) error {
	if d.hist == nil {
		return nil
	}
	d.mu.Lock()
	if !d.loaded {
		d.mu.Unlock()
		return errNotLoaded
	}
	if d.outbox.Len() > 0 {
		n := d.outbox.Len()
		d.mu.Unlock()
		return fmt.Errorf("cannot snapshot the held work orders: %d %w", n, store.ErrSnapshotPending)
	}
	// The journal's clock (store.Snapshot.Taken), not Config.Now.
	s := store.Snapshot{Taken: time.Now(), Seq: d.cfg.Feed.Last(), Mark: ms(d.unheld), Held: make([]store.HeldKey, 0, len(d.orders))}
	for _, w := range d.orders {
		s.Held = append(s.Held, store.HeldKey{Company: w.Company, Project: w.Project, Key: w.ID, Begin: w.RaisedAt})
	}
	d.mu.Unlock()
	return d.hist.SaveHeld(ctx, s)
}

// saveSnapshot writes a snapshot, logging a failure (the next one may
// succeed; a start reads from the newest complete one). It reports
// whether one was written.
func (d *Desk) saveSnapshot(ctx context.Context) bool {
	err := d.Snapshot(ctx)
	if err != nil && !errors.Is(err, store.ErrSnapshotPending) && !errors.Is(err, errNotLoaded) {
		d.log.Warn("cannot snapshot the held work orders; the next start reads more", "err", err)
	}
	return err == nil
}

// restore replays stored events; duplicates of an (order, n) count once.
func (d *Desk) restore(evs []Event) {
	maxSeq := foldEvents(d.orders, evs)
	for id, w := range d.orders {
		d.index(w)
		for _, ev := range w.History {
			if ev.Order.AlarmID != "" {
				d.byAlarm[ev.Order.AlarmID] = id
			}
		}
	}
	d.cfg.Feed.Advance(maxSeq)
	d.m.restored.Add(float64(len(d.orders)))
}

// foldEvents rebuilds orders from their stored events (in any order;
// duplicates of an (order, n) count once) into orders and returns the
// highest sequence among them.
func foldEvents(orders map[string]*WorkOrder, evs []Event) uint64 {
	slices.SortFunc(evs, func(a, b Event) int {
		if a.OrderID != b.OrderID {
			if a.OrderID < b.OrderID {
				return -1
			}
			return 1
		}
		return int(a.N) - int(b.N)
	})
	var maxSeq uint64
	for i := range evs {
		ev := evs[i]
		w := orders[ev.OrderID]
		if w != nil && ev.N <= w.N {
			continue
		}
		// Follows is a column of every event's row; rows stored before it
		// existed carry it only in the opening event's note.
		snap := ev.Order
		if w != nil {
			snap.History = w.History
			if snap.Follows == "" {
				snap.Follows = w.Follows
			}
			if ev.Assignee == w.Assignee {
				snap.ArrivedAt = w.ArrivedAt
			}
		}
		if ev.Action == ActionArrive {
			snap.ArrivedAt = ev.At
		}
		if f := followsOf(ev); f != "" && snap.Follows == "" {
			snap.Follows = f
		}
		snap.History = append(snap.History, ev)
		orders[ev.OrderID] = &snap
		maxSeq = max(maxSeq, ev.Seq)
	}
	return maxSeq
}

// windowStart is the start of the recent window: closed and cancelled
// orders opened before it are held only while they are the latest order
// of their device and rule. Zero without a history to read them from.
func (d *Desk) windowStart() time.Time {
	if d.hist == nil {
		return time.Time{}
	}
	return d.cfg.Now().Add(-d.cfg.Window)
}

// done reports whether an order has left the lifecycle (closed or
// cancelled): nothing moves it any more.
func done(w *WorkOrder) bool { return w.State == StateClosed || w.State == StateCancelled }

// evict lets go of closed and cancelled orders opened before the recent
// window, unless one is the latest order of its device and rule; the
// log's history serves them. Nothing goes while events wait in the
// outbox. d.mu must be held.
func (d *Desk) evict() {
	if d.hist == nil || d.outbox.Len() > 0 {
		return
	}
	from := d.windowStart()
	latest := make(map[string]bool, len(d.latest))
	for _, id := range d.latest {
		latest[id] = true
	}
	n := 0
	for id, w := range d.orders {
		if !done(w) || !w.OpenedAt.Before(from) || latest[id] {
			continue
		}
		for _, ev := range w.History {
			if a := ev.Order.AlarmID; a != "" && d.byAlarm[a] == id {
				delete(d.byAlarm, a)
			}
		}
		delete(d.orders, id)
		if w.OpenedAt.After(d.unheld) {
			d.unheld = w.OpenedAt
		}
		n++
	}
	d.m.evicted.Add(float64(n))
}

// Held is how many orders the desk holds in memory.
func (d *Desk) Held() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.orders)
}

// index files an order under the open set and its subject and rule.
func (d *Desk) index(w *WorkOrder) {
	if w.Open() {
		d.open[w.ID] = w
	} else {
		delete(d.open, w.ID)
	}
	if w.Source == SourceAlarm {
		key := w.Device + "/" + w.Rule
		if cur := d.orders[d.latest[key]]; cur == nil || !cur.OpenedAt.After(w.OpenedAt) {
			d.latest[key] = w.ID
		}
	}
}

func (d *Desk) loop(ctx context.Context) {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.CheckInterval)
	defer t.Stop()
	snapped := d.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := d.cfg.Now()
		d.checkSLA(ctx, now)
		d.mu.Lock()
		d.outbox.Flush(ctx)
		d.evict()
		d.mu.Unlock()
		if now.Sub(snapped) >= d.cfg.SnapshotInterval || now.Before(snapped) {
			if d.saveSnapshot(ctx) {
				snapped = now
			}
		}
	}
}

// record applies an event to w (already changed by the caller), numbers
// it, publishes it to the feed and files it. prevAssignee is the assignee
// before the change. d.mu must be held.
func (d *Desk) record(w *WorkOrder, ev Event, prevAssignee string) Event {
	if prevAssignee != "" && w.Assignee != prevAssignee {
		w.ArrivedAt = time.Time{} // the new assignee has yet to arrive
	}
	w.N++
	ev.OrderID, ev.N, ev.To, ev.Assignee = w.ID, w.N, w.State, w.Assignee
	if ev.At.IsZero() {
		ev.At = d.cfg.Now().UTC()
	}
	assignees := []string{w.Assignee}
	if prevAssignee != "" && prevAssignee != w.Assignee {
		assignees = append(assignees, prevAssignee)
	}
	d.cfg.Feed.Publish(func(seq uint64) alarm.Item {
		w.Seq, ev.Seq = seq, seq
		snap := *w
		snap.History = nil
		ev.Order = snap
		return alarm.Item{Type: alarm.ItemWorkOrder, Company: w.Company, Project: w.Project, Assignees: assignees, Data: ev}
	})
	w.History = append(w.History, ev)
	d.orders[w.ID] = w
	d.index(w)
	d.m.events.WithLabelValues(ev.Action, ev.To).Inc()
	return ev
}

// commit stores events (keeping them for retry when storage fails) and
// notifies the project's webhooks. d.mu must be held.
func (d *Desk) commit(ctx context.Context, evs []Event) {
	if len(evs) == 0 {
		return
	}
	d.outbox.Add(ctx, evs)
	if d.cfg.Notifier == nil {
		return
	}
	for _, ev := range evs {
		if m, ok := d.message(ev); ok {
			d.cfg.Notifier.Notify(m)
		}
	}
}

// openLoad counts each staff member's open orders. d.mu must be held.
func (d *Desk) openLoad() func(string) int {
	n := map[string]int{}
	for _, w := range d.open {
		if w.Assignee != "" {
			n[w.Assignee]++
		}
	}
	return func(s string) int { return n[s] }
}

// dispatch assigns an open order to whoever pick chooses. d.mu must be held.
func (d *Desk) dispatch(w *WorkOrder, at time.Time) (Event, bool) {
	_, p, ok := d.cfg.Org.FindProject(w.Project)
	if !ok {
		return Event{}, false
	}
	who, why := d.roster.pick(w.Company, p, w.Skill, at, d.openLoad())
	if who == "" {
		d.log.Warn("work order left unassigned: nobody to assign", "order", w.ID, "project", w.Project)
		return Event{}, false
	}
	from, prev := w.State, w.Assignee
	w.State, w.Assignee, w.AssignedAt = StateAssigned, who, at
	return d.record(w, Event{Action: ActionAssign, At: at, Who: System, From: from, Note: why}, prev), true
}

// checkSLA escalates orders not in progress by their due time: to the
// project manager at once, to HQ EscalateHQAfter later.
func (d *Desk) checkSLA(ctx context.Context, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var evs []Event
	ids := make([]string, 0, len(d.open))
	for id := range d.open {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		w := d.open[id]
		if w.State == StateInProgress || !now.After(w.SLADue) || !w.ArrivedAt.IsZero() && !w.ArrivedAt.After(w.SLADue) {
			continue // on site in time (arrival or work started)
		}
		var to, note string
		switch {
		case w.Escalation == EscalationNone:
			w.Escalation = EscalationManager
			to = "project manager " + d.managers(w)
			note = fmt.Sprintf("SLA breached: nobody on site by %s; escalated to %s", w.SLADue.Format(time.RFC3339), to)
		case w.Escalation == EscalationManager && !now.Before(w.SLADue.Add(d.cfg.EscalateHQAfter)):
			w.Escalation = EscalationHQ
			to = "HQ"
			note = fmt.Sprintf("SLA breached by more than %s: escalated to HQ", d.cfg.EscalateHQAfter)
		default:
			continue
		}
		evs = append(evs, d.record(w, Event{Action: ActionEscalate, At: now.UTC(), Who: System, From: w.State, Note: note}, ""))
		d.m.escalations.WithLabelValues(fmt.Sprint(w.Escalation)).Inc()
	}
	d.commit(ctx, evs)
}

func (d *Desk) managers(w *WorkOrder) string {
	var ids []string
	for _, s := range d.roster.staff {
		if s.Company == w.Company && s.Role == config.RoleProjectManager && slices.Contains(s.Projects, w.Project) {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return "(none: HQ)"
	}
	return fmt.Sprint(ids)
}

type metrics struct {
	events        *prometheus.CounterVec
	escalations   *prometheus.CounterVec
	dispatch      prometheus.Histogram
	storeFailures prometheus.Counter
	restored      prometheus.Counter
	evicted       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		events: f.NewCounterVec(prometheus.CounterOpts{Name: "plantroom_workorder_events_total",
			Help: "Work-order events by action and resulting state."}, []string{"action", "state"}),
		escalations: f.NewCounterVec(prometheus.CounterOpts{Name: "plantroom_workorder_escalations_total",
			Help: "SLA escalations by level (1 manager, 2 HQ)."}, []string{"level"}),
		dispatch: f.NewHistogram(prometheus.HistogramOpts{Name: "plantroom_workorder_dispatch_seconds",
			Help:    "From a reading's arrival at ingest to its alarm's work order stored and assigned.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		storeFailures: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_workorder_store_failures_total",
			Help: "Failed attempts to store work-order events (they are retried)."}),
		restored: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_workorder_restored_total",
			Help: "Work orders loaded from storage at start."}),
		evicted: f.NewCounter(prometheus.CounterOpts{Name: "plantroom_workorder_evicted_total",
			Help: "Closed and cancelled orders older than the recent window let go from memory (read back from storage when asked for)."}),
	}
}
