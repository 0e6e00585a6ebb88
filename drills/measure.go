package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
)

// storeCounts are what the drill's database holds for its gateway.
type storeCounts struct {
	distinct int64 // distinct (device, metric, ts_ms)
	final    int64 // rows read with FINAL (the storage rule)
	raw      int64 // rows without FINAL: duplicates not merged yet included
	rollup   int64 // readings counted by the hourly roll-up (uniqExact of ts per hour)
}

// scope is the drill gateway's readings.
func (s *Stand) scope() store.GatewayScope {
	return store.GatewayScope{Company: drillCompany, Project: drillProject, Gateway: drillGateway}
}

// audit reads the drill's database.
func (s *Stand) audit() (*store.Audit, error) { return store.NewAudit(s.conn, s.ch.database) }

// storedReadings counts the gateway's readings the way every reader must:
// with FINAL.
func (s *Stand) storedReadings(ctx context.Context) (int64, error) {
	a, err := s.audit()
	if err != nil {
		return 0, err
	}
	return a.StoredReadings(ctx, s.scope())
}

func (s *Stand) counts(ctx context.Context) (storeCounts, error) {
	a, err := s.audit()
	if err != nil {
		return storeCounts{}, err
	}
	c, err := a.Counts(ctx, s.scope())
	return storeCounts{distinct: c.Distinct, final: c.Final, raw: c.Raw, rollup: c.Rollup}, err
}

// edgeCommitted waits until the agent's committed-readings counter stops
// moving (the devices are frozen or gone) and returns it with the
// overflow counter.
func (s *Stand) edgeCommitted(ctx context.Context) (committed, dropped int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last *Metrics
	committed, err = stable(ctx, 250*time.Millisecond, 2*time.Second, func() (int64, error) {
		m, err := s.edgeMetrics(ctx)
		if err != nil {
			return 0, err
		}
		last = m
		return m.Int(mEdgeCommitted), nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read the edge's committed readings: %w", err)
	}
	return committed, last.Int(mEdgeDropped), nil
}

// freezeDevices stops the simulated building (SIGSTOP) so that the edge
// takes no more readings, and returns the agent's counters once they
// settled. thawDevices resumes it.
func (s *Stand) freezeDevices(ctx context.Context) (committed, dropped int64, err error) {
	if err := s.devsim.Freeze(); err != nil {
		return 0, 0, err
	}
	return s.edgeCommitted(ctx)
}

func (s *Stand) thawDevices() error { return s.devsim.Thaw() }

// tally is the end state of a drill.
type tally struct {
	produced, dropped int64
	inserted          int64 // readings the ingest committed, redeliveries included (every run)
	counts            storeCounts
	edge, cloud       *Metrics
}

// settle ends production and waits until everything the edge committed
// has left its queue and the ingest holds nothing unacknowledged, then
// counts.
func (s *Stand) settle(ctx context.Context) (*tally, error) {
	if err := s.devsim.Stop(15 * time.Second); err != nil {
		return nil, err
	}
	committed, dropped, err := s.edgeCommitted(ctx)
	if err != nil {
		return nil, err
	}
	t := &tally{produced: s.committedBefore + committed, dropped: s.droppedBefore + dropped}
	want := t.produced - t.dropped

	err = s.await(ctx, "the edge queue to drain", s.opts.drain, s.edge, func() (bool, error) {
		m, err := s.edgeMetrics(ctx)
		if err != nil {
			return false, nil
		}
		return m.Int(mEdgeQueueItems) == 0 && m.Int(mEdgeQueueRead) == 0, nil
	})
	if err != nil {
		return nil, err
	}
	// Stored readings reach the expected count, or stop changing with
	// nothing left unacknowledged at the ingest (then some are lost).
	var last int64 = -1
	var since time.Time
	err = s.await(ctx, "the ingest to commit everything", 60*time.Second, s.ingestProc, func() (bool, error) {
		m, err := s.cloudMetrics(ctx)
		if err != nil {
			return false, nil
		}
		n, err := s.storedReadings(ctx)
		if err != nil {
			return false, nil
		}
		if m.Int(mIngestUnacked) != 0 {
			return false, nil
		}
		if n != last {
			last, since = n, time.Now()
		}
		return n == want || time.Since(since) > 5*time.Second, nil
	})
	if err != nil {
		return nil, err
	}
	if t.counts, err = s.counts(ctx); err != nil {
		return nil, err
	}
	if t.edge, err = s.edgeMetrics(ctx); err != nil {
		return nil, err
	}
	if t.cloud, err = s.cloudMetrics(ctx); err != nil {
		return nil, err
	}
	t.inserted = s.insertedBefore + t.cloud.Int(mIngestReadings)
	for _, p := range s.ingestProcs {
		if p == s.ingestProc || !p.Running() {
			continue
		}
		m, err := scrape(ctx, s.metricsOf[p]) // another replica's share
		if err != nil {
			return nil, err
		}
		t.inserted += m.Int(mIngestReadings)
	}
	return t, nil
}

// oneHolePerDevice checks that what the queue dropped is one stretch of
// time per device (its oldest readings), not readings here and there. The
// disk-bound building reports every device every poll (its counters move
// every model step), so any other gap over two seconds (twenty polls; a
// loaded machine may stall the poller for a moment) is lost readings.
func oneHolePerDevice(ctx context.Context, s *Stand, r *Result) error {
	a, err := s.audit()
	if err != nil {
		return err
	}
	holes := map[string][]string{}
	var dev string
	var prev int64
	err = a.ReadingTimes(ctx, s.scope(), func(d string, ts int64) {
		if d == dev && ts-prev > 2000 {
			holes[d] = append(holes[d], fmt.Sprintf("%.1fs at %s", float64(ts-prev)/1000, time.UnixMilli(prev).UTC().Format("15:04:05.000")))
		}
		dev, prev = d, ts
	})
	if err != nil {
		return err
	}
	// Readings dropped from batches awaiting their commit acknowledgement
	// were sent and usually stored: such drops may leave no hole (or one
	// shorter than two seconds), so a missing hole proves nothing then.
	droppedSent := int64(0)
	if m, err := s.edgeMetrics(ctx); err == nil {
		droppedSent = m.Int(mEdgeDroppedSent)
	}
	widest := ""
	for _, d := range s.devices {
		switch h := holes[d.ID]; {
		case len(h) > 1:
			r.problem("device %q has %d holes, want the one the drop made: %s", d.ID, len(h), strings.Join(h, ", "))
		case len(h) == 1:
			widest = h[0]
		case r.Dropped > 0 && droppedSent == 0:
			r.problem("device %q has no hole although the queue dropped %d readings (%d of them sent)", d.ID, r.Dropped, droppedSent)
		}
	}
	if widest != "" {
		r.note("one hole per device where the queue dropped (e.g. %s)", widest)
	}
	return nil
}
