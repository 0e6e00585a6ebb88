package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/protocol"
)

// The audit counts a gateway's readings four ways, lists their times and a
// device's good series, and ignores other gateways; DropDatabase removes
// the database.
func TestAudit(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var b ReadingBatch
	for i, ts := range []int64{1000, 2000, 3000} {
		b.Add("acme", "tower", "gw-1", 1, &protocol.Reading{Device: "m1", Metric: "kwh", TS: ts, Value: float64(10 + i)})
	}
	b.Add("acme", "tower", "gw-1", 1, &protocol.Reading{Device: "m1", Metric: "kwh", TS: 4000, Value: 99, Quality: protocol.QualityBad})
	b.Add("acme", "tower", "gw-1", 1, &protocol.Reading{Device: "m2", Metric: "kwh", TS: 1500, Value: 5})
	b.Add("acme", "tower", "gw-2", 2, &protocol.Reading{Device: "m9", Metric: "kwh", TS: 1000, Value: 7})
	// The same rows twice: stored once for readers, twice physically until merged.
	for range 2 {
		if err := db.InsertReadings(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	a, err := NewAudit(db.Conn(), db.Database())
	if err != nil {
		t.Fatal(err)
	}
	g := GatewayScope{Company: "acme", Project: "tower", Gateway: "gw-1"}
	c, err := a.Counts(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	// Raw is 10 until a merge collapses the duplicates; the roll-up counts
	// the project's readings that are not bad (m1's bad one out, gw-2's in).
	if c.Distinct != 5 || c.Final != 5 || c.Rollup != 5 || (c.Raw != 10 && c.Raw != 5) {
		t.Errorf("counts %+v, want distinct 5, final 5, raw 10 (or 5 once merged), roll-up 5", c)
	}
	var times []string
	if err := a.ReadingTimes(ctx, g, func(d string, ts int64) { times = append(times, fmt.Sprintf("%s@%d", d, ts)) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"m1@1000", "m1@2000", "m1@3000", "m1@4000", "m2@1500"}; !slices.Equal(times, want) {
		t.Errorf("reading times %v, want %v", times, want)
	}
	ts, vs, err := a.GoodSeries(ctx, g, "m1", "kwh")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ts, []int64{1000, 2000, 3000}) || !slices.Equal(vs, []float64{10, 11, 12}) {
		t.Errorf("good series %v %v, want the three good readings of m1", ts, vs)
	}
	if _, err := NewAudit(db.Conn(), "x; DROP"); err == nil {
		t.Error("NewAudit accepted a database name that is not an identifier")
	}

	o := chtest.Addr(t)
	opts := Options{Addr: o.Addr, User: o.User, Password: o.Password}
	if err := DropDatabase(ctx, opts, db.Database()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoredReadings(ctx, g); err == nil {
		t.Error("the database still answers after DropDatabase")
	}
	if err := DropDatabase(ctx, opts, db.Database()); err != nil {
		t.Errorf("dropping a missing database: %v", err)
	}
}
