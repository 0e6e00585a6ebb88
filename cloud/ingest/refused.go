package ingest

import (
	"context"
	"slices"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

// isolateAttempts bounds the inserts spent finding the rows ClickHouse
// refuses in one flush (each refused row costs about two per halving, so
// about two refused rows in a full flush of 50,000 are found one by one).
// What is still refused when they are spent is quarantined by range.
const isolateAttempts = 64

// storeReadings writes the flush's readings. When ClickHouse refuses them
// (a permanent error, store.Refused) it isolates the refused rows, stores
// the others, and queues the refused ones for the quarantine; a transient
// error is returned for the caller to retry.
func (w *writer) storeReadings(f *flush) error {
	err := w.call(func(ctx context.Context) error { return w.in.cfg.Store.InsertReadings(ctx, &f.rows) })
	if _, refused := store.Refused(err); !refused {
		return err
	}
	w.in.metrics.refusedWrites.Inc()
	var spans []refusedSpan
	err = isolate(f.rows.Len(), isolateAttempts, err,
		func(lo, hi int) error {
			part := f.rows.Slice(lo, hi)
			return w.call(func(ctx context.Context) error { return w.in.cfg.Store.InsertReadings(ctx, &part) })
		},
		func(s refusedSpan) { spans = append(spans, s) })
	if err != nil {
		return err
	}
	f.quarantineReadings(spans, time.Now())
	return nil
}

// storeEvents is storeReadings for the flush's events.
func (w *writer) storeEvents(f *flush) error {
	err := w.call(func(ctx context.Context) error { return w.in.cfg.Store.InsertEvents(ctx, f.events) })
	if _, refused := store.Refused(err); !refused {
		return err
	}
	w.in.metrics.refusedWrites.Inc()
	var spans []refusedSpan
	err = isolate(len(f.events), isolateAttempts, err,
		func(lo, hi int) error {
			return w.call(func(ctx context.Context) error { return w.in.cfg.Store.InsertEvents(ctx, f.events[lo:hi]) })
		},
		func(s refusedSpan) { spans = append(spans, s) })
	if err != nil {
		return err
	}
	f.quarantineEvents(spans, time.Now())
	return nil
}

// call runs one ClickHouse call with its own timeout.
func (w *writer) call(do func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(w.abortCtx, insertTimeout)
	defer cancel()
	return do(ctx)
}

// refusedSpan is a range of rows ClickHouse refused: one row (alone), or a
// range still refused when the attempts ran out.
type refusedSpan struct {
	lo, hi int
	err    error
	alone  bool
}

// isolate finds the rows of [0, n) that ClickHouse refuses, given that
// inserting them all failed with first (a refusal): it inserts halves and
// keeps halving those refused, down to single rows, for at most attempts
// inserts. Rows in halves that are stored need nothing more; each refused
// row, or range left when the attempts are spent, is handed to refused. A
// transient error ends the search and is returned: the caller retries the
// whole write (inserting stored rows again is harmless).
func isolate(n, attempts int, first error, insert func(lo, hi int) error, refused func(refusedSpan)) error {
	stack := []refusedSpan{{lo: 0, hi: n, err: first}}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.hi-s.lo == 1 {
			s.alone = true
			refused(s)
			continue
		}
		mid := (s.lo + s.hi) / 2
		for _, h := range [2]refusedSpan{{lo: s.lo, hi: mid}, {lo: mid, hi: s.hi}} {
			if attempts == 0 {
				h.err = s.err
				refused(h)
				continue
			}
			attempts--
			err := insert(h.lo, h.hi)
			if err == nil {
				continue
			}
			if _, ok := store.Refused(err); !ok {
				return err
			}
			h.err = err
			stack = append(stack, h)
		}
	}
	return nil
}

// quarantineReadings queues the refused readings for the quarantine table
// and takes them out of their batches, so that the latest values and the
// observers see only what is stored.
func (f *flush) quarantineReadings(spans []refusedSpan, now time.Time) {
	// Rows follow the new telemetry batches in item order (see append and
	// resolve).
	owner := make([]*item, 0, f.rows.Len())
	for _, it := range f.items {
		if it.kind == protocol.KindTelemetry && it.commit == batchNew {
			for range it.batch.Readings {
				owner = append(owner, it)
			}
		}
	}
	if len(owner) != f.rows.Len() {
		panic("BUG: the flush's rows do not follow its new batches")
	}
	refused := make([]bool, len(owner))
	for _, s := range spans {
		cause, _ := store.Refused(s.err)
		for i := s.lo; i < s.hi; i++ {
			refused[i] = true
			f.quarantine = append(f.quarantine, store.QuarantineRow{
				Company: f.rows.Company[i], Project: f.rows.Project[i], Gateway: f.rows.Gateway[i],
				Epoch: owner[i].batch.Epoch, Seq: f.rows.Seq[i], Kind: store.QuarantineReading,
				Device: f.rows.Device[i], Metric: f.rows.Metric[i], TS: f.rows.TS[i], Value: f.rows.Value[i], Quality: f.rows.Quality[i],
				Cause: cause, Error: s.err.Error(), Isolated: s.alone, QuarantinedMs: now.UnixMilli(),
			})
		}
	}
	for row := 0; row < len(owner); {
		it := owner[row]
		b := it.batch
		n := len(b.Readings)
		if slices.Contains(refused[row:row+n], true) {
			kept := make([]protocol.Reading, 0, n)
			var causes []string
			for i, r := range b.Readings {
				if !refused[row+i] {
					kept = append(kept, r)
					if it.causes != nil {
						causes = append(causes, it.causes[i])
					}
				}
			}
			b.Readings, it.causes = kept, causes
		}
		row += n
	}
}

// quarantineEvents queues the refused events for the quarantine table and
// marks their items, so that observers are not told of them.
func (f *flush) quarantineEvents(spans []refusedSpan, now time.Time) {
	for _, s := range spans {
		cause, _ := store.Refused(s.err)
		for i := s.lo; i < s.hi; i++ {
			e := f.events[i]
			f.quarantine = append(f.quarantine, store.QuarantineRow{
				Company: e.Company, Project: e.Project, Gateway: e.Gateway, Seq: e.Seq,
				Kind: store.QuarantineEvent, Device: e.Device, Metric: e.Kind, TS: e.TS,
				Message: e.Message, Attrs: e.Attrs,
				Cause: cause, Error: s.err.Error(), Isolated: s.alone, QuarantinedMs: now.UnixMilli(),
			})
			if it := f.eventItems[i]; it != nil {
				it.refused = true
			}
		}
	}
}
