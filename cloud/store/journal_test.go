package store

import (
	"slices"
	"testing"
	"time"
)

// The journal: Append touches the keys it stores (Import does not); a
// snapshot is found only when all its keys are stored; Resume gives the
// newest complete snapshot's keys with those changed since shortly before
// it and the highest sequence; old days are dropped.
func TestEventJournal(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx, EventLogMigration[testEvent]("things", 1, "thing_events", "thing_id"),
		EventJournalMigration("things", 2, "thing_events")); err != nil {
		t.Fatal(err)
	}
	l := NewEventLog[testEvent](db.Conn(), "thing_events", "thing_id").WithJournal("at_ms")
	ev := func(id string, n uint32, seq uint64) testEvent {
		at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) // an old event time: the journal goes by the store time
		return testEvent{ID: id, N: n, Seq: seq, At: at, AtMS: at.UnixMilli(), Company: "acme", Project: "garden", State: "active"}
	}
	if err := l.Import(ctx, []testEvent{ev("old", 1, 1), ev("old", 2, 2)}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := l.Resume(ctx); err != nil || ok {
		t.Fatalf("Resume without a snapshot: %v %v", ok, err)
	}
	keys, seq, err := l.ChangedSince(ctx, time.Now().Add(-time.Hour))
	if err != nil || len(keys) != 0 || seq != 0 {
		t.Fatalf("an import is not journaled: %v %d %v", keys, seq, err)
	}

	taken := time.Now()
	jan2 := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	if err := l.WriteSnapshot(ctx, Snapshot{Taken: taken, Seq: 2, Mark: 7,
		Held: []HeldKey{{"acme", "garden", "old", jan2}, {"acme", "garden", "a", jan2.AddDate(0, 1, 0)}}}); err != nil {
		t.Fatal(err)
	}
	// Stored after the snapshot: b, twice (a retry), with an old event time.
	if err := l.Append(ctx, []testEvent{ev("b", 1, 3), ev("b", 2, 4)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, []testEvent{ev("b", 1, 3), ev("b", 2, 4)}); err != nil {
		t.Fatal(err)
	}
	r, ok, err := l.Resume(ctx)
	if err != nil || !ok {
		t.Fatalf("Resume: %v %v", ok, err)
	}
	if r.Taken.UnixMilli() != taken.UnixMilli() || r.Mark != 7 || r.Seq != 4 {
		t.Errorf("Resume: taken %v mark %d seq %d; want %v 7 4", r.Taken, r.Mark, r.Seq, taken)
	}
	// b began (its begin column, at_ms) on Jan 1, before the snapshot's
	// keys: its events are read from the day before on.
	if want := time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC); !r.Since.Equal(want) {
		t.Errorf("Resume since %v, want %v", r.Since.UTC(), want)
	}
	slices.Sort(r.Keys)
	if !slices.Equal(r.Keys, []string{"a", "b", "old"}) {
		t.Errorf("Resume keys %v, want a b old", r.Keys)
	}

	// A newer snapshot cut short (its header says 3 keys, 1 is stored) is
	// passed over.
	cut := taken.Add(time.Second)
	b, err := db.Conn().PrepareBatch(ctx, "INSERT INTO thing_events_journal ("+journalColumns+")")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append(uint8(journalHeader), cut.UnixMilli(), cut.UTC().Truncate(time.Second), "", "", "", uint64(9), int64(0), uint32(3)); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(uint8(journalKey), cut.UnixMilli(), cut.UTC().Truncate(time.Second), "acme", "garden", "z", uint64(0), int64(0), uint32(0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	if s, ok, err := l.LatestSnapshot(ctx); err != nil || !ok || s.Taken.UnixMilli() != taken.UnixMilli() || len(s.Held) != 2 {
		t.Errorf("LatestSnapshot with a newer one cut short: %v %v %+v; want the complete one", ok, err, s)
	}
	// Rows before Since are skipped: a time bound on the held keys' reads.
	if evs, err := l.EventsOf(ctx, []string{"b", "old"}, AtLeast("at", r.Since)); err != nil || len(evs) != 4 {
		t.Errorf("events of b and old from %v: %d %v, want 4", r.Since, len(evs), err)
	}
	if evs, err := l.EventsOf(ctx, []string{"b", "old"}, AtLeast("at", jan2)); err != nil || len(evs) != 0 {
		t.Errorf("events of b and old from Jan 2: %d %v, want none", len(evs), err)
	}

	// A snapshot three days on drops the days before the day before it:
	// the first snapshot and the touches go, the new one is read.
	later := taken.AddDate(0, 0, 3)
	if err := l.WriteSnapshot(ctx, Snapshot{Taken: later, Seq: 5, Held: []HeldKey{{"acme", "garden", "c", jan2}}}); err != nil {
		t.Fatal(err)
	}
	var left []struct {
		N uint64 `ch:"n"`
	}
	if err := db.Conn().Select(ctx, &left, "SELECT count() AS n FROM thing_events_journal WHERE written < ?", later.AddDate(0, 0, -2).UTC()); err != nil {
		t.Fatal(err)
	}
	if left[0].N != 0 {
		t.Errorf("%d journal rows older than two days before the newest snapshot left", left[0].N)
	}
	r, ok, err = l.Resume(ctx)
	if err != nil || !ok || r.Seq != 5 || !slices.Equal(r.Keys, []string{"c"}) {
		t.Errorf("Resume after the prune: %v %v %+v", ok, err, r)
	}
}
