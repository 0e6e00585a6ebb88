// Package queue is the edge agent's durable store-and-forward queue: readings
// are appended to a bbolt file with group commit, leave it as numbered
// telemetry batches, and are deleted only after the cloud acknowledged the
// commit of the batch that carried them (Commit), or rejected it (Reject).
//
// # Layout
//
// Bucket "items" holds one item per Add call: key = big-endian uint64 item
// number (append order), value = append time, reading count, CRC-32C and
// the readings (see item.go). Bucket "batches" maps a batch sequence number to the
// contiguous range of item numbers it carries. Bucket "events" holds gateway
// events (JSON) by event sequence number. Bucket "meta" keeps the next item
// number, the next batch seq, the next event seq and the epoch (a random
// id picked when the file is created, sent in every batch header).
//
// # Group commit
//
// Add encodes the readings in the caller's goroutine and hands the item to
// one writer goroutine; it never waits for the disk. The writer commits
// everything that arrived (appends, acknowledgements, batch formation,
// events) in one transaction with one fsync, at most once per
// CommitInterval, sooner when CommitMaxItems items are waiting. A reading
// counts as taken only when the commit that holds it returned (Commit.Wait,
// Append, the committed-readings counter).
//
// # Bound and overflow
//
// The items are bounded by MaxBytes (payload plus per-item overhead). When a
// commit would exceed it, the oldest items are deleted in the same
// transaction: a batch awaiting its commit acknowledgement goes whole with
// them (also counted apart: the cloud may have stored it), an in-flight
// batch (published, no PUBACK yet) is kept for its PUBACK or its re-send, so
// the bound yields by at most the in-flight window. The dropped readings are
// counted and a queue_overflow event
// (Attrs["dropped"]) is stored, at most one per OverflowEventInterval. If
// the writer falls behind (a stalled disk), Add refuses with ErrOverloaded
// instead of blocking the caller or growing without bound.
//
// # Sequence numbers and exactly-once
//
// A batch's seq is assigned when the batch is formed from items, and the
// seq → item range mapping is written in the same transaction as the next
// seq, before the batch is handed out for publishing. After a crash, or a
// commit timeout, the same items are re-sent under the same seq (with the
// same send time and epoch), byte for byte, so the receiver can drop the
// duplicate by (gateway, epoch, seq). The states of a batch are described
// at Batch.
//
// # Live first
//
// MarkLive (called by the uplink when it connects) moves a boundary to the
// end of the queue: items below it are the backlog, items above it live.
// Next forms batches from either lane, so the uplink can send fresh readings
// first and drain the backlog oldest-first at its own rate.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plantroom/plantroom/protocol"
)

// Defaults for a zero Config field.
const (
	DefaultMaxBytes              = 256 << 20
	DefaultMinFreeBytes          = 64 << 20
	DefaultCommitInterval        = 50 * time.Millisecond
	DefaultCommitMaxItems        = 2048
	DefaultPendingMaxBytes       = 16 << 20
	DefaultMaxEvents             = 1000
	DefaultOverflowEventInterval = time.Minute
)

// Sentinel errors.
var (
	ErrOverloaded = errors.New("queue writer is behind, readings refused")
	ErrClosed     = errors.New("queue is closed")
)

// Config configures a queue.
type Config struct {
	Path    string // bbolt file; its directory is created
	Gateway string // gateway id, written into every batch
	// MaxBytes bounds the stored items (payload + overhead); the oldest
	// items not in flight are dropped beyond it.
	MaxBytes int64
	// MinFreeBytes is the room the queue leaves free on its filesystem.
	// When other files (logs, say) have taken the disk, the bound drops
	// below MaxBytes to what still fits, and the oldest items go as they
	// would at MaxBytes: the queue never fills the disk, and live readings
	// keep being stored. 0 means DefaultMinFreeBytes; negative turns the
	// check off.
	MinFreeBytes int64
	// DiskFree reports the bytes available in dir; nil means statfs(2).
	// Tests set it to simulate a filling disk.
	DiskFree func(dir string) (int64, error)
	// CommitInterval is the longest time between commits while there is
	// work; it bounds how long an appended reading waits to be durable and
	// how often the disk is synced.
	CommitInterval time.Duration
	// CommitMaxItems starts a commit early when that many items wait.
	CommitMaxItems int
	// PendingMaxBytes bounds the items waiting for their commit in memory.
	PendingMaxBytes int64
	// MaxEvents bounds the stored, unsent events (oldest dropped).
	MaxEvents int
	// OverflowEventInterval is the shortest time between two
	// queue_overflow events.
	OverflowEventInterval time.Duration
	// NoSync turns off fsync. Only for tests and benchmarks that measure
	// something else: a crash loses committed readings with it.
	NoSync bool
}

func (c *Config) setDefaults() {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = DefaultMinFreeBytes
	}
	if c.DiskFree == nil {
		c.DiskFree = FreeSpace
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.CommitMaxItems == 0 {
		c.CommitMaxItems = DefaultCommitMaxItems
	}
	if c.PendingMaxBytes == 0 {
		c.PendingMaxBytes = DefaultPendingMaxBytes
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.OverflowEventInterval == 0 {
		c.OverflowEventInterval = DefaultOverflowEventInterval
	}
}

func (c *Config) validate() error {
	switch {
	case c.Path == "":
		return errors.New("cannot configure queue: path is empty")
	case protocol.CheckID(c.Gateway) != nil:
		return fmt.Errorf("cannot configure queue: gateway: %w", protocol.CheckID(c.Gateway))
	case c.MaxBytes < MinBoundBytes:
		return fmt.Errorf("cannot configure queue: max bytes %d is below 1 MiB", c.MaxBytes)
	case c.CommitInterval < 0 || c.CommitMaxItems < 0 || c.PendingMaxBytes < 0 || c.MaxEvents < 0:
		return errors.New("cannot configure queue: negative limit")
	}
	return nil
}

// Queue is the durable reading queue. New → Start → Stop.
type Queue struct {
	cfg Config
	log *slog.Logger
	db  *bolt.DB

	// Work handed to the writer, guarded by pmu.
	pmu     sync.Mutex
	pending pendingWork
	closed  bool

	kick   chan struct{} // something to do
	full   chan struct{} // CommitMaxItems reached
	notify chan struct{} // a commit changed what can be sent
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	// w is owned by the writer goroutine; it replaces w under smu so that
	// InFlight and Events can read the lists.
	smu sync.Mutex
	w   writerState

	stats statsCounters

	// epoch is the file's seq space, read from (or stored in) its meta
	// bucket at Start; fixed afterwards.
	epoch uint64
}

// Epoch is the random id of this queue file's seq space, picked when the
// file was created and carried in every batch: a wiped or new queue starts
// numbering again under another epoch. Valid after Start.
func (q *Queue) Epoch() uint64 { return q.epoch }

// Commit is the group commit an appended item belongs to.
type Commit struct {
	done chan struct{}
	err  error
}

// Wait blocks until the commit is durable and returns its error.
func (c *Commit) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("cannot wait for queue commit: %w", ctx.Err())
	}
}

// Done is closed when the commit finished.
func (c *Commit) Done() <-chan struct{} { return c.done }

// Err is the commit's result once Done is closed.
func (c *Commit) Err() error { return c.err }

// New checks the configuration. Start opens the file.
func New(cfg Config, log *slog.Logger) (*Queue, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue{
		cfg:    cfg,
		log:    log,
		kick:   make(chan struct{}, 1),
		full:   make(chan struct{}, 1),
		notify: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}, nil
}

// Start opens (or creates) the queue file, loads its state and starts the
// writer. A second agent on the same file fails here after one second.
func (q *Queue) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cannot start queue: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(q.cfg.Path), 0o700); err != nil {
		return fmt.Errorf("cannot create queue directory: %w", err)
	}
	db, err := bolt.Open(q.cfg.Path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// The freelist is rebuilt by a scan at open instead of being
		// written at every commit: fewer pages written per commit.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		NoSync:         q.cfg.NoSync,
	})
	if err != nil {
		return fmt.Errorf("cannot open queue %q: %w", q.cfg.Path, err)
	}
	q.db = db
	if err := q.load(); err != nil {
		db.Close()
		return fmt.Errorf("cannot load queue %q: %w", q.cfg.Path, err)
	}
	go q.run()
	return nil
}

// Stop commits what is pending, stops the writer and closes the file. It is
// idempotent; waiters of later Adds get ErrClosed.
func (q *Queue) Stop() {
	q.once.Do(func() {
		q.pmu.Lock()
		q.closed = true
		q.pmu.Unlock()
		if q.db == nil {
			return
		}
		close(q.stop)
		<-q.done
		if err := q.db.Close(); err != nil {
			q.log.Error("cannot close queue", "path", q.cfg.Path, "err", err)
		}
	})
}

// Notify receives a value after a commit that added items or changed what
// can be sent.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

// Add encodes rs as one item and hands it to the writer without waiting for
// the disk. The returned Commit completes when the item is durable. rs must
// not be empty and must pass the protocol checks (ids, metric names, finite
// values).
func (q *Queue) Add(rs []protocol.Reading) (*Commit, error) {
	if len(rs) == 0 {
		return nil, errors.New("cannot add readings: none given")
	}
	now := time.Now().UnixMilli()
	val, err := encodeItem(now, rs)
	if err != nil {
		return nil, fmt.Errorf("cannot add readings: %w", err)
	}
	q.pmu.Lock()
	defer q.pmu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	if q.pending.bytes+int64(len(val)) > q.cfg.PendingMaxBytes {
		q.stats.refused.Add(int64(len(rs)))
		return nil, fmt.Errorf("cannot add %d readings: %w (%d bytes waiting)", len(rs), ErrOverloaded, q.pending.bytes)
	}
	if q.pending.group == nil {
		q.pending.group = &Commit{done: make(chan struct{})}
	}
	q.pending.items = append(q.pending.items, val)
	q.pending.bytes += int64(len(val))
	q.pending.readings += len(rs)
	g := q.pending.group
	signal(q.kick)
	if len(q.pending.items) >= q.cfg.CommitMaxItems {
		signal(q.full)
	}
	return g, nil
}

// Append adds rs and waits until they are durable.
func (q *Queue) Append(ctx context.Context, rs []protocol.Reading) error {
	c, err := q.Add(rs)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// Flush waits until everything added so far is committed.
func (q *Queue) Flush(ctx context.Context) error {
	q.pmu.Lock()
	if q.closed {
		q.pmu.Unlock()
		return ErrClosed
	}
	if q.pending.group == nil {
		q.pending.group = &Commit{done: make(chan struct{})}
	}
	g := q.pending.group
	q.pending.force = true
	signal(q.kick)
	signal(q.full)
	q.pmu.Unlock()
	return g.Wait(ctx)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Stats is a snapshot of the queue's state and counters.
type Stats struct {
	Items, Bytes, Readings int64
	Oldest                 time.Time // append time of the oldest item; zero when empty
	LiveReadings           int64     // not yet in a batch, above the live boundary
	BacklogReadings        int64     // not yet in a batch, below the live boundary
	// InFlight: formed batches published and waiting for their PUBACK
	// (after a restart: every formed batch until it is sent again).
	InFlightBatches  int
	InFlightReadings int64
	// Awaiting: batches the broker acknowledged, waiting for the cloud's
	// commit acknowledgement.
	AwaitingBatches  int
	AwaitingReadings int64
	Events           int // stored, unacknowledged events
	FileBytes        int64
	// BoundBytes is the bound of the last commit: MaxBytes, or less while
	// the disk is short of MinFreeBytes. DiskFreeBytes is what the
	// filesystem had available then (-1: unknown, or the check is off).
	BoundBytes, DiskFreeBytes int64
	// DiskShort: DiskFreeBytes is known and below MinFreeBytes.
	DiskShort bool

	CommittedReadings int64 // readings made durable since start
	Commits           int64
	DroppedReadings   int64 // deleted by the overflow policy since start
	// DroppedSentReadings is the part of DroppedReadings that was in
	// batches awaiting commit: sent, so the cloud may have stored them.
	DroppedSentReadings int64
	Rejected            map[string]Rejected // batches the cloud rejected, by cause
	RefusedReadings     int64               // refused by Add (ErrOverloaded) since start
	CorruptItems        int64               // items that failed their checksum and were deleted
	CommitErrors        int64               // failed commits (retried)
}

type statsCounters struct {
	items, bytes, readings, oldestMs   atomic.Int64
	live, backlog, inflightR, fileSize atomic.Int64
	inflightB, events                  atomic.Int64
	sentR, sentB, droppedSent          atomic.Int64
	rejected                           rejectCounters
	bound, diskFree                    atomic.Int64
	committed, commits, dropped        atomic.Int64
	refused, corrupt, commitErrors     atomic.Int64
}

// Stats returns the current state.
func (q *Queue) Stats() Stats {
	s := &q.stats
	st := Stats{
		Items: s.items.Load(), Bytes: s.bytes.Load(), Readings: s.readings.Load(),
		LiveReadings: s.live.Load(), BacklogReadings: s.backlog.Load(),
		InFlightBatches: int(s.inflightB.Load()), InFlightReadings: s.inflightR.Load(),
		AwaitingBatches: int(s.sentB.Load()), AwaitingReadings: s.sentR.Load(),
		DroppedSentReadings: s.droppedSent.Load(), Rejected: s.rejected.snapshot(),
		Events: int(s.events.Load()), FileBytes: s.fileSize.Load(),
		BoundBytes: s.bound.Load(), DiskFreeBytes: s.diskFree.Load(), DiskShort: q.diskShort(s.diskFree.Load()),
		CommittedReadings: s.committed.Load(), Commits: s.commits.Load(),
		DroppedReadings: s.dropped.Load(), RefusedReadings: s.refused.Load(),
		CorruptItems: s.corrupt.Load(), CommitErrors: s.commitErrors.Load(),
	}
	if ms := s.oldestMs.Load(); ms > 0 {
		st.Oldest = time.UnixMilli(ms)
	}
	return st
}
