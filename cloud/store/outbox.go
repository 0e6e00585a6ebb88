package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outbox keeps the events of an event log whose storage failed and stores
// them again, oldest first and before anything newer, until ClickHouse
// takes them: the alarm engine and the work-order desk commit through one,
// and so will commands and resident requests. A failure streak is logged
// once, and its end once. The owner serialises the calls (it holds its
// own lock around them).
type Outbox[E any] struct {
	what    string // "alarm events"
	store   func(ctx context.Context, evs []E) error
	log     *slog.Logger
	pending []E
	failing bool

	first, delay time.Duration // retry backoff: first delay, current delay
	next         time.Time     // no retry before

	// Failures counts failed attempts and Pending shows the events waiting;
	// both may be nil.
	Failures prometheus.Counter
	Pending  prometheus.Gauge
}

// maxRetryDelay caps the retry backoff.
const maxRetryDelay = time.Minute

// NewOutbox returns an outbox storing events (what names them in logs)
// with store, retrying failures after retry, doubling up to a minute.
func NewOutbox[E any](what string, store func(ctx context.Context, evs []E) error, retry time.Duration, log *slog.Logger) *Outbox[E] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if retry <= 0 {
		retry = 2 * time.Second
	}
	return &Outbox[E]{what: what, store: store, log: log, first: retry, delay: retry}
}

// Add queues evs after the waiting ones and tries to store them all now.
// It reports whether nothing is left waiting.
func (o *Outbox[E]) Add(ctx context.Context, evs []E) bool {
	o.pending = append(o.pending, evs...)
	return o.Flush(ctx)
}

// Flush tries to store the waiting events now. It reports whether nothing
// is left waiting.
func (o *Outbox[E]) Flush(ctx context.Context) bool {
	if len(o.pending) == 0 {
		return true
	}
	if err := o.store(ctx, o.pending); err != nil {
		if o.Failures != nil {
			o.Failures.Inc()
		}
		if !o.failing {
			o.log.Error("cannot store "+o.what+"; keeping them for retry", "events", len(o.pending), "err", err)
			o.failing = true
		}
		o.setPending()
		return false
	}
	if o.failing {
		o.log.Info(o.what+" stored again after failures", "events", len(o.pending))
		o.failing = false
	}
	o.pending = nil
	o.delay, o.next = o.first, time.Time{}
	o.setPending()
	return true
}

// Retry flushes when the backoff allows it at now: the owner calls it from
// its timer loop.
func (o *Outbox[E]) Retry(ctx context.Context, now time.Time) {
	if len(o.pending) == 0 || now.Before(o.next) {
		return
	}
	if !o.Flush(ctx) {
		o.next = now.Add(o.delay)
		o.delay = min(2*o.delay, maxRetryDelay)
	}
}

// Close makes a last attempt to store the waiting events, within timeout,
// and logs what is lost if it fails.
func (o *Outbox[E]) Close(timeout time.Duration) {
	if len(o.pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := o.store(ctx, o.pending); err != nil {
		o.log.Error(o.what+" lost at stop: cannot store them", "events", len(o.pending), "err", err)
		return
	}
	o.pending = nil
	o.setPending()
}

// Len is the number of events waiting.
func (o *Outbox[E]) Len() int { return len(o.pending) }

func (o *Outbox[E]) setPending() {
	if o.Pending != nil {
		o.Pending.Set(float64(len(o.pending)))
	}
}
