package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plantroom/plantroom/protocol"
)

// Lane selects which readings Next takes.
type Lane uint8

// Lanes: Live holds the items appended since the last MarkLive, Backlog
// everything older.
const (
	Live    Lane = 1
	Backlog Lane = 2
)

func (l Lane) String() string {
	switch l {
	case Live:
		return "live"
	case Backlog:
		return "backlog"
	}
	return fmt.Sprintf("lane(%d)", uint8(l))
}

// Batch is a telemetry batch formed from a contiguous range of items. It
// lives until a commit acknowledgement covers it (Commit, Ack), the cloud
// rejects it (Reject) or the bound drops it:
//
//	formed by Next ─▶ in flight ─Sent (PUBACK)─▶ awaiting commit ─Commit─▶ deleted
//	                      ▲                            │
//	                      └──────── Resend ────────────┘
//
// Only the seq → item range mapping is stored; the state is memory only:
// after a restart every batch is in flight again and is re-sent.
type Batch struct {
	Seq      uint64
	Lane     Lane
	Readings int
	SentAt   int64  // Unix ms, as in the payload
	Payload  []byte // protocol telemetry batch; nil until (re)built, and again once the broker has it

	first, last uint64   // item range
	values      [][]byte // copies of the items, until the payload is encoded
	sent        bool     // the broker acknowledged it (PUBACK): awaiting commit
	held        int64    // readings its stored items hold
}

// rangeLen is the stored size of a batch's item range record.
const rangeLen = 8 + 8 + 8 + 1 + 4

func (b *Batch) encodeRange() []byte {
	v := make([]byte, rangeLen)
	binary.BigEndian.PutUint64(v, b.first)
	binary.BigEndian.PutUint64(v[8:], b.last)
	binary.BigEndian.PutUint64(v[16:], uint64(b.SentAt))
	v[24] = byte(b.Lane)
	binary.BigEndian.PutUint32(v[25:], uint32(b.Readings))
	return v
}

func decodeRange(seq uint64, v []byte) (*Batch, error) {
	if len(v) != rangeLen {
		return nil, fmt.Errorf("cannot decode batch %d: record has %d bytes, want %d", seq, len(v), rangeLen)
	}
	return &Batch{
		Seq:      seq,
		first:    binary.BigEndian.Uint64(v),
		last:     binary.BigEndian.Uint64(v[8:]),
		SentAt:   int64(binary.BigEndian.Uint64(v[16:])),
		Lane:     Lane(v[24]),
		Readings: int(binary.BigEndian.Uint32(v[25:])),
	}, nil
}

type nextRequest struct {
	lane        Lane
	maxReadings int
	maxBatches  int
	reply       chan nextReply
}

type nextReply struct {
	batches []*Batch
	err     error
}

// Next forms up to maxBatches batches of whole items, each with at most
// maxReadings readings (at least one item), from the given lane, oldest
// items first. Their seq → items mapping is durable when Next returns. It
// returns no batches when the lane has nothing outside the in-flight ones.
func (q *Queue) Next(ctx context.Context, lane Lane, maxReadings, maxBatches int) ([]*Batch, error) {
	if maxReadings <= 0 || maxReadings > protocol.MaxBatchReadings || maxBatches <= 0 {
		return nil, fmt.Errorf("cannot form batches: limits %d readings × %d batches out of range", maxReadings, maxBatches)
	}
	r := &nextRequest{lane: lane, maxReadings: maxReadings, maxBatches: maxBatches, reply: make(chan nextReply, 1)}
	q.pmu.Lock()
	if q.closed {
		q.pmu.Unlock()
		return nil, ErrClosed
	}
	q.pending.nexts = append(q.pending.nexts, r)
	signal(q.kick)
	q.pmu.Unlock()
	var rep nextReply
	select {
	case rep = <-r.reply:
	case <-ctx.Done():
		return nil, fmt.Errorf("cannot form batches: %w", ctx.Err())
	}
	// The writer chose the items and made the mapping durable; encoding
	// the payloads here keeps that work off the writer.
	out := rep.batches[:0]
	var dec itemDecoder
	for _, b := range rep.batches {
		p, err := q.encodeBatch(b, b.values, &dec)
		b.values = nil
		if err != nil {
			q.log.Error("dropping a batch that cannot be encoded", "seq", b.Seq, "err", err)
			q.stats.corrupt.Add(1)
			q.Ack(b.Seq)
			continue
		}
		q.smu.Lock()
		b.Payload = p
		q.smu.Unlock()
		out = append(out, b)
	}
	return out, rep.err
}

// encodeBatch builds a batch's payload from its items.
func (q *Queue) encodeBatch(b *Batch, values [][]byte, dec *itemDecoder) ([]byte, error) {
	rs := make([]protocol.Reading, 0, b.Readings)
	for _, v := range values {
		var err error
		if rs, err = dec.decode(v, rs); err != nil {
			return nil, fmt.Errorf("cannot encode batch %d: %w", b.Seq, err)
		}
	}
	if len(rs) == 0 {
		return nil, nil
	}
	p, err := protocol.AppendBatch(nil, &protocol.Batch{Gateway: q.cfg.Gateway, Epoch: q.epoch, Seq: b.Seq, SentAt: b.SentAt, Readings: rs})
	if err != nil {
		return nil, fmt.Errorf("cannot encode batch %d: %w", b.Seq, err)
	}
	return p, nil
}

// MarkLive makes everything appended so far backlog; later items are live.
func (q *Queue) MarkLive() {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	q.pending.markLive = true
	signal(q.kick)
}

// rebuild re-encodes a batch from its items after a restart, with its
// original seq and send time. It returns nil when no item is left.
func (q *Queue) rebuild(b *Batch) ([]byte, error) {
	var values [][]byte
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketItems).Cursor()
		for k, v := c.Seek(u64(b.first)); k != nil && getU64(k) <= b.last; k, v = c.Next() {
			if err := checkItem(v); err != nil {
				q.log.Warn("skipping corrupt queue item", "item", getU64(k), "batch", b.Seq, "err", err)
				continue
			}
			values = append(values, v) // copied below, before the transaction ends
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot rebuild batch %d: %w", b.Seq, err)
	}
	p, err := q.encodeBatch(b, values, &itemDecoder{})
	if err != nil || p == nil {
		return nil, err
	}
	q.smu.Lock()
	b.Payload = p
	q.smu.Unlock()
	return p, nil
}

// formBatches serves one Next request inside the writer's transaction. It
// also returns the number of corrupt items it found and deleted.
func (q *Queue) formBatches(tx *bolt.Tx, st *writerState, r *nextRequest, now time.Time) ([]*Batch, int64, error) {
	items := tx.Bucket(bucketItems)
	c := items.Cursor()
	var k, v []byte
	if r.lane == Live {
		k, v = c.Seek(u64(st.boundary))
	} else {
		k, v = c.First()
	}
	var (
		out     []*Batch
		corrupt []uint64
	)
	for len(out) < r.maxBatches && k != nil {
		var (
			values      [][]byte
			first, last uint64
			n, size     int
		)
		for k != nil {
			key := getU64(k)
			if r.lane == Backlog && key >= st.boundary {
				k = nil
				break
			}
			if b := st.batchOf(key); b != nil {
				if n > 0 {
					break // keep the batch's range contiguous
				}
				k, v = c.Seek(u64(b.last + 1))
				continue
			}
			_, cnt := itemHeader(v)
			if n > 0 && (n+cnt > r.maxReadings || size+len(v) > protocol.MaxBatchBytes/2) {
				break
			}
			if err := checkItem(v); err != nil {
				q.log.Warn("deleting corrupt queue item", "item", key, "err", err)
				corrupt = append(corrupt, key)
				k, v = c.Next()
				continue
			}
			values = append(values, v) // copied below, before the transaction ends
			if n == 0 {
				first = key
			}
			last = key
			n += cnt
			size += len(v)
			k, v = c.Next()
		}
		if n == 0 {
			break
		}
		// The values point into the transaction's pages: copy them into one
		// buffer for the caller.
		buf := make([]byte, 0, size)
		for i, v := range values {
			buf = append(buf, v...)
			values[i] = buf[len(buf)-len(v):]
		}
		b := &Batch{Seq: st.nextSeq, Lane: r.lane, Readings: n, SentAt: now.UnixMilli(), first: first, last: last, values: values}
		if err := tx.Bucket(bucketBatches).Put(u64(b.Seq), b.encodeRange()); err != nil {
			return out, 0, fmt.Errorf("cannot store batch %d: %w", b.Seq, err)
		}
		st.nextSeq++
		b.held = int64(n)
		st.inflightReadings += int64(n)
		if r.lane == Live {
			st.live -= int64(n)
		} else {
			st.backlog -= int64(n)
		}
		st.addBatch(b)
		out = append(out, b)
	}
	if len(out) > 0 {
		if err := tx.Bucket(bucketMeta).Put(metaNextSeq, u64(st.nextSeq)); err != nil {
			return out, 0, fmt.Errorf("cannot store next seq: %w", err)
		}
	}
	for _, key := range corrupt {
		c := items.Cursor()
		if k, v := c.Seek(u64(key)); k != nil && getU64(k) == key {
			if _, err := deleteItem(c, st, key, v, nil); err != nil {
				return out, 0, err
			}
		}
	}
	return out, int64(len(corrupt)), nil
}
