package alarm

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/plantroom/plantroom/cloud/access"
)

// Feed item types.
const (
	ItemAlarm     = string(access.KindAlarm)
	ItemWorkOrder = string(access.KindWorkOrder)
)

// Item is one entry of the staff feed: an alarm event or a work-order event.
// Seq orders every item of the deployment and is the SSE event id.
type Item struct {
	Seq     uint64
	Type    string // ItemAlarm or ItemWorkOrder
	Company string
	Project string
	// Assignees are the technicians a work-order item concerns (the assignee
	// before and after); technicians see work-order items only when listed.
	Assignees []string
	Data      any // the event, marshalled to JSON as the SSE data
}

// Backfill loads stored items with Seq > after in Seq order, for clients
// resuming from further back than the in-memory ring reaches.
type Backfill func(ctx context.Context, after uint64, limit int) ([]Item, error)

// Feed hands out sequence numbers, keeps the latest items in a bounded ring
// and wakes subscribers. Sequence numbers are max(previous+1, wall clock in
// µs), so they keep increasing across restarts without coordination.
type Feed struct {
	mu        sync.Mutex
	now       func() time.Time
	last      uint64
	ring      []Item // ring[start], …, oldest to newest
	start, n  int
	evicted   uint64 // items up to this seq are no longer (or never were) in the ring
	subs      map[chan struct{}]struct{}
	backfills []Backfill
}

// DefaultFeedSize is the number of items the ring keeps when NewFeed gets 0.
const DefaultFeedSize = 4096

// NewFeed returns a feed keeping the latest size items in memory.
func NewFeed(size int, now func() time.Time) *Feed {
	if size <= 0 {
		size = DefaultFeedSize
	}
	if now == nil {
		now = time.Now
	}
	return &Feed{now: now, ring: make([]Item, size), subs: map[chan struct{}]struct{}{}}
}

// AddBackfill registers a source of stored items (alarm events, work-order
// events).
func (f *Feed) AddBackfill(b Backfill) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backfills = append(f.backfills, b)
}

// Advance makes later sequence numbers exceed seq and sends readers asking
// for anything up to seq to the backfill sources (used at start with the
// highest stored sequence).
func (f *Feed) Advance(seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = max(f.last, seq)
	f.evicted = max(f.evicted, seq)
}

// Last is the latest sequence number handed out.
func (f *Feed) Last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// Publish assigns the next sequence number, builds the item with it, keeps
// it and wakes the subscribers. Items enter the ring in sequence order.
func (f *Feed) Publish(build func(seq uint64) Item) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	seq := max(f.last+1, uint64(f.now().UnixMicro()))
	f.last = seq
	it := build(seq)
	it.Seq = seq
	if f.n < len(f.ring) {
		f.ring[(f.start+f.n)%len(f.ring)] = it
		f.n++
	} else {
		f.evicted = f.ring[f.start].Seq
		f.ring[f.start] = it
		f.start = (f.start + 1) % len(f.ring)
	}
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return seq
}

// Subscribe returns a channel that receives a signal after each Publish
// (signals coalesce) and a function that ends the subscription.
func (f *Feed) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

// since returns up to limit ring items with Seq > after; complete is false
// when items after `after` have already left the ring.
func (f *Feed) since(after uint64, limit int) (items []Item, complete bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	complete = after >= f.evicted
	i := sort.Search(f.n, func(i int) bool { return f.ring[(f.start+i)%len(f.ring)].Seq > after })
	for ; i < f.n && len(items) < limit; i++ {
		items = append(items, f.ring[(f.start+i)%len(f.ring)])
	}
	return items, complete
}

// Read returns up to limit items with Seq > after, from the ring when it
// still holds them and from the backfill sources otherwise.
func (f *Feed) Read(ctx context.Context, after uint64, limit int) ([]Item, error) {
	items, complete := f.since(after, limit)
	if complete {
		return items, nil
	}
	f.mu.Lock()
	bfs := slices.Clone(f.backfills)
	f.mu.Unlock()
	var all []Item
	for _, b := range bfs {
		got, err := b(ctx, after, limit)
		if err != nil {
			return nil, err
		}
		all = append(all, got...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	if len(all) > limit {
		all = all[:limit]
	}
	if len(all) == 0 {
		// Nothing stored beyond after (or no backfill): serve what the ring has.
		return items, nil
	}
	return all, nil
}

// Viewer is whoever reads alarms and the feed; package access decides
// what they see.
type Viewer = access.Principal

// Resource is where the alarm belongs, for access decisions.
func (a *Alarm) Resource() access.Resource {
	return access.Resource{Kind: access.KindAlarm, Company: a.Company, Project: a.Project}
}

// VisibleTo reports whether p may see the feed item: an alarm like the
// alarm, a work-order event like the order before or after it (a
// reassignment concerns both assignees).
func (it Item) VisibleTo(p access.Principal) bool {
	r := access.Resource{Kind: access.Kind(it.Type), Company: it.Company, Project: it.Project}
	if len(it.Assignees) == 0 {
		return p.Sees(r)
	}
	for _, a := range it.Assignees {
		r.Assignee = a
		if p.Sees(r) {
			return true
		}
	}
	return false
}
