package sim

import (
	"fmt"
	"sync"
	"time"
)

// Clock is the virtual clock of a simulation. A running clock moves Speed
// virtual seconds per real second from its start; a manual clock moves only
// when Advance is called.
type Clock struct {
	mu      sync.Mutex
	start   time.Time // virtual time at wallRef
	wallRef time.Time
	speed   float64
	manual  bool
	now     time.Time // manual clocks only
	started bool
}

// NewClock returns a clock showing start. speed is virtual seconds per real
// second; manual clocks ignore it. A running clock only begins to move
// when Run is called (Building.Start does).
func NewClock(start time.Time, speed float64, manual bool) *Clock {
	return &Clock{start: start, speed: speed, manual: manual, now: start}
}

// Run starts a running clock moving from its start time. A manual clock
// ignores it.
func (c *Clock) Run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.started = true
		c.wallRef = time.Now()
	}
}

// Now returns the virtual time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manual || !c.started {
		return c.now
	}
	el := time.Since(c.wallRef)
	return c.start.Add(time.Duration(float64(el) * c.speed))
}

// Manual reports whether only Advance moves the clock.
func (c *Clock) Manual() bool { return c.manual }

// Speed is virtual seconds per real second.
func (c *Clock) Speed() float64 { return c.speed }

// Advance moves a manual clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) (time.Time, error) {
	if !c.manual {
		return time.Time{}, fmt.Errorf("cannot advance clock: it runs at %gx real time; only a manual clock can be advanced", c.speed)
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("cannot advance clock by %s: time only moves forward", d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now, nil
}
