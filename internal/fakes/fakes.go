// Package fakes holds the stand-ins that unit tests of logic share: a
// settable clock and an in-memory event log. Integration tests use the real
// parts (the ClickHouse logs are tested against a real server).
package fakes

import (
	"sync"
	"time"
)

// Clock is a clock a test sets by hand; Now is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the time last set.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Log is an in-memory append-only log of events of type E, safe for
// concurrent use, that can be made to fail.
type Log[E any] struct {
	mu     sync.Mutex
	events []E
	fail   error
}

// Append stores evs, or returns the error set with SetFail and stores
// nothing.
func (l *Log[E]) Append(evs []E) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	l.events = append(l.events, evs...)
	return nil
}

// Events returns a copy of everything stored, in order.
func (l *Log[E]) Events() []E {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]E(nil), l.events...)
}

// SetFail makes Append fail with err until it is set to nil.
func (l *Log[E]) SetFail(err error) {
	l.mu.Lock()
	l.fail = err
	l.mu.Unlock()
}
