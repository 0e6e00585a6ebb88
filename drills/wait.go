package main

import (
	"context"
	"fmt"
	"net"
	"time"
)

// poll calls check every interval until it reports true or an error, or
// ctx ends (then the error says so, with check's last error if any).
func poll(ctx context.Context, every time.Duration, check func() (bool, error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := check()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// pause waits d or until ctx ends. Drills use it only where the fault
// itself is a duration (an uplink down for 20 s), never to wait for a
// condition.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// dialOK reports whether something accepts TCP connections at addr.
func dialOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stable calls read every interval until its value has not changed for
// quiet, and returns that value.
func stable(ctx context.Context, every, quiet time.Duration, read func() (int64, error)) (int64, error) {
	last, err := read()
	if err != nil {
		return 0, err
	}
	since := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("still changing (last %d): %w", last, ctx.Err())
		case <-t.C:
		}
		v, err := read()
		if err != nil {
			return 0, err
		}
		if v != last {
			last, since = v, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return v, nil
		}
	}
}

// awaitEdge polls the agent's metrics until cond holds or timeout passes;
// it reports whether cond held.
func (s *Stand) awaitEdge(ctx context.Context, timeout time.Duration, cond func(*Metrics) bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return poll(ctx, 100*time.Millisecond, func() (bool, error) {
		m, err := s.edgeMetrics(ctx)
		return err == nil && cond(m), nil
	}) == nil
}

// awaitCloud is awaitEdge for the ingest's process.
func (s *Stand) awaitCloud(ctx context.Context, timeout time.Duration, cond func(*Metrics) bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return poll(ctx, 20*time.Millisecond, func() (bool, error) {
		m, err := s.cloudMetrics(ctx)
		return err == nil && cond(m), nil
	}) == nil
}

// awaitConnected waits for the agent's uplink after a repair.
func (s *Stand) awaitConnected(ctx context.Context) error {
	return s.await(ctx, "the edge to reconnect", 60*time.Second, s.edge, func() (bool, error) {
		m, err := s.edgeMetrics(ctx)
		return err == nil && m.Sum(mEdgeConnected) == 1, nil
	})
}

// queued is the number of readings in the agent's queue.
func (s *Stand) queued(ctx context.Context) (int64, error) {
	m, err := s.edgeMetrics(ctx)
	if err != nil {
		return 0, err
	}
	return m.Int(mEdgeQueueRead), nil
}
