package store

import (
	"slices"
	"strings"
	"testing"
	"time"
)

type testEvent struct {
	ID      string    `ch:"thing_id"`
	N       uint32    `ch:"n"`
	Seq     uint64    `ch:"seq"`
	At      time.Time `ch:"at"`
	AtMS    int64     `ch:"at_ms"`
	Company string    `ch:"company"`
	Project string    `ch:"project"`
	Device  string    `ch:"device"`
	Gateway string    `ch:"gateway"`
	State   string    `ch:"state"`
	Value   float64   `ch:"value"`
	Flag    uint8     `ch:"flag"`
	skipped int
}

func TestEventLog(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx, EventLogMigration[testEvent]("things", 1, "thing_events", "thing_id")); err != nil {
		t.Fatal(err)
	}
	l := NewEventLog[testEvent](db.Conn(), "thing_events", "thing_id")
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	ev := func(id string, n uint32, seq uint64, dev, gw, state string) testEvent {
		at := t0.Add(time.Duration(seq) * time.Minute)
		return testEvent{ID: id, N: n, Seq: seq, At: at, AtMS: at.UnixMilli(), Company: "acme", Project: "garden",
			Device: dev, Gateway: gw, State: state, Value: float64(seq) / 2, Flag: uint8(n % 2)}
	}
	a1, a2, b1, g1 := ev("a", 1, 10, "pump", "gw", "active"), ev("a", 2, 12, "pump", "gw", "cleared"), ev("b", 1, 11, "lift", "gw", "active"), ev("g", 1, 13, "", "gw", "offline")
	if err := l.Append(ctx, []testEvent{a1, b1}); err != nil {
		t.Fatal(err)
	}
	// a2 and g1, and a1 again (stored twice: read once).
	if err := l.Append(ctx, []testEvent{a2, g1, a1}); err != nil {
		t.Fatal(err)
	}
	ids := idsOf(t)
	latest, err := l.Latest(ctx)
	slices.SortFunc(latest, func(x, y testEvent) int { return strings.Compare(x.ID, y.ID) })
	checkEq(t, "latest", ids(latest, err), "a/cleared b/active g/offline")
	checkEq(t, "all", ids(l.All(ctx)), "a/active a/cleared b/active g/offline")
	checkEq(t, "since 10", ids(l.Since(ctx, 10, 0)), "b/active a/cleared g/offline")
	checkEq(t, "since 10, 2", ids(l.Since(ctx, 10, 2)), "b/active a/cleared")
	checkEq(t, "of a", ids(l.Of(ctx, "a")), "a/active a/cleared")
	checkEq(t, "pump", ids(l.Subject(ctx, "garden", "pump", t0, t0.Add(time.Hour))), "a/active a/cleared")
	checkEq(t, "gateway", ids(l.Subject(ctx, "garden", "gw", t0, t0.Add(time.Hour))), "g/offline")
	checkEq(t, "pump before 12", ids(l.Subject(ctx, "garden", "pump", t0, t0.Add(11*time.Minute))), "a/active")
	got, _ := l.Of(ctx, "a")
	for i := range got {
		got[i].At = got[i].At.UTC()
	}
	if len(got) == 2 && (got[1] != a2 || got[0] != a1) {
		t.Errorf("round trip: %+v, want %+v", got, []testEvent{a1, a2})
	}
}

func TestEventLogRowTypes(t *testing.T) {
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if p := recover(); p == nil || !strings.HasPrefix(p.(string), "BUG:") {
				t.Errorf("%s: no BUG panic (%v)", what, p)
			}
		}()
		f()
	}
	type noKey struct {
		N uint32 `ch:"n"`
	}
	mustPanic("missing columns", func() { NewEventLog[noKey](nil, "t", "id") })
	type badType struct {
		testEvent
		X int `ch:"x"`
	}
	mustPanic("unstorable type", func() { NewEventLog[badType](nil, "t", "thing_id") })
	mustPanic("bad table name", func() { NewEventLog[testEvent](nil, "t; DROP", "thing_id") })
	ddl := strings.Join(EventLogMigration[testEvent]("c", 1, "thing_events", "thing_id").Statements(Server{Major: 18, Minor: 16, Cluster: "two"}, "db"), "\n")
	for _, want := range []string{"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/thing_events_local', '{replica}', seq)",
		"`db`.`thing_events_local` ON CLUSTER `two`", "ORDER BY (company, project, thing_id, n)", "PARTITION BY toYYYYMM(at)",
		"Distributed(`two`, `db`, `thing_events_local`, cityHash64(company, project))", "at DateTime", "value Float64", "flag UInt8"} {
		if !strings.Contains(ddl, want) {
			t.Errorf("cluster DDL lacks %q:\n%s", want, ddl)
		}
	}
}

// idsOf returns a function listing events as "id/state", failing t when
// they came with an error: ids(l.All(ctx)).
func idsOf(t *testing.T) func([]testEvent, error) string {
	return func(evs []testEvent, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, e.ID+"/"+e.State)
		}
		return strings.Join(out, " ")
	}
}

// checkEq reports what when got is not want.
func checkEq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %q, want %q", what, got, want)
	}
}

// testEventV2 is testEvent with a column added by version 2.
type testEventV2 struct {
	ID      string    `ch:"thing_id"`
	N       uint32    `ch:"n"`
	Seq     uint64    `ch:"seq"`
	At      time.Time `ch:"at"`
	AtMS    int64     `ch:"at_ms"`
	Company string    `ch:"company"`
	Project string    `ch:"project"`
	Device  string    `ch:"device"`
	Gateway string    `ch:"gateway"`
	State   string    `ch:"state"`
	Value   float64   `ch:"value"`
	Flag    uint8     `ch:"flag"`
	Link    string    `ch:"link" since:"2"`
}

// A column added to an event log later: a table created by version 1
// gets it from version 2, rows stored before read it empty, and applying
// the column migration again (an interrupted start, two processes at
// once) changes nothing, although ClickHouse 18.16 has no ADD COLUMN IF
// NOT EXISTS. A new database gets the same table.
func TestEventLogAddedColumn(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	v1 := EventLogMigration[testEventV2]("things", 1, "thing_events", "thing_id")
	v2 := EventLogColumnsMigration[testEventV2]("things", 2, "thing_events", "thing_id")
	if err := db.Migrate(ctx, v1); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	old := testEvent{ID: "a", N: 1, Seq: 1, At: at, AtMS: at.UnixMilli(), Company: "acme", Project: "garden", Device: "pump", State: "open"}
	if err := NewEventLog[testEvent](db.Conn(), "thing_events", "thing_id").Append(ctx, []testEvent{old}); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, v1, v2); err != nil {
		t.Fatal(err)
	}
	again := v2
	again.Component = "things-again" // not recorded yet: its statements run on the existing column
	if err := db.Migrate(ctx, again); err != nil {
		t.Fatalf("the column migration applied a second time: %v", err)
	}
	l := NewEventLog[testEventV2](db.Conn(), "thing_events", "thing_id")
	b := testEventV2{ID: "b", N: 1, Seq: 2, At: at, AtMS: at.UnixMilli(), Company: "acme", Project: "garden", Device: "pump", State: "open", Link: "a"}
	if err := l.Append(ctx, []testEventV2{b}); err != nil {
		t.Fatal(err)
	}
	got, err := l.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "a" || got[0].Link != "" || got[1].ID != "b" || got[1].Link != "a" {
		t.Errorf("rows %+v: want a with no link (stored before the column) and b linking to a", got)
	}

	// Without IgnoreExisting the second ADD COLUMN is an error: the
	// tolerance is what makes it harmless, not the server.
	strict := again
	strict.Component, strict.IgnoreExisting = "things-strict", false
	if err := db.Migrate(ctx, strict); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("ADD COLUMN of an existing column without IgnoreExisting: %v", err)
	}
}
