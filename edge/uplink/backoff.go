package uplink

import (
	"math/rand/v2"
	"time"
)

// backoff is the uplink's one capped exponential backoff: it doubles from
// min to max. Reconnects wait a jittered step, so that gateways dropped at
// the same moment spread out; re-sends of batches without a commit
// acknowledgement wait the plain step, so that commit_timeout is the
// shortest wait.
type backoff struct {
	min, max time.Duration
}

// step is the wait after attempt failures in a row (0: the first wait):
// min·2^attempt, at most max.
func (b backoff) step(attempt int) time.Duration {
	d := b.min
	for i := 0; i < attempt && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

// Jitter picks a wait in [d/2, d): reconnecting gateways spread out
// instead of hitting a recovering broker at the same moment.
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)))
}
