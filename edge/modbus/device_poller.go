package modbus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// DeviceStats is what Poller.Stats reports for one device.
type DeviceStats struct {
	// Online: the device answered a poll and has not been reported offline
	// since. False before the first answer.
	Online bool
	// Polls started, and those in which no request was answered.
	Polls, FailedPolls uint64
	// ConsecutiveFailures is the number of failed polls in a row.
	ConsecutiveFailures int
	// PointsRead counts readings handed to the sink.
	PointsRead uint64
	// Errors counts failed requests (every attempt) and undecodable points
	// by cause: CauseTimeout, CauseConnection, CauseFrame, "exception_<code>",
	// CauseInvalidValue, CauseDecode.
	Errors map[string]uint64
	// RequestsPerPoll is the length of the device's read plan.
	RequestsPerPoll int
	// LastPoll is when the last poll started; LastPollDuration how long it
	// took, waiting for a shared bus included.
	LastPoll         time.Time
	LastPollDuration time.Duration
	// LastError is the last error of a request or point, "" if none yet.
	LastError string
}

// devicePoller polls one device in its own goroutine.
type devicePoller struct {
	cfg  Device // as configured (for change detection)
	dev  Device // with defaults
	link *link
	p    *Poller
	log  *slog.Logger

	plan []Request // written by the poll goroutine under mu; it reads without

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards the fields below
	stats   DeviceStats
	offline bool
	seen    map[string]bool // error causes already logged
}

func newDevicePoller(p *Poller, cfg Device, l *link) (*devicePoller, error) {
	dev := cfg.withDefaults()
	plan, err := Plan(dev.Template, p.opts.MaxGap)
	if err != nil {
		return nil, err
	}
	d := &devicePoller{cfg: cfg, dev: dev, link: l, p: p, plan: plan,
		log: p.log.With("device", cfg.ID), seen: map[string]bool{}}
	d.stats.Errors = map[string]uint64{}
	d.stats.RequestsPerPoll = len(plan)
	p.m.requests.WithLabelValues(cfg.ID).Set(float64(len(plan)))
	return d, nil
}

func (d *devicePoller) start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	d.done = make(chan struct{})
	go d.run(ctx)
}

// stop ends the poll loop and waits for it; a request in flight finishes
// first (at most the device's timeout).
func (d *devicePoller) stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	<-d.done
}

func (d *devicePoller) run(ctx context.Context) {
	defer close(d.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		started := time.Now()
		d.poll(ctx)
		delay := d.nextDelay()
		next := started.Add(delay)
		if now := time.Now(); !next.After(now) { // overran: skip the missed slots
			next = started.Add((now.Sub(started)/delay + 1) * delay)
		}
		t.Reset(time.Until(next))
	}
}

// nextDelay is the time from this poll's start to the next: the poll
// interval, doubled for every failed poll from the one that made the device
// offline on, up to MaxBackoff.
func (d *devicePoller) nextDelay() time.Duration {
	d.mu.Lock()
	n := d.stats.ConsecutiveFailures
	d.mu.Unlock()
	return backoff(d.dev.PollInterval, d.p.opts.MaxBackoff, n, d.p.opts.OfflineAfter)
}

func backoff(interval, maxBackoff time.Duration, failures, offlineAfter int) time.Duration {
	if failures < offlineAfter {
		return interval
	}
	limit := max(maxBackoff, interval)
	delay := interval
	for i := offlineAfter; i <= failures && delay < limit; i++ {
		delay *= 2
	}
	return min(delay, limit)
}

// poll reads every request of the plan once and hands the readings to the
// sink. A request that gets no answer (or a gateway's exception 10 or 11)
// ends the poll: the device is not there, and every further request would
// cost another timeout on what may be a shared bus. Any other exception
// answer ends only its own request. An offline device is probed with its
// first request alone, without retries; when it answers, the poll goes on.
func (d *devicePoller) poll(ctx context.Context) {
	start := time.Now()
	ts := d.p.opts.Now().UnixMilli()
	d.mu.Lock()
	probing := d.offline
	d.mu.Unlock()

	var readings []protocol.Reading
	var lastErr error
	answered := 0
	for i := 0; i < len(d.plan) && ctx.Err() == nil; i++ {
		if probing && i > 0 {
			break
		}
		r := &d.plan[i]
		data, err := d.read(ctx, r, probing)
		if err != nil {
			lastErr = err
			if transportFailure(err) {
				break
			}
			if code, _ := exceptionCode(err); (code == 2 || code == 3) && len(r.Points) > 1 {
				d.splitRequest(i, code)
				i-- // read the parts now
			}
			continue
		}
		answered++
		probing = false
		for _, pi := range r.Points {
			pt := &d.dev.Template.Points[pi]
			v, err := decodePoint(pt, r, data)
			if err != nil {
				d.count(err)
				lastErr = err
				continue
			}
			q := protocol.QualityGood
			if vr := pt.Range(); !vr.Contains(v) {
				// Kept with bad quality for audit, and counted.
				q = protocol.QualityBad
				d.count(fmt.Errorf("%w: %q = %v outside %s", ErrOutOfRange, pt.Metric, v, vr))
			}
			readings = append(readings, protocol.Reading{Device: d.dev.ID, Metric: pt.Metric, TS: ts, Value: v, Quality: q})
		}
	}
	if ctx.Err() != nil && answered == 0 {
		return // stopped mid-poll: neither success nor failure
	}
	if len(readings) > 0 {
		d.p.opts.Sink(readings)
		d.p.m.pointsRead.WithLabelValues(d.dev.ID).Add(float64(len(readings)))
	}
	d.p.m.pollDuration.WithLabelValues(d.dev.ID).Observe(time.Since(start).Seconds())
	d.finish(start, answered > 0, len(readings), lastErr)
}

// read sends one request, retrying a request that got no answer. Every
// failed attempt is counted.
func (d *devicePoller) read(ctx context.Context, r *Request, probing bool) ([]byte, error) {
	attempts := 1 + d.dev.Retries
	if probing {
		attempts = 1
	}
	for a := 0; ; a++ {
		data, err := d.link.read(d.dev.UnitID, d.dev.Timeout, r)
		if err == nil {
			return data, nil
		}
		d.count(err)
		if !transportFailure(err) || a+1 >= attempts {
			return nil, err
		}
		wait := time.NewTimer(min(retryDelay<<a, d.dev.PollInterval))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil, err
		case <-wait.C:
		}
	}
}

// retryDelay is the wait before the first retry of a request; it doubles
// for each further retry.
const retryDelay = 50 * time.Millisecond

// splitRequest replaces plan entry i by one request per point, after the
// device refused the merged read: a register inside the bridged gap or the
// block's length is not allowed. Kept until the device is reconfigured.
func (d *devicePoller) splitRequest(i int, code byte) {
	r := d.plan[i]
	parts := r.split(d.dev.Template)
	plan := slices.Replace(slices.Clone(d.plan), i, i+1, parts...)
	d.mu.Lock()
	d.plan = plan
	d.stats.RequestsPerPoll = len(plan)
	d.mu.Unlock()
	d.p.m.requests.WithLabelValues(d.dev.ID).Set(float64(len(plan)))
	d.log.Warn("device refused a merged read, reading its points one by one",
		"request", r.String(), "exception", code, "requests_per_poll", len(plan))
}

// count records a request or point error. The first error of each cause is
// logged (at debug level afterwards).
func (d *devicePoller) count(err error) {
	c := cause(err)
	d.p.m.readErrors.WithLabelValues(d.dev.ID, c).Inc()
	d.mu.Lock()
	d.stats.Errors[c]++
	d.stats.LastError = err.Error()
	first := !d.seen[c]
	d.seen[c] = true
	d.mu.Unlock()
	if first {
		d.log.Warn("modbus read error", "cause", c, "error", err)
	} else {
		d.log.Debug("modbus read error", "cause", c, "error", err)
	}
}

// finish updates the state after a poll and reports offline and online
// transitions.
func (d *devicePoller) finish(start time.Time, ok bool, points int, lastErr error) {
	opts := &d.p.opts
	d.mu.Lock()
	s := &d.stats
	s.Polls++
	s.PointsRead += uint64(points)
	s.LastPoll, s.LastPollDuration = start, time.Since(start)
	var wentOffline, cameBack bool
	if ok {
		s.ConsecutiveFailures = 0
		cameBack = d.offline
		d.offline = false
		s.Online = true
		if cameBack {
			clear(d.seen) // log the causes of the next outage again
		}
	} else {
		s.FailedPolls++
		s.ConsecutiveFailures++
		if !d.offline && s.ConsecutiveFailures >= opts.OfflineAfter {
			d.offline, s.Online, wentOffline = true, false, true
		}
	}
	failures := s.ConsecutiveFailures
	d.mu.Unlock()

	switch {
	case ok:
		d.p.m.online.WithLabelValues(d.dev.ID).Set(1)
		if cameBack {
			d.log.Info("device answers again")
			if opts.OnState != nil {
				opts.OnState(d.dev.ID, true, nil)
			}
		}
	case wentOffline:
		d.p.m.online.WithLabelValues(d.dev.ID).Set(0)
		d.log.Warn("device offline", "failed_polls", failures, "cause", lastErr)
		if opts.OnState != nil {
			opts.OnState(d.dev.ID, false, lastErr)
		}
	}
}

func (d *devicePoller) snapshot() DeviceStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Errors = make(map[string]uint64, len(d.stats.Errors))
	for k, v := range d.stats.Errors {
		s.Errors[k] = v
	}
	return s
}
