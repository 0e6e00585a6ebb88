package ingest

import (
	"context"
	"encoding/json"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

// writer batches items into flushes and commits them to ClickHouse. One
// goroutine (accumulate) fills the current flush; another (commitLoop)
// commits full flushes, one at a time, retrying until ClickHouse takes
// them, and then acknowledges their messages and calls the observers. At
// most three flushes exist: one committing, one queued, one filling.
type writer struct {
	in      *Ingest
	input   chan *item
	commits chan *flush
	pool    chan *flush

	maxItems int // flush when this many messages are held, so the window never stalls

	abortCtx context.Context // cancelled when Stop gives up on committing
	abort    context.CancelFunc
	finished chan struct{} // closed when commitLoop returns

	failing bool // in a run of failed commits (commitLoop only)
}

// flush is the content of one commit.
type flush struct {
	rows       store.ReadingBatch
	events     []store.EventRow
	eventItems []*item // the item of each event row; nil for one resolve derived
	items      []*item
	resolved   bool // the batches' commit states are decided (resolve)
	// Progress of a commit, kept across its retries: readings and events
	// stored (those refused isolated into quarantine).
	readingsStored, eventsStored bool
	quarantine                   []store.QuarantineRow
}

func newWriter(in *Ingest) *writer {
	w := &writer{
		in:       in,
		input:    make(chan *item, 256),
		commits:  make(chan *flush, 1),
		pool:     make(chan *flush, 3),
		maxItems: max(1, in.cfg.MaxUnacked/2),
		finished: make(chan struct{}),
	}
	w.abortCtx, w.abort = context.WithCancel(context.Background())
	return w
}

// add hands an item to the writer; false when the ingest is stopping.
func (w *writer) add(it *item) bool {
	select {
	case w.input <- it:
		return true
	case <-w.in.stopping:
		return false
	}
}

func (w *writer) newFlush() *flush {
	select {
	case f := <-w.pool:
		return f
	default:
		return &flush{}
	}
}

func (w *writer) recycle(f *flush) {
	f.rows.Reset()
	clear(f.items)
	clear(f.eventItems)
	f.items, f.events, f.eventItems = f.items[:0], f.events[:0], f.eventItems[:0]
	f.resolved, f.readingsStored, f.eventsStored = false, false, false
	f.quarantine = f.quarantine[:0]
	select {
	case w.pool <- f:
	default:
	}
}

func (w *writer) accumulate() {
	defer w.in.wg.Done()
	defer close(w.commits)
	cur := w.newFlush()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	send := func() {
		timer.Stop()
		w.commits <- cur // blocks while one flush commits and another waits
		cur = w.newFlush()
	}
	for {
		select {
		case it := <-w.input:
			w.append(cur, it)
			if cur.rows.Len() >= w.in.cfg.FlushRows || len(cur.items) >= w.maxItems {
				send()
			} else if len(cur.items) == 1 {
				timer.Reset(w.in.cfg.FlushInterval)
			}
		case <-timer.C:
			if len(cur.items) > 0 {
				send()
			}
		case <-w.in.stopping:
			for {
				select {
				case it := <-w.input:
					w.append(cur, it)
					continue
				default:
				}
				break
			}
			if len(cur.items) > 0 {
				w.commits <- cur
			}
			return
		}
	}
}

// append adds an item's rows to the flush.
func (w *writer) append(f *flush, it *item) {
	f.items = append(f.items, it)
	g := it.gw
	switch it.kind {
	case protocol.KindTelemetry:
		f.addRows(it)
	case protocol.KindStatus:
		if it.store {
			kind := store.KindGatewayOffline
			if it.status.State == protocol.StateOnline {
				kind = store.KindGatewayOnline
			}
			f.events = append(f.events, store.EventRow{
				Company: g.Company.ID, Project: g.Project.ID, Gateway: g.Gateway.ID, Kind: kind,
				TS: statusTime(it.status, it.arrived).UnixMilli(), Message: it.status.Reason, Arrived: it.arrived.UnixMilli(),
			})
			f.eventItems = append(f.eventItems, it)
		}
	case protocol.KindEvents:
		e := it.event
		attrs := ""
		if len(e.Attrs) > 0 {
			b, _ := json.Marshal(e.Attrs) // map[string]float64 of finite values: cannot fail
			attrs = string(b)
		}
		f.events = append(f.events, store.EventRow{
			Company: g.Company.ID, Project: g.Project.ID, Gateway: g.Gateway.ID, Device: e.Device, Kind: e.Kind,
			TS: e.TS, Seq: e.Seq, Message: e.Message, Attrs: attrs, Arrived: it.arrived.UnixMilli(),
		})
		f.eventItems = append(f.eventItems, it)
	}
}

// addRows adds a telemetry item's readings to the flush's rows.
func (f *flush) addRows(it *item) {
	g := it.gw
	for i := range it.batch.Readings {
		f.rows.Add(g.Company.ID, g.Project.ID, g.Gateway.ID, it.batch.Seq, &it.batch.Readings[i])
		if it.causes != nil && it.causes[i] != "" {
			f.rows.SetBadCause(it.causes[i])
		}
	}
}

// statusTime is when a status took effect: its own time, or the arrival
// for a last will (which the gateway registered long before).
func statusTime(s protocol.Status, arrived time.Time) time.Time {
	if s.TS > 0 {
		return time.UnixMilli(s.TS)
	}
	return arrived
}

func (w *writer) commitLoop() {
	defer w.in.wg.Done()
	defer close(w.finished)
	for f := range w.commits {
		if w.commit(f) {
			w.committed(f)
		} else {
			// Stopping with ClickHouse unavailable: the messages stay
			// unacknowledged and the broker delivers them again.
			for _, it := range f.items {
				if it.ack != nil {
					<-w.in.slots
					w.in.metrics.unacked.Dec()
				}
			}
		}
		w.recycle(f)
	}
}

// commit writes a flush, retrying with capped exponential backoff until it
// succeeds (true) or the ingest gives up at shutdown (false). Only
// transient errors are retried: rows ClickHouse refuses (store.Refused) are
// isolated into the quarantine and the rest of the flush is committed.
func (w *writer) commit(f *flush) bool {
	start := time.Now()
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := w.insert(f)
		if err == nil {
			if w.failing {
				w.failing = false
				w.in.log.Info("ClickHouse writes resumed", "attempts", attempt, "rows", f.rows.Len(), "after", time.Since(start).Round(time.Millisecond))
				// Nothing was committed meanwhile: staleness starts again
				// from now, so the outage raises no device alarms.
				w.in.presence.Resume(time.Now())
			}
			w.quarantined(f)
			w.in.metrics.flushSeconds.Observe(time.Since(start).Seconds())
			w.in.metrics.batchRows.Observe(float64(f.rows.Len()))
			return true
		}
		w.in.metrics.chErrors.Inc()
		if !w.failing {
			w.failing = true
			w.in.log.Error("cannot write to ClickHouse; holding the messages unacknowledged and retrying",
				"error", err, "rows", f.rows.Len(), "messages", len(f.items))
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.abortCtx.Done():
			t.Stop()
			return false
		}
		backoff = min(2*backoff, w.in.cfg.MaxRetryInterval)
	}
}

// insertTimeout bounds one insert attempt, so a server that accepts the
// connection but never answers counts as down.
const insertTimeout = 30 * time.Second

func (w *writer) insert(f *flush) error {
	if err := w.call(func(ctx context.Context) error { return w.resolve(ctx, f) }); err != nil {
		return err
	}
	if !f.readingsStored {
		if err := w.storeReadings(f); err != nil {
			return err
		}
		f.readingsStored = true
	}
	if !f.eventsStored {
		if err := w.storeEvents(f); err != nil {
			return err
		}
		f.eventsStored = true
	}
	// Marked committed only once the readings are stored, or quarantined.
	return w.call(func(ctx context.Context) error {
		if err := w.in.cfg.Store.InsertQuarantine(ctx, f.quarantine); err != nil {
			return err
		}
		return w.in.cfg.Store.InsertCommitted(ctx, f.marks(time.Now(), w.in.cfg.withoutCommitAcks))
	})
}

// quarantined counts a committed flush's quarantined rows and logs the
// first refusal of each kind and cause.
func (w *writer) quarantined(f *flush) {
	if len(f.quarantine) == 0 {
		return
	}
	type key struct{ kind, cause string }
	n := map[key]int{}
	for _, r := range f.quarantine {
		k := key{r.Kind, r.Cause}
		if n[k] == 0 && w.in.rejects.first("quarantine/"+r.Kind+"/"+r.Cause) {
			w.in.log.Error("ClickHouse refused rows (a permanent error): stored the rest of the flush, moved the refused rows to the quarantine table and acknowledged their batches; further refusals of this cause are only counted",
				"kind", r.Kind, "cause", r.Cause, "gateway", r.Gateway, "epoch", r.Epoch, "seq", r.Seq,
				"device", r.Device, "metric", r.Metric, "ts_ms", r.TS, "value", r.Value, "error", r.Error,
				"table", store.TableQuarantine, "metric_name", "plantroom_ingest_quarantined_total")
		}
		n[k]++
	}
	for k, c := range n {
		w.in.metrics.quarantined.WithLabelValues(k.kind, k.cause).Add(float64(c))
	}
}

// committed updates the caches, acknowledges the flush's messages in
// order, and tells the observers.
func (w *writer) committed(f *flush) {
	in := w.in
	for _, it := range f.items {
		switch it.kind {
		case protocol.KindTelemetry:
			if !in.settle(it) {
				continue
			}
			rs := it.batch.Readings
			in.latest.addBatch(rs)
			markSeen(in.presence, rs)
		case protocol.KindEvents:
			if it.refused {
				continue
			}
			switch e := it.event; e.Kind {
			case protocol.EventDeviceOffline, protocol.EventDeviceOnline:
				in.presence.reach(e.Device, e.Kind == protocol.EventDeviceOffline, time.UnixMilli(e.TS))
			}
		case protocol.KindStatus:
			if it.refused {
				continue
			}
			s := it.status
			online := s.State == protocol.StateOnline
			if g, _ := in.presence.Gateway(s.Gateway); !it.store && g.Known && g.Online == online {
				// The retained copy replayed on subscribing: the state is
				// known already, with the time it really changed.
				continue
			}
			in.presence.setStatus(s.Gateway, online, statusTime(s, it.arrived), s.Reason, s.Agent)
			if online && it.store {
				in.announce.request(it.gw)
			}
		}
	}
	for _, it := range f.items {
		if it.ack != nil {
			it.ack()
		}
	}
	in.sendAcks()
	stored := f.rows.Len()
	for _, q := range f.quarantine {
		if q.Kind == store.QuarantineReading {
			stored--
		}
	}
	in.metrics.readings.Add(float64(stored))
	obs := in.observerList()
	if len(obs) == 0 {
		return
	}
	for _, it := range f.items {
		if it.refused {
			continue
		}
		for _, o := range obs {
			switch it.kind {
			case protocol.KindTelemetry:
				if it.commit == batchNew && len(it.batch.Readings) > 0 {
					o.ObserveBatch(in.ctx, it.gw, it.batch, it.arrived)
				}
			case protocol.KindStatus:
				o.ObserveStatus(in.ctx, it.gw, it.status, it.arrived)
			case protocol.KindEvents:
				o.ObserveEvent(in.ctx, it.gw, it.event, it.arrived)
			}
		}
	}
}

// markSeen records each device's newest reading time.
func markSeen(p *Presence, rs []protocol.Reading) {
	var dev string
	var last int64
	for i := range rs {
		if rs[i].Device != dev {
			if dev != "" {
				p.seen(dev, time.UnixMilli(last))
			}
			dev, last = rs[i].Device, rs[i].TS
		} else if rs[i].TS > last {
			last = rs[i].TS
		}
	}
	if dev != "" {
		p.seen(dev, time.UnixMilli(last))
	}
}

// drain waits for the writer to commit what it holds, giving up after
// timeout.
func (w *writer) drain(timeout time.Duration) {
	t := time.AfterFunc(timeout, w.abort)
	<-w.finished
	t.Stop()
	w.abort()
}
