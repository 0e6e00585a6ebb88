package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Commit states of a telemetry item, decided by resolve before its flush is
// written.
const (
	batchUnresolved = iota
	batchNew        // not committed before: store it, mark it, ack it
	batchDuplicate  // committed before with the same CRC: store nothing, ack it again
	batchConflict   // committed before with another CRC: store nothing, reject it
)

// CauseSeqConflict counts batches refused because another batch (another
// CRC) was committed under the same (gateway, epoch, seq).
const CauseSeqConflict = protocol.RejectSeqConflict

// EventSeqConflict is the gateway event stored for a seq_conflict.
const EventSeqConflict = "seq_conflict"

// recentWindow is how many committed batches per gateway the ingest keeps
// in memory; older ones are looked up in ClickHouse.
const recentWindow = 512

// ReannounceSeqs bounds the committed seqs re-announced to a gateway that
// comes online.
const ReannounceSeqs = 10000

// recentCommits remembers the last recentWindow committed batches of each
// gateway (key → CRC), so a re-send of a batch just committed needs no
// query. Correctness rests on the durable table; this only saves lookups.
//
// It also keeps, per seq space (gateway, epoch), the highest committed seq
// it knows (read once from ClickHouse, then raised by every commit): a
// batch above it cannot have been committed, so only re-sent batches (at
// or below it, out of the window) cost a lookup.
type recentCommits struct {
	mu     sync.Mutex
	gw     map[string]*commitRing
	floors map[store.GatewayEpoch]uint64
}

type commitRing struct {
	crc   map[store.BatchKey]uint32
	order [recentWindow]store.BatchKey
	next  int
	full  bool
}

func newRecentCommits() *recentCommits {
	return &recentCommits{gw: map[string]*commitRing{}, floors: map[store.GatewayEpoch]uint64{}}
}

// floor returns the highest committed seq known of a seq space, and
// whether it is known at all.
func (r *recentCommits) floor(ge store.GatewayEpoch) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.floors[ge]
	return f, ok
}

// raise makes seq part of what is known committed of its space.
func (r *recentCommits) raise(ge store.GatewayEpoch, seq uint64) {
	r.mu.Lock()
	if f, ok := r.floors[ge]; !ok || seq > f {
		r.floors[ge] = seq
	}
	r.mu.Unlock()
}

// learn records the floors read from ClickHouse (0 for a space without
// committed batches).
func (r *recentCommits) learn(spaces []store.GatewayEpoch, max map[store.GatewayEpoch]uint64) {
	r.mu.Lock()
	for _, ge := range spaces {
		if f, ok := r.floors[ge]; !ok || max[ge] > f {
			r.floors[ge] = max[ge]
		}
	}
	r.mu.Unlock()
}

func (r *recentCommits) get(k store.BatchKey) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ring := r.gw[k.Gateway]
	if ring == nil {
		return 0, false
	}
	crc, ok := ring.crc[k]
	return crc, ok
}

func (r *recentCommits) add(k store.BatchKey, crc uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ge := store.GatewayEpoch{Gateway: k.Gateway, Epoch: k.Epoch}
	if f, ok := r.floors[ge]; ok && k.Seq > f {
		r.floors[ge] = k.Seq
	}
	ring := r.gw[k.Gateway]
	if ring == nil {
		ring = &commitRing{crc: make(map[store.BatchKey]uint32, 16)}
		r.gw[k.Gateway] = ring
	}
	if _, ok := ring.crc[k]; ok {
		return
	}
	if ring.full {
		delete(ring.crc, ring.order[ring.next])
	}
	ring.order[ring.next] = k
	ring.crc[k] = crc
	ring.next++
	if ring.next == recentWindow {
		ring.next, ring.full = 0, true
	}
}

func batchKey(b *protocol.Batch) store.BatchKey {
	return store.BatchKey{Gateway: b.Gateway, Epoch: b.Epoch, Seq: b.Seq}
}

// resolve decides, once per flush, which of its batches are new, duplicates
// or conflicts: from the recent window, from earlier items of the same
// flush, from the highest committed seq of each seq space (one query per
// flush for spaces seen the first time), and from committed_batches for
// batches at or below it (re-sends). It drops the rows of batches that are
// not new and adds a gateway event per conflict. On error nothing is
// decided and the caller retries.
func (w *writer) resolve(ctx context.Context, f *flush) error {
	if f.resolved {
		return nil
	}
	in := w.in
	if in.cfg.withoutCommitAcks {
		for _, it := range f.items {
			it.commit = batchNew
		}
		f.resolved = true
		return nil
	}
	var spaces []store.GatewayEpoch
	seen := map[store.GatewayEpoch]bool{}
	for _, it := range f.items {
		if it.kind != protocol.KindTelemetry {
			continue
		}
		ge := store.GatewayEpoch{Gateway: it.batch.Gateway, Epoch: it.batch.Epoch}
		if _, ok := in.commits.floor(ge); !ok && !seen[ge] {
			seen[ge] = true
			spaces = append(spaces, ge)
		}
	}
	if len(spaces) > 0 {
		max, err := in.cfg.Store.MaxCommittedSeqs(ctx, spaces)
		if err != nil {
			return err
		}
		in.commits.learn(spaces, max)
	}
	var unknown []store.BatchKey
	for _, it := range f.items {
		if it.kind != protocol.KindTelemetry {
			continue
		}
		k := batchKey(it.batch)
		if _, ok := in.commits.get(k); ok {
			continue
		}
		if fl, _ := in.commits.floor(store.GatewayEpoch{Gateway: k.Gateway, Epoch: k.Epoch}); k.Seq <= fl {
			unknown = append(unknown, k)
		}
	}
	stored := map[store.BatchKey]uint32{}
	if len(unknown) > 0 {
		var err error
		if stored, err = in.cfg.Store.CommittedCRCs(ctx, unknown); err != nil {
			return err
		}
	}
	inFlush := map[store.BatchKey]uint32{}
	changed := false
	for _, it := range f.items {
		if it.kind != protocol.KindTelemetry {
			continue
		}
		k := batchKey(it.batch)
		crc, ok := in.commits.get(k)
		if !ok {
			crc, ok = stored[k]
		}
		if !ok {
			crc, ok = inFlush[k]
		}
		switch {
		case !ok:
			it.commit = batchNew
			inFlush[k] = it.batch.CRC
		case crc == it.batch.CRC:
			it.commit = batchDuplicate
			changed = true
		default:
			it.commit = batchConflict
			changed = true
			f.events = append(f.events, conflictEvent(it, crc))
			f.eventItems = append(f.eventItems, nil)
		}
	}
	if changed {
		f.rows.Reset()
		for _, it := range f.items {
			if it.kind == protocol.KindTelemetry && it.commit == batchNew {
				f.addRows(it)
			}
		}
	}
	f.resolved = true
	return nil
}

func conflictEvent(it *item, committedCRC uint32) store.EventRow {
	g, b := it.gw, it.batch
	return store.EventRow{
		Company: g.Company.ID, Project: g.Project.ID, Gateway: g.Gateway.ID, Kind: EventSeqConflict,
		TS: it.arrived.UnixMilli(), Seq: b.Seq, Arrived: it.arrived.UnixMilli(),
		Message: fmt.Sprintf("batch epoch %d seq %d (CRC %#08x) differs from the batch committed under the same seq (CRC %#08x); refused",
			b.Epoch, b.Seq, b.CRC, committedCRC),
		Attrs: fmt.Sprintf(`{"epoch":%d,"crc":%d,"committed_crc":%d}`, b.Epoch, b.CRC, committedCRC),
	}
}

// marks returns the committed_batches rows of a resolved flush's new batches.
func (f *flush) marks(now time.Time, off bool) []store.CommittedBatch {
	var out []store.CommittedBatch
	if off {
		return nil
	}
	for _, it := range f.items {
		if it.kind == protocol.KindTelemetry && it.commit == batchNew {
			b := it.batch
			out = append(out, store.CommittedBatch{Gateway: b.Gateway, Epoch: b.Epoch, Seq: b.Seq, CRC: b.CRC, CommittedMs: now.UnixMilli()})
		}
	}
	return out
}

// settle records a committed flush's batches in the recent window, counts
// duplicates and conflicts, and queues their acknowledgements. It reports
// whether it is an item whose readings are new (observers see only those).
func (in *Ingest) settle(it *item) bool {
	b := it.batch
	switch it.commit {
	case batchNew, batchDuplicate:
		in.commits.add(batchKey(b), b.CRC)
		in.commits.raise(store.GatewayEpoch{Gateway: b.Gateway, Epoch: b.Epoch}, b.Seq)
		if it.commit == batchDuplicate {
			in.metrics.duplicates.Inc()
		}
		in.acks.committed(it.gw, b.Epoch, b.Seq)
		return it.commit == batchNew
	case batchConflict:
		in.metrics.rejectedMessages.WithLabelValues(CauseSeqConflict).Inc()
		if in.rejects.first("seq_conflict/" + b.Gateway) {
			in.log.Warn("refused a batch whose seq was committed with other content (seq_conflict); further conflicts of this gateway are only counted",
				"gateway", b.Gateway, "epoch", b.Epoch, "seq", b.Seq, "crc", fmt.Sprintf("%#08x", b.CRC),
				"metric", "plantroom_ingest_messages_rejected_total")
		}
		in.acks.rejected(it.gw, b.Epoch, b.Seq, protocol.RejectSeqConflict)
	}
	return false
}

// publisher sends downlink messages; the ingest's MQTT client.
type publisher interface {
	publish(topic string, payload []byte)
}

// ackQueue gathers the acknowledgements of a flush per gateway and epoch,
// and sends them as few messages as the entry limit allows. Version-1
// batches (epoch 0) are never acknowledged: their gateways do not listen.
type ackQueue struct {
	mu      sync.Mutex
	pending map[ackKey]*ackEntries
	order   []ackKey
}

type ackKey struct {
	ref   protocol.GatewayRef
	epoch uint64
}

type ackEntries struct {
	committed []uint64
	rejected  []protocol.Rejected
}

func newAckQueue() *ackQueue { return &ackQueue{pending: map[ackKey]*ackEntries{}} }

func (q *ackQueue) entries(gw config.GatewayInfo, epoch uint64) *ackEntries {
	k := ackKey{ref: gw.Ref(), epoch: epoch}
	e := q.pending[k]
	if e == nil {
		e = &ackEntries{}
		q.pending[k] = e
		q.order = append(q.order, k)
	}
	return e
}

func (q *ackQueue) committed(gw config.GatewayInfo, epoch, seq uint64) {
	if epoch == 0 {
		return
	}
	q.mu.Lock()
	e := q.entries(gw, epoch)
	e.committed = append(e.committed, seq)
	q.mu.Unlock()
}

func (q *ackQueue) rejected(gw config.GatewayInfo, epoch, seq uint64, cause string) {
	if epoch == 0 {
		return
	}
	q.mu.Lock()
	e := q.entries(gw, epoch)
	e.rejected = append(e.rejected, protocol.Rejected{Seq: seq, Cause: cause})
	q.mu.Unlock()
}

// take empties the queue.
func (q *ackQueue) take() ([]ackKey, map[ackKey]*ackEntries) {
	q.mu.Lock()
	defer q.mu.Unlock()
	order, pending := q.order, q.pending
	q.order, q.pending = nil, map[ackKey]*ackEntries{}
	return order, pending
}

// ackMessages builds the acks for one gateway and epoch: committed seqs as
// merged ranges, rejected ones (unless also committed, which wins: a batch
// once committed stays committed) in seq order, at most MaxAckEntries
// entries per message.
func ackMessages(epoch uint64, e *ackEntries, now time.Time) [][]byte {
	ranges := protocol.RangesOf(e.committed)
	probe := protocol.Ack{Committed: ranges}
	var rejected []protocol.Rejected
	seen := map[uint64]bool{}
	for _, r := range e.rejected {
		if !probe.Covers(r.Seq) && !seen[r.Seq] {
			seen[r.Seq] = true
			rejected = append(rejected, r)
		}
	}
	sortRejected(rejected)
	var out [][]byte
	for len(ranges) > 0 || len(rejected) > 0 {
		a := protocol.Ack{Epoch: epoch, TS: now.UnixMilli()}
		n := min(len(ranges), protocol.MaxAckEntries)
		a.Committed, ranges = ranges[:n], ranges[n:]
		m := min(len(rejected), protocol.MaxAckEntries-n)
		a.Rejected, rejected = rejected[:m], rejected[m:]
		out = append(out, protocol.EncodeAck(a))
	}
	return out
}

func sortRejected(rs []protocol.Rejected) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Seq < rs[j-1].Seq; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// sendAcks publishes what the ack queue holds.
func (in *Ingest) sendAcks() {
	order, pending := in.acks.take()
	if in.cfg.withoutCommitAcks {
		return
	}
	now := time.Now()
	for _, k := range order {
		for _, msg := range ackMessages(k.epoch, pending[k], now) {
			in.sub.publish(k.ref.DownlinkTopic(protocol.DownAck), msg)
			in.metrics.acks.Inc()
		}
	}
}

// reannounce publishes, for a gateway that came online, the committed seqs
// of its current epoch (the epoch of its latest committed batch), so it can
// free its queue without re-sending. It runs in its own goroutine, one
// gateway at a time; requests for a gateway already waiting are merged.
func (in *Ingest) reannounceLoop() {
	defer in.wg.Done()
	for {
		select {
		case <-in.stopping:
			return
		case <-in.announce.wake:
		}
		for _, gw := range in.announce.take() {
			ctx, cancel := context.WithTimeout(in.ctx, 30*time.Second)
			epoch, seqs, err := in.cfg.Store.RecentCommitted(ctx, gw.Gateway.ID, ReannounceSeqs)
			cancel()
			if err != nil {
				in.log.Warn("cannot re-announce committed batches to a gateway that came online; it re-sends them instead",
					"gateway", gw.Gateway.ID, "error", err)
				continue
			}
			if epoch == 0 || len(seqs) == 0 {
				continue
			}
			for _, msg := range ackMessages(epoch, &ackEntries{committed: seqs}, time.Now()) {
				in.sub.publish(gw.Ref().DownlinkTopic(protocol.DownAck), msg)
				in.metrics.acks.Inc()
			}
			in.metrics.reannounced.Inc()
		}
	}
}

// announceRequests are the gateways waiting for a re-announcement.
type announceRequests struct {
	mu      sync.Mutex
	waiting map[string]config.GatewayInfo
	order   []string
	wake    chan struct{}
}

func newAnnounceRequests() *announceRequests {
	return &announceRequests{waiting: map[string]config.GatewayInfo{}, wake: make(chan struct{}, 1)}
}

func (a *announceRequests) request(gw config.GatewayInfo) {
	a.mu.Lock()
	if _, ok := a.waiting[gw.Gateway.ID]; !ok {
		a.waiting[gw.Gateway.ID] = gw
		a.order = append(a.order, gw.Gateway.ID)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *announceRequests) take() []config.GatewayInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]config.GatewayInfo, 0, len(a.order))
	for _, id := range a.order {
		out = append(out, a.waiting[id])
	}
	a.waiting, a.order = map[string]config.GatewayInfo{}, nil
	return out
}
