package queue

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plantroom/plantroom/protocol"
)

var (
	bucketItems   = []byte("items")
	bucketBatches = []byte("batches")
	bucketEvents  = []byte("events")
	bucketMeta    = []byte("meta")

	metaNextKey   = []byte("next_key")
	metaNextSeq   = []byte("next_seq")
	metaNextEvent = []byte("next_event_seq")
	metaEpoch     = []byte("epoch")
)

// itemOverhead approximates bbolt's per-item cost (leaf element header and
// key) so that MaxBytes tracks the space items take in the file.
const itemOverhead = 8 + 16

// pendingWork is what the writer takes in one commit.
type pendingWork struct {
	items     [][]byte
	bytes     int64
	readings  int
	group     *Commit
	force     bool
	commits   [][2]uint64 // seq ranges the cloud committed (Ack: one seq)
	rejects   []Rejection
	sent      []uint64 // PUBACKed: in flight → awaiting commit
	unsent    []uint64 // re-sent: awaiting commit → in flight
	nexts     []*nextRequest
	events    []protocol.Event
	eventAcks []uint64
	markLive  bool
}

// writerState is the queue's in-memory index, owned by the writer.
type writerState struct {
	nextKey, nextSeq, nextEvent uint64
	boundary                    uint64 // first item number of the live lane
	items, bytes, readings      int64
	live, backlog               int64 // readings not yet in a batch, per lane
	inflightReadings            int64 // readings stored in the items of in-flight batches
	sentReadings                int64 // readings stored in the items of batches awaiting commit
	sentBatches                 int
	batches                     []*Batch // formed, not yet committed: sorted by item range
	events                      []Event
	droppedSinceEvent           int64
	lastOverflowEvent           time.Time
	lastCommit                  time.Time
	lastFailLog                 time.Time
	lastDiskErrLog              time.Time
	bound, diskFree             int64 // of the last commit (Stats.BoundBytes, DiskFreeBytes)
}

func (w *writerState) clone() writerState {
	c := *w
	c.batches = append([]*Batch(nil), w.batches...)
	c.events = append([]Event(nil), w.events...)
	return c
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func getU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// load creates the buckets and rebuilds the in-memory index from the file.
func (q *Queue) load() error {
	w := &q.w
	w.bound, w.diskFree = q.cfg.MaxBytes, -1
	err := q.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketItems, bucketBatches, bucketEvents, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		w.nextKey = max(getU64(meta.Get(metaNextKey)), 1)
		w.nextSeq = max(getU64(meta.Get(metaNextSeq)), 1)
		w.nextEvent = max(getU64(meta.Get(metaNextEvent)), 1)
		q.epoch = getU64(meta.Get(metaEpoch))
		if q.epoch == 0 || q.epoch > protocol.MaxEpoch {
			// A new file (or one written before epochs existed) starts
			// a new seq space: the receiver tells it from any other.
			q.epoch = protocol.NewEpoch()
			if err := meta.Put(metaEpoch, u64(q.epoch)); err != nil {
				return err
			}
		}

		bc := tx.Bucket(bucketBatches).Cursor()
		for k, v := bc.First(); k != nil; k, v = bc.Next() {
			b, err := decodeRange(getU64(k), v)
			if err != nil {
				return err
			}
			w.batches = append(w.batches, b)
		}
		slices.SortFunc(w.batches, func(a, b *Batch) int { return cmp.Compare(a.first, b.first) })
		c := tx.Bucket(bucketItems).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			key := getU64(k)
			_, n := itemHeader(v)
			w.items++
			w.bytes += int64(len(v)) + itemOverhead
			w.readings += int64(n)
			if b := w.batchOf(key); b == nil {
				w.backlog += int64(n)
			} else {
				b.held += int64(n)
				w.inflightReadings += int64(n)
			}
			if key >= w.nextKey {
				w.nextKey = key + 1
			}
		}
		w.boundary = w.nextKey
		ec := tx.Bucket(bucketEvents).Cursor()
		for k, v := ec.First(); k != nil; k, v = ec.Next() {
			w.events = append(w.events, Event{Seq: getU64(k), Payload: append([]byte(nil), v...)})
		}
		q.stats.fileSize.Store(tx.Size())
		q.updateOldest(tx)
		return nil
	})
	if err != nil {
		return err
	}
	q.publishState()
	return nil
}

// batchOf returns the formed batch whose range holds key, or nil. The
// ranges are disjoint and sorted.
func (w *writerState) batchOf(key uint64) *Batch {
	i := sort.Search(len(w.batches), func(i int) bool { return w.batches[i].last >= key })
	if i < len(w.batches) && w.batches[i].first <= key {
		return w.batches[i]
	}
	return nil
}

// find returns the formed batch with the given seq, or nil.
func (w *writerState) find(seq uint64) *Batch {
	for _, b := range w.batches {
		if b.Seq == seq {
			return b
		}
	}
	return nil
}

// addBatch inserts a newly formed batch in item order.
func (w *writerState) addBatch(b *Batch) {
	i := sort.Search(len(w.batches), func(i int) bool { return w.batches[i].first > b.first })
	w.batches = slices.Insert(w.batches, i, b)
}

func (q *Queue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.kick:
		case <-q.stop:
			q.commitOnce()
			return
		}
		if wait := time.Until(q.w.lastCommit.Add(q.cfg.CommitInterval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-q.full:
			case <-q.stop:
				t.Stop()
				q.commitOnce()
				return
			}
			t.Stop()
		}
		if !q.commitOnce() {
			// The disk refused the commit; the work was put back. Retry
			// after a pause instead of spinning.
			select {
			case <-time.After(time.Second):
				signal(q.kick)
			case <-q.stop:
				q.commitOnce()
				return
			}
		}
	}
}

// commitOnce runs one group commit. It reports false when the commit failed
// and the work was put back.
func (q *Queue) commitOnce() bool {
	q.pmu.Lock()
	work := q.pending
	q.pending = pendingWork{}
	// A "full" or Flush signal sent for the work just taken must not cut
	// short the wait for the next commit; drained under the same lock, any
	// signal left afterwards is for work added after this point.
	select {
	case <-q.full:
	default:
	}
	q.pmu.Unlock()
	if len(work.sent) > 0 || len(work.unsent) > 0 {
		q.applyMarks(work.sent, work.unsent)
	}
	if len(work.items) == 0 && len(work.commits) == 0 && len(work.rejects) == 0 && len(work.nexts) == 0 &&
		len(work.events) == 0 && len(work.eventAcks) == 0 && !work.markLive && work.group == nil {
		return true
	}

	now := time.Now()
	st := q.w.clone()
	st.bound, st.diskFree = q.bound(&st, now)
	if adding := work.bytes + int64(len(work.items))*itemOverhead; q.diskShort(st.diskFree) &&
		len(work.items) > 0 && st.bytes+adding > st.bound {
		q.makeRoom(&st, st.bound-adding)
	}
	var (
		formed               [][]*Batch
		nextErr              []error
		dropped, droppedSent int64
		rejected             []rejectedBatch
		corrupt              int64
	)
	tx, err := q.db.Begin(true)
	if err == nil {
		err = func() error {
			if err := q.applyCommits(tx, &st, work.commits); err != nil {
				return err
			}
			var err error
			if rejected, err = q.applyRejects(tx, &st, work.rejects); err != nil {
				return err
			}
			if work.markLive {
				st.backlog += st.live
				st.live = 0
				st.boundary = st.nextKey
			}
			if err := q.putItems(tx, &st, work.items, now); err != nil {
				return err
			}
			if dropped, droppedSent, err = q.dropOldest(tx, &st, st.bound); err != nil {
				return err
			}
			events := work.events
			for _, r := range rejected {
				events = append(events, r.event())
			}
			if err := q.applyEvents(tx, &st, events, work.eventAcks, dropped, now); err != nil {
				return err
			}
			for _, r := range work.nexts {
				bs, c, err := q.formBatches(tx, &st, r, now)
				corrupt += c
				formed = append(formed, bs)
				nextErr = append(nextErr, err)
			}
			q.stats.fileSize.Store(tx.Size())
			q.updateOldest(tx)
			return nil
		}()
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	if err != nil {
		q.requeue(work, err, now)
		return false
	}

	st.lastCommit = now
	q.smu.Lock()
	q.w = st
	q.smu.Unlock()
	q.publishState()
	q.stats.commits.Add(1)
	q.stats.committed.Add(int64(work.readings))
	q.stats.dropped.Add(dropped)
	q.stats.droppedSent.Add(droppedSent)
	q.stats.corrupt.Add(corrupt)
	q.countRejected(rejected)
	if work.group != nil {
		close(work.group.done)
	}
	for i, r := range work.nexts {
		r.reply <- nextReply{batches: formed[i], err: nextErr[i]}
	}
	if len(work.items) > 0 || len(work.commits) > 0 || len(work.rejects) > 0 || work.markLive || len(work.events) > 0 {
		signal(q.notify)
	}
	return true
}

// makeRoom drops the oldest items down to target bytes in a commit of
// their own, for a disk short of MinFreeBytes. Pages a transaction frees are
// reusable only by later ones: new items written in the commit that drops
// would need disk space that is not there, and on a full disk that commit
// would fail again and again. If this commit fails too, the main one goes
// ahead as before (and retries).
func (q *Queue) makeRoom(st *writerState, target int64) {
	next := st.clone()
	tx, err := q.db.Begin(true)
	if err != nil {
		return
	}
	dropped, droppedSent, err := q.dropOldest(tx, &next, max(target, 0))
	if err != nil || dropped == 0 {
		tx.Rollback()
		return
	}
	q.updateOldest(tx)
	q.stats.fileSize.Store(tx.Size())
	if err := tx.Commit(); err != nil {
		return
	}
	next.droppedSinceEvent += dropped // the main commit stores the overflow event
	*st = next
	q.smu.Lock()
	q.w = next.clone()
	q.smu.Unlock()
	q.publishState()
	q.stats.commits.Add(1)
	q.stats.dropped.Add(dropped)
	q.stats.droppedSent.Add(droppedSent)
}

// requeue puts the work of a failed commit back in front of what arrived
// since, so nothing appended is lost while the disk recovers.
func (q *Queue) requeue(work pendingWork, err error, now time.Time) {
	if now.Sub(q.w.lastFailLog) >= time.Minute {
		q.w.lastFailLog = now
		q.log.Error("cannot commit queue; retrying", "path", q.cfg.Path, "items", len(work.items), "err", err)
	}
	q.stats.commitErrors.Add(1)
	for _, r := range work.nexts {
		r.reply <- nextReply{err: fmt.Errorf("cannot form batches: %w", err)}
	}
	q.pmu.Lock()
	defer q.pmu.Unlock()
	p := &q.pending
	p.items = append(work.items, p.items...)
	p.bytes += work.bytes
	p.readings += work.readings
	if work.group != nil {
		if p.group != nil {
			// Chain: the older group completes with the newer one.
			older, newer := work.group, p.group
			go func() {
				<-newer.done
				older.err = newer.err
				close(older.done)
			}()
		} else {
			p.group = work.group
		}
	}
	p.commits = append(work.commits, p.commits...)
	p.rejects = append(work.rejects, p.rejects...)
	p.events = append(work.events, p.events...)
	p.eventAcks = append(work.eventAcks, p.eventAcks...)
	p.markLive = p.markLive || work.markLive
}

func (q *Queue) putItems(tx *bolt.Tx, st *writerState, items [][]byte, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	b := tx.Bucket(bucketItems)
	b.FillPercent = 1.0 // keys only ever grow: pack the pages
	for _, v := range items {
		if err := b.Put(u64(st.nextKey), v); err != nil {
			return fmt.Errorf("cannot store item %d: %w", st.nextKey, err)
		}
		_, n := itemHeader(v)
		st.nextKey++
		st.items++
		st.bytes += int64(len(v)) + itemOverhead
		st.readings += int64(n)
		st.live += int64(n)
	}
	return tx.Bucket(bucketMeta).Put(metaNextKey, u64(st.nextKey))
}

// deleteItem removes the item under the cursor and updates the counters;
// b is the formed batch the item belongs to, or nil.
func deleteItem(c *bolt.Cursor, st *writerState, key uint64, v []byte, b *Batch) (int64, error) {
	_, n := itemHeader(v)
	size := int64(len(v)) + itemOverhead
	if err := c.Delete(); err != nil {
		return 0, fmt.Errorf("cannot delete item %d: %w", key, err)
	}
	st.items--
	st.bytes -= size
	st.readings -= int64(n)
	switch {
	case b != nil && b.sent:
		st.sentReadings -= int64(n)
	case b != nil:
		st.inflightReadings -= int64(n)
	case key >= st.boundary:
		st.live -= int64(n)
	default:
		st.backlog -= int64(n)
	}
	return int64(n), nil
}

// bound is this commit's byte bound for the items: MaxBytes, lowered to
// what still fits when the filesystem holds less than MinFreeBytes beyond
// what the queue file has free inside it. The items being added grow the
// file before the space freed in the same commit can be reused, so a commit
// can overshoot by its own size: MinFreeBytes is the reserve that absorbs
// it. It also returns the free space it saw (-1: unknown or not checked).
func (q *Queue) bound(st *writerState, now time.Time) (bound, free int64) {
	if q.cfg.MinFreeBytes < 0 {
		return q.cfg.MaxBytes, -1
	}
	free, err := q.cfg.DiskFree(filepath.Dir(q.cfg.Path))
	if err != nil {
		if now.Sub(st.lastDiskErrLog) >= time.Hour {
			st.lastDiskErrLog = now
			q.log.Warn("queue bounded by max_bytes alone", "err", err)
		}
		return q.cfg.MaxBytes, -1
	}
	headroom := free - q.cfg.MinFreeBytes + int64(q.db.Stats().FreeAlloc)
	return min(q.cfg.MaxBytes, max(st.bytes+headroom, MinBoundBytes)), free
}

// diskShort reports whether free (from bound; -1 unknown) is below
// MinFreeBytes.
func (q *Queue) diskShort(free int64) bool { return free >= 0 && free < q.cfg.MinFreeBytes }

// MinBoundBytes is the least the bound shrinks to on a full disk: room for
// the readings of the moment, so that they still reach the uplink instead
// of being dropped in the commit that stores them. It is also the smallest
// MaxBytes.
const MinBoundBytes = 1 << 20

// dropOldest enforces the bound by deleting the oldest items. A batch
// awaiting its commit acknowledgement goes as a whole, like the items around
// it (the broker has it and the cloud may well have stored it: those
// readings are counted in droppedSent too). A batch in flight (published,
// no PUBACK yet) is kept: the bound yields by at most the in-flight window.
func (q *Queue) dropOldest(tx *bolt.Tx, st *writerState, bound int64) (dropped, droppedSent int64, err error) {
	c := tx.Bucket(bucketItems).Cursor()
	k, v := c.First()
	for k != nil && st.bytes > bound {
		key := getU64(k)
		if b := st.batchOf(key); b != nil {
			if b.sent {
				n, err := q.removeBatch(tx, st, b)
				if err != nil {
					return dropped, droppedSent, err
				}
				dropped += n
				droppedSent += n
			}
			k, v = c.Seek(u64(b.last + 1))
			continue
		}
		n, err := deleteItem(c, st, key, v, nil)
		if err != nil {
			return dropped, droppedSent, err
		}
		dropped += n
		k, v = c.Seek(u64(key + 1))
	}
	return dropped, droppedSent, nil
}

// removeBatch deletes a formed batch: its items, its record and its place
// in the index. It returns the readings its items held.
func (q *Queue) removeBatch(tx *bolt.Tx, st *writerState, b *Batch) (int64, error) {
	var n int64
	c := tx.Bucket(bucketItems).Cursor()
	for k, v := c.Seek(u64(b.first)); k != nil && getU64(k) <= b.last; k, v = c.Seek(u64(b.first)) {
		m, err := deleteItem(c, st, getU64(k), v, b)
		if err != nil {
			return n, err
		}
		n += m
	}
	if err := tx.Bucket(bucketBatches).Delete(u64(b.Seq)); err != nil {
		return n, fmt.Errorf("cannot delete batch %d: %w", b.Seq, err)
	}
	i := sort.Search(len(st.batches), func(i int) bool { return st.batches[i].first >= b.first })
	if i >= len(st.batches) || st.batches[i] != b {
		panic(fmt.Sprintf("BUG: batch %d missing from the index", b.Seq))
	}
	st.batches = slices.Delete(st.batches, i, i+1)
	if b.sent {
		st.sentBatches--
	}
	return n, nil
}

// publishState copies the writer's counters into the stats.
func (q *Queue) publishState() {
	w := &q.w
	s := &q.stats
	s.items.Store(w.items)
	s.bytes.Store(w.bytes)
	s.readings.Store(w.readings)
	s.live.Store(w.live)
	s.backlog.Store(w.backlog)
	s.inflightR.Store(w.inflightReadings)
	s.inflightB.Store(int64(len(w.batches) - w.sentBatches))
	s.sentR.Store(w.sentReadings)
	s.sentB.Store(int64(w.sentBatches))
	s.events.Store(int64(len(w.events)))
	s.bound.Store(w.bound)
	s.diskFree.Store(w.diskFree)
}

func (q *Queue) updateOldest(tx *bolt.Tx) {
	k, v := tx.Bucket(bucketItems).Cursor().First()
	if k == nil {
		q.stats.oldestMs.Store(0)
		return
	}
	ms, _ := itemHeader(v)
	q.stats.oldestMs.Store(ms)
}
