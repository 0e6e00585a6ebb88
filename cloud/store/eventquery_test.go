package store

import (
	"fmt"
	"testing"
	"time"
)

// Current finds keys by their latest row (not an earlier one), filters
// every row with Fixed, keeps one per OnePer group, orders and limits; the
// rows it returns are each key's latest, once.
func TestEventLogCurrent(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx, EventLogMigration[testEvent]("things", 1, "thing_events", "thing_id")); err != nil {
		t.Fatal(err)
	}
	l := NewEventLog[testEvent](db.Conn(), "thing_events", "thing_id")
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	var seq uint64
	ev := func(id string, n uint32, project, dev, state string, value float64) testEvent {
		seq++
		at := t0.Add(time.Duration(seq) * time.Minute)
		return testEvent{ID: id, N: n, Seq: seq, At: at, AtMS: at.UnixMilli(), Company: "acme", Project: project,
			Device: dev, Gateway: "gw", State: state, Value: value}
	}
	rows := []testEvent{
		ev("a", 1, "garden", "pump", "active", 1), ev("a", 2, "garden", "pump", "cleared", 1),
		ev("b", 1, "garden", "pump", "active", 2), ev("b", 2, "garden", "pump", "cleared", 2),
		ev("c", 1, "garden", "lift", "cleared", 3),
		ev("d", 1, "tower", "pump", "active", 4),
		ev("e", 1, "garden", "lift", "active", 5), ev("e", 2, "garden", "lift", "cleared", 5), ev("e", 3, "garden", "lift", "active", 5),
	}
	// Stored twice: read once.
	if err := l.Append(ctx, append(rows, rows[1], rows[8])); err != nil {
		t.Fatal(err)
	}
	ids := idsOf(t)
	newest := []Order{{Col: "value", Desc: true}}
	checkEq(t, "active now (e was cleared once)", ids(l.Current(ctx, Query{Where: []Cond{Eq("state", "active")}, OrderBy: newest, Limit: 10})), "e/active d/active")
	checkEq(t, "cleared, oldest first", ids(l.Current(ctx, Query{Where: []Cond{Eq("state", "cleared")}, OrderBy: []Order{{Col: "value"}}, Limit: 10})),
		"a/cleared b/cleared c/cleared")
	checkEq(t, "limit", ids(l.Current(ctx, Query{OrderBy: newest, Limit: 2})), "e/active d/active")
	checkEq(t, "fixed project", ids(l.Current(ctx, Query{Fixed: []Cond{In("project", []string{"garden"})}, OrderBy: newest, Limit: 10})),
		"e/active c/cleared b/cleared a/cleared")
	checkEq(t, "no projects", ids(l.Current(ctx, Query{Fixed: []Cond{In("project", []string{})}, Limit: 10})), "")
	checkEq(t, "any of", ids(l.Current(ctx, Query{Where: []Cond{AnyOf(Eq("state", "active"), AtLeast("value", 3))}, OrderBy: newest, Limit: 10})),
		"e/active d/active c/cleared")
	checkEq(t, "all of", ids(l.Current(ctx, Query{Where: []Cond{AllOf(Eq("device", "pump"), Below("value", 2))}, Limit: 10})), "a/cleared")
	checkEq(t, "not in", ids(l.Current(ctx, Query{Where: []Cond{NotIn("state", []string{"active"})}, OrderBy: newest, Limit: 10})),
		"c/cleared b/cleared a/cleared")
	checkEq(t, "latest cleared per device", ids(l.Current(ctx, Query{Where: []Cond{Eq("state", "cleared")}, OnePer: []string{"project", "device"},
		OrderBy: newest, Limit: 10})), "c/cleared b/cleared")
	evs, err := l.EventsOf(ctx, []string{"e", "a"})
	if got := ids(evs, err); got != "a/active a/cleared e/active e/cleared e/active" {
		t.Errorf("events of a and e: %q", got)
	}
	if m, err := l.MaxSeq(ctx); err != nil || m != seq {
		t.Errorf("max seq %d %v, want %d", m, err, seq)
	}
	if v, err := l.Newest(ctx, "at_ms", Below("at_ms", t0.Add(4*time.Minute).UnixMilli())); err != nil || v != t0.Add(3*time.Minute).UnixMilli() {
		t.Errorf("newest at_ms before t0+4m: %d %v", v, err)
	}
	// Among: only these keys, however many (more than the 50,000
	// elements ClickHouse 18.16 takes in a query's text).
	many := []string{"b", "d"}
	for i := range 60_000 {
		many = append(many, fmt.Sprintf("k-%d", i))
	}
	checkEq(t, "among many keys", ids(l.Current(ctx, Query{Among: many, OrderBy: newest, Limit: 10})), "d/active b/cleared")
	checkEq(t, "among b, latest cleared per device", ids(l.Current(ctx, Query{Among: []string{"a", "b", "c"}, Where: []Cond{Eq("state", "cleared")},
		OnePer: []string{"project", "device"}, OrderBy: []Order{{Col: "value"}}, Limit: 10})), "a/cleared c/cleared")
	checkEq(t, "among none", ids(l.Current(ctx, Query{Among: []string{}, Limit: 10})), "")
	if v, err := l.NewestAmong(ctx, "at_ms", many, Below("at_ms", t0.Add(20*time.Minute).UnixMilli())); err != nil || v != t0.Add(6*time.Minute).UnixMilli() {
		t.Errorf("newest at_ms of b and d: %d %v, want d's %d", v, err, t0.Add(6*time.Minute).UnixMilli())
	}
	if v, err := l.NewestAmong(ctx, "at_ms", nil); err != nil || v != 0 {
		t.Errorf("newest at_ms among no keys: %d %v", v, err)
	}
}
