package alarm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
)

// restore installs stored alarms; active ones go back to their trackers.
func (e *Engine) restore(alarms []Alarm) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Now()
	var maxSeq uint64
	for i := range alarms {
		a := &alarms[i]
		e.alarms[a.ID] = a
		maxSeq = max(maxSeq, a.Seq)
		t := e.tracker(a)
		if t == nil {
			continue // device or rule gone from the configuration: listed, no longer evaluated
		}
		// Readings up to the latest stored transition are accounted for;
		// a replay re-evaluates only what came after.
		t.lastTS = max(t.lastTS, unixMS(a.ReadingTS))
		if a.State != StateActive {
			// The latest cleared alarm stays with its tracker: a raise
			// after it knows when the earlier one cleared (incidents).
			if t.alarm == nil || (t.alarm.State == StateCleared && t.alarm.ClearedAt.Before(a.ClearedAt)) {
				t.alarm = a
			}
			continue
		}
		if t.alarm != nil && t.alarm.State == StateActive {
			e.log.Warn("two active alarms for one device and rule in storage; keeping the newer", "alarm", a.ID, "other", t.alarm.ID)
			if t.alarm.RaisedAt.After(a.RaisedAt) {
				continue
			}
		}
		t.alarm = a
		t.lastArrived = now
		t.last = input{ts: t.lastTS, value: a.Value, metric: a.Metric, arrived: now}
	}
	e.feed.Advance(maxSeq)
	e.m.restored.Add(float64(len(alarms)))
}

// catchUp re-evaluates the stored readings of the replay window and starts
// the offline timer of gateways known to be offline. Events it raises are
// stored and dispatched like live ones. e.procMu must be held.
func (e *Engine) catchUp(ctx context.Context) error {
	var trs []transition
	if e.cfg.GatewayStatus != nil {
		for id, g := range e.gateways {
			if offline, since, known := e.cfg.GatewayStatus(id); known && offline && g.offline != nil {
				trs = append(trs, g.offline.step(input{ts: since.UnixMilli(), arrived: since, replay: true}, true, false)...)
				e.graceOffline(g.offline)
			}
		}
	}
	evs := e.apply(trs)
	if e.cfg.Readings != nil {
		rs, err := e.recentReadings(ctx)
		if err != nil {
			return err
		}
		for i := range rs {
			r := &rs[i]
			// Applied reading by reading, as in ObserveBatch.
			evs = append(evs, e.apply(e.evaluate(r.Gateway, &r.Reading, time.UnixMilli(r.TS), true, map[*subject]bool{}))...)
		}
		e.m.replayed.Add(float64(len(rs)))
	}
	e.commit(ctx, evs)
	return nil
}

// recentReadings loads the readings of the replay window for every metric
// a rule watches.
func (e *Engine) recentReadings(ctx context.Context) ([]StoredReading, error) {
	set := map[string]bool{}
	for _, s := range e.devices {
		for m := range s.byMetric {
			set[m] = true
		}
		for m := range s.latest {
			set[m] = true // read by a rule's "when"
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	metrics := make([]string, 0, len(set))
	for m := range set {
		metrics = append(metrics, m)
	}
	sort.Strings(metrics)
	rs, err := e.cfg.Readings.RecentReadings(ctx, e.cfg.Now().Add(-e.cfg.ReplayWindow), metrics)
	if err != nil {
		return nil, fmt.Errorf("cannot replay recent readings: %w", err)
	}
	return rs, nil
}

func (e *Engine) tracker(a *Alarm) *tracker {
	s := e.devices[a.Device]
	if a.Device == "" {
		s = e.gateways[a.Gateway]
	}
	if s == nil {
		return nil
	}
	for _, t := range s.trackers {
		if t.rule.ID == a.Rule {
			return t
		}
	}
	return nil
}

// Snapshot stores the held alarms in the log's snapshot (History.SaveHeld):
// their ids, the feed's sequence and the raise time before which alarms may
// not be held. It refuses (store.ErrSnapshotPending) while events wait in
// the outbox: a snapshot must come after every event recorded before it is
// stored, so a start from it misses nothing. Without a History it does
// nothing. The engine writes one at start, every SnapshotInterval and at
// Stop.
func (e *Engine) Snapshot(ctx context.Context) error {
	if e.hist == nil {
		return nil
	}
	e.procMu.Lock()
	if n := e.outbox.Len(); n > 0 {
		e.procMu.Unlock()
		return fmt.Errorf("cannot snapshot the held alarms: %d %w", n, store.ErrSnapshotPending)
	}
	// The journal's clock (store.Snapshot.Taken), not Config.Now.
	s := store.Snapshot{Taken: time.Now(), Seq: e.feed.Last()}
	e.mu.RLock()
	if !e.loaded {
		e.mu.RUnlock()
		e.procMu.Unlock()
		return fmt.Errorf("cannot snapshot the held alarms: %w", ErrNotStarted)
	}
	s.Mark = unixMS(e.unheld)
	s.Held = make([]store.HeldKey, 0, len(e.alarms))
	for _, a := range e.alarms {
		s.Held = append(s.Held, store.HeldKey{Company: a.Company, Project: a.Project, Key: a.ID, Begin: a.RaisedAt})
	}
	e.mu.RUnlock()
	e.procMu.Unlock()
	return e.hist.SaveHeld(ctx, s)
}

// saveSnapshot writes a snapshot, logging a failure (the next one may
// succeed; a start reads from the newest complete one). It reports
// whether one was written.
func (e *Engine) saveSnapshot(ctx context.Context) bool {
	err := e.Snapshot(ctx)
	if err != nil && !errors.Is(err, store.ErrSnapshotPending) && !errors.Is(err, ErrNotStarted) {
		e.log.Warn("cannot snapshot the held alarms; the next start reads more", "err", err)
	}
	return err == nil
}
