package console

import (
	"sync"
	"time"
)

// throttle counts failed sign-ins per key (an account, an address) and
// refuses further attempts for a while once a key has failed too often.
type throttle struct {
	limit  int           // failures allowed within window
	window time.Duration // how long failures count, and how long a lock lasts
	max    int           // keys kept at most (memory bound)
	now    func() time.Time

	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n           int
	first       time.Time
	lockedUntil time.Time
}

func newThrottle(limit int, window time.Duration, max int, now func() time.Time) *throttle {
	return &throttle{limit: limit, window: window, max: max, now: now, m: map[string]*failures{}}
}

// locked reports whether key may not try now, and until when.
func (t *throttle) locked(key string) (bool, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[key]
	if !ok {
		return false, time.Time{}
	}
	now := t.now()
	if now.Before(f.lockedUntil) {
		return true, f.lockedUntil
	}
	return false, time.Time{}
}

// fail counts a failed attempt of key; true when it locks the key.
func (t *throttle) fail(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f, ok := t.m[key]
	if !ok || now.Sub(f.first) > t.window && !now.Before(f.lockedUntil) {
		if len(t.m) >= t.max {
			t.sweepLocked(now)
		}
		if len(t.m) >= t.max {
			return false // full of live entries: count nothing rather than grow
		}
		f = &failures{first: now}
		t.m[key] = f
	}
	f.n++
	if f.n >= t.limit {
		f.lockedUntil = now.Add(t.window)
		return true
	}
	return false
}

// reset forgets key's failures (after a successful sign-in).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

func (t *throttle) sweepLocked(now time.Time) {
	for k, f := range t.m {
		if now.Sub(f.first) > t.window && !now.Before(f.lockedUntil) {
			delete(t.m, k)
		}
	}
}
