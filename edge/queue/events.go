package queue

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plantroom/plantroom/protocol"
)

// Event is a stored gateway event: its seq and its JSON message.
type Event struct {
	Seq     uint64
	Payload []byte // protocol.EncodeEvent output
}

// AddEvent stores a gateway event with the next event seq in the next
// commit. The queue fills in Gateway, Seq and (when zero) TS. Beyond
// MaxEvents unsent events, the oldest are dropped.
func (q *Queue) AddEvent(e protocol.Event) error {
	if err := protocol.CheckMetric(e.Kind); err != nil {
		return fmt.Errorf("cannot add event: kind: %w", err)
	}
	if e.Device != "" {
		if err := protocol.CheckID(e.Device); err != nil {
			return fmt.Errorf("cannot add event %q: device: %w", e.Kind, err)
		}
	}
	q.pmu.Lock()
	defer q.pmu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.pending.events = append(q.pending.events, e)
	signal(q.kick)
	return nil
}

// Events returns the stored, unacknowledged events in seq order.
func (q *Queue) Events() []Event {
	q.smu.Lock()
	defer q.smu.Unlock()
	return append([]Event(nil), q.w.events...)
}

// AckEvent deletes a published event (in the next commit).
func (q *Queue) AckEvent(seq uint64) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	if q.closed {
		return
	}
	q.pending.eventAcks = append(q.pending.eventAcks, seq)
	signal(q.kick)
}

// applyEvents stores new events (and a queue_overflow event when readings
// were dropped), deletes acknowledged ones and enforces MaxEvents.
func (q *Queue) applyEvents(tx *bolt.Tx, st *writerState, add []protocol.Event, acks []uint64, dropped int64, now time.Time) error {
	b := tx.Bucket(bucketEvents)
	for _, seq := range acks {
		for i, e := range st.events {
			if e.Seq == seq {
				st.events = append(st.events[:i], st.events[i+1:]...)
				if err := b.Delete(u64(seq)); err != nil {
					return fmt.Errorf("cannot delete event %d: %w", seq, err)
				}
				break
			}
		}
	}
	st.droppedSinceEvent += dropped
	if st.droppedSinceEvent > 0 && now.Sub(st.lastOverflowEvent) >= q.cfg.OverflowEventInterval {
		msg := fmt.Sprintf("queue reached its bound of %d bytes: dropped the %d oldest readings", q.cfg.MaxBytes, st.droppedSinceEvent)
		attrs := map[string]float64{"dropped": float64(st.droppedSinceEvent), "max_bytes": float64(q.cfg.MaxBytes), "bound_bytes": float64(st.bound)}
		if st.bound < q.cfg.MaxBytes {
			msg = fmt.Sprintf("disk nearly full (%d bytes free, min_free %d): queue bound lowered to %d bytes, dropped the %d oldest readings",
				st.diskFree, q.cfg.MinFreeBytes, st.bound, st.droppedSinceEvent)
		}
		if st.diskFree >= 0 {
			attrs["disk_free_bytes"] = float64(st.diskFree)
		}
		add = append(add, protocol.Event{Kind: protocol.EventQueueOverflow, Message: msg, Attrs: attrs})
		st.droppedSinceEvent = 0
		st.lastOverflowEvent = now
	}
	if len(add) == 0 {
		return nil
	}
	for _, e := range add {
		e.Gateway = q.cfg.Gateway
		e.Seq = st.nextEvent
		if e.TS == 0 {
			e.TS = now.UnixMilli()
		}
		p := protocol.EncodeEvent(e)
		if err := b.Put(u64(e.Seq), p); err != nil {
			return fmt.Errorf("cannot store event %d: %w", e.Seq, err)
		}
		st.events = append(st.events, Event{Seq: e.Seq, Payload: p})
		st.nextEvent++
	}
	for len(st.events) > q.cfg.MaxEvents {
		if err := b.Delete(u64(st.events[0].Seq)); err != nil {
			return fmt.Errorf("cannot delete event %d: %w", st.events[0].Seq, err)
		}
		st.events = st.events[1:]
	}
	return tx.Bucket(bucketMeta).Put(metaNextEvent, u64(st.nextEvent))
}
