package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// An event log's journal (table <log>_journal, made by
// EventJournalMigration) lets the owner of a log (the alarm engine, the
// work-order desk) start without reading the log's whole history. It
// holds two kinds of rows:
//
//   - a touch per key and append: Append writes one, stamped with the
//     writer's clock, before it stores the events, so every stored event
//     has a touch at or before its store time; it carries the key's begin
//     time (WithJournal);
//   - snapshots: the owner writes the keys it must hold at start (its held
//     set) with the feed's sequence and a mark of its own, at a time when
//     everything it recorded before is stored.
//
// At start the owner reads the newest complete snapshot and the keys
// touched since shortly before it (ChangedSince): those keys' events are
// all it needs, however long the history. Their events are found by the
// key among the partitions from the oldest of them on (Resume.Since): the
// table is ordered by (company, project, key, n), and a few thousand keys
// spread over it touch nearly every granule of every partition, so the
// time bound is what keeps the read from growing with the history. The events' own time (column at)
// cannot serve: an alarm raised from readings a gateway queued for a day
// is stored with the readings' time.
//
// The table is partitioned by day of the writer's clock; PruneJournal
// drops the days before the newest snapshot (ClickHouse 18.16 has no TTL).
// On a cluster it is one ReplicatedMergeTree across all nodes (no shards,
// like schema_migrations): every node holds the whole journal, a process
// writes and reads it on the node it is connected to, and a partition
// dropped there is dropped on every replica.
const journalSuffix = "_journal"

// Kinds of journal rows.
const (
	journalTouch  = 1 // a key got events: id is the append's time (ms)
	journalKey    = 2 // a key of snapshot id
	journalHeader = 3 // snapshot id: seq, mark, and how many keys it has
)

var journalCols = []column{
	{name: "kind", typ: "UInt8"},
	{name: "id", typ: "Int64", codec: "Delta, ZSTD(1)"},
	{name: "written", typ: "DateTime"},
	{name: "company", typ: "String", lowCard: true},
	{name: "project", typ: "String", lowCard: true},
	{name: "item", typ: "String"},
	{name: "seq", typ: "UInt64"},
	{name: "mark", typ: "Int64"},
	{name: "keys", typ: "UInt32"},
}

const journalColumns = "kind, id, written, company, project, item, seq, mark, keys"

// EventJournalMigration is the migration creating the journal of the event
// log in table (see WithJournal). It works on ClickHouse 18.16.
func EventJournalMigration(component string, version int, table string) Migration {
	if err := checkIdent(table); err != nil {
		panic(fmt.Sprintf("BUG: event log table %q: %v", table, err))
	}
	j := table + journalSuffix
	return Migration{Component: component, Version: version, Name: j, Statements: func(s Server, db string) []string {
		engine := "MergeTree()"
		if s.Clustered() {
			engine = fmt.Sprintf("ReplicatedMergeTree(%s, '{replica}')", quoteString("/clickhouse/tables/"+db+"/"+j))
		}
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s (\n%s\n) ENGINE = %s\nPARTITION BY toYYYYMMDD(written)\nORDER BY (kind, id, item)",
			quoteIdent(db), quoteIdent(j), s.OnCluster(), columnsDDL(s, journalCols), engine)}
	}}
}

// journal is what an EventLog needs to keep its journal: the table and
// where the key, company, project, seq and begin sit in a row.
type journal struct {
	table                             string
	key, company, project, seq, begin int // field indexes in the row type
}

// BeginMargin is how far before a key's begin time (WithJournal) its
// events' time (column at) may lie: readings a little ahead of the
// cloud's clock (the ingest takes up to max_future_skew, 5 minutes by
// default), at truncated to the second.
const BeginMargin = 24 * time.Hour

// WithJournal makes Append keep the log's journal (created by
// EventJournalMigration) and returns l. Call it before the log is used.
// begin is an Int64 column of milliseconds that no event of a key changes
// and that no event's time (at) precedes by more than BeginMargin: when
// the key began (an alarm's raise, an order's opening). A start reads a
// key's events from there on, so it skips the partitions before the
// oldest key it needs.
func (l *EventLog[R]) WithJournal(begin string) *EventLog[R] {
	var zero R
	t := reflect.TypeOf(zero)
	field := func(col string) int {
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).Tag.Get("ch") == col {
				return i
			}
		}
		panic(fmt.Sprintf("BUG: event row %s has no column %s", t, col))
	}
	l.journal = &journal{table: quoteIdent(strings.Trim(l.table, "`") + journalSuffix),
		key: field(l.key), company: field("company"), project: field("project"), seq: field("seq"), begin: field(begin)}
	if t.Field(l.journal.begin).Type.Kind() != reflect.Int64 {
		panic(fmt.Sprintf("BUG: event row %s: begin column %s is not Int64", t, begin))
	}
	return l
}

// touch writes a touch for every key of rows, stamped now.
func (l *EventLog[R]) touch(ctx context.Context, rows []R) error {
	j := l.journal
	type touched struct {
		company, project string
		seq              uint64
		begin            int64
	}
	keys := map[string]*touched{}
	var order []string
	for i := range rows {
		v := reflect.ValueOf(&rows[i]).Elem()
		k := v.Field(j.key).String()
		seq := v.Field(j.seq).Uint()
		begin := v.Field(j.begin).Int()
		if t := keys[k]; t != nil {
			t.seq, t.begin = max(t.seq, seq), min(t.begin, begin)
			continue
		}
		keys[k] = &touched{v.Field(j.company).String(), v.Field(j.project).String(), seq, begin}
		order = append(order, k)
	}
	now := time.Now()
	b, err := l.conn.PrepareBatch(ctx, "INSERT INTO "+j.table+" ("+journalColumns+")")
	if err != nil {
		return fmt.Errorf("cannot journal events of %s: %w", l.table, err)
	}
	defer b.Close()
	for _, k := range order {
		t := keys[k]
		if err := b.Append(uint8(journalTouch), now.UnixMilli(), now.UTC().Truncate(time.Second), t.company, t.project, k, t.seq, t.begin, uint32(0)); err != nil {
			return fmt.Errorf("cannot journal events of %s: %w", l.table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot journal events of %s: %w", l.table, err)
	}
	return nil
}

// HeldKey is one key of a snapshot, with the company and project its
// events are stored under and its begin time (WithJournal).
type HeldKey struct {
	Company, Project, Key string
	Begin                 time.Time
}

// Snapshot is what an event log's owner must hold at start, as it stood
// at Taken.
type Snapshot struct {
	// Taken is when the held set was copied, by the wall clock (the
	// journal's clock; not a test's fake one): every event recorded
	// before it was stored, and every event stored after it has a touch
	// no earlier than Taken (on the writer's clock).
	Taken time.Time
	// Seq is the feed's sequence at Taken.
	Seq uint64
	// Mark is the owner's own figure (the newest raise or opening time of
	// a stored item it did not hold, in ms).
	Mark int64
	Held []HeldKey
}

// ErrSnapshotPending is an owner's answer when asked for a snapshot while
// its events wait for storage: a snapshot must come after every event
// recorded before it is stored, so that a start from it misses nothing.
var ErrSnapshotPending = errors.New("events wait for storage")

// Keys are the snapshot's keys.
func (s *Snapshot) Keys() []string {
	out := make([]string, len(s.Held))
	for i, h := range s.Held {
		out[i] = h.Key
	}
	return out
}

// WriteSnapshot stores s in one insert (the header and every key), then
// drops the journal's days before the day before s (PruneJournal).
func (l *EventLog[R]) WriteSnapshot(ctx context.Context, s Snapshot) error {
	j := l.mustJournal()
	ctx, cancel := context.WithTimeout(ctx, 2*l.timeout)
	defer cancel()
	id, written := s.Taken.UnixMilli(), s.Taken.UTC().Truncate(time.Second)
	b, err := l.conn.PrepareBatch(ctx, "INSERT INTO "+j.table+" ("+journalColumns+")")
	if err != nil {
		return fmt.Errorf("cannot store a snapshot of %s: %w", l.table, err)
	}
	defer b.Close()
	if err := b.Append(uint8(journalHeader), id, written, "", "", "", s.Seq, s.Mark, uint32(len(s.Held))); err != nil {
		return fmt.Errorf("cannot store a snapshot of %s: %w", l.table, err)
	}
	for _, h := range s.Held {
		if err := b.Append(uint8(journalKey), id, written, h.Company, h.Project, h.Key, uint64(0), h.Begin.UnixMilli(), uint32(0)); err != nil {
			return fmt.Errorf("cannot store a snapshot of %s: key %q: %w", l.table, h.Key, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot store a snapshot of %s: %w", l.table, err)
	}
	// A day partition holding a row from before Taken−2d ends before
	// Taken−1d: what a start from s reads stays.
	return l.PruneJournal(ctx, s.Taken.AddDate(0, 0, -2))
}

// LatestSnapshot returns the newest complete snapshot (one whose keys are
// all stored); false when there is none.
func (l *EventLog[R]) LatestSnapshot(ctx context.Context) (Snapshot, bool, error) {
	j := l.mustJournal()
	var heads []struct {
		ID   int64  `ch:"id"`
		Seq  uint64 `ch:"seq"`
		Mark int64  `ch:"mark"`
		Keys uint32 `ch:"keys"`
	}
	// The newest few: one cut short (a failed insert of a header without
	// all its keys) leaves an older one to start from.
	if err := l.conn.Select(ctx, &heads, "SELECT id, any(seq) AS seq, any(mark) AS mark, any(keys) AS keys FROM "+j.table+
		" WHERE kind = ? GROUP BY id ORDER BY id DESC LIMIT 4", uint8(journalHeader)); err != nil {
		return Snapshot{}, false, fmt.Errorf("cannot read the snapshots of %s: %w", l.table, err)
	}
	for _, h := range heads {
		var held []struct {
			Company string `ch:"company"`
			Project string `ch:"project"`
			Key     string `ch:"item"`
			Begin   int64  `ch:"begin"`
		}
		if err := l.conn.Select(ctx, &held, "SELECT company, project, item, min(mark) AS begin FROM "+j.table+
			" WHERE kind = ? AND id = ? GROUP BY company, project, item", uint8(journalKey), h.ID); err != nil {
			return Snapshot{}, false, fmt.Errorf("cannot read the snapshot %d of %s: %w", h.ID, l.table, err)
		}
		if len(held) != int(h.Keys) {
			continue
		}
		s := Snapshot{Taken: time.UnixMilli(h.ID), Seq: h.Seq, Mark: h.Mark, Held: make([]HeldKey, len(held))}
		for i, k := range held {
			s.Held[i] = HeldKey{k.Company, k.Project, k.Key, time.UnixMilli(k.Begin)}
		}
		return s, true, nil
	}
	return Snapshot{}, false, nil
}

// JournalMargin is how long before a snapshot a start reads touches
// from: it covers the clocks of two processes disagreeing (a previous
// owner's) and an owner's writes that arrive late.
const JournalMargin = 10 * time.Minute

// Resume is where an owner's start from a snapshot begins.
type Resume struct {
	Taken time.Time // the snapshot's
	Mark  int64     // the snapshot's
	// Seq is the highest of the snapshot's sequence and of the events
	// stored since.
	Seq uint64
	// Keys are the snapshot's keys and those with events stored since
	// JournalMargin before it: every key whose current state may differ
	// from what the owner held then. Never nil (Query.Among).
	Keys []string
	// Since bounds the events of Keys: none has an earlier time (at),
	// BeginMargin before the oldest key's begin. Reads of them skip the
	// partitions before it (AtLeast("at", Since)); zero without keys.
	Since time.Time
}

// Resume returns the newest complete snapshot with the keys changed since
// shortly before it; false when there is no snapshot.
func (l *EventLog[R]) Resume(ctx context.Context) (Resume, bool, error) {
	s, ok, err := l.LatestSnapshot(ctx)
	if err != nil || !ok {
		return Resume{}, false, err
	}
	changed, seq, begin, err := l.changedSince(ctx, s.Taken.Add(-JournalMargin))
	if err != nil {
		return Resume{}, false, err
	}
	r := Resume{Taken: s.Taken, Mark: s.Mark, Seq: max(s.Seq, seq), Keys: s.Keys()} // Keys not nil: Query.Among
	seen := make(map[string]bool, len(r.Keys)+len(changed))
	oldest := begin
	for _, h := range s.Held {
		seen[h.Key] = true
		if oldest == 0 || h.Begin.UnixMilli() < oldest {
			oldest = h.Begin.UnixMilli()
		}
	}
	for _, k := range changed {
		if !seen[k] {
			seen[k] = true
			r.Keys = append(r.Keys, k)
		}
	}
	if len(r.Keys) > 0 {
		r.Since = time.UnixMilli(oldest).Add(-BeginMargin)
	}
	return r, true, nil
}

// ChangedSince returns the keys with events appended at or after t (their
// touches) and the highest seq among those events (0 when none).
func (l *EventLog[R]) ChangedSince(ctx context.Context, t time.Time) ([]string, uint64, error) {
	keys, seq, _, err := l.changedSince(ctx, t)
	return keys, seq, err
}

// changedSince is ChangedSince with the oldest begin of those keys (0
// when none).
func (l *EventLog[R]) changedSince(ctx context.Context, t time.Time) (keys []string, seq uint64, begin int64, err error) {
	j := l.mustJournal()
	var rows []struct {
		Key   string `ch:"item"`
		Seq   uint64 `ch:"seq"`
		Begin int64  `ch:"begin"`
	}
	// written prunes the days before t; id finds t's rows by the primary key.
	if err := l.conn.Select(ctx, &rows, "SELECT item, max(seq) AS seq, min(mark) AS begin FROM "+j.table+
		" WHERE written >= ? AND kind = ? AND id >= ? GROUP BY item", t.UTC().Truncate(time.Second), uint8(journalTouch), t.UnixMilli()); err != nil {
		return nil, 0, 0, fmt.Errorf("cannot read the journal of %s: %w", l.table, err)
	}
	keys = make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.Key
		seq = max(seq, r.Seq)
		if i == 0 || r.Begin < begin {
			begin = r.Begin
		}
	}
	return keys, seq, begin, nil
}

// PruneJournal drops the journal's day partitions (touches and
// snapshots) holding a row written before before.
func (l *EventLog[R]) PruneJournal(ctx context.Context, before time.Time) error {
	j := l.mustJournal()
	day := before.UTC().Truncate(time.Second)
	var days []struct {
		Day uint32 `ch:"d"`
	}
	if err := l.conn.Select(ctx, &days, "SELECT DISTINCT toYYYYMMDD(written) AS d FROM "+j.table+" WHERE written < ?", day); err != nil {
		return fmt.Errorf("cannot prune the journal of %s: %w", l.table, err)
	}
	for _, d := range days {
		if err := l.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %d", j.table, d.Day)); err != nil {
			return fmt.Errorf("cannot prune the journal of %s: day %d: %w", l.table, d.Day, err)
		}
	}
	return nil
}

func (l *EventLog[R]) mustJournal() *journal {
	if l.journal == nil {
		panic("BUG: event log " + l.table + " has no journal (WithJournal)")
	}
	return l.journal
}
