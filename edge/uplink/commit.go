package uplink

import (
	"fmt"
	"slices"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/protocol"
)

// awaitState is a batch the broker acknowledged, waiting for the cloud's
// commit acknowledgement.
type awaitState struct {
	published time.Time // this send's publish time
	due       time.Time // re-sent when no commit acknowledgement came by then
}

// maxDueBatch bounds the batches one scan picks for re-sending.
const maxDueBatch = 64

// sortOutstanding runs at connect: batches PUBACKed over an earlier
// connection of this run keep waiting for their commit acknowledgement
// (the cloud re-announces what it committed when the gateway comes
// online); every other formed batch is re-sent at once. After a restart
// that is every batch not yet committed.
func (u *Uplink) sortOutstanding() []uint64 {
	outs := u.q.Outstanding()
	known := make(map[uint64]bool, len(outs))
	var now []uint64
	for _, o := range outs {
		known[o.Seq] = true
		if _, ok := u.awaiting[o.Seq]; ok && o.Sent {
			continue
		}
		now = append(now, o.Seq)
	}
	for seq := range u.awaiting {
		if !known[seq] {
			delete(u.awaiting, seq)
		}
	}
	for seq := range u.resends {
		if !known[seq] {
			delete(u.resends, seq)
		}
	}
	if len(u.awaiting) == 0 {
		u.waitingSince.Store(0)
	}
	return now
}

// subscribe subscribes to the gateway's downlink topics: "ack" and those
// with a handler. A broker that refuses the subscription (an ACL without
// the gateway's down/ topics) is logged: the uplink goes on sending, and
// without acknowledgements it re-sends and reports degraded.
func (s *session) subscribe() error {
	u := s.u
	prefix := u.cfg.Gateway.DownlinkTopic("")
	filters := map[string]byte{prefix + protocol.DownAck: 1}
	for name := range u.downlink {
		filters[prefix+name] = 1
	}
	// No handler here: the client's default handler takes them (session).
	tok := s.c.SubscribeMultiple(filters, nil)
	if !waitToken(tok, u.cfg.ConnectTimeout, u.stopped) {
		return fmt.Errorf("cannot subscribe to %s: no SUBACK within %s", prefix+"…", u.cfg.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("cannot subscribe to %s: %w", prefix+"…", err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for topic, code := range st.Result() {
			if code == 0x80 {
				u.log.Error("the broker refused the subscription: no commit acknowledgements will arrive; batches are re-sent and kept",
					"topic", topic)
			}
		}
	}
	return nil
}

// downlink dispatches one downlink message by name. It runs on paho's
// goroutine; the commit acknowledgement goes to the session loop.
func (s *session) downlink(name string, payload []byte) {
	if name == protocol.DownAck {
		select {
		case s.u.acks <- payload:
		case <-s.done:
		}
		return
	}
	if h := s.u.downlink[name]; h != nil {
		h(payload)
	}
}

// applyAck applies one commit acknowledgement: committed batches leave
// the queue, rejected ones are deleted and counted. Acknowledgements for
// another epoch (another queue file of this gateway, e.g. before the disk
// was replaced) are ignored.
func (s *session) applyAck(p []byte) {
	u := s.u
	a, err := protocol.DecodeAck(p)
	if err != nil {
		u.m.acks.WithLabelValues("invalid").Inc()
		u.logLimited(&u.lastBadAckLog, "ignoring an invalid commit acknowledgement", "err", err)
		return
	}
	if epoch := u.q.Epoch(); a.Epoch != epoch {
		u.m.acks.WithLabelValues("other_epoch").Inc()
		u.logLimited(&u.lastBadAckLog, "ignoring a commit acknowledgement for another epoch", "epoch", a.Epoch, "ours", epoch)
		return
	}
	u.m.acks.WithLabelValues("applied").Inc()
	now := time.Now()
	u.lastAck.Store(now.UnixMilli())
	ranges := make([][2]uint64, len(a.Committed))
	for i, r := range a.Committed {
		ranges[i] = r
	}
	u.q.Commit(ranges)
	if len(a.Rejected) > 0 {
		rs := make([]queue.Rejection, len(a.Rejected))
		for i, r := range a.Rejected {
			rs[i] = queue.Rejection{Seq: r.Seq, Cause: r.Cause}
			delete(u.awaiting, r.Seq)
			delete(u.resends, r.Seq)
		}
		u.q.Reject(rs)
	}
	for seq, w := range u.awaiting {
		if a.Covers(seq) {
			u.m.commitLatency.Observe(now.Sub(w.published).Seconds())
			u.m.committed.Inc()
			delete(u.awaiting, seq)
			delete(u.resends, seq)
		}
	}
	for k, m := range s.outstanding {
		if k.kind == kindBatch && a.Covers(k.seq) && !s.committed[k.seq] {
			// Committed before its PUBACK arrived.
			u.m.commitLatency.Observe(now.Sub(m.sent).Seconds())
			u.m.committed.Inc()
			s.committed[k.seq] = true
			delete(u.resends, k.seq)
		}
	}
	if len(u.awaiting) == 0 {
		u.waitingSince.Store(0)
	} else {
		u.waitingSince.Store(now.UnixMilli())
	}
}

// puback records a batch's PUBACK: it now waits for its commit
// acknowledgement, CommitTimeout doubled per earlier re-send.
func (s *session) puback(m *outMsg) {
	u := s.u
	seq := m.key.seq
	if s.committed[seq] {
		delete(s.committed, seq)
		return
	}
	u.q.Sent(seq)
	now := time.Now()
	wait := backoff{u.cfg.CommitTimeout, u.cfg.CommitTimeoutMax}.step(u.resends[seq])
	u.awaiting[seq] = &awaitState{published: m.sent, due: now.Add(wait)}
	if u.waitingSince.Load() == 0 {
		u.waitingSince.Store(now.UnixMilli())
	}
}

// dueResends returns the batches whose commit acknowledgement is overdue,
// oldest seq first, at most maxDueBatch; it looks at most every 100 ms.
func (s *session) dueResends(free int) []uint64 {
	u := s.u
	now := time.Now()
	if free <= 0 || len(u.awaiting) == 0 || now.Sub(s.lastDueScan) < 100*time.Millisecond {
		return nil
	}
	s.lastDueScan = now
	var due []uint64
	var oldest time.Time
	for seq, w := range u.awaiting {
		if !now.Before(w.due) {
			due = append(due, seq)
			if oldest.IsZero() || w.published.Before(oldest) {
				oldest = w.published
			}
		}
	}
	if len(due) == 0 {
		return nil
	}
	slices.Sort(due)
	if len(due) > maxDueBatch {
		due = due[:maxDueBatch]
	}
	for _, seq := range due {
		u.resends[seq]++
	}
	u.m.commitTimeouts.Add(float64(len(due)))
	u.logLimited(&u.lastResendLog, "no commit acknowledgement in time; re-sending",
		"batches", len(due), "first_seq", due[0], "waited", now.Sub(oldest).Round(time.Millisecond).String(),
		"awaiting", len(u.awaiting))
	return due
}

// logLimited logs a warning at most once a minute per *last.
func (u *Uplink) logLimited(last *time.Time, msg string, args ...any) {
	if now := time.Now(); now.Sub(*last) >= time.Minute {
		*last = now
		u.log.Warn(msg, args...)
	}
}

// CommitWait is the commit acknowledgement side of the uplink's health.
type CommitWait struct {
	// Waiting is how long batches have been waiting with no commit
	// acknowledgement at all (0: none waits, or one came since).
	Waiting time.Duration
	// LastAck is the time of the last acknowledgement for this epoch
	// (zero: none since start).
	LastAck time.Time
	// Degraded: Waiting exceeds CommitDegradedAfter.
	Degraded bool
}

// CommitWait reports how long the cloud has left batches without a commit
// acknowledgement.
func (u *Uplink) CommitWait() CommitWait {
	var w CommitWait
	if ms := u.lastAck.Load(); ms > 0 {
		w.LastAck = time.UnixMilli(ms)
	}
	if ms := u.waitingSince.Load(); ms > 0 {
		w.Waiting = time.Since(time.UnixMilli(ms))
		w.Degraded = w.Waiting > u.cfg.CommitDegradedAfter
	}
	return w
}
