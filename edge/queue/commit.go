package queue

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/plantroom/plantroom/protocol"
)

// EventBatchRejected is the gateway event stored when the cloud rejects a
// batch: Message names the seq and the cause, Attrs["seq"] and
// Attrs["readings"] give them as numbers.
const EventBatchRejected = "batch_rejected"

// maxRejectCauses bounds the distinct causes counted by name; further ones
// are counted as "other".
const maxRejectCauses = 16

// Rejection is a batch the cloud refuses for good, with its cause (e.g.
// "seq_conflict").
type Rejection struct {
	Seq   uint64
	Cause string
}

// Sent records the broker's PUBACK for a batch: it moves from in flight to
// awaiting its commit acknowledgement, and its payload is released (Resend
// rebuilds it). Unknown seqs are ignored.
func (q *Queue) Sent(seq uint64) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	if q.closed {
		return
	}
	q.pending.sent = append(q.pending.sent, seq)
	signal(q.kick)
}

// Commit deletes the batches whose seqs lie in the given inclusive ranges
// (in the next commit): the cloud stored their readings. Seqs that are not
// formed batches are ignored, so an acknowledgement may be repeated or
// cover more than this queue holds.
func (q *Queue) Commit(ranges [][2]uint64) {
	if len(ranges) == 0 {
		return
	}
	q.pmu.Lock()
	defer q.pmu.Unlock()
	if q.closed {
		return
	}
	q.pending.commits = append(q.pending.commits, ranges...)
	signal(q.kick)
}

// Ack deletes one batch, as Commit of the range [seq, seq].
func (q *Queue) Ack(seq uint64) { q.Commit([][2]uint64{{seq, seq}}) }

// Reject deletes batches the cloud refuses for good (in the next commit):
// their readings are counted by cause (Stats.Rejected) and a
// batch_rejected event is stored for each. Unknown seqs are ignored.
func (q *Queue) Reject(rs []Rejection) {
	if len(rs) == 0 {
		return
	}
	q.pmu.Lock()
	defer q.pmu.Unlock()
	if q.closed {
		return
	}
	q.pending.rejects = append(q.pending.rejects, rs...)
	signal(q.kick)
}

// Outstanding returns the formed batches that no commit acknowledgement
// has covered yet, in seq order, without payloads (Resend builds them).
// Sent tells those that the broker acknowledged in this run.
func (q *Queue) Outstanding() []OutstandingBatch {
	q.smu.Lock()
	defer q.smu.Unlock()
	out := make([]OutstandingBatch, 0, len(q.w.batches))
	for _, b := range q.w.batches {
		out = append(out, OutstandingBatch{Seq: b.Seq, Lane: b.Lane, Readings: b.Readings, Sent: b.sent})
	}
	slices.SortFunc(out, func(a, b OutstandingBatch) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// OutstandingBatch describes a formed, uncommitted batch.
type OutstandingBatch struct {
	Seq      uint64
	Lane     Lane
	Readings int
	Sent     bool // PUBACKed in this run: awaiting commit
}

// Resend returns a formed, uncommitted batch with its payload, byte for
// byte what was sent before (same seq, same send time, same epoch), and
// moves it back to in flight. It returns nil when no such batch is left
// (committed, rejected or dropped meanwhile).
func (q *Queue) Resend(seq uint64) (*Batch, error) {
	q.smu.Lock()
	b := q.w.find(seq)
	var p []byte
	if b != nil {
		p = b.Payload
	}
	q.smu.Unlock()
	if b == nil {
		return nil, nil
	}
	if p == nil {
		var err error
		if p, err = q.rebuild(b); err != nil {
			return nil, err
		}
		if p == nil {
			q.Ack(seq) // every item was damaged: nothing left to send
			return nil, nil
		}
	}
	q.pmu.Lock()
	if !q.closed {
		q.pending.unsent = append(q.pending.unsent, seq)
		signal(q.kick)
	}
	q.pmu.Unlock()
	return &Batch{Seq: b.Seq, Lane: b.Lane, Readings: b.Readings, SentAt: b.SentAt, Payload: p, first: b.first, last: b.last}, nil
}

// applyMarks moves batches between in flight and awaiting commit. Nothing
// of it is stored, so it needs no transaction.
func (q *Queue) applyMarks(sent, unsent []uint64) {
	st := q.w.clone()
	q.smu.Lock()
	for _, seq := range sent {
		if b := st.find(seq); b != nil && !b.sent {
			b.sent, b.Payload = true, nil
			st.sentBatches++
			st.inflightReadings -= b.held
			st.sentReadings += b.held
		}
	}
	for _, seq := range unsent {
		if b := st.find(seq); b != nil && b.sent {
			b.sent = false
			st.sentBatches--
			st.sentReadings -= b.held
			st.inflightReadings += b.held
		}
	}
	q.w = st
	q.smu.Unlock()
	q.publishState()
}

// applyCommits deletes the batches covered by the ranges.
func (q *Queue) applyCommits(tx *bolt.Tx, st *writerState, ranges [][2]uint64) error {
	if len(ranges) == 0 {
		return nil
	}
	rs := mergeRanges(ranges)
	covered := func(seq uint64) bool {
		i := sort.Search(len(rs), func(i int) bool { return rs[i][1] >= seq })
		return i < len(rs) && rs[i][0] <= seq
	}
	for _, b := range slices.Clone(st.batches) {
		if !covered(b.Seq) {
			continue
		}
		if _, err := q.removeBatch(tx, st, b); err != nil {
			return err
		}
	}
	return nil
}

// mergeRanges sorts inclusive ranges and merges overlapping and adjacent
// ones; ranges with first > last are left out.
func mergeRanges(ranges [][2]uint64) [][2]uint64 {
	rs := make([][2]uint64, 0, len(ranges))
	for _, r := range ranges {
		if r[0] <= r[1] {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (r[0] <= out[n-1][1] || r[0]-1 == out[n-1][1]) {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// rejectedBatch is a batch deleted because the cloud rejected it.
type rejectedBatch struct {
	seq      uint64
	cause    string
	readings int64
}

func (r rejectedBatch) event() protocol.Event {
	return protocol.Event{
		Kind:    EventBatchRejected,
		Message: fmt.Sprintf("the cloud rejected batch %d (%d readings): %s; deleted, not re-sent", r.seq, r.readings, r.cause),
		Attrs:   map[string]float64{"seq": float64(r.seq), "readings": float64(r.readings)},
	}
}

func (q *Queue) applyRejects(tx *bolt.Tx, st *writerState, rs []Rejection) ([]rejectedBatch, error) {
	var out []rejectedBatch
	for _, r := range rs {
		b := st.find(r.Seq)
		if b == nil {
			continue
		}
		n, err := q.removeBatch(tx, st, b)
		if err != nil {
			return out, err
		}
		cause := r.Cause
		if protocol.CheckMetric(cause) != nil {
			cause = "other"
		}
		out = append(out, rejectedBatch{seq: r.Seq, cause: cause, readings: n})
	}
	return out, nil
}

// rejectCounters counts rejected batches and readings by cause.
type rejectCounters struct {
	mu       sync.Mutex
	batches  map[string]int64
	readings map[string]int64
}

func (q *Queue) countRejected(rs []rejectedBatch) {
	if len(rs) == 0 {
		return
	}
	c := &q.stats.rejected
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batches == nil {
		c.batches, c.readings = map[string]int64{}, map[string]int64{}
	}
	for _, r := range rs {
		q.log.Warn("the cloud rejected a batch; deleted", "seq", r.seq, "cause", r.cause, "readings", r.readings)
		cause := r.cause
		if _, ok := c.batches[cause]; !ok && len(c.batches) >= maxRejectCauses {
			cause = "other"
		}
		c.batches[cause]++
		c.readings[cause] += r.readings
	}
}

// Rejected is what the cloud rejected since start, by cause.
type Rejected struct {
	Batches, Readings int64
}

func (c *rejectCounters) snapshot() map[string]Rejected {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Rejected, len(c.batches))
	for cause, n := range c.batches {
		out[cause] = Rejected{Batches: n, Readings: c.readings[cause]}
	}
	return out
}
