package resident

import (
	"sync"
	"time"
)

// limiter counts requests per client address and per project in a fixed
// window each: a key's window starts with its first request and lasts
// Limits.Window. Memory is bounded: past maxKeys addresses, expired ones
// are swept, and when none has expired new addresses are refused (an
// attack from that many addresses at once is what the bound is for).
type limiter struct {
	l   Limits
	now func() time.Time

	mu        sync.Mutex
	addresses map[string]*window
	projects  map[string]*window
}

type window struct {
	start time.Time
	n     int
}

const maxKeys = 100000

func newLimiter(l Limits, now func() time.Time) *limiter {
	return &limiter{l: l, now: now, addresses: map[string]*window{}, projects: map[string]*window{}}
}

// take counts one request from addr into project, or says which limit it
// is over (and counts nothing).
func (lm *limiter) take(addr, project string) *LimitError {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	now := lm.now()
	a, aerr := lm.window(lm.addresses, addr, lm.l.PerAddress, "address", now)
	if aerr != nil {
		return aerr
	}
	p, perr := lm.window(lm.projects, project, lm.l.PerProject, "project", now)
	if perr != nil {
		return perr
	}
	a.n++
	p.n++
	return nil
}

// window returns key's current window in m, or the error when it is full.
func (lm *limiter) window(m map[string]*window, key string, limit int, scope string, now time.Time) (*window, *LimitError) {
	w := m[key]
	if w != nil && now.Sub(w.start) >= lm.l.Window.Duration {
		w = nil
	}
	if w == nil {
		if len(m) >= maxKeys {
			for k, o := range m {
				if now.Sub(o.start) >= lm.l.Window.Duration {
					delete(m, k)
				}
			}
		}
		if len(m) >= maxKeys {
			return nil, &LimitError{Scope: scope, Limit: limit, Window: lm.l.Window.Duration, RetryAfter: lm.l.Window.Duration}
		}
		w = &window{start: now}
		m[key] = w
	}
	if w.n >= limit {
		return nil, &LimitError{Scope: scope, Limit: limit, Window: lm.l.Window.Duration, RetryAfter: w.start.Add(lm.l.Window.Duration).Sub(now)}
	}
	return w, nil
}
