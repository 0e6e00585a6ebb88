package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/plantroom/plantroom/internal/nettest"
)

// drill is one scripted fault: the stand it needs and what it does to it
// between the warm-up and the final count.
type drill struct {
	name  string
	about string
	spec  func(o *Options) standSpec
	fault func(ctx context.Context, o *Options, s *Stand, r *Result) error
	// after, if set, checks the stored readings once everything settled.
	after func(ctx context.Context, s *Stand, r *Result) error
}

// warm is how long readings flow before a fault and after the repair.
const warm = 5 * time.Second

var drills = []drill{
	{
		name:  "uplink-down",
		about: "the edge's uplink drops every packet (blackhole) for -cut, then heals",
		spec:  func(*Options) standSpec { return standSpec{layout: oneCloud} },
		fault: uplinkDown,
	},
	{
		name:  "broker-restart",
		about: "the broker process (components [broker], store_path set) stops and starts again",
		spec:  func(*Options) standSpec { return standSpec{layout: brokerApart} },
		fault: brokerRestart,
	},
	{
		name:  "broker-kill",
		about: "the broker process (components [broker], store_path set) gets SIGKILL mid-stream and restarts",
		spec:  func(*Options) standSpec { return standSpec{layout: brokerApart} },
		fault: brokerKill,
	},
	{
		name:  "clickhouse-restart",
		about: "ClickHouse stops for -clickhouse-down while readings flow, then starts again",
		spec:  func(o *Options) standSpec { return standSpec{layout: oneCloud, chMode: o.chMode} },
		fault: clickhouseRestart,
	},
	{
		name:  "edge-kill",
		about: "the edge agent gets SIGKILL while it drains a backlog, and restarts on the same queue",
		spec:  func(*Options) standSpec { return standSpec{layout: oneCloud, backlogRate: 40, batchMax: 20} },
		fault: edgeKill,
	},
	{
		name:  "ingest-kill",
		about: "the ingest process (components [ingest]) gets SIGKILL mid-stream and restarts",
		spec:  func(*Options) standSpec { return standSpec{layout: ingestApart, ingestFlush: 2 * time.Second} },
		fault: ingestKill,
	},
	{
		name:  "disk-bound",
		about: "the uplink is cut until the edge queue (1 MiB) drops its oldest readings",
		spec: func(*Options) standSpec {
			return standSpec{layout: oneCloud, heavy: true, queueBytes: 1 << 20}
		},
		fault: diskBound,
		after: oneHolePerDevice,
	},
}

// uplinkDown blackholes the edge's path to the broker for o.cut.
func uplinkDown(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	cutAt := time.Now()
	s.uplink.Cut(nettest.CutBlackhole)
	s.log.Info("uplink cut", "mode", nettest.CutBlackhole, "for", o.cut)
	noticed := s.awaitEdge(ctx, o.cut, func(m *Metrics) bool { return m.Sum(mEdgeConnected) == 0 })
	if err := pause(ctx, time.Until(cutAt.Add(o.cut))); err != nil {
		return err
	}
	backlog, _ := s.queued(ctx)
	s.uplink.Restore()
	if !noticed {
		r.problem("the edge never noticed the cut (uplink_connected stayed 1 for %s)", o.cut)
	}
	if backlog == 0 {
		r.problem("no backlog built up during the cut")
	}
	r.note("cut %s, backlog %d readings", o.cut.Round(time.Second), backlog)
	if err := s.awaitConnected(ctx); err != nil {
		return err
	}
	return pause(ctx, warm)
}

// brokerRestart stops the broker process (SIGTERM) for o.brokerDown and
// starts it again on the same store.
func brokerRestart(ctx context.Context, o *Options, s *Stand, r *Result) error {
	return brokerDown(ctx, o, s, r, false)
}

// brokerKill is brokerRestart with SIGKILL: whatever the broker had
// acknowledged to the gateway but not yet delivered to the ingest must come
// back from its store.
func brokerKill(ctx context.Context, o *Options, s *Stand, r *Result) error {
	return brokerDown(ctx, o, s, r, true)
}

func brokerDown(ctx context.Context, o *Options, s *Stand, r *Result, kill bool) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	if kill {
		// Kill the ingest first, so that the broker queues for its offline
		// session what it has acknowledged to the gateway: after the
		// broker's own SIGKILL only its store can bring those back.
		before, err := s.cloudMetrics(ctx)
		if err != nil {
			return err
		}
		if err := s.ingestProc.Kill(); err != nil {
			return err
		}
		s.insertedBefore += before.Int(mIngestReadings)
		if err := pause(ctx, 3*time.Second); err != nil {
			return err
		}
		edge, err := s.edgeMetrics(ctx)
		if err != nil {
			return err
		}
		if err := s.brokerProc.Kill(); err != nil {
			return err
		}
		// Readings the gateway had seen acknowledged (and deleted from its
		// queue) that the ingest had not committed: the broker's to keep.
		held := edge.Int(mEdgePublished) - before.Int(mIngestReadings)
		r.note("SIGKILL of the ingest, 3s later of the broker, which then held %d readings acknowledged to the gateway and not stored", held)
		if held <= 0 {
			r.problem("the broker held nothing for the ingest when it was killed, so the drill proved nothing")
		}
	} else if err := s.brokerProc.Stop(30 * time.Second); err != nil {
		return err
	}
	s.log.Info("broker stopped", "kill", kill, "for", o.brokerDown)
	noticed := s.awaitEdge(ctx, o.brokerDown, func(m *Metrics) bool { return m.Sum(mEdgeConnected) == 0 })
	if err := pause(ctx, o.brokerDown); err != nil {
		return err
	}
	backlog, _ := s.queued(ctx)
	if err := s.startCloud(ctx, s.brokerProc); err != nil {
		return err
	}
	if kill {
		if err := s.startCloud(ctx, s.ingestProc); err != nil {
			return err
		}
	}
	if !noticed {
		r.problem("the edge never noticed the broker was gone")
	}
	r.note("broker down %s, edge backlog %d readings", o.brokerDown.Round(time.Second), backlog)
	if err := s.awaitConnected(ctx); err != nil {
		return err
	}
	if err := s.await(ctx, "the ingest to reconnect", 60*time.Second, s.ingestProc, func() (bool, error) {
		m, err := s.cloudMetrics(ctx)
		return err == nil && m.Sum(mIngestConnected) == 1, nil
	}); err != nil {
		return err
	}
	return pause(ctx, warm)
}

// clickhouseRestart takes ClickHouse away from the ingest for o.chDown.
func clickhouseRestart(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	before, err := s.cloudMetrics(ctx)
	if err != nil {
		return err
	}
	var up func() error
	switch o.chMode {
	case CHPrivate:
		if err := s.ch.server.Stop(); err != nil {
			return err
		}
		up = func() error { return s.ch.server.Start(ctx) }
	case CHShared:
		if err := sharedClickHouse(ctx, o, "stop"); err != nil {
			return err
		}
		up = func() error { return sharedClickHouse(ctx, o, "start") }
	case CHProxy:
		s.ch.proxy.Cut(nettest.CutReset)
		up = func() error { s.ch.proxy.Restore(); return nil }
	}
	s.log.Info("ClickHouse down", "mode", o.chMode, "for", o.chDown)
	if err := pause(ctx, o.chDown); err != nil {
		return err
	}
	if err := up(); err != nil {
		return err
	}
	after, err := s.cloudMetrics(ctx)
	if err != nil {
		return err
	}
	failures := after.Int(mIngestCHErrors) - before.Int(mIngestCHErrors)
	if failures == 0 {
		r.problem("the ingest never failed a write while ClickHouse was down")
	}
	r.note("ClickHouse (%s) down %s, %d failed writes retried", o.chMode, o.chDown.Round(time.Second), failures)
	return pause(ctx, warm)
}

// sharedClickHouse runs scripts/clickhouse.sh stop or start.
func sharedClickHouse(ctx context.Context, o *Options, verb string) error {
	script := filepath.Join(o.repo, "scripts", "clickhouse.sh")
	out, err := exec.CommandContext(ctx, "bash", script, verb).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cannot %s the shared ClickHouse (%s): %w\n%s", verb, script, err, out)
	}
	return nil
}

// edgeKill builds a backlog, lets the agent drain it and kills it with
// SIGKILL in the middle, then restarts it on the same queue file. Just
// before the kill the link stops carrying anything back from the broker:
// the agent's next batch reaches the cloud and its PUBACK is lost with the
// agent, so the restarted agent must send it again under the same seq and
// the cloud must store it once. The building is frozen around the kill so
// that the readings the killed agent committed are known exactly.
func edgeKill(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	s.uplink.Cut(nettest.CutReset)
	if err := pause(ctx, o.edgeCut); err != nil {
		return err
	}
	committed, dropped, err := s.freezeDevices(ctx)
	if err != nil {
		return err
	}
	m, err := s.edgeMetrics(ctx)
	if err != nil {
		return err
	}
	sentBefore := m.Sum(mEdgePublished, "lane", "backlog")
	s.uplink.Restore()
	drainStarted := s.awaitEdge(ctx, 30*time.Second, func(m *Metrics) bool {
		return m.Sum(mEdgePublished, "lane", "backlog") > sentBefore
	})
	cm, err := s.cloudMetrics(ctx)
	if err != nil {
		return err
	}
	s.uplink.Cut(nettest.CutReturn)
	var left, inflight int64
	held := s.awaitEdge(ctx, 10*time.Second, func(m *Metrics) bool {
		left, inflight = m.Int(mEdgeQueueRead), m.Int(mEdgeQueueRead, "state", "inflight")
		return inflight > 0
	})
	arrived := s.awaitCloud(ctx, 10*time.Second, func(m *Metrics) bool {
		return m.Sum(mIngestMessages, "kind", "telemetry") > cm.Sum(mIngestMessages, "kind", "telemetry")
	})
	if err := s.edge.Kill(); err != nil {
		return err
	}
	s.uplink.Restore()
	s.committedBefore += committed
	s.droppedBefore += dropped
	s.log.Info("edge agent killed", "queued_readings", left, "inflight_readings", inflight)
	if !drainStarted || !held || left <= inflight {
		r.problem("the kill did not fall into a backlog drain with batches in flight (drain started: %t, queued %d, in flight %d)",
			drainStarted, left, inflight)
	}
	if !arrived {
		r.problem("the batch in flight at the kill never reached the ingest")
	}
	r.note("SIGKILL with %d of %d committed readings still queued, %d of them in flight (delivered, PUBACK lost)", left, committed, inflight)
	if err := s.thawDevices(); err != nil {
		return err
	}
	if err := s.startEdge(ctx); err != nil {
		return err
	}
	if err := pause(ctx, warm); err != nil {
		return err
	}
	if m, err := s.edgeMetrics(ctx); err == nil && m.Int(mEdgeResent) == 0 {
		r.problem("the restarted agent did not send the batch in flight again")
	}
	return nil
}

// ingestKill kills the ingest process while it holds unacknowledged
// messages (its flushes wait 2 s to hold several) and starts it again
// after a few seconds.
func ingestKill(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	var unacked, inserted int64
	busy := s.awaitCloud(ctx, 10*time.Second, func(m *Metrics) bool {
		unacked, inserted = m.Int(mIngestUnacked), m.Int(mIngestReadings)
		return unacked >= 2
	})
	s.insertedBefore += inserted
	if err := s.ingestProc.Kill(); err != nil {
		return err
	}
	s.log.Info("ingest killed", "unacked_messages", unacked)
	r.note("SIGKILL with %d messages unacknowledged, down %s", unacked, o.ingestDown.Round(time.Second))
	if !busy {
		r.note("the ingest held nothing unacknowledged in 10s of trying; killed anyway")
	}
	if err := pause(ctx, o.ingestDown); err != nil {
		return err
	}
	if err := s.startCloud(ctx, s.ingestProc); err != nil {
		return err
	}
	return pause(ctx, warm)
}

// diskBound cuts the uplink until the edge queue overflows and drops its
// oldest readings, then heals it. Those readings are lost by policy: the
// drill expects lost == 0 with stored == produced − dropped.
func diskBound(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	s.uplink.Cut(nettest.CutReset)
	if !s.awaitEdge(ctx, 10*time.Second, func(m *Metrics) bool {
		r.InFlightAtCut = m.Int(mEdgeQueueRead, "state", "inflight")
		return m.Sum(mEdgeConnected) == 0
	}) {
		r.problem("the edge did not notice the cut uplink within 10s")
	}
	overflowed := s.awaitEdge(ctx, o.diskWait, func(m *Metrics) bool { return m.Int(mEdgeDropped) > 0 })
	if !overflowed {
		r.problem("the edge queue never reached its bound in %s", o.diskWait)
	} else if err := pause(ctx, 3*time.Second); err != nil { // drop some more
		return err
	}
	s.uplink.Restore()
	if err := s.awaitConnected(ctx); err != nil {
		return err
	}
	return pause(ctx, warm)
}
